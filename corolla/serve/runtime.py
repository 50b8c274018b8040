"""Load an exported SavedModel (the newest complete version) and run it on encoded images.

Shared by `corolla serve` and local `corolla predict`, so both give the same answers.

Example:
    model = ExportedModel.load("runs/fm/export")      # newest version, e.g. runs/fm/export/2
    outputs = model.predict([open("shoe.png", "rb").read()])
    outputs["labels"][0], outputs["probabilities"][0]
"""

from __future__ import annotations

import json
import os
import re
import pathlib

import numpy as np

from corolla.config import CONFIG
from corolla.errors import CorollaError
from corolla.export.saved_model import INFO


def find_version(path: str | os.PathLike) -> pathlib.Path:
    """`path` itself if it is a SavedModel, else its highest-numbered complete version folder."""
    path = pathlib.Path(path)
    if (path / "saved_model.pb").is_file():
        return path
    if not path.is_dir():
        raise CorollaError(f"Export folder not found: {path}. Create one with `corolla export RUN_DIR`. Received: {str(path)!r}")
    if (path / CONFIG).is_file() and (path / "export").is_dir():
        return find_version(path / "export")  # a run folder
    versions = [child for child in path.iterdir() if child.name.isdigit() and (child / "saved_model.pb").is_file()]
    if not versions:
        raise CorollaError(
            f"{path} holds no exported model (expected {path}/<version>/saved_model.pb). "
            f"Run `corolla export RUN_DIR` first."
        )
    return max(versions, key=lambda child: int(child.name))


class ExportedModel:
    def __init__(self, version_dir: pathlib.Path):
        import tensorflow as tf

        self.path = version_dir
        self.version = int(version_dir.name) if version_dir.name.isdigit() else 1
        self.info = json.loads((version_dir / INFO).read_text(encoding="utf-8")) if (version_dir / INFO).is_file() else {}
        self._loaded = tf.saved_model.load(str(version_dir))
        self.signatures = self._loaded.signatures
        self._signature = self.signatures["serving_default"]
        self.labels = self.info.get("labels", [])

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ExportedModel":
        return cls(find_version(path))

    def predict(self, images: list[bytes], keys: list[str] | None = None) -> dict[str, np.ndarray]:
        """Run the `serving_default` signature; raises ValueError if TensorFlow cannot decode an image."""
        import tensorflow as tf

        keys = keys if keys is not None else [""] * len(images)
        try:
            outputs = self._signature(image_bytes=tf.constant(images, tf.string), key=tf.constant(keys, tf.string))
        except tf.errors.InvalidArgumentError as error:
            raise ValueError(self._decode_error(images, error)) from None
        return {name: tensor.numpy() for name, tensor in outputs.items()}

    def _decode_error(self, images: list[bytes], error) -> str:
        """Name the image TensorFlow could not decode (checked one by one, on this error path only)."""
        import tensorflow as tf

        for index, data in enumerate(images):
            try:
                tf.io.decode_image(data, expand_animations=False)
            except tf.errors.InvalidArgumentError as image_error:
                reason = re.sub(r"\{\{.*?\}\}\s*", "", image_error.message).strip().splitlines()[0]
                return f"image {index} cannot be decoded ({reason})"
        return f"cannot run the model on these images ({error.message.strip().splitlines()[-1]})"
