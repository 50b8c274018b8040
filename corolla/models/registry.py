"""name → model builder, one lookup for every kind of model, the user's own file included.

Every model takes raw 0–255 pixels of `input_shape` (H, W, C with C = 1 or 3), scales them itself
and returns class probabilities, so training, evaluation and every export feed raw pixels. Clip
models (`kind="clips"`, corolla.models.clips) take frame sequences of shape (frames, H, W, C) instead.

Example:
    @register_model("convnet", description="The seeds' Sequential convnet", input_size=28, channels=1)
    def convnet(input_shape, num_classes): ...

    model = build_model("convnet", input_shape=(28, 28, 1), num_classes=10)
    model = build_model("efficientnet_lite0", input_shape=(224, 224, 3), num_classes=5, weights="imagenet")
    model = build_model("my_models.py:build", input_shape=(32, 32, 3), num_classes=10)
    model = build_model("clip_lstm", input_shape=(16, 64, 64, 3), num_classes=4, backbone="frame_cnn")
"""

from __future__ import annotations

import dataclasses
import inspect
import numbers
from typing import Callable

from corolla.errors import CorollaError

KINDS = ("images", "clips")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable
    description: str
    input_size: int = 224  # the size it was designed (or pretrained) for
    channels: int = 3
    pretrained: bool = False
    min_size: int = 32  # smallest height/width it can take
    kind: str = "images"  # what one example is: "images" (H, W, C) or "clips" (frames, H, W, C)
    frames: int = 16  # clips: the clip length it was designed for

    @property
    def options(self) -> list[str]:
        """Keyword options of the builder beyond input_shape and num_classes (e.g. weights, dropout)."""
        return [name for name in inspect.signature(self.builder).parameters if name not in ("input_shape", "num_classes")]


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name: str, *, description: str, input_size: int = 224, channels: int = 3, pretrained: bool = False, min_size: int = 32,
                   kind: str = "images", frames: int = 16) -> Callable:
    """Decorator registering `builder(input_shape, num_classes, **options)` under `name`."""
    if kind not in KINDS:
        raise CorollaError(f"Unknown kind of data. Expected one of: {', '.join(KINDS)}. Received: kind={kind!r}")

    def decorate(builder: Callable) -> Callable:
        _REGISTRY[name] = ModelSpec(name, builder, description, input_size, channels, pretrained, min_size, kind=kind, frames=frames)
        return builder

    return decorate


def list_models(kind: str | None = None) -> list[ModelSpec]:
    """Every registered model, by name; `kind="images"` or `"clips"` keeps only that kind."""
    _load_builtins()
    return [_REGISTRY[name] for name in sorted(_REGISTRY) if kind is None or _REGISTRY[name].kind == kind]


def get_model(name: str) -> ModelSpec:
    """The spec of a registered model, or of a user file `path/to/file.py:function`."""
    _load_builtins()
    if name in _REGISTRY:
        return _REGISTRY[name]
    if ".py:" in name or name.endswith(".py"):
        from corolla.models.custom import user_model_spec

        return user_model_spec(name)
    raise CorollaError(
        f"Unknown model '{name}'. Available: {', '.join(sorted(_REGISTRY))}, or your own file as path/to/file.py:build. "
        f"Received: model={name!r}"
    )


def build_model(name: str, *, input_shape: tuple[int, ...], num_classes: int, **options):
    """A Keras model taking raw 0–255 pixels of `input_shape` and returning class probabilities.

    input_shape: (height, width, channels) for image models, (frames, height, width, channels) for clip models.
    `options` go to the builder (see `get_model(name).options`), e.g. `weights="imagenet"`.
    """
    spec = get_model(name)
    input_shape = _check_input_shape(spec, input_shape)
    if not isinstance(num_classes, numbers.Integral) or num_classes < 2:
        raise CorollaError(f"A classifier needs at least 2 classes. Received: num_classes={num_classes!r}")
    check_options(spec, options)
    parameters = inspect.signature(spec.builder).parameters
    missing = [key for key in spec.options if key not in options and parameters[key].default is inspect.Parameter.empty
               and parameters[key].kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
    if missing:
        raise CorollaError(f"Model '{spec.name}' needs the option {', '.join(f'{key}=…' for key in missing)}. Received: options={sorted(options)}")
    return spec.builder(input_shape=input_shape, num_classes=int(num_classes), **options)


def _check_input_shape(spec: ModelSpec, input_shape) -> tuple[int, ...]:
    shape = tuple(input_shape)
    integral = all(isinstance(size, numbers.Integral) for size in shape)
    if spec.kind == "clips":
        if len(shape) == 3:
            raise CorollaError(
                f"Model '{spec.name}' takes clips, not single images: input_shape must be (frames, height, width, channels), "
                f"e.g. ({spec.frames}, {spec.input_size}, {spec.input_size}, 3). Received: input_shape={input_shape!r}"
            )
        if len(shape) != 4 or not integral or shape[3] not in (1, 3) or shape[0] < 1:
            raise CorollaError(
                f"input_shape must be (frames, height, width, channels) with at least 1 frame and 1 (grayscale) or 3 (RGB) channels. "
                f"Received: input_shape={input_shape!r}"
            )
        frames, shape = shape[:1], shape[1:]
    else:
        frames = ()
        if len(shape) == 4:
            raise CorollaError(
                f"Model '{spec.name}' takes single images, not clips: input_shape must be (height, width, channels). For clips use a "
                f"clip model with it as the frame encoder, e.g. build_model('clip_lstm', …, backbone={spec.name!r}). Received: input_shape={input_shape!r}"
            )
        if len(shape) != 3 or not integral or shape[2] not in (1, 3):
            raise CorollaError(
                f"input_shape must be (height, width, channels) with 1 (grayscale) or 3 (RGB) channels. Received: input_shape={input_shape!r}"
            )
    if min(shape[:2]) < spec.min_size:
        raise CorollaError(
            f"Model '{spec.name}' needs images of at least {spec.min_size}×{spec.min_size} pixels "
            f"(it was designed for {spec.input_size}×{spec.input_size}); prepare the data with a larger --image-size. "
            f"Received: input_shape={(*frames, *shape)}"
        )
    return tuple(int(size) for size in (*frames, *shape))

def _load_builtins() -> None:
    """Import the modules whose decorators register corolla's own models (once; imports are cached)."""
    from corolla.models import applications, clips, efficientnet_lite, fastnet, resnet, seeds  # noqa: F401


def check_options(spec: ModelSpec, options: dict) -> None:
    """CorollaError naming any keyword the model's builder does not take."""
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise CorollaError(
            f"Model '{spec.name}' has no option {', '.join(map(repr, unknown))}. "
            f"Its options: {', '.join(spec.options) or '(none)'}. Received: {', '.join(f'{key}={options[key]!r}' for key in unknown)}"
        )
