"""fastnet: a small, fast convnet for small images (28–64 px), after airbench (Keller Jordan, 2024).

Three groups of [3×3 conv → 2×2 max-pool → BatchNorm → ReLU → 3×3 conv → BatchNorm → ReLU], each
convolution running at the group's input resolution before pooling (the cheap place to spend
FLOPs), then global max pooling and a softmax. No residuals, no bias before BatchNorm.

Measured on Fashion-MNIST (2-core AMD EPYC VM, one pinned core; benchmarks/RESULTS.md, "Time to
accuracy"): a training epoch of widths (32, 64, 128) costs 2.37 epochs of the seeds' convnet and
(24, 48, 96) 1.67 (benchmarks/fastnet_widths.py). After 24 epochs with flip TTA they reach
94.35–94.58% and 93.79–93.83% on the official test set; the `fashion-mnist` recipe (widths 24,
28 epochs, 10-view TTA) 94.08–94.33% on three seeds in ~39 reference epochs. The default
(48, 96, 192) reached 94.11% after 12 epochs at about 1.8× the cost of width 32 per epoch.

Example:
    model = build_model("fastnet", input_shape=(28, 28, 1), num_classes=10)
    narrow = build_model("fastnet", input_shape=(28, 28, 1), num_classes=10, widths=(24, 48, 96))
"""

from __future__ import annotations

import keras
from keras import layers

from corolla.models.blocks import pixels, softmax_head
from corolla.models.registry import register_model


def _conv_bn_relu(x, filters: int, name: str, *, pool: bool = False):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer="he_normal", name=f"{name}_conv")(x)
    if pool:
        x = layers.MaxPooling2D(2, name=f"{name}_pool")(x)
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


@register_model("fastnet", description="Fast convnet for 28–64 px images", input_size=28, channels=1, min_size=8)
def fastnet(input_shape, num_classes, widths=(48, 96, 192), dropout=0.0):
    inputs, x = pixels(input_shape, scaling="symmetric")
    x = _conv_bn_relu(x, widths[0] // 2, "stem")
    for index, filters in enumerate(widths):
        x = _conv_bn_relu(x, filters, f"group{index + 1}_a", pool=True)
        x = _conv_bn_relu(x, filters, f"group{index + 1}_b")
    return keras.Model(inputs, softmax_head(x, num_classes, dropout=dropout, pooling="max"), name="fastnet")
