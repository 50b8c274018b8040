"""Transfer learning as the seeds teach it, and the hook `--fine-tune` uses.

`transfer_model` puts a pretrained backbone (no top) under a new head: pooling (or Flatten, as in
the seeds), Dropout, Dense softmax. The backbone is frozen (`trainable=False`), so only the head
trains — quick, and right for a few hundred images per class. With `weights=None` there is nothing
to keep: the backbone starts random and the whole network trains.

`unfreeze(model, layers=N | "all")` is the fine-tuning step for when data is plentiful: it makes
the backbone's top N layers (or all) trainable. BatchNormalization layers stay frozen, and in
Keras 3 a frozen BatchNormalization runs in inference mode, so its statistics stay the pretrained
ones (batch statistics of a small new dataset would wreck what the backbone learnt). A
`backbone(x, training=False)` call would not ensure that: Keras 3 functional models pass the outer
`training` flag down to nested models — which also means a backbone's own Dropout (EfficientNet's
stochastic depth) acts while training, frozen or not. Recompile after unfreezing (trainability is
read at compile time), with a learning rate ~10× lower than the head's.

Example:
    model = build_model("mobilenet_v2", input_shape=(224, 224, 3), num_classes=5)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy"); model.fit(...)
    unfreeze(model, layers=30)
    model.compile(keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy"); model.fit(...)
"""

from __future__ import annotations

import os
import pathlib

import keras
from keras import layers as keras_layers

from corolla.errors import CorollaError
from corolla.models.blocks import scale, softmax_head, to_rgb


def transfer_model(backbone, *, input_shape, num_classes: int, scaling: str = "none", dropout: float = 0.2, pooling: str = "avg", frozen: bool = True):
    """Raw 0–255 pixels → (grayscale → RGB) → `scaling` → `backbone` → head → softmax.

    pooling: "avg" (global average), "max", or "flatten" (the seeds' Flatten, size-dependent).
    frozen: False for a backbone with random weights (`weights=None`), which must train from scratch.
    """
    backbone.trainable = not frozen
    inputs = keras.Input(shape=input_shape, name="pixels")
    x = to_rgb(inputs) if backbone.input_shape[-1] == 3 else inputs
    x = backbone(scale(x, scaling))
    return keras.Model(inputs, softmax_head(x, num_classes, dropout=dropout, pooling=pooling), name=f"{backbone.name}_transfer")


def normalize_weights(weights: str | os.PathLike | None) -> str | None:
    """"imagenet", None (also for "none"), or the path of an existing weights file."""
    if weights is None or str(weights).lower() == "none":
        return None
    if weights == "imagenet":
        return weights
    path = pathlib.Path(weights).expanduser()
    if not path.is_file():
        raise CorollaError(f"No weights file at {path}. Expected 'imagenet', None, or the path of a weights file. Received: weights={str(weights)!r}")
    return str(path)


def backbone_of(model):
    """The pretrained backbone nested in a model built by `transfer_model`."""
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if len(nested) != 1:
        raise CorollaError(
            f"Model '{model.name}' has no pretrained backbone to unfreeze: it trains all its layers already. "
            f"Fine-tuning applies to pretrained models (see `corolla models list`). Received: model={model.name!r}"
        )
    return nested[0]


def unfreeze(model, layers: int | str = "all"):
    """Make the backbone's top `layers` layers (or "all") trainable, BatchNorm excepted; returns `model`."""
    backbone = backbone_of(model)
    if layers != "all" and (not isinstance(layers, int) or layers < 1):
        raise CorollaError(f"layers must be a positive number of backbone layers or 'all'. Received: layers={layers!r}")
    first = 0 if layers == "all" else max(0, len(backbone.layers) - layers)
    backbone.trainable = True
    for index, layer in enumerate(backbone.layers):
        layer.trainable = index >= first and not isinstance(layer, keras_layers.BatchNormalization)
    return model
