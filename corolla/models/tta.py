"""Test-time augmentation: average a model's probabilities over an image and its mirror image.

Training with horizontal flips (`augment: light` or `standard`) teaches a model that a mirrored
image is the same class; averaging both views at test time then removes part of the model's
left/right noise. It costs one more forward pass per image, and it is only right for data whose
mirror image keeps its label (clothes, flowers — not digits or text).

The wrapper is an ordinary functional Keras model built from registered layers, so `evaluate`,
the parity check and every export format (SavedModel, ONNX, LiteRT) run it as they run the
model itself.

Example:
    model = with_tta(run.load_model(), "flip")      # same inputs and outputs, two passes inside
"""

from __future__ import annotations

import keras

from corolla.errors import CorollaError

TTA_MODES = ("none", "flip")


@keras.saving.register_keras_serializable(package="corolla")
class HorizontalFlip(keras.layers.Layer):
    """Mirror [batch, height, width, channels] images left to right (always, unlike RandomFlip)."""

    def call(self, images):
        return keras.ops.flip(images, axis=2)


def check_tta(mode: str, *, kind: str = "images") -> str:
    if mode not in TTA_MODES:
        raise CorollaError(f"Unknown test-time augmentation '{mode}'. Expected one of: {', '.join(TTA_MODES)}. Received: tta={mode!r}")
    if mode != "none" and kind != "images":
        raise CorollaError(f"Test-time augmentation applies to image models; this run is a {kind} model. Use tta='none'. Received: tta={mode!r}")
    return mode


def with_tta(model, mode: str = "flip"):
    """`model` itself for "none"; for "flip", a model returning the mean of model(x) and model(mirror(x))."""
    if check_tta(mode) == "none":
        return model
    pixels = keras.Input(shape=model.input_shape[1:], name="pixels")
    views = [model(pixels), model(HorizontalFlip(name="mirror")(pixels))]
    return keras.Model(pixels, keras.layers.Average(name="flip_average")(views), name=f"{model.name}_flip_tta")
