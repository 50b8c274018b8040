"""ResNet-18/34/50 from scratch, v1.5, as in seed 002's Cloud TPU ResNet (`resnet_model.py`).

v1.5: the bottleneck's stride sits on its 3×3 convolution, not the first 1×1 (+~0.5% top-1 on
ImageNet over v1). As in the TPU reference: BatchNorm momentum 0.9 and epsilon 1e-5, symmetric
"fixed" padding before strided convolutions, and each block's last BatchNorm starts at γ = 0 so every
residual block starts as the identity (Goyal et al. 2017), which makes large-batch training stable.
Inputs are normalised with the ImageNet mean and standard deviation inside the model.

Example:
    model = build_model("resnet50", input_shape=(224, 224, 3), num_classes=5)
"""

from __future__ import annotations

import keras
from keras import layers

from corolla.models.blocks import pixels, softmax_head
from corolla.models.registry import register_model

_DEPTHS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}


def conv_bn(x, filters: int, kernel: int, strides: int, name: str, *, relu: bool = True, zero_gamma: bool = False):
    if strides > 1 and kernel > 1:
        x = layers.ZeroPadding2D((kernel - 1) // 2, name=f"{name}_pad")(x)
    x = layers.Conv2D(
        filters, kernel, strides=strides, padding="valid" if strides > 1 else "same", use_bias=False,
        kernel_initializer="he_normal", name=f"{name}_conv",
    )(x)
    x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, gamma_initializer="zeros" if zero_gamma else "ones", name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def basic_block(x, filters: int, strides: int, name: str):
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = conv_bn(x, filters, 1, strides, f"{name}_shortcut", relu=False)
    y = conv_bn(x, filters, 3, strides, f"{name}_1")
    y = conv_bn(y, filters, 3, 1, f"{name}_2", relu=False, zero_gamma=True)
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([shortcut, y]))


def bottleneck_block(x, filters: int, strides: int, name: str):
    shortcut = x
    if strides != 1 or x.shape[-1] != 4 * filters:
        shortcut = conv_bn(x, 4 * filters, 1, strides, f"{name}_shortcut", relu=False)
    y = conv_bn(x, filters, 1, 1, f"{name}_1")
    y = conv_bn(y, filters, 3, strides, f"{name}_2")  # v1.5: the stride is here
    y = conv_bn(y, 4 * filters, 1, 1, f"{name}_3", relu=False, zero_gamma=True)
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([shortcut, y]))


def resnet(depth: int, input_shape, num_classes: int, *, dropout: float = 0.0):
    """ResNet-`depth` (18, 34 or 50) for `num_classes`; global average pooling, optional dropout, softmax."""
    block = bottleneck_block if depth >= 50 else basic_block
    inputs, x = pixels(input_shape, scaling="imagenet")
    x = conv_bn(x, 64, 7, 2, "stem")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for stage, (blocks, filters) in enumerate(zip(_DEPTHS[depth], (64, 128, 256, 512))):
        for index in range(blocks):
            strides = 2 if stage > 0 and index == 0 else 1
            x = block(x, filters, strides, name=f"stage{stage + 1}_block{index + 1}")
    return keras.Model(inputs, softmax_head(x, num_classes, dropout=dropout), name=f"resnet{depth}")


@register_model("resnet18", description="ResNet-18 v1.5, BatchNorm (seed 002)")
def resnet18(input_shape, num_classes, dropout=0.0):
    return resnet(18, input_shape, num_classes, dropout=dropout)


@register_model("resnet34", description="ResNet-34 v1.5, BatchNorm (seed 002)")
def resnet34(input_shape, num_classes, dropout=0.0):
    return resnet(34, input_shape, num_classes, dropout=dropout)


@register_model("resnet50", description="ResNet-50 v1.5, BatchNorm (seed 002)")
def resnet50(input_shape, num_classes, dropout=0.0):
    return resnet(50, input_shape, num_classes, dropout=dropout)
