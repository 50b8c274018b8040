"""The seeds' own from-scratch networks: the Keras-on-TPU course (labs 1–3) and seed 004's CIFAR-10 CNN.

Each model scales 0–255 pixels itself (a Rescaling layer), so training, evaluation and every
export feed raw pixels and nobody re-implements preprocessing.

Example:
    model = build_model("squeezenet", input_shape=(192, 192, 3), num_classes=5)
"""

from __future__ import annotations

import keras
from keras import layers

from corolla.models.blocks import pixels, softmax_head
from corolla.models.registry import register_model


@register_model("dense", description="Flatten, Dense 500/50 (seed 000)", input_size=28, channels=1, min_size=1)
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


@register_model("convnet", description="Conv2D 24/24/12/6, max-pooling (seed 000)", input_size=28, channels=1, min_size=4)
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


@register_model("cifar_cnn", description="CIFAR-10 CNN with dropout (seed 004)", input_size=32, min_size=10)
def cifar_cnn(input_shape, num_classes, dropout=0.25, dense_dropout=0.5):
    """The official Keras CIFAR-10 example as seed 004 teaches it (~80% on CIFAR-10 after 25 epochs there)."""
    return keras.Sequential(
        [
            keras.Input(shape=input_shape, name="pixels"),
            layers.Rescaling(1 / 255),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Dropout(dropout),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Dropout(dropout),
            layers.Flatten(),
            layers.Dense(512, activation="relu"),
            layers.Dropout(dense_dropout),
            layers.Dense(num_classes, activation="softmax"),
        ],
        name="cifar_cnn",
    )


def fire(x, squeeze: int, expand: int, name: str):
    """SqueezeNet's fire module: a 1×1 squeeze, then parallel 1×1 and 3×3 expands, concatenated."""

    def conv(y, filters, size, suffix):
        y = layers.Conv2D(filters, size, padding="same", activation="relu", name=f"{name}_{suffix}")(y)
        return layers.BatchNormalization(momentum=0.9, name=f"{name}_{suffix}_bn")(y)

    squeezed = conv(x, squeeze, 1, "squeeze")
    return layers.Concatenate(name=f"{name}_concat")([conv(squeezed, expand // 2, 1, "expand1x1"), conv(squeezed, expand // 2, 3, "expand3x3")])


@register_model("squeezenet", description="Fire modules, functional API (seed 000)", input_size=192, min_size=16)
def squeezenet(input_shape, num_classes):
    """The flowers codelab's solution: a 3×3 stem, five fire modules with max-pooling between, global pooling."""
    inputs, x = pixels(input_shape)
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="stem")(x)
    x = layers.BatchNormalization(momentum=0.9, name="stem_bn")(x)
    for index, (squeeze, expand) in enumerate([(24, 48), (48, 96), (64, 128), (48, 96), (24, 48)]):
        if index:
            x = layers.MaxPooling2D(2, name=f"pool{index}")(x)
        x = fire(x, squeeze, expand, name=f"fire{index + 1}")
    return keras.Model(inputs, softmax_head(x, num_classes), name="squeezenet")
