"""The runtimes that run an exported version's pixel model: the SavedModel's `pixels` signature
through TensorFlow, or model.onnx through ONNX Runtime, and how the server picks one and its batch size.

Both take float32 [n, size, size, channels] in 0..255 and give the same probabilities (the
export's parity check).

Example:
    runtime, batch_size, timings = load_runtime(version_dir, "auto")   # the faster of tf and onnx here, and its batch size
    probabilities = runtime(pixels)
"""

from __future__ import annotations

import logging
import os
import pathlib
import time

import numpy as np

from corolla.errors import CorollaError
from corolla.runtime.exported import read_info

RUNTIMES = ("auto", "tf", "onnx")
logger = logging.getLogger("corolla.serve")


class OnnxRunner:
    """Runs an ONNX file with ONNX Runtime: on CUDA when onnxruntime-gpu provides it, else the CPU.

    `spin=False` keeps idle inference threads from spinning on cores other work needs (the server);
    `threads` > 0 caps its intra-op threads (0: one per core, ONNX Runtime's default).
    """

    def __init__(self, path: str | os.PathLike, *, spin: bool = True, threads: int = 0):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only
        options.intra_op_num_threads = threads
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = [name for name in ("CUDAExecutionProvider", "CPUExecutionProvider") if name in onnxruntime.get_available_providers()]
        self._session = onnxruntime.InferenceSession(str(path), options, providers=providers)
        self.inputs = [(item.name, np.int64 if "int64" in item.type else np.float32) for item in self._session.get_inputs()]
        self.input_name = self.inputs[0][0]

    def __call__(self, pixels: np.ndarray, *more: np.ndarray, run_options=None) -> np.ndarray:
        """Probabilities for pixels (and, for a clip QA model, its question ids as the second input)."""
        arrays = (pixels, *more)
        feed = {name: array.astype(dtype, copy=False) for (name, dtype), array in zip(self.inputs, arrays)}
        return self._session.run(None, feed, run_options)[0]

    def release_arena(self, inputs) -> None:
        """Hand the CPU arena's free chunks back to the system, in a call on `inputs` (as `run` takes them).

        The arena keeps the peak of every call so far: after timing batches of up to 32, a 224 px
        SqueezeNet held 1.4 GB where its chosen batch of 2 needs ~150 MB. (No arena, the other way
        out, cost up to 1.5× the time per image at batch 8 and more.)
        """
        import onnxruntime

        if self._session.get_providers()[0] != "CPUExecutionProvider":
            return
        options = onnxruntime.RunOptions()
        options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        run(self, inputs, run_options=options)


class TensorFlowRuntime:
    name = "tf"

    def __init__(self, version_dir: pathlib.Path, *, threads: int = 0):
        import tensorflow as tf

        if threads:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(threads)
            except RuntimeError:  # TensorFlow already runs here with other pools, which cannot change now
                logger.warning("TensorFlow already runs in this process with its own thread pools: threads=%d does not apply to them.", threads)
        self._loaded = tf.saved_model.load(str(version_dir))
        self._pixels = self._loaded.signatures["pixels"]
        self._tf = tf

    def __call__(self, pixels: np.ndarray, *more: np.ndarray) -> np.ndarray:
        tf = self._tf
        extra = {"question_ids": tf.constant(more[0], tf.int64)} if more else {}  # a clip QA model
        return self._pixels(pixels=tf.constant(pixels, tf.float32), **extra)["probabilities"].numpy()


class OnnxRuntime(OnnxRunner):
    name = "onnx"

    def __init__(self, version_dir: pathlib.Path, *, threads: int = 0):
        path = version_dir / "model.onnx"
        if not path.is_file():
            raise CorollaError(f"--runtime onnx needs {path}, and this version has none. Export with --format saved_model,onnx or use --runtime tf.")
        # Idle inference threads would spin on the cores the decoding threads and the event loop need.
        super().__init__(path, spin=False, threads=threads)


def load_runtime(version_dir: pathlib.Path, runtime: str = "auto", *, max_batch_size: int = 32, threads: int = 0):
    """(runtime, batch size, {runtime name: {batch size: ms per image}}), timed by `time_batch_sizes`.

    `auto` times both runtimes and keeps the one with the lower time per image at its own best
    batch size (the SavedModel alone when they disagree: an old or hand-made model.onnx).
    `threads` > 0 caps the runtime's own thread pools (0: its default, one thread per core).
    """
    if runtime not in RUNTIMES:
        raise CorollaError(f"Unknown runtime '{runtime}'. Expected one of: {', '.join(RUNTIMES)}. Received: runtime={runtime!r}")
    info = read_info(version_dir)
    shape = example_shape(info)
    if info.get("kind") == "clips":  # a clip is `frames` images: batch about as many frames as images
        max_batch_size = max(1, max_batch_size // info["frames"])
    inputs = example_inputs(info, max_batch_size)
    if runtime == "tf" or (runtime == "auto" and not _onnx_available(version_dir)):
        candidates = [TensorFlowRuntime(version_dir, threads=threads)]
    elif runtime == "onnx":
        candidates = [OnnxRuntime(version_dir, threads=threads)]
    else:
        candidates = [TensorFlowRuntime(version_dir, threads=threads), OnnxRuntime(version_dir, threads=threads)]
        answers = [run(candidate, inputs) for candidate in candidates]
        if float(np.max(np.abs(answers[0] - answers[1]))) > 1e-4:
            candidates = candidates[:1]
    timings = {candidate.name: time_batch_sizes(candidate, shape, max_batch_size=max_batch_size, inputs=inputs) for candidate in candidates}
    sizes = {name: choose_batch_size(ms_per_image) for name, ms_per_image in timings.items()}
    chosen = min(candidates, key=lambda candidate: timings[candidate.name][sizes[candidate.name]])
    if isinstance(chosen, OnnxRunner):
        chosen.release_arena(take(inputs, 0, 1))  # timing grew its arena to the largest batch; serving regrows it to the chosen one
    return chosen, sizes[chosen.name], timings


def _onnx_available(version_dir: pathlib.Path) -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return (version_dir / "model.onnx").is_file()


def example_shape(info: dict) -> tuple:
    """One example's pixel shape: (size, size, channels), or (frames, size, size, channels) for clips."""
    shape = (info["image_size"], info["image_size"], info["channels"])
    return (info["frames"], *shape) if info.get("kind") == "clips" else shape


def example_inputs(info: dict, count: int):
    """`count` random examples as the pixel model takes them: pixels, or (pixels, question ids) for clip QA."""
    pixels = random_pixels(count, example_shape(info))
    if info.get("task") != "qa":
        return pixels
    ids = np.random.default_rng(0).integers(0, len(info["vocabulary"]) + 2, (count, info["question_length"]))
    return pixels, ids


def run(runtime, inputs, **options) -> np.ndarray:
    """`runtime` on pixels, or on (pixels, question ids)."""
    return runtime(*inputs, **options) if isinstance(inputs, tuple) else runtime(inputs, **options)


def take(inputs, start: int, stop: int):
    """Examples start..stop of pixels or of (pixels, question ids)."""
    return tuple(part[start:stop] for part in inputs) if isinstance(inputs, tuple) else inputs[start:stop]


def count(inputs) -> int:
    return len(inputs[0]) if isinstance(inputs, tuple) else len(inputs)


def random_pixels(count: int, shape: tuple) -> np.ndarray:
    """float32 [count, *shape] in 0..255, the same every call (for timing and agreement checks)."""
    return np.random.default_rng(0).uniform(0, 255, (count, *shape)).astype(np.float32)


def time_batch_sizes(runtime, pixel_shape: tuple, *, max_batch_size: int, calls: int = 2, inputs=None) -> dict[int, float]:
    """{batch size: ms per example} over powers of two up to `max_batch_size` (and it).

    Each size is called once to warm up (a new shape may allocate or pick kernels), then timed
    `calls` times; the fastest call counts. `inputs` (max_batch_size examples) default to random pixels.
    """
    sizes = sorted({min(2**k, max_batch_size) for k in range(max_batch_size.bit_length() + 1)})
    inputs = random_pixels(max_batch_size, pixel_shape) if inputs is None else inputs
    ms_per_image = {}
    for size in sizes:
        run(runtime, take(inputs, 0, size))
        timings = []
        for _ in range(calls):
            started = time.perf_counter()
            run(runtime, take(inputs, 0, size))
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
