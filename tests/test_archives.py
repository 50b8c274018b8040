"""Archive datasets (CIFAR-10 binary, a tf_flowers-style photo archive) and digits, over a loopback server."""

import hashlib
import io
import tarfile

import numpy as np
import pytest

from corolla.data import datasets
from corolla.data.prepare import prepare
from corolla.errors import CorollaError
from tests.conftest import encode
from tests.test_datasets import _Server


def add(tar: tarfile.TarFile, name: str, data: bytes, **member) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in member.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data))


def build_archive(path, entries) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in entries:
            add(tar, name, data)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def served(tmp_path, monkeypatch):
    monkeypatch.setenv("COROLLA_HOME", str(tmp_path / "home"))
    folder = tmp_path / "www"
    folder.mkdir()
    server = _Server(folder)
    registered = []

    def register(name, archive_name, sha256, **fields):
        dataset = datasets.BuiltinDataset(
            name=name, description="test", base_url=server.url, files=(datasets.RemoteFile(archive_name, sha256=sha256),),
            system_dirs=(), **fields,
        )
        datasets.register_dataset(dataset)
        registered.append(name)
        return dataset

    yield folder, register
    server.stop()
    for name in registered:
        datasets.unregister_dataset(name)


def cifar_records(labels, rng):
    images = rng.integers(0, 256, (len(labels), 32, 32, 3), dtype=np.uint8)
    planes = images.transpose(0, 3, 1, 2).reshape(len(labels), -1)  # R plane, G plane, B plane
    return images, b"".join(bytes([label]) + row.tobytes() for label, row in zip(labels, planes))


def test_cifar10_binary_archive_reads_planes_without_pickle(served):
    folder, register = served
    rng = np.random.default_rng(0)
    batches = [cifar_records([i % 10, (i + 3) % 10], rng) for i in range(5)]
    test_images, test_data = cifar_records([7, 1, 2], rng)
    entries = [(f"cifar-10-batches-bin/data_batch_{i + 1}.bin", data) for i, (_, data) in enumerate(batches)]
    sha = build_archive(folder / "cifar.tar.gz", entries + [("cifar-10-batches-bin/test_batch.bin", test_data)])
    register("tiny-cifar", "cifar.tar.gz", sha, labels=tuple("abcdefghij"), image_size=32, channels=3, reader="cifar10-binary")
    arrays = datasets.load_arrays("tiny-cifar")
    np.testing.assert_array_equal(arrays["train"][0], np.concatenate([images for images, _ in batches]))
    np.testing.assert_array_equal(arrays["test"][0], test_images)
    assert arrays["test"][1].tolist() == [7, 1, 2]


def test_cifar_prepare_keeps_the_official_test_split(served, tmp_path):
    folder, register = served
    rng = np.random.default_rng(1)
    entries = [(f"b/data_batch_{i}.bin", cifar_records([i, i + 1], rng)[1]) for i in range(1, 6)]
    sha = build_archive(folder / "c.tar.gz", entries + [("b/test_batch.bin", cifar_records([0, 9, 9], rng)[1])])
    register("tiny-cifar2", "c.tar.gz", sha, labels=tuple("abcdefghij"), image_size=32, channels=3, reader="cifar10-binary")
    manifest = prepare("tiny-cifar2", out=tmp_path / "out", verbose=False)
    assert (manifest.count("train"), manifest.count("eval"), manifest.channels, manifest.image_size) == (10, 3, 3, 32)


def test_photo_archive_is_extracted_and_prepared(served, tmp_path):
    folder, register = served
    rng = np.random.default_rng(2)
    photos = [(f"photos/{name}/{i}.jpg", encode(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8), "JPEG"))
              for name in ("daisy", "roses") for i in range(10)]
    sha = build_archive(folder / "photos.tgz", photos + [("photos/LICENSE.txt", b"CC-BY")])
    register("tiny-flowers", "photos.tgz", sha, labels=("daisy", "roses"), image_size=None, channels=3,
             reader="folder-archive", folder="photos")
    root = datasets.dataset_folder("tiny-flowers", progress=False)
    assert sorted(p.name for p in root.iterdir()) == ["LICENSE.txt", "daisy", "roses"]
    manifest = prepare("tiny-flowers", out=tmp_path / "out", image_size=24, verbose=False)
    assert manifest.classes == ["daisy", "roses"] and manifest.splits["eval"].per_class == {"daisy": 1, "roses": 1}


@pytest.mark.parametrize("member", [{"name": "photos/../../evil.txt"}, {"name": "photos/link", "type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}])
def test_unsafe_archive_entries_are_refused(served, member):
    folder, register = served
    member = dict(member)  # the parameter is shared between runs: don't pop from it
    with tarfile.open(folder / "bad.tgz", "w:gz") as tar:
        add(tar, "photos/a/1.jpg", b"x")
        add(tar, member.pop("name"), b"", **member)
    sha = hashlib.sha256((folder / "bad.tgz").read_bytes()).hexdigest()
    register("bad-archive", "bad.tgz", sha, labels=("a",), image_size=None, channels=3, reader="folder-archive", folder="photos")
    with pytest.raises(CorollaError, match="unsafe entry"):
        datasets.dataset_folder("bad-archive", progress=False)
    home = folder.parent / "home"
    assert not list(home.rglob("evil.txt")) and not list(home.rglob("photos"))


def test_sha256_mismatch_leaves_nothing(served):
    folder, register = served
    build_archive(folder / "x.tgz", [("photos/a/1.jpg", b"x")])
    register("wrong-sum", "x.tgz", "0" * 64, labels=("a",), image_size=None, channels=3, reader="folder-archive", folder="photos")
    with pytest.raises(CorollaError, match="expected sha256 0000"):
        datasets.dataset_folder("wrong-sum", progress=False)
    assert not [p for p in (folder.parent / "home").rglob("*") if p.is_file()]


def test_digits_are_built_in_and_split_per_class(tmp_path):
    arrays = datasets.load_arrays("digits")
    images, labels = arrays["train"]
    assert set(arrays) == {"train"} and images.shape == (1797, 8, 8) and images.max() == 255
    manifest = prepare("digits", out=tmp_path / "out", verbose=False)
    assert (manifest.image_size, manifest.channels) == (8, 1)
    assert manifest.count("eval") == sum(round(n * 0.1) for n in np.bincount(labels))
