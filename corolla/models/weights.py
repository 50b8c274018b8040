"""The converted-weights cache: `$COROLLA_HOME/weights` (default `~/.cache/corolla/weights`).

Each entry is NAME.npz (arrays keyed "layer_name/index") beside NAME.json (its sha256 and where it
came from). Both are written to a temporary name and renamed, the .json last, so a crash never
leaves an entry that looks whole; an entry whose checksum does not match is converted again.

Example:
    arrays = cached_weights("efficientnet_lite0", convert=lambda: {...})
    assign_weights(model, arrays)
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Callable

import numpy as np

from corolla.data.storage import sha256_file
from corolla.errors import CorollaError


def cache_dir() -> pathlib.Path:
    """`$COROLLA_HOME/weights`, or `~/.cache/corolla/weights` when COROLLA_HOME is unset."""
    home = os.environ.get("COROLLA_HOME")
    return (pathlib.Path(home).expanduser() if home else pathlib.Path.home() / ".cache" / "corolla") / "weights"


def cached_weights(name: str, *, convert: Callable[[], tuple[dict[str, np.ndarray], dict]]) -> dict[str, np.ndarray]:
    """Arrays of cache entry `name`; on a miss, `convert()` → (arrays, provenance) is run and stored."""
    arrays_path, meta_path = cache_dir() / f"{name}.npz", cache_dir() / f"{name}.json"
    if arrays_path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("sha256") == sha256_file(arrays_path):
            with np.load(arrays_path, allow_pickle=False) as stored:
                return {key: stored[key] for key in stored.files}
    arrays, provenance = convert()
    arrays_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = arrays_path.with_name(f".{arrays_path.name}.tmp-{os.getpid()}")
    with open(temporary, "wb") as file:
        np.savez(file, **arrays)
    meta = {"sha256": sha256_file(temporary), **provenance}
    os.replace(temporary, arrays_path)
    temporary = meta_path.with_name(f".{meta_path.name}.tmp-{os.getpid()}")
    temporary.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, meta_path)
    return arrays


def assign_weights(model, arrays: dict[str, np.ndarray], *, skip: tuple[str, ...] = ()) -> None:
    """Set every weighted layer of `model` from `arrays` ("layer_name/index" keys); all must match."""
    used = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        keys = [f"{layer.name}/{index}" for index in range(len(layer.weights))]
        missing = [key for key in keys if key not in arrays]
        if missing:
            raise CorollaError(f"The weights for {model.name} have no {missing[0]}: they were made for another architecture. Received: layer={layer.name!r}")
        values = [arrays[key] for key in keys]
        for weight, value in zip(layer.weights, values):
            if tuple(weight.shape) != value.shape:
                raise CorollaError(
                    f"The weights for {model.name} do not fit layer {layer.name}: expected shape {tuple(weight.shape)}. "
                    f"Received: shape={value.shape}"
                )
        layer.set_weights(values)
        used.update(keys)
    unused = sorted(key for key in set(arrays) - used if key.split("/")[0] not in skip)
    if unused:
        raise CorollaError(f"{model.name} has no layer for the weights {', '.join(unused[:3])}…: they were made for another architecture.")
