"""ONNX export through Keras' own exporter (tf2onnx under TensorFlow, jax2tf under JAX), run with ONNX Runtime.

The graph takes float32 pixels `[batch, height, width, channels]` in 0..255 (the same
tensor the Keras model takes) and returns probabilities; decoding images is left to the
caller, as ONNX has no image decoder.

Example:
    write_onnx(model, "model.onnx", input_spec=spec)
    probabilities = OnnxRunner("model.onnx")(pixels)     # corolla.runtime.runners
"""

from __future__ import annotations

import os
import warnings

from corolla.errors import CorollaError
from corolla.export.litert import signature


def write_onnx(model, path: str | os.PathLike, *, input_spec) -> None:
    """Convert `model` to an ONNX file at `path`, with a dynamic batch dimension."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # tf2onnx probes numpy 2 for removed aliases
            model.export(str(path), format="onnx", input_signature=signature(input_spec), verbose=False)
    except ImportError as error:
        raise CorollaError(f"ONNX export needs tf2onnx and onnx ({error}). Install them: pip install tf2onnx onnx onnxruntime") from None
    except Exception as error:
        raise CorollaError(
            f"ONNX conversion failed: {str(error).strip().splitlines()[-1]}. "
            f"Export the other formats with --format saved_model,litert."
        ) from None
