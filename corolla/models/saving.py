"""Load a model file without running code from it: `.keras` only, Keras safe mode on, no Lambda layers.

Legacy `.h5`/`.hdf5` model files are refused: Keras' safe mode does not cover them and a Lambda
layer in one is marshalled Python bytecode that runs on load. A `.keras` file's config is read
first, so a Lambda layer is refused by name before Keras sees it.

Example:
    model = load_model_file("runs/fm/checkpoints/best.keras")
"""

from __future__ import annotations

import json
import os
import pathlib
import zipfile

from corolla.errors import CorollaError


def load_model_file(path: str | os.PathLike):
    """The Keras model in the `.keras` file `path`, loaded with `safe_mode=True`; CorollaError otherwise."""
    path = pathlib.Path(path)
    if path.suffix.lower() in (".h5", ".hdf5"):
        raise CorollaError(
            f"{path} is a legacy HDF5 model file, which corolla does not load: Keras' safe mode does not cover it, so "
            f"it could run code on load. Re-save it where you trust it as .keras (`model.save('model.keras')`). Received: path={str(path)!r}"
        )
    if path.suffix.lower() != ".keras":
        raise CorollaError(f"Expected a Keras model file ending in .keras. Received: path={str(path)!r}")
    if not path.is_file():
        raise CorollaError(f"No model file at {path}. Received: path={str(path)!r}")
    lambdas = _lambda_layers(path)
    if lambdas:
        raise CorollaError(
            f"{path} contains a Lambda layer ({lambdas[0]}), whose Python code corolla will not run (safe mode). "
            f"Rebuild the model with built-in layers, or a Layer subclass decorated with "
            f"@keras.saving.register_keras_serializable(), and save it again. Received: path={str(path)!r}"
        )
    import keras

    from corolla.models import clips  # noqa: F401 (registers the clip layers a clip model's file names)

    try:
        return keras.saving.load_model(path, safe_mode=True)
    except (TypeError, ValueError) as error:
        cause = error
        while cause.__cause__ or cause.__context__:  # Keras wraps the useful message several levels deep
            cause = cause.__cause__ or cause.__context__
        reason = str(cause).split(". Make sure")[0].split("\n")[0]
        raise CorollaError(
            f"Could not load {path} with safe mode on: {reason}. Custom layers must be registered with "
            f"@keras.saving.register_keras_serializable() and imported before loading. Received: path={str(path)!r}"
        ) from error


def _lambda_layers(path: pathlib.Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as error:
        raise CorollaError(f"{path} is not a Keras .keras archive (a zip holding config.json): {error}. Received: path={str(path)!r}") from error
    found, stack = [], [config]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("class_name") == "Lambda":
                found.append(item.get("config", {}).get("name", "Lambda"))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found
