"""name → model builder, one lookup for every kind of model.

Example:
    @register_model("convnet", description="The seeds' Sequential convnet")
    def convnet(input_shape, num_classes): ...

    model = build_model("convnet", input_shape=(28, 28, 1), num_classes=10)
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from corolla.errors import CorollaError


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable
    description: str


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name: str, *, description: str) -> Callable:
    def decorate(builder: Callable) -> Callable:
        _REGISTRY[name] = ModelSpec(name, builder, description)
        return builder

    return decorate


def list_models() -> list[ModelSpec]:
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def get_model(name: str) -> ModelSpec:
    if name not in _REGISTRY:
        raise CorollaError(f"Unknown model '{name}'. Available: {', '.join(sorted(_REGISTRY))}. Received: model={name!r}")
    return _REGISTRY[name]


def build_model(name: str, *, input_shape: tuple[int, int, int], num_classes: int):
    """A Keras model taking raw 0–255 pixels of `input_shape` and returning class probabilities."""
    return get_model(name).builder(input_shape=tuple(input_shape), num_classes=num_classes)
