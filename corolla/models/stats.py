"""Size and cost of a model: parameter counts and multiply-accumulates (MACs) for one image.

MACs are counted from each layer's shapes for the layers that carry the cost (Conv2D,
DepthwiseConv2D, SeparableConv2D, Dense), nested models included; FLOPs ≈ 2 × MACs. Pooling,
BatchNorm and activations are left out, as in the papers' figures (ResNet-50: 4.1 G MACs at 224 px).

Example:
    stats = model_stats(build_model("resnet50", input_shape=(224, 224, 3), num_classes=1000))
    stats["macs"] / 1e9  # ≈ 4.1
"""

from __future__ import annotations

import math

import keras
from keras import layers


def model_stats(model) -> dict:
    """{"parameters", "trainable_parameters", "macs", "flops"} of `model` for a single image."""
    trainable = sum(math.prod(weight.shape) for weight in model.trainable_weights)
    macs = count_macs(model)
    return {"parameters": model.count_params(), "trainable_parameters": trainable, "macs": macs, "flops": 2 * macs}


def count_macs(model) -> int:
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += count_macs(layer)
            continue
        if not isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D, layers.SeparableConv2D, layers.Dense)):
            continue
        in_channels, out_shape = layer.input.shape[-1], layer.output.shape[1:]
        positions = math.prod(out_shape[:-1])  # output pixels (or 1 for a Dense on a vector)
        if isinstance(layer, layers.Dense):
            total += positions * in_channels * layer.units
        elif isinstance(layer, layers.DepthwiseConv2D):
            total += positions * out_shape[-1] * math.prod(layer.kernel_size)
        elif isinstance(layer, layers.SeparableConv2D):
            total += positions * in_channels * layer.depth_multiplier * (math.prod(layer.kernel_size) + layer.filters)
        else:
            total += positions * out_shape[-1] * math.prod(layer.kernel_size) * in_channels // layer.groups
    return total
