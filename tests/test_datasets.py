"""Tests for corolla.data.datasets against a real local HTTP server and real IDX files."""

import dataclasses
import functools
import gzip
import hashlib
import http.server
import os
import pathlib
import socket
import threading

import numpy as np
import pytest

from corolla.data import datasets
from corolla.errors import CorollaError

FILE_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
LABELS = ("a", "b", "c", "d")


def _write_idx(path, array, magic):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def _md5(path):
    return hashlib.md5(pathlib.Path(path).read_bytes()).hexdigest()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _Server:
    def __init__(self, directory):
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True)
        self.thread.start()

    def stop(self):
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.thread.join()
        self.httpd.server_close()


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    return {
        "train": (rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), np.array([0, 1, 2, 3, 0], np.uint8)),
        "test": (rng.integers(0, 256, (3, 28, 28), dtype=np.uint8), np.array([3, 2, 1], np.uint8)),
    }


@pytest.fixture
def source(tmp_path, arrays):
    """A folder holding valid tiny IDX gz files."""
    folder = tmp_path / "source"
    folder.mkdir()
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = arrays[split]
        _write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images, 2051)
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels, 2049)
    return folder


@pytest.fixture
def server(source):
    srv = _Server(source)
    yield srv
    srv.stop()


@pytest.fixture
def tiny(source, server):
    """A registered dataset served by `server`, with the right md5s."""
    dataset = datasets.BuiltinDataset(
        name="tiny-test",
        description="Tiny test dataset.",
        base_url=server.url,
        files=tuple(datasets.RemoteFile(name, _md5(source / name)) for name in FILE_NAMES),
        system_dirs=(),
        labels=LABELS,
        image_size=28,
        channels=1,
    )
    datasets.register_dataset(dataset)
    yield dataset
    datasets.unregister_dataset(dataset.name)


def _assert_arrays_equal(loaded, expected):
    assert set(loaded) == {"train", "test"}
    for split in ("train", "test"):
        for got, want in zip(loaded[split], expected[split]):
            assert got.dtype == np.uint8
            np.testing.assert_array_equal(got, want)


def test_fetch_downloads_and_load_arrays_round_trips(tmp_path, tiny, arrays):
    dest = tmp_path / "dest"
    result = datasets.fetch_dataset("tiny-test", dest, use_system=False, progress=False)
    assert result == dest
    assert sorted(p.name for p in dest.iterdir()) == sorted(FILE_NAMES)
    _assert_arrays_equal(datasets.load_arrays("tiny-test", dest), arrays)


def test_fetch_with_progress_bar(tmp_path, tiny, arrays):
    dest = tmp_path / "dest"
    datasets.fetch_dataset("tiny-test", dest, use_system=False, progress=True)
    _assert_arrays_equal(datasets.load_arrays("tiny-test", dest), arrays)


def test_second_fetch_does_not_download(tmp_path, tiny, server):
    dest = tmp_path / "dest"
    datasets.fetch_dataset("tiny-test", dest, use_system=False, progress=False)
    server.stop()
    assert datasets.fetch_dataset("tiny-test", dest, use_system=False, progress=False) == dest


def test_default_dest_uses_corolla_home(tmp_path, tiny, monkeypatch):
    monkeypatch.setenv("COROLLA_HOME", str(tmp_path / "home"))
    assert datasets.default_cache_dir() == tmp_path / "home" / "datasets"
    path = datasets.fetch_dataset("tiny-test", use_system=False, progress=False)
    assert path == tmp_path / "home" / "datasets" / "tiny-test"
    assert datasets.load_arrays("tiny-test")["test"][0].shape == (3, 28, 28)


def test_system_dir_is_copied_not_linked(tmp_path, tiny, source, server, arrays):
    server.stop()
    datasets.register_dataset(
        dataclasses.replace(tiny, system_dirs=(str(tmp_path / "absent"), str(source)))
    )
    dest = tmp_path / "dest"
    datasets.fetch_dataset("tiny-test", dest, progress=False)
    for name in FILE_NAMES:
        assert (dest / name).is_file() and not (dest / name).is_symlink()
    _assert_arrays_equal(datasets.load_arrays("tiny-test", dest), arrays)


def test_md5_mismatch_leaves_nothing_behind(tmp_path, tiny):
    bad = datasets.RemoteFile(FILE_NAMES[0], "0" * 32)
    datasets.register_dataset(dataclasses.replace(tiny, files=(bad,) + tiny.files[1:]))
    dest = tmp_path / "dest"
    with pytest.raises(CorollaError, match=FILE_NAMES[0]) as info:
        datasets.fetch_dataset("tiny-test", dest, use_system=False, progress=False)
    assert "0" * 32 in str(info.value) and tiny.files[0].md5 in str(info.value)
    assert not (dest / FILE_NAMES[0]).exists()
    assert not list(dest.glob("*.part"))


def test_http_404_names_url(tmp_path, tiny, server):
    dest = tmp_path / "dest"
    with pytest.raises(CorollaError, match="404") as info:
        datasets.fetch_dataset("tiny-test", dest, base_url=server.url + "/missing", use_system=False, progress=False)
    assert f"{server.url}/missing/{FILE_NAMES[0]}" in str(info.value)
    assert "--dest DIR" in str(info.value) and "apt-get" not in str(info.value)  # no Debian package for it
    assert not dest.exists() or not list(dest.iterdir())


def test_fashion_mnist_download_error_suggests_the_debian_package(tmp_path, server):
    with pytest.raises(CorollaError, match="apt-get install dataset-fashion-mnist"):
        datasets.fetch_dataset("fashion-mnist", tmp_path / "d", base_url=server.url + "/nothing", use_system=False, progress=False)


def test_unreachable_port_names_url(tmp_path, tiny):
    with socket.socket() as sock:  # bind then close: nothing listens on this port afterwards
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    dest = tmp_path / "dest"
    with pytest.raises(CorollaError, match=url):
        datasets.fetch_dataset("tiny-test", dest, base_url=url, use_system=False, progress=False)
    assert not dest.exists() or not list(dest.iterdir())


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda p: _write_idx(p, np.zeros((5, 28, 28), np.uint8), 2049), "magic number 2049, expected 2051"),
        (lambda p: p.write_bytes(gzip.compress(gzip.decompress(p.read_bytes())[:-10])), "truncated"),
        (lambda p: _write_idx(p, np.zeros((5, 14, 14), np.uint8), 2051), "shape"),
        (lambda p: p.write_bytes(b"not gzip at all"), "not a valid gzip"),
        (lambda p: p.write_bytes(p.read_bytes()[:40]), "not a valid gzip"),
        (os.remove, "Missing dataset file"),
    ],
)
def test_corrupt_images_file_is_named(source, tiny, corrupt, message):
    corrupt(source / FILE_NAMES[0])
    with pytest.raises(CorollaError, match=message) as info:
        datasets.load_arrays("tiny-test", source)
    assert FILE_NAMES[0] in str(info.value)


def test_label_count_and_range_are_checked(source, tiny):
    _write_idx(source / FILE_NAMES[1], np.zeros(4, np.uint8), 2049)
    with pytest.raises(CorollaError, match="5 images but .* 4 labels"):
        datasets.load_arrays("tiny-test", source)
    _write_idx(source / FILE_NAMES[1], np.array([0, 1, 2, 3, len(LABELS)], np.uint8), 2049)
    with pytest.raises(CorollaError, match=f"{FILE_NAMES[1]} contains label {len(LABELS)}"):
        datasets.load_arrays("tiny-test", source)


def test_unknown_dataset_lists_available():
    with pytest.raises(CorollaError, match=r"Unknown dataset 'nope'\. Available: .*fashion-mnist"):
        datasets.get_dataset("nope")
    assert "fashion-mnist" in [d.name for d in datasets.list_datasets()]


def test_fashion_mnist_registration():
    ds = datasets.get_dataset("fashion-mnist")
    assert len(ds.labels) == 10 and ds.labels[0] == "T-shirt/top" and ds.labels[9] == "Ankle boot"
    assert [f.name for f in ds.files] == list(FILE_NAMES)
    assert (ds.image_size, ds.channels) == (28, 1)


@pytest.mark.skipif(
    not all(os.path.isfile(f"/usr/share/datasets/fashion-mnist/{n}") for n in FILE_NAMES),
    reason="Debian package dataset-fashion-mnist is not installed",
)
def test_fashion_mnist_from_system_package(tmp_path):
    dest = datasets.fetch_dataset("fashion-mnist", tmp_path / "fm", progress=False)
    assert all((dest / n).is_file() and not (dest / n).is_symlink() for n in FILE_NAMES)
    loaded = datasets.load_arrays("fashion-mnist", dest)
    (x_train, y_train), (x_test, y_test) = loaded["train"], loaded["test"]
    assert x_train.shape == (60000, 28, 28) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert set(np.unique(y_train)) == set(range(10)) and int(y_test.max()) <= 9
