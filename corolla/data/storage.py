"""Paths that are local or remote (gs://, s3://, hdfs://…): local ones through the OS, remote ones
through tf.io.gfile, which imports TensorFlow only when a remote path is actually used.

This is what lets `prepare --out gs://bucket/data` run on Dataflow and `train gs://bucket/data` read it.

Example:
    write_text(join("gs://bucket/data", "labels.txt"), "roses\\ntulips\\n")
"""

from __future__ import annotations

import glob as local_glob
import os
import shutil
import uuid


def is_remote(path) -> bool:
    return "://" in str(path)


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def join(base, *parts: str) -> str:
    return "/".join([str(base).rstrip("/"), *parts]) if is_remote(base) else os.path.join(str(base), *parts)


def exists(path) -> bool:
    return _gfile().exists(str(path)) if is_remote(path) else os.path.exists(path)


def listdir(path) -> list[str]:
    if is_remote(path):
        return [name.rstrip("/") for name in _gfile().listdir(str(path))] if _gfile().exists(str(path)) else []
    return os.listdir(path) if os.path.isdir(path) else []


def makedirs(path) -> None:
    _gfile().makedirs(str(path)) if is_remote(path) else os.makedirs(path, exist_ok=True)


def remove(path) -> None:
    if exists(path):
        _gfile().remove(str(path)) if is_remote(path) else os.remove(path)


def rmtree(path) -> None:
    if is_remote(path):
        if _gfile().exists(str(path)):
            _gfile().rmtree(str(path))
    else:
        shutil.rmtree(path, ignore_errors=True)


def rename(source, target) -> None:
    """Atomic locally; on object stores a copy then delete (the manifest, written last, marks completion)."""
    _gfile().rename(str(source), str(target), overwrite=True) if is_remote(source) else os.replace(source, target)


def glob(pattern) -> list[str]:
    return sorted(_gfile().glob(str(pattern)) if is_remote(pattern) else local_glob.glob(str(pattern)))


def open_file(path, mode: str = "r"):
    if is_remote(path):
        return _gfile().GFile(str(path), mode)
    return open(path, mode, encoding=None if "b" in mode else "utf-8")


def read_text(path) -> str:
    with open_file(path) as file:
        return file.read()


def write_text(path, text: str) -> None:
    """Write then rename, so a crash never leaves a half-written file under the final name."""
    parent, name = str(path).rsplit("/", 1) if is_remote(path) else os.path.split(str(path))
    temporary = join(parent, f".{name}.tmp-{uuid.uuid4().hex[:8]}")
    with open_file(temporary, "w") as file:
        file.write(text)
    rename(temporary, path)


def sha256_file(path) -> str:
    """Hex SHA-256 of a local file, read in 1 MiB blocks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()
