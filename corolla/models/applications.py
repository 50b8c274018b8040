"""`keras.applications` backbones by name, under the seeds' transfer-learning head.

weights: "imagenet" uses Keras' own download (cached in ~/.keras/models, so it works offline once
fetched); a path loads a local weights file of the backbone without its top (e.g. Keras'
`*_notop.h5`); None (or "none") starts from random weights and trains the whole network.

Example:
    model = build_model("mobilenet_v2", input_shape=(224, 224, 3), num_classes=5)   # the seeds' choice
    model = build_model("efficientnet_b0", input_shape=(224, 224, 3), num_classes=5, weights="b0_notop.h5")
"""

from __future__ import annotations

import warnings

import keras

from corolla.errors import CorollaError
from corolla.models.registry import register_model
from corolla.models.transfer import normalize_weights, transfer_model

# name: (keras.applications constructor, scaling of 0–255 pixels it expects, description)
_APPLICATIONS = {
    "mobilenet_v2": ("MobileNetV2", "symmetric", "MobileNetV2, the seeds' backbone"),
    "mobilenet_v3_small": ("MobileNetV3Small", "none", "MobileNetV3-Small"),
    "efficientnet_b0": ("EfficientNetB0", "none", "EfficientNet-B0"),
    "efficientnet_v2_b0": ("EfficientNetV2B0", "none", "EfficientNetV2-B0"),
    "resnet50_v2": ("ResNet50V2", "symmetric", "ResNet-50 v2, pre-activation"),
}


def application_backbone(name: str, *, input_shape, weights="imagenet"):
    """The `keras.applications` model `name` without its top, for RGB `input_shape`."""
    constructor = getattr(keras.applications, _APPLICATIONS[name][0])
    weights = normalize_weights(weights)
    try:
        with warnings.catch_warnings():
            # Keras 3.15 warns once per container when loading a .weights.h5 into these models, yet loads every weight.
            warnings.filterwarnings("ignore", message="Skipping nested container")
            return constructor(include_top=False, weights=weights, input_shape=(*input_shape[:2], 3))
    except Exception as error:
        if weights == "imagenet" and "URL fetch failure" in str(error):
            raise CorollaError(
                f"Could not download the ImageNet weights of {name}: Keras fetches them on first use and this machine "
                f"seems offline ({error}). Either run once with network access (Keras then keeps the file in "
                f"~/.keras/models), copy that file there by hand, pass weights=PATH to a local copy of it "
                f"(`--weights PATH`), or weights=None to train from scratch. Received: weights='imagenet'"
            ) from error
        if weights not in ("imagenet", None):
            raise CorollaError(
                f"{weights} does not fit {name} without its top at input {tuple(input_shape[:2])}: {error}. "
                f"Expected the backbone's no-top weights file, e.g. Keras' *_notop.h5. Received: weights={weights!r}"
            ) from error
        raise


def _register(name: str) -> None:
    _, scaling, description = _APPLICATIONS[name]

    @register_model(name, description=f"{description} (keras.applications)", pretrained=True)
    def build(input_shape, num_classes, weights="imagenet", dropout=0.2, pooling="avg"):
        weights = normalize_weights(weights)
        backbone = application_backbone(name, input_shape=input_shape, weights=weights)
        return transfer_model(backbone, input_shape=input_shape, num_classes=num_classes, scaling=scaling, dropout=dropout, pooling=pooling, frozen=weights is not None)


for _name in _APPLICATIONS:
    _register(_name)
