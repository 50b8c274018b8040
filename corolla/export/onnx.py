"""ONNX export through Keras' own exporter (tf2onnx under TensorFlow, jax2tf under JAX), run with ONNX Runtime.

The graph takes float32 pixels `[batch, height, width, channels]` in 0..255 (the same
tensor the Keras model takes) and returns probabilities; decoding images is left to the
caller, as ONNX has no image decoder.

Example:
    write_onnx(model, "model.onnx", input_spec=spec)
    probabilities = OnnxRunner("model.onnx")(pixels)
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from corolla.errors import CorollaError


def write_onnx(model, path: str | os.PathLike, *, input_spec) -> None:
    """Convert `model` to an ONNX file at `path`, with a dynamic batch dimension."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # tf2onnx probes numpy 2 for removed aliases
            model.export(str(path), format="onnx", input_signature=[input_spec], verbose=False)
    except ImportError as error:
        raise CorollaError(f"ONNX export needs tf2onnx and onnx ({error}). Install them: pip install tf2onnx onnx onnxruntime") from None
    except Exception as error:
        raise CorollaError(
            f"ONNX conversion failed: {str(error).strip().splitlines()[-1]}. "
            f"Export the other formats with --format saved_model,litert."
        ) from None


class OnnxRunner:
    """Runs an ONNX file with ONNX Runtime: on CUDA when onnxruntime-gpu provides it, else the CPU.

    `spin=False` keeps idle inference threads from spinning on cores other work needs (the server).
    """

    def __init__(self, path: str | os.PathLike, *, spin: bool = True):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = [name for name in ("CUDAExecutionProvider", "CPUExecutionProvider") if name in onnxruntime.get_available_providers()]
        self._session = onnxruntime.InferenceSession(str(path), options, providers=providers)
        self.input_name = self._session.get_inputs()[0].name

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self.input_name: pixels.astype(np.float32, copy=False)})[0]
