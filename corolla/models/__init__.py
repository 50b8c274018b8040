"""Model zoo: `build_model(name, input_shape=…, num_classes=…)`, `list_models()`, `unfreeze(model, layers=N)`.

Names are imported on first use, so `corolla --help` does not load Keras.

Example:
    from corolla.models import build_model, unfreeze
    model = build_model("efficientnet_lite0", input_shape=(224, 224, 3), num_classes=5)
"""

import importlib

_EXPORTS = {
    "ModelSpec": "corolla.models.registry",
    "build_model": "corolla.models.registry",
    "get_model": "corolla.models.registry",
    "list_models": "corolla.models.registry",
    "register_model": "corolla.models.registry",
    "transfer_model": "corolla.models.transfer",
    "unfreeze": "corolla.models.transfer",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'corolla.models' has no attribute {name!r}")
