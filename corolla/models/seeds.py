"""The seeds' own from-scratch networks (Keras on TPU course, lab 2 and 3).

Each model scales 0–255 pixels itself (a Rescaling layer), so training, evaluation and every
export feed raw pixels and nobody re-implements preprocessing.
"""

from __future__ import annotations

import keras
from keras import layers

from corolla.models.registry import register_model


@register_model("dense", description="Flatten → Dense 500 → Dense 50 → softmax (seed 000)")
def dense(input_shape, num_classes):
    return keras.Sequential(
        [
            keras.Input(shape=input_shape, name="pixels"),
            layers.Rescaling(1 / 255),
            layers.Flatten(),
            layers.Dense(500, activation="relu"),
            layers.Dense(50, activation="relu"),
            layers.Dense(num_classes, activation="softmax"),
        ],
        name="dense",
    )


@register_model("convnet", description="Sequential convnet: Conv2D 24/24/12/6 with max-pooling (seed 000)")
def convnet(input_shape, num_classes):
    return keras.Sequential(
        [
            keras.Input(shape=input_shape, name="pixels"),
            layers.Rescaling(1 / 255),
            layers.Conv2D(24, 3, padding="same", activation="relu"),
            layers.Conv2D(24, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(12, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(6, 3, padding="same", activation="relu"),
            layers.Flatten(),
            layers.Dense(num_classes, activation="softmax"),
        ],
        name="convnet",
    )
