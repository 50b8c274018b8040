"""Test-time augmentation: average a model's probabilities over several views of each image.

    flip        the image and its mirror image (2 forward passes)
    flip_shift  both, each also moved one pixel up, down, left and right (10 forward passes)

Training with horizontal flips and shifts (`augment: light`) teaches a model that these views
are the same class; averaging them at test time removes part of the model's noise. Flips are
only right for data whose mirror image keeps its label (clothes, flowers — not digits or text).
A shift repeats the edge pixels into the gap, as `augment: light`'s RandomTranslation does.

The wrapper is an ordinary functional Keras model built from registered layers, so `evaluate`,
the parity check and every export format (SavedModel, ONNX, LiteRT) run it as they run the
model itself.

Example:
    model = with_tta(run.load_model(), "flip")      # same inputs and outputs, two passes inside
"""

from __future__ import annotations

import keras

from corolla.errors import CorollaError

SHIFTS = {"flip": ((0, 0),), "flip_shift": ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))}  # (rows, columns) per view of each image
TTA_MODES = ("none", *SHIFTS)
TTA_VIEWS = {
    "flip": "mean of the image's and its mirror image's probabilities",
    "flip_shift": "mean of 10 views' probabilities (the image and its mirror image, each also shifted one pixel up, down, left and right)",
}


@keras.saving.register_keras_serializable(package="corolla")
class HorizontalFlip(keras.layers.Layer):
    """Mirror [batch, height, width, channels] images left to right (always, unlike RandomFlip)."""

    def call(self, images):
        return keras.ops.flip(images, axis=2)


@keras.saving.register_keras_serializable(package="corolla")
class PixelShift(keras.layers.Layer):
    """Move [batch, height, width, channels] images by `rows` down and `columns` right (negative: up, left),
    repeating the edge row or column into the gap. Slices and concatenation only, so every export format has it."""

    def __init__(self, rows: int = 0, columns: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.rows, self.columns = rows, columns

    def call(self, images):
        for axis, by in ((1, self.rows), (2, self.columns)):
            if by > 0:
                edge = keras.ops.repeat(_part(images, axis, 0, 1), by, axis=axis)
                images = keras.ops.concatenate([edge, _part(images, axis, 0, -by)], axis=axis)
            elif by < 0:
                edge = keras.ops.repeat(_part(images, axis, -1, None), -by, axis=axis)
                images = keras.ops.concatenate([_part(images, axis, -by, None), edge], axis=axis)
        return images

    def get_config(self):
        return {**super().get_config(), "rows": self.rows, "columns": self.columns}


def _part(images, axis: int, start, stop):
    index = [slice(None)] * len(images.shape)
    index[axis] = slice(start, stop)
    return images[tuple(index)]


def check_tta(mode: str, *, kind: str = "images") -> str:
    if mode not in TTA_MODES:
        raise CorollaError(f"Unknown test-time augmentation '{mode}'. Expected one of: {', '.join(TTA_MODES)}. Received: tta={mode!r}")
    if mode != "none" and kind != "images":
        raise CorollaError(f"Test-time augmentation applies to image models; this run is a {kind} model. Use tta='none'. Received: tta={mode!r}")
    return mode


def with_tta(model, mode: str = "flip"):
    """`model` itself for "none"; otherwise a model with the same input returning the mean of model(view) over the mode's views."""
    if check_tta(mode) == "none":
        return model
    pixels = keras.Input(shape=model.input_shape[1:], name="pixels")
    views = []
    for image in (pixels, HorizontalFlip(name="mirror")(pixels)):
        for rows, columns in SHIFTS[mode]:
            shifted = PixelShift(rows, columns, name=f"shift_{len(views)}")(image) if (rows, columns) != (0, 0) else image
            views.append(model(shifted))
    return keras.Model(pixels, keras.layers.Average(name=f"{mode}_average")(views), name=f"{model.name}_{mode}_tta")
