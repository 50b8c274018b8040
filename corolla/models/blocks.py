"""Pieces every model shares: the raw-pixel input, in-model scaling, grayscale → RGB, the softmax head.

Only stock Keras layers, so every `.keras` file loads with `safe_mode=True` and without corolla.

Example:
    inputs, x = pixels(input_shape, scaling="imagenet")   # 0–255 in, normalised out
    ...
    return keras.Model(inputs, softmax_head(x, num_classes), name="mynet")
"""

from __future__ import annotations

import keras
from keras import layers

from corolla.errors import CorollaError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def pixels(input_shape, *, scaling: str = "unit", rgb: bool = False):
    """(`keras.Input` named "pixels", the scaled tensor) for raw 0–255 pixels.

    scaling: "unit" → [0, 1]; "symmetric" → [-1, 1]; "imagenet" → ImageNet mean/std per channel
    (their average for grayscale); "none" → unchanged. `rgb=True` repeats a single channel three times
    first, for backbones pretrained on colour images.
    """
    inputs = keras.Input(shape=input_shape, name="pixels")
    x = to_rgb(inputs) if rgb else inputs
    return inputs, scale(x, scaling)


def to_rgb(x):
    """Repeat a grayscale channel three times (a Concatenate, so no Lambda layer is needed)."""
    return layers.Concatenate(name="gray_to_rgb")([x, x, x]) if x.shape[-1] == 1 else x


def scale(x, scaling: str):
    if scaling == "unit":
        return layers.Rescaling(1 / 255, name="scaling")(x)
    if scaling == "symmetric":
        return layers.Rescaling(1 / 127.5, offset=-1, name="scaling")(x)
    if scaling == "imagenet":
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        if x.shape[-1] == 1:
            mean, std = (sum(mean) / 3,), (sum(std) / 3,)
        # (x/255 - mean)/std as one per-channel Rescaling: a Normalization layer's constants become
        # stray graph inputs in the ONNX export.
        return layers.Rescaling(scale=[1 / (255 * s) for s in std], offset=[-m / s for m, s in zip(mean, std)], name="scaling")(x)
    if scaling == "none":
        return x
    raise CorollaError(f"Unknown scaling. Expected one of: unit, symmetric, imagenet, none. Received: scaling={scaling!r}")


def softmax_head(x, num_classes: int, *, dropout: float = 0.0, pooling: str | None = "avg"):
    """Pooling ("avg", "max", "flatten" or None), optional Dropout, Dense softmax named "predictions"."""
    if pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="pool")(x)
    elif pooling == "flatten":
        x = layers.Flatten(name="flatten")(x)
    elif pooling is not None:
        raise CorollaError(f"Unknown pooling. Expected one of: avg, max, flatten, None. Received: pooling={pooling!r}")
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    return layers.Dense(num_classes, activation="softmax", name="predictions")(x)
