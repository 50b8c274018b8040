"""Built-in datasets: a registry, a verified downloader and an IDX reader.

Example:
    x_train, y_train = load_arrays("fashion-mnist", fetch_dataset("fashion-mnist"))["train"]
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import http.client
import os
import pathlib
import shutil
import urllib.error
import urllib.request
import zlib

import numpy as np

from corolla.errors import CorollaError

_CHUNK_SIZE, _TIMEOUT_S = 1 << 16, 60  # bytes per read; seconds before a stalled connection fails
_IMAGES_MAGIC, _LABELS_MAGIC = 2051, 2049  # IDX headers: unsigned bytes, 3 resp. 1 dimensions
_SPLIT_FILES = {  # split -> (images file, labels file), the MNIST-style IDX names
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """One downloadable file and the md5 of the file as published."""

    name: str
    md5: str


@dataclasses.dataclass(frozen=True)
class BuiltinDataset:
    """A dataset corolla can fetch (from `base_url + "/" + file.name`, or an OS package's `system_dirs`)."""

    name: str
    description: str
    base_url: str
    files: tuple[RemoteFile, ...]
    system_dirs: tuple[str, ...]
    labels: tuple[str, ...]
    image_size: int
    channels: int


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
        _download(f"{root}/{f.name}", dest / f.name, f.md5, dataset.name, progress=progress)
    return dest


def load_arrays(name: str,
                directory: str | os.PathLike | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read `{"train": (images, labels), "test": (...)}` as uint8 arrays, images `[N, size, size]`.

    `directory` defaults to `fetch_dataset(name)`.

    Example:
        (x_train, y_train) = load_arrays("fashion-mnist")["train"]
    """
    dataset = get_dataset(name)
    directory = pathlib.Path(directory) if directory is not None else fetch_dataset(name, progress=False)
    size, num_classes = dataset.image_size, len(dataset.labels)
    arrays = {}
    for split, (images_name, labels_name) in _SPLIT_FILES.items():
        images = _read_idx(directory / images_name, _IMAGES_MAGIC, expected_shape=(None, size, size))
        labels = _read_idx(directory / labels_name, _LABELS_MAGIC, expected_shape=(None,))
        if len(images) != len(labels):
            raise CorollaError(f"{images_name} has {len(images)} images but {labels_name} has {len(labels)} "
                               f"labels; they must match. Delete both and fetch the dataset again. "
                               f"Received: directory={str(directory)!r}")
        if labels.size and int(labels.max()) >= num_classes:
            raise CorollaError(f"{labels_name} contains label {int(labels.max())}, expected labels in "
                               f"0..{num_classes - 1}. Delete it and fetch the dataset again. "
                               f"Received: directory={str(directory)!r}")
        arrays[split] = (images, labels)
    return arrays


def _atomic_copy(src: pathlib.Path, target: pathlib.Path) -> None:
    part = target.with_name(target.name + ".part")
    try:
        shutil.copyfile(src, part)
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)


def _download(url: str, target: pathlib.Path, md5: str, dataset_name: str, *, progress: bool) -> None:
    part = target.with_name(target.name + ".part")
    digest = hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response, open(part, "wb") as out:
            total = response.headers.get("Content-Length")
            with _progress_bar(target.name, int(total) if total else None, enabled=progress) as advance:
                while chunk := response.read(_CHUNK_SIZE):
                    out.write(chunk)
                    digest.update(chunk)
                    advance(len(chunk))
        if digest.hexdigest() != md5:
            raise CorollaError(f"Checksum mismatch for {target.name} downloaded from {url}: expected md5 {md5}. "
                               f"The download was corrupted or the file changed upstream; try again or install "
                               f"the Debian package `dataset-{dataset_name}`. Received: md5={digest.hexdigest()}")
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
    return CorollaError(f"Could not download {url}: {reason}. Expected a reachable download server. To fix it, "
                        f"install the Debian package `dataset-{dataset_name}` (apt-get install dataset-"
                        f"{dataset_name}) or pass --dest with the files already in it. Received: url={url!r}")


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


def _read_idx(path: pathlib.Path, magic: int, *, expected_shape: tuple[int | None, ...]) -> np.ndarray:
    """Read a gzipped big-endian IDX file of unsigned bytes and check its header."""
    fix = f"Delete it and fetch the dataset again (corolla datasets fetch). Received: path={str(path)!r}"
    if not path.is_file():
        raise CorollaError(f"Missing dataset file {path}. {fix}")
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise CorollaError(f"{path.name} is not a valid gzip file ({e}). {fix}") from None
    header_len = 4 + 4 * len(expected_shape)
    if len(data) < header_len:
        raise CorollaError(f"{path.name} is too short to be an IDX file ({len(data)} bytes). {fix}")
    found_magic = int.from_bytes(data[:4], "big")
    if found_magic != magic:
        raise CorollaError(f"{path.name} has IDX magic number {found_magic}, expected {magic}. {fix}")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(len(expected_shape)))
    if any(want is not None and want != got for want, got in zip(expected_shape, dims)):
        want = tuple("N" if d is None else d for d in expected_shape)
        raise CorollaError(f"{path.name} has shape {dims}, expected {want}. {fix}")
    expected_bytes = header_len + int(np.prod(dims))
    if len(data) != expected_bytes:
        raise CorollaError(f"{path.name} holds {len(data)} bytes but its header {dims} implies "
                           f"{expected_bytes}; the file is truncated or corrupt. {fix}")
    return np.frombuffer(bytearray(data), dtype=np.uint8, offset=header_len).reshape(dims)


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
