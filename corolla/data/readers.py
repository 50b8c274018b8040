"""Readers for the built-in datasets' file formats, and safe archive extraction.

No pickle is ever loaded: CIFAR-10 comes from its binary version, read straight out of the tar.

Example:
    images, labels = read_idx_pair(folder / "train-images-idx3-ubyte.gz", folder / "train-labels-idx1-ubyte.gz", size=28)
"""

from __future__ import annotations

import gzip
import os
import pathlib
import shutil
import tarfile
import uuid
import zlib

import numpy as np

from corolla.errors import CorollaError

IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049  # IDX headers: unsigned bytes, 3 resp. 1 dimensions
CIFAR_RECORD = 1 + 32 * 32 * 3  # label byte, then the red, green and blue 32×32 planes


def read_idx(path: pathlib.Path, magic: int, *, expected_shape: tuple[int | None, ...]) -> np.ndarray:
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


def read_cifar10_binary(archive: pathlib.Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train": (uint8 [50000, 32, 32, 3], uint8 [50000]), "test": …} from cifar-10-binary.tar.gz."""
    members = {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}
    fix = f"Delete it and fetch the dataset again. Received: path={str(archive)!r}"
    arrays = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            by_name = {pathlib.PurePosixPath(member.name).name: member for member in tar.getmembers() if member.isfile()}
            for split, names in members.items():
                chunks = []
                for name in names:
                    if name not in by_name:
                        raise CorollaError(f"{archive.name} lacks {name}: not the CIFAR-10 binary archive. {fix}")
                    chunks.append(tar.extractfile(by_name[name]).read())
                data = b"".join(chunks)
                if len(data) % CIFAR_RECORD:
                    raise CorollaError(f"{archive.name}: {split} data is not a whole number of {CIFAR_RECORD}-byte records. {fix}")
                records = np.frombuffer(data, np.uint8).reshape(-1, CIFAR_RECORD)
                images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
                arrays[split] = (np.ascontiguousarray(images), records[:, 0].copy())
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise CorollaError(f"{archive.name} is not a readable .tar.gz ({error}). {fix}") from None
    return arrays


def load_digits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's 1,797 8×8 digits, scaled from 0–16 to 0–255; no official test split."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise CorollaError("The digits dataset comes with scikit-learn: pip install scikit-learn") from None
    digits = sklearn_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)
    return {"train": (images, digits.target.astype(np.uint8))}


def extract_archive(archive: pathlib.Path, dest: pathlib.Path) -> pathlib.Path:
    """Extract a .tar/.tgz into `dest`, refusing links and paths that escape it; atomic (temp folder, rename)."""
    temporary = dest.with_name(f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                target = (temporary / member.name).resolve()
                if not (member.isfile() or member.isdir()) or not target.is_relative_to(temporary.resolve()):
                    raise CorollaError(
                        f"{archive.name} holds an unsafe entry {member.name!r} (a link, device, or a path outside the "
                        f"archive). Refusing to extract it."
                    )
            if hasattr(tarfile, "data_filter"):  # Python ≥ 3.10.12 / 3.11.4: a second line of defence
                tar.extractall(temporary, filter="data")
            else:
                tar.extractall(temporary)
        os.replace(temporary, dest)
    except (tarfile.TarError, EOFError, zlib.error) as error:
        raise CorollaError(f"{archive.name} is not a readable archive ({error}). Delete it and fetch again.") from None
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return dest
