"""LiteRT (`.tflite`) export through Keras' own exporter, and a runner for parity checks.

Quantization (`quantize`):
    none      float32 weights and activations
    float16   float16 weights (half the size, runs on GPU delegates)
    dynamic   int8 weights, float activations (dynamic-range quantization)
    int8      full integer model: int8 weights and activations, uint8 pixels in, uint8 scores
              out; activation ranges calibrated on images from the training split

Only builtin LiteRT ops are allowed, so a model that would need the TensorFlow (Flex)
delegate fails at export instead of on the phone.

Example:
    write_litert(model, "model_int8.tflite", input_spec=spec, quantize="int8", calibration=pixels)
    probabilities = LiteRTRunner("model_int8.tflite")(pixels)
"""

from __future__ import annotations

import os

import numpy as np

from corolla.errors import CorollaError

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")


def litert_filename(quantize: str) -> str:
    return "model.tflite" if quantize == "none" else f"model_{quantize}.tflite"


def write_litert(model, path: str | os.PathLike, *, input_spec, quantize: str = "none", calibration: np.ndarray | None = None) -> None:
    """Convert `model` (float32 pixels in, probabilities out) to a `.tflite` file at `path`."""
    import tensorflow as tf

    if quantize not in QUANTIZATIONS:
        raise CorollaError(f"Unknown quantization '{quantize}'. Expected one of: {', '.join(QUANTIZATIONS)}. Received: quantize={quantize!r}")
    builtins = [tf.lite.OpsSet.TFLITE_BUILTINS]
    options = {"target_spec": {"supported_ops": builtins}}
    if quantize == "float16":
        options = {"optimizations": [tf.lite.Optimize.DEFAULT], "target_spec": {"supported_ops": builtins, "supported_types": [tf.float16]}}
    elif quantize == "dynamic":
        options["optimizations"] = [tf.lite.Optimize.DEFAULT]
    elif quantize == "int8":
        if calibration is None or not len(calibration):
            raise CorollaError("Full int8 quantization needs calibration images from the training split. Received: calibration=None")
        options = {
            "optimizations": [tf.lite.Optimize.DEFAULT],
            "representative_dataset": lambda: ([calibration[i : i + 1]] for i in range(len(calibration))),
            "target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]},
            "inference_input_type": tf.uint8,
            "inference_output_type": tf.uint8,
        }
    try:
        model.export(str(path), format="litert", input_signature=signature(input_spec), verbose=False, **options)
    except Exception as error:  # the converter raises ConverterError, ValueError, RuntimeError...
        raise CorollaError(
            f"LiteRT conversion ({quantize}) failed: {str(error).strip().splitlines()[-1]}. "
            f"The model likely uses an op LiteRT has no builtin for; export without litert (--format saved_model,onnx)."
        ) from None


def signature(input_spec) -> list:
    """Keras' `input_signature` for one spec, or for a model taking a list of inputs (a clip QA model)."""
    specs = list(input_spec) if isinstance(input_spec, (list, tuple)) else [input_spec]
    return [specs] if len(specs) > 1 else specs


class LiteRTRunner:
    """Runs a `.tflite` file on float32 pixels in 0..255, (de)quantizing integer inputs and outputs."""

    def __init__(self, path: str | os.PathLike):
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=str(path))
        # Pixels first, then (a clip QA model) the question ids: told apart by rank, not by the converter's order.
        self._inputs = sorted(self._interpreter.get_input_details(), key=lambda detail: -len(detail["shape_signature"]))
        self._input = self._inputs[0]
        self._output = self._interpreter.get_output_details()[0]

    def __call__(self, pixels: np.ndarray, *more: np.ndarray) -> np.ndarray:
        if self._input["shape_signature"][0] == 1 and len(pixels) > 1:  # a batch-1 file (clip models): one example at a time
            return np.concatenate([self(pixels[i : i + 1], *(array[i : i + 1] for array in more)) for i in range(len(pixels))])
        interpreter, target = self._interpreter, self._output
        arrays = (pixels, *more)
        for source, array in zip(self._inputs, arrays):
            interpreter.resize_tensor_input(source["index"], array.shape)
        interpreter.allocate_tensors()
        for source, array in zip(self._inputs, arrays):
            if np.issubdtype(source["dtype"], np.integer) and source["quantization"][0]:  # quantized pixels, not integer ids
                scale, zero_point = source["quantization"]
                limits = np.iinfo(source["dtype"])
                array = np.clip(np.round(array / scale + zero_point), limits.min, limits.max)
            interpreter.set_tensor(source["index"], array.astype(source["dtype"]))
        interpreter.invoke()
        scores = interpreter.get_tensor(target["index"])
        if np.issubdtype(target["dtype"], np.integer):
            scale, zero_point = target["quantization"]
            scores = (scores.astype(np.float32) - zero_point) * scale
        return scores

    def describe(self) -> dict:
        """Input/output dtypes and quantization (scale, zero point), for the model card."""
        return {
            side: {"dtype": np.dtype(detail["dtype"]).name, "shape": [int(d) for d in detail["shape_signature"]], "quantization": list(detail["quantization"])}
            for side, detail in (("input", self._input), ("output", self._output))
        }
