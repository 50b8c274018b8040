"""Built-in datasets: a registry and a verified downloader (the formats are in `corolla.data.readers`).

    fashion-mnist  IDX files; Debian's dataset-fashion-mnist or the official URLs
    cifar10        the official binary archive (no pickle)
    flowers        the seeds' tf_flowers archive: a folder of class sub-folders
    digits         scikit-learn's bundled 8×8 digits

Example:
    x_train, y_train = load_arrays("fashion-mnist")["train"]
    photos = dataset_folder("flowers")            # …/flowers/flower_photos/{daisy,roses,…}/*.jpg
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import http.client
import os
import pathlib
import shutil
import urllib.error
import urllib.request

import numpy as np

from corolla.data import readers
from corolla.errors import CorollaError

_CHUNK_SIZE, _TIMEOUT_S = 1 << 16, 60  # bytes per read; seconds before a stalled connection fails
_SPLIT_FILES = {  # split -> (images file, labels file), the MNIST-style IDX names
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """One downloadable file and its checksum as published (sha256 is checked when given, else md5)."""

    name: str
    md5: str | None = None
    sha256: str | None = None


@dataclasses.dataclass(frozen=True)
class BuiltinDataset:
    """A dataset corolla can fetch (from `base_url + "/" + file.name`, or an OS package's `system_dirs`)."""

    name: str
    description: str
    base_url: str
    files: tuple[RemoteFile, ...]
    system_dirs: tuple[str, ...]
    labels: tuple[str, ...]
    image_size: int | None  # None: photos of any size (prepare's --image-size decides)
    channels: int
    reader: str = "idx"  # idx | cifar10-binary | folder-archive | digits
    folder: str | None = None  # folder-archive: the class-folder root inside the archive


_REGISTRY: dict[str, BuiltinDataset] = {}


def register_dataset(dataset: BuiltinDataset) -> None:
    """Add `dataset` to the registry, replacing any dataset with the same name."""
    _REGISTRY[dataset.name] = dataset


def get_dataset(name: str) -> BuiltinDataset:
    """Return the registered dataset called `name`.

    Example:
        get_dataset("fashion-mnist").labels[0]  # "T-shirt/top"
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        available = ", ".join(sorted(_REGISTRY)) or "(none)"
        raise CorollaError(f"Unknown dataset {name!r}. Available: {available}") from None


def unregister_dataset(name: str) -> None:
    _REGISTRY.pop(name, None)


def list_datasets() -> list[BuiltinDataset]:
    """Return all registered datasets, sorted by name."""
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def default_cache_dir() -> pathlib.Path:
    """Return `$COROLLA_HOME/datasets`, or `~/.cache/corolla/datasets` when unset."""
    home = os.environ.get("COROLLA_HOME")
    root = pathlib.Path(home).expanduser() if home else pathlib.Path.home() / ".cache" / "corolla"
    return root / "datasets"


def fetch_dataset(name: str, dest: str | os.PathLike | None = None, *, base_url: str | None = None,
                  use_system: bool = True, progress: bool = True) -> pathlib.Path:
    """Put every file of dataset `name` in `dest` (default: the cache) and return that folder.

    Files come from an OS package folder (`use_system=True`), else are downloaded from
    `base_url` (default: the official URL) and md5-verified. Files already in `dest` are kept.

    Example:
        path = fetch_dataset("fashion-mnist", dest="data/fashion-mnist", progress=False)
    """
    dataset = get_dataset(name)
    dest = pathlib.Path(dest).expanduser() if dest is not None else default_cache_dir() / name
    missing = [f for f in dataset.files if not (dest / f.name).is_file()]
    if not missing:
        dest.mkdir(parents=True, exist_ok=True)
        return dest
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CorollaError(f"Cannot create the dataset folder {dest} ({e.strerror}); pass --dest with a "
                           f"writable folder. Received: dest={str(dest)!r}") from None
    system_dirs = map(pathlib.Path, dataset.system_dirs if use_system else ())
    system_dir = next((d for d in system_dirs if all((d / f.name).is_file() for f in dataset.files)), None)
    if system_dir is not None:
        # Not md5-checked: distributions may re-compress the files (Debian does),
        # and the package manager already verified them. load_arrays checks structure.
        for f in missing:
            _atomic_copy(system_dir / f.name, dest / f.name)
        return dest

    root = (base_url or dataset.base_url).rstrip("/")
    for f in missing:
        _download(f"{root}/{f.name}", dest / f.name, f, dataset.name, progress=progress)
    return dest


def load_arrays(name: str, directory: str | os.PathLike | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train": (uint8 images [N, H, W] or [N, H, W, 3], uint8 labels [N]), "test": (…)} if it has one.

    `directory` defaults to `fetch_dataset(name)`.

    Example:
        (x_train, y_train) = load_arrays("fashion-mnist")["train"]
    """
    dataset = get_dataset(name)
    if dataset.reader == "digits":
        return readers.load_digits()
    if dataset.reader == "folder-archive":
        raise CorollaError(f"{name} is a folder of photos, not arrays: use dataset_folder({name!r}).")
    directory = pathlib.Path(directory) if directory is not None else fetch_dataset(name, progress=False)
    if dataset.reader == "cifar10-binary":
        return readers.read_cifar10_binary(directory / dataset.files[0].name)
    arrays = {}
    for split, (images_name, labels_name) in _SPLIT_FILES.items():
        images = readers.read_idx(directory / images_name, readers.IMAGES_MAGIC, expected_shape=(None, dataset.image_size, dataset.image_size))
        labels = readers.read_idx(directory / labels_name, readers.LABELS_MAGIC, expected_shape=(None,))
        if len(images) != len(labels):
            raise CorollaError(f"{images_name} has {len(images)} images but {labels_name} has {len(labels)} "
                               f"labels; they must match. Delete both and fetch the dataset again. "
                               f"Received: directory={str(directory)!r}")
        if labels.size and int(labels.max()) >= len(dataset.labels):
            raise CorollaError(f"{labels_name} contains label {int(labels.max())}, expected labels in "
                               f"0..{len(dataset.labels) - 1}. Delete it and fetch the dataset again. "
                               f"Received: directory={str(directory)!r}")
        arrays[split] = (images, labels)
    return arrays


def dataset_folder(name: str, dest: str | os.PathLike | None = None, *, progress: bool = True) -> pathlib.Path:
    """The extracted class-folder root of an archive dataset (fetched and extracted on first use)."""
    dataset = get_dataset(name)
    if dataset.reader != "folder-archive":
        raise CorollaError(f"{name} is not a folder dataset; use load_arrays({name!r}).")
    directory = fetch_dataset(name, dest, progress=progress)
    root = directory / dataset.folder
    if not root.is_dir():
        readers.extract_archive(directory / dataset.files[0].name, directory / ".extracted")
        os.replace(directory / ".extracted" / dataset.folder, root)
        shutil.rmtree(directory / ".extracted", ignore_errors=True)
    return root


def _atomic_copy(src: pathlib.Path, target: pathlib.Path) -> None:
    part = target.with_name(target.name + ".part")
    try:
        shutil.copyfile(src, part)
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)


def _download(url: str, target: pathlib.Path, expected: RemoteFile, dataset_name: str, *, progress: bool) -> None:
    part = target.with_name(target.name + ".part")
    algorithm, checksum = ("sha256", expected.sha256) if expected.sha256 else ("md5", expected.md5)
    digest = hashlib.new(algorithm)
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response, open(part, "wb") as out:
            total = response.headers.get("Content-Length")
            with _progress_bar(target.name, int(total) if total else None, enabled=progress) as advance:
                while chunk := response.read(_CHUNK_SIZE):
                    out.write(chunk)
                    digest.update(chunk)
                    advance(len(chunk))
        if digest.hexdigest() != checksum:
            raise CorollaError(f"Checksum mismatch for {target.name} downloaded from {url}: expected {algorithm} {checksum}. "
                               f"The download was corrupted or the file changed upstream; try again. "
                               f"Received: {algorithm}={digest.hexdigest()}")
        os.replace(part, target)
    except urllib.error.HTTPError as e:
        raise _network_error(url, f"HTTP {e.code} {e.reason}", dataset_name) from None
    except urllib.error.URLError as e:
        raise _network_error(url, str(e.reason), dataset_name) from None
    except (TimeoutError, ConnectionError, http.client.HTTPException) as e:
        raise _network_error(url, str(e) or type(e).__name__, dataset_name) from None
    finally:
        part.unlink(missing_ok=True)


def _network_error(url: str, reason: str, dataset_name: str) -> CorollaError:
    hint = (f"install the Debian package `dataset-{dataset_name}` (apt-get install dataset-{dataset_name}) or "
            if get_dataset(dataset_name).system_dirs else "")
    return CorollaError(f"Could not download {url}: {reason}. Expected a reachable download server. To fix it, "
                        f"{hint}put the files in the dataset folder yourself (corolla datasets fetch {dataset_name} "
                        f"--dest DIR uses them). Received: url={url!r}")


@contextlib.contextmanager
def _progress_bar(description: str, total: int | None, *, enabled: bool):
    """Yield `advance(n_bytes)`: drives a Rich bar when enabled, else does nothing."""
    if not enabled:
        yield lambda n: None
        return
    from rich import progress as rp  # lazy: only interactive downloads need it

    columns = (rp.TextColumn("{task.description}"), rp.BarColumn(), rp.DownloadColumn(), rp.TransferSpeedColumn())
    with rp.Progress(*columns) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


register_dataset(BuiltinDataset(
    name="fashion-mnist",
    description="Zalando's 28x28 grayscale photos of clothing in 10 classes (60,000 train, 10,000 test).",
    base_url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com",
    files=(
        RemoteFile("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        RemoteFile("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
        RemoteFile("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
        RemoteFile("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
    ),
    system_dirs=("/usr/share/datasets/fashion-mnist",),
    labels=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
            "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    image_size=28,
    channels=1,
))

register_dataset(BuiltinDataset(
    name="cifar10",
    description="CIFAR-10: 32x32 colour photos in 10 classes (50,000 train, 10,000 test).",
    base_url="https://www.cs.toronto.edu/~kriz",
    files=(RemoteFile("cifar-10-binary.tar.gz", md5="c32a1d4ab5d03f1284b67883e8d87530",
                      sha256="c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"),),
    system_dirs=(),
    labels=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    image_size=32,
    channels=3,
    reader="cifar10-binary",
))

register_dataset(BuiltinDataset(
    name="flowers",
    description="The seeds' tf_flowers: 3,670 photos of daisies, dandelions, roses, sunflowers and tulips.",
    base_url="http://download.tensorflow.org/example_images",
    files=(RemoteFile("flower_photos.tgz", sha256="4c54ace7911aaffe13a365c34f650e71dd5bf1be0a58b464e5a7183e3e595d9c"),),
    system_dirs=(),
    labels=("daisy", "dandelion", "roses", "sunflowers", "tulips"),
    image_size=None,
    channels=3,
    reader="folder-archive",
    folder="flower_photos",
))

register_dataset(BuiltinDataset(
    name="digits",
    description="scikit-learn's 1,797 handwritten 8x8 digits (bundled, no download).",
    base_url="",
    files=(),
    system_dirs=(),
    labels=tuple(str(digit) for digit in range(10)),
    image_size=8,
    channels=1,
    reader="digits",
))
