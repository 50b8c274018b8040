"""Load an exported version and run it: the SavedModel through TensorFlow, or model.onnx through ONNX Runtime.

`ExportedModel` runs the SavedModel's `serving_default` signature on encoded images (shared by
local `corolla predict` and the export parity check). The server decodes images itself with
the decode/resize training used (`Decoder`), then batches pixels through a runtime:
`TensorFlowRuntime` (the SavedModel's `pixels` signature) or `OnnxRuntime`; both take float32
[n, size, size, channels] in 0..255 and give the same probabilities (the export's parity check).

Example:
    model = ExportedModel.load("runs/fm/export")      # newest version, e.g. runs/fm/export/2
    outputs = model.predict([open("shoe.png", "rb").read()])
    runtime, batch_size, timings = load_runtime(model.path, "auto")   # the faster of tf and onnx here, and its batch size
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import time

import numpy as np

from corolla.config import CONFIG
from corolla.errors import CorollaError
from corolla.export.onnx import OnnxRunner
from corolla.export.saved_model import INFO

RUNTIMES = ("auto", "tf", "onnx")


def find_version(path: str | os.PathLike) -> pathlib.Path:
    """`path` itself if it is a SavedModel, else its highest-numbered complete version folder."""
    from corolla.serve.versions import complete_versions

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

        from corolla.serve.versions import version_of

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

        from corolla.data.pipeline import decode  # the decoder inside the SavedModel

        for index, data in enumerate(images):
            try:
                decode(tf.constant(data), channels=int(self.info.get("channels", 3)))
            except tf.errors.InvalidArgumentError as image_error:
                return f"image {index} cannot be decoded ({clean_tf_message(image_error.message)})"
        return f"cannot run the model on these images ({error.message.strip().splitlines()[-1]})"


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


class TensorFlowRuntime:
    name = "tf"

    def __init__(self, version_dir: pathlib.Path):
        import tensorflow as tf

        self._loaded = tf.saved_model.load(str(version_dir))
        self._pixels = self._loaded.signatures["pixels"]
        self._tf = tf

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        return self._pixels(pixels=self._tf.constant(pixels, self._tf.float32))["probabilities"].numpy()


class OnnxRuntime(OnnxRunner):
    name = "onnx"

    def __init__(self, version_dir: pathlib.Path):
        path = version_dir / "model.onnx"
        if not path.is_file():
            raise CorollaError(f"--runtime onnx needs {path}, and this version has none. Export with --format saved_model,onnx or use --runtime tf.")
        # Idle inference threads would spin on the cores the decoding threads and the event loop need.
        super().__init__(path, spin=False)


def load_runtime(version_dir: pathlib.Path, runtime: str = "auto", *, max_batch_size: int = 32):
    """(runtime, batch size, {runtime name: {batch size: ms per image}}), timed by `time_batch_sizes`.

    `auto` times both runtimes and keeps the one with the lower time per image at its own best
    batch size (the SavedModel alone when they disagree: an old or hand-made model.onnx).
    """
    if runtime not in RUNTIMES:
        raise CorollaError(f"Unknown runtime '{runtime}'. Expected one of: {', '.join(RUNTIMES)}. Received: runtime={runtime!r}")
    info = read_info(version_dir)
    shape = (info["image_size"], info["image_size"], info["channels"])
    if runtime == "tf" or (runtime == "auto" and not _onnx_available(version_dir)):
        candidates = [TensorFlowRuntime(version_dir)]
    elif runtime == "onnx":
        candidates = [OnnxRuntime(version_dir)]
    else:
        candidates = [TensorFlowRuntime(version_dir), OnnxRuntime(version_dir)]
        answers = [candidate(random_pixels(max_batch_size, shape)) for candidate in candidates]
        if float(np.max(np.abs(answers[0] - answers[1]))) > 1e-4:
            candidates = candidates[:1]
    timings = {candidate.name: time_batch_sizes(candidate, shape, max_batch_size=max_batch_size) for candidate in candidates}
    sizes = {name: choose_batch_size(ms_per_image) for name, ms_per_image in timings.items()}
    chosen = min(candidates, key=lambda candidate: timings[candidate.name][sizes[candidate.name]])
    return chosen, sizes[chosen.name], timings


def _onnx_available(version_dir: pathlib.Path) -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return (version_dir / "model.onnx").is_file()


def random_pixels(count: int, shape: tuple) -> np.ndarray:
    """float32 [count, *shape] in 0..255, the same every call (for timing and agreement checks)."""
    return np.random.default_rng(0).uniform(0, 255, (count, *shape)).astype(np.float32)


def time_batch_sizes(runtime, pixel_shape: tuple, *, max_batch_size: int, calls: int = 2) -> dict[int, float]:
    """{batch size: ms per image} over powers of two up to `max_batch_size` (and it).

    Each size is called once to warm up (a new shape may allocate or pick kernels), then timed
    `calls` times; the fastest call counts.
    """
    sizes = sorted({min(2**k, max_batch_size) for k in range(max_batch_size.bit_length() + 1)})
    pixels = random_pixels(max_batch_size, pixel_shape)
    ms_per_image = {}
    for size in sizes:
        runtime(pixels[:size])
        timings = []
        for _ in range(calls):
            started = time.perf_counter()
            runtime(pixels[:size])
            timings.append(time.perf_counter() - started)
        ms_per_image[size] = min(timings) * 1000 / size
    return ms_per_image


def choose_batch_size(ms_per_image: dict[int, float]) -> int:
    """The largest batch size within 10% of the lowest time per image.

    On an accelerator that is the largest measured; on a small CPU a big batch can be slower per
    image than a small one (ONNX Runtime, SqueezeNet at 224 px, 2 cores: 7.7 ms at 1, 12.1 ms at
    16), and there the batcher should not build it.

    Example:
        choose_batch_size({1: 1.0, 2: 0.9, 4: 1.5})   # 2
    """
    fastest = min(ms_per_image.values())
    return max(size for size, ms in ms_per_image.items() if ms <= fastest * 1.1)
