"""An exported version, loaded: which folder to use, what it holds, and how its inputs are decoded.

`ExportedModel` runs the SavedModel's `serving_default` signature on encoded images (shared by
local `corolla predict` and the export parity check). The server decodes images itself with
the decode/resize training used (`Decoder`), then batches pixels through a runtime of
`corolla.runtime.runners`.

Example:
    model = ExportedModel.load("runs/fm/export")      # newest version, e.g. runs/fm/export/2
    outputs = model.predict([open("shoe.png", "rb").read()])
"""

from __future__ import annotations

import json
import os
import pathlib
import re

import numpy as np

from corolla.config import CONFIG
from corolla.errors import CorollaError
from corolla.runtime.versions import INFO, complete_versions, version_of


def find_version(path: str | os.PathLike) -> pathlib.Path:
    """`path` itself if it is a SavedModel, else its highest-numbered complete version folder."""
    path = pathlib.Path(path)
    if (path / "saved_model.pb").is_file():
        return path
    if not path.is_dir():
        raise CorollaError(f"Export folder not found: {path}. Create one with `corolla export RUN_DIR`. Received: {str(path)!r}")
    if (path / CONFIG).is_file() and (path / "export").is_dir():
        return find_version(path / "export")  # a run folder
    versions = complete_versions(path)
    if not versions:
        raise CorollaError(
            f"{path} holds no complete exported model (expected {path}/<version>/saved_model.pb and model_card.json). "
            f"Run `corolla export RUN_DIR` first."
        )
    return versions[-1]


def read_info(version_dir: pathlib.Path) -> dict:
    """corolla.json: labels, image_size and channels of the version."""
    try:
        info = json.loads((version_dir / INFO).read_text(encoding="utf-8"))
        return {**info, "labels": list(info["labels"]), "image_size": int(info["image_size"]), "channels": int(info["channels"])}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CorollaError(f"{version_dir} has no readable {INFO} ({error}); it was not written by `corolla export`. Re-export the run.") from None


class ExportedModel:
    def __init__(self, version_dir: pathlib.Path):
        import tensorflow as tf

        self.path = pathlib.Path(version_dir)
        self.version = version_of(self.path)
        self.info = json.loads((self.path / INFO).read_text(encoding="utf-8")) if (self.path / INFO).is_file() else {}
        self._loaded = tf.saved_model.load(str(self.path))
        self.signatures = self._loaded.signatures
        self._signature = self.signatures["serving_default"]
        self.labels = self.info.get("labels", [])

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ExportedModel":
        return cls(find_version(path))

    @property
    def kind(self) -> str:
        """What serving_default takes, read from the signature itself (corolla.json is written after parity)."""
        return "clips" if "frames" in self._signature.structured_input_signature[1] else "images"

    @property
    def task(self) -> str:
        return "qa" if "question" in self._signature.structured_input_signature[1] else "classify"

    def predict(self, images: list, keys: list[str] | None = None) -> dict[str, np.ndarray]:
        """Run the `serving_default` signature; raises ValueError if TensorFlow cannot decode an image.

        Images are encoded bytes; clips are lists of encoded frames, or (frames, question) for QA.
        """
        import tensorflow as tf

        keys = keys if keys is not None else [""] * len(images)
        try:
            if self.kind == "clips":
                outputs = self._signature(**clip_arguments(images, qa=self.task == "qa"), key=tf.constant(keys, tf.string))
            else:
                outputs = self._signature(image_bytes=tf.constant(images, tf.string), key=tf.constant(keys, tf.string))
        except tf.errors.InvalidArgumentError as error:
            if self.kind == "clips":
                raise ValueError(f"cannot decode these clips' frames ({clean_tf_message(error.message)})") from None
            raise ValueError(self._decode_error(images, error)) from None
        return {name: tensor.numpy() for name, tensor in outputs.items()}

    def _decode_error(self, images: list[bytes], error) -> str:
        """Name the image TensorFlow could not decode (checked one by one, on this error path only)."""
        import tensorflow as tf

        from corolla.data.pipeline import decode  # the decoder inside the SavedModel

        for index, data in enumerate(images):
            try:
                decode(tf.constant(data), channels=int(self.info.get("channels", 3)))
            except tf.errors.InvalidArgumentError as image_error:
                return f"image {index} cannot be decoded ({clean_tf_message(image_error.message)})"
        return f"cannot run the model on these images ({error.message.strip().splitlines()[-1]})"


def clip_arguments(clips: list, *, qa: bool) -> dict:
    """serving_default's inputs for clips: frames string [n, longest] ("" after a clip's last frame) (and question [n])."""
    import tensorflow as tf

    frames = [clip[0] for clip in clips] if qa else clips
    longest = max(len(row) for row in frames)
    arguments = {"frames": tf.constant([list(row) + [b""] * (longest - len(row)) for row in frames], tf.string)}
    if qa:
        arguments["question"] = tf.constant([clip[1] for clip in clips], tf.string)
    return arguments


def clean_tf_message(message: str) -> str:
    return re.sub(r"\{\{.*?\}\}\s*", "", message).strip().splitlines()[0]


class Decoder:
    """Encoded image → float32 [size, size, channels] in 0..255, exactly as training and the SavedModel decode."""

    def __init__(self, *, image_size: int, channels: int):
        import tensorflow as tf

        from corolla.data.pipeline import decode_and_resize

        # The concrete function, called directly, skips tf.function's per-call argument binding:
        # 120 instead of 180 µs for a small PNG, which is most of a small image's decoding.
        self._fn = tf.function(
            lambda data: decode_and_resize(data, image_size=image_size, channels=channels),
            input_signature=[tf.TensorSpec([], tf.string)],
        ).get_concrete_function()

    def __call__(self, data: bytes) -> np.ndarray:
        """Raises ValueError with TensorFlow's reason when the bytes cannot be decoded."""
        import tensorflow as tf

        try:
            return self._fn(tf.constant(data)).numpy()
        except (tf.errors.InvalidArgumentError, tf.errors.ResourceExhaustedError, tf.errors.UnknownError) as error:
            raise ValueError(clean_tf_message(error.message)) from None


class ClipDecoder:
    """A video file, or a clip's encoded frames, → float32 [frames, size, size, channels], as training decodes it.

    Videos are sampled by `corolla.data.video.read_clip` with the frame count training used, and
    their frames decoded by `corolla.data.clip_pipeline.clip_pixels`: the functions `prepare` and
    the training pipeline ran, so the server sees the pixels the model was trained on.

    Example:
        pixels = ClipDecoder(frames=16, image_size=64, channels=3)(open("clip.mp4", "rb").read())
    """

    def __init__(self, *, frames: int, image_size: int, channels: int, max_pixels: int, max_seconds: float | None = None, timeout_s: float = 30.0):
        import tensorflow as tf

        from corolla.data.clip_pipeline import clip_pixels
        from corolla.data.video import DEFAULT_MAX_SECONDS

        self.frames, self.image_size, self.max_pixels, self.timeout_s = frames, image_size, max_pixels, timeout_s
        self.max_seconds = max_seconds or DEFAULT_MAX_SECONDS
        self._fn = tf.function(
            lambda encoded: clip_pixels(encoded, frames=frames, image_size=image_size, channels=channels),
            input_signature=[tf.TensorSpec([None], tf.string)],
        ).get_concrete_function()

    def sample(self, video: bytes) -> list[bytes]:
        """The encoded frames `prepare` would store for this video; InvalidClip (a ValueError's cousin) says why not."""
        from corolla.data.video import read_clip

        clip = read_clip(video, frames=self.frames, image_size=self.image_size, max_pixels=self.max_pixels, max_seconds=self.max_seconds, timeout_s=self.timeout_s)
        return clip.frames

    def __call__(self, clip: bytes | list[bytes]) -> np.ndarray:
        """A video file's bytes, or a list of encoded frames; ValueError with the reason when they cannot be decoded."""
        import tensorflow as tf

        frames = self.sample(clip) if isinstance(clip, (bytes, bytearray)) else list(clip)
        if not frames:
            raise ValueError("a clip needs at least one frame")
        try:
            return self._fn(tf.constant(frames, tf.string)).numpy()
        except (tf.errors.InvalidArgumentError, tf.errors.ResourceExhaustedError, tf.errors.UnknownError) as error:
            raise ValueError(f"a frame cannot be decoded ({clean_tf_message(error.message)})") from None
