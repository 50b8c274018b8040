"""Model zoo: `build_model(name, input_shape=…, num_classes=…)`, `list_models()`."""

from corolla.models import seeds  # noqa: F401  (registers the built-in models)
from corolla.models.registry import build_model, get_model, list_models, register_model

__all__ = ["build_model", "get_model", "list_models", "register_model"]
