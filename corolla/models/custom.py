"""The user's own model: `--model path/to/file.py:build` (the function name defaults to `build`).

`build(input_shape, num_classes)` returns a Keras model taking raw 0–255 pixels (do any scaling
inside, e.g. a Rescaling layer) and returning one prediction of shape (None, num_classes). corolla
checks that, adds a Softmax when the model ends in logits, and refuses Lambda layers, which
could not be loaded back with safe mode on.

Example (my_model.py):
    def build(input_shape, num_classes):
        return keras.Sequential([keras.Input(input_shape), layers.Rescaling(1 / 255), layers.Flatten(),
                                 layers.Dense(num_classes, activation="softmax")])

    build_model("my_model.py:build", input_shape=(28, 28, 1), num_classes=10)
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import pathlib
import warnings

import numpy as np

from corolla.errors import CorollaError
from corolla.models.registry import ModelSpec


def user_model_spec(name: str) -> ModelSpec:
    """A ModelSpec whose builder calls the user's function and validates what it returns."""
    file, _, function_name = name.partition(".py:")
    path = pathlib.Path(file if name.endswith(".py") and not function_name else f"{file}.py").expanduser()
    function_name = function_name or "build"
    if not path.is_file():
        raise CorollaError(f"No model file at {path}. Expected path/to/file.py:function defining function(input_shape, num_classes). Received: model={name!r}")
    function = getattr(_load_module(str(path.resolve()), path.stat().st_mtime_ns), function_name, None)
    if not callable(function):
        raise CorollaError(f"{path} defines no function {function_name}(input_shape, num_classes). Received: model={name!r}")

    def build(input_shape, num_classes):
        return _validated(function(input_shape, num_classes), f"{path}:{function_name}", input_shape, num_classes)

    return ModelSpec(name, build, f"your model from {path}", input_size=0, pretrained=False, min_size=1)


@functools.lru_cache(maxsize=8)
def _load_module(path: str, mtime_ns: int):
    module_name = f"corolla_user_model_{hashlib.sha1(path.encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        raise CorollaError(f"Could not import your model file {path}: {type(error).__name__}: {error}") from error
    return module


def _validated(model, source: str, input_shape, num_classes: int):
    import keras

    if not isinstance(model, keras.Model):
        raise CorollaError(f"{source} must return a keras.Model. Received: {type(model).__name__}")
    if len(model.outputs) != 1 or tuple(model.outputs[0].shape) != (None, num_classes):
        shapes = [tuple(output.shape) for output in model.outputs]
        raise CorollaError(
            f"{source} must return a model with one output of shape (None, {num_classes}): one score per class. "
            f"Received: output shape={shapes[0] if len(shapes) == 1 else shapes}"
        )
    expected = (None, *input_shape)
    got = tuple(model.inputs[0].shape) if len(model.inputs) == 1 else None
    if got is None or len(got) != len(expected) or any(size is not None and size != want for size, want in zip(got, expected)):
        raise CorollaError(f"{source} must return a model taking one input of shape {expected} (raw 0–255 pixels). Received: input shape={got}")
    lambdas = [layer.name for layer in _all_layers(model) if isinstance(layer, keras.layers.Lambda)]
    if lambdas:
        raise CorollaError(
            f"{source} uses a Lambda layer, which cannot be loaded back with safe mode on. Use built-in layers, or "
            f"a Layer subclass decorated with @keras.saving.register_keras_serializable(). Received: layer={lambdas[0]!r}"
        )
    probe = np.random.default_rng(0).uniform(0, 255, (2, *input_shape)).astype("float32")
    outputs = keras.ops.convert_to_numpy(model(probe, training=False))
    if outputs.min() >= 0 and outputs.max() <= 1 and np.allclose(outputs.sum(axis=-1), 1, atol=1e-3):
        return model
    if outputs.min() >= 0 and outputs.max() <= 1:
        raise CorollaError(
            f"{source}'s outputs are in [0, 1] but do not sum to 1 (sigmoid?). corolla trains single-label classifiers: "
            f"end with Dense({num_classes}, activation='softmax'). Received: row sums={outputs.sum(axis=-1).round(3).tolist()}"
        )
    warnings.warn(f"{source} returns logits; corolla adds a Softmax layer so the model returns probabilities.", stacklevel=2)
    return keras.Model(model.inputs, keras.layers.Softmax(name="softmax")(model.outputs[0]), name=model.name)


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)
