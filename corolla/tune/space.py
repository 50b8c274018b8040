"""Search spaces for `corolla tune`: a `--config` YAML whose values may be choices or ranges.

    model: [convnet, fastnet]                          # a list: one of these
    learning_rate: {min: 0.0001, max: 0.01, log: true} # a range (floats; ints when both ends are)
    batch_size: [64, 128]
    augment: [none, light]
    label_smoothing: {min: 0.0, max: 0.2}
    epochs: 12                                         # a plain value: fixed (Hyperband: the most a trial gets)

Keys are `corolla train` options (TrainConfig fields). `fine_tune` applies only to pretrained
models; a trial of a model without a backbone trains with fine_tune off. Every corner of the
space is checked like a `corolla train` command before anything runs, so a contradiction
(`cache_features: on` with `augment: [light]`) is an error naming the combination.

Example:
    space = parse_space(read_space("space.yaml"))   # or parse_space(default_space(manifest))
    declare(space, hp); options = trial_options(space, hp.values)
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import pathlib

import yaml

from corolla.config import DERIVED, TrainConfig
from corolla.errors import CorollaError

NOT_TUNABLE = ("data_dir", "recipe", "seed", *DERIVED)
FIXED_ONLY = ("model_options", "distribute", "mixed_precision", "jit_compile", "train_steps", "steps_per_eval")
CORNER_LIMIT = 4096


@dataclasses.dataclass(frozen=True)
class Param:
    name: str
    kind: str  # fixed | choice | float | int
    values: tuple = ()  # fixed: (value,); choice: the choices
    low: float = 0.0
    high: float = 0.0
    log: bool = False

    def corners(self) -> tuple:
        return self.values if self.kind in ("fixed", "choice") else (self.low, self.high)

    def describe(self) -> str:
        if self.kind == "fixed":
            return repr(self.values[0])
        if self.kind == "choice":
            return " | ".join(str(value) for value in self.values)
        return f"{self.low:g} … {self.high:g}{' (log)' if self.log else ''}"


def tunable_keys() -> list[str]:
    return sorted(field.name for field in dataclasses.fields(TrainConfig) if field.name not in NOT_TUNABLE)


def read_space(path: str | os.PathLike) -> dict:
    path = pathlib.Path(path)
    if not path.is_file():
        raise CorollaError(f"No search space file at {path}. Expected a YAML file of option: value, [choices] or {{min, max}}. Received: space={str(path)!r}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise CorollaError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(data, dict) or not data:
        raise CorollaError(f"{path} is an empty search space. Expected options such as `learning_rate: {{min: 0.0001, max: 0.01, log: true}}`. Received: {data!r}")
    return data


def parse_space(raw: dict, *, where: str = "the search space") -> dict[str, Param]:
    """Validated parameters by name; CorollaError for unknown keys, empty choices or bad ranges."""
    if not raw:
        raise CorollaError(f"{where} is empty. Give at least one option with choices or a range, e.g. `learning_rate: {{min: 0.0001, max: 0.01, log: true}}`.")
    valid = tunable_keys()
    unknown = sorted(set(raw) - set(valid))
    if unknown:
        raise CorollaError(f"Unknown option(s) in {where}: {', '.join(unknown)}. Expected only: {', '.join(valid)}.")
    return {name: _param(name, value, where) for name, value in raw.items()}


def _param(name: str, value, where: str) -> Param:
    if name in FIXED_ONLY or not isinstance(value, (list, dict)):
        return Param(name, "fixed", (value,))
    if isinstance(value, list):
        if not value:
            raise CorollaError(f"'{name}' in {where} has no choices. Give at least one value, e.g. {name}: [{getattr(TrainConfig(), name)!r}]. Received: {name}=[]")
        if len({type(choice) for choice in value}) > 1 or not all(isinstance(choice, (str, int, float, bool)) for choice in value):
            raise CorollaError(f"The choices of '{name}' in {where} must be plain values of one type. Received: {name}={value!r}")
        choices = tuple(dict.fromkeys(value))
        return Param(name, "fixed", choices) if len(choices) == 1 else Param(name, "choice", choices)
    extra = sorted(set(value) - {"min", "max", "log"})
    if extra or "min" not in value or "max" not in value:
        raise CorollaError(f"A range in {where} is {{min: …, max: …}} with an optional `log: true`. Received: {name}={value!r}")
    low, high, log = value["min"], value["max"], bool(value.get("log", False))
    if not all(isinstance(end, (int, float)) and not isinstance(end, bool) for end in (low, high)):
        raise CorollaError(f"'{name}' takes no range of non-numbers in {where}. Received: {name}={value!r}")
    if isinstance(getattr(TrainConfig(), name), (str, bool)):
        raise CorollaError(f"'{name}' is not a number; give it a list of choices instead of a range. Received: {name}={value!r}")
    if low > high:
        raise CorollaError(f"The range of '{name}' in {where} runs backwards (min > max). Received: {name}={value!r}")
    if log and low <= 0:
        raise CorollaError(f"A log range needs min > 0; '{name}' has min={low}. Received: {name}={value!r}")
    if low == high:
        return Param(name, "fixed", (low,))
    integer = isinstance(getattr(TrainConfig(), name), int) and isinstance(low, int) and isinstance(high, int)
    return Param(name, "int" if integer else "float", low=low, high=high, log=log)


def declare(space: dict[str, Param], hp) -> None:
    """Declare the non-fixed parameters on KerasTuner's HyperParameters `hp`."""
    for param in space.values():
        if param.kind == "choice" and isinstance(param.values[0], bool):
            hp.Boolean(param.name)  # KerasTuner's Choice would hand back 0 and 1
        elif param.kind == "choice":
            hp.Choice(param.name, list(param.values))
        elif param.kind == "int":
            hp.Int(param.name, int(param.low), int(param.high), sampling="log" if param.log else "linear")
        elif param.kind == "float":
            hp.Float(param.name, float(param.low), float(param.high), sampling="log" if param.log else "linear")


def trial_options(space: dict[str, Param], values: dict) -> dict:
    """TrainConfig options of one trial: fixed values, the oracle's choices (`tuner/*` keys dropped)."""
    from corolla.models import get_model

    options = {name: param.values[0] for name, param in space.items() if param.kind == "fixed"}
    defaults = TrainConfig()
    for name, value in values.items():
        if name in space:  # not `tuner/…` bookkeeping; cast back to the option's type (KerasTuner keeps numbers loosely)
            default = getattr(defaults, name)
            options[name] = type(default)(value) if isinstance(default, (bool, int, float)) and not isinstance(value, str) else value
    if options.get("fine_tune") and not get_model(options.get("model", TrainConfig.model)).pretrained:
        options["fine_tune"] = False  # no backbone to unfreeze: the choice does not apply to this model
    return options


def check_space(space: dict[str, Param], base: TrainConfig, *, hyperband: bool) -> None:
    """Run `corolla train`'s own checks on every corner of the space (at most CORNER_LIMIT)."""
    from corolla.train.session import check

    if hyperband and space.get("epochs", Param("epochs", "fixed")).kind != "fixed":
        raise CorollaError("Hyperband decides each trial's epochs; give `epochs` one number (the most a trial gets), or use --algorithm random/bayesian for a range.")
    names = [name for name, param in space.items() if param.kind != "fixed"]
    corners = itertools.islice(itertools.product(*(space[name].corners() for name in names)), CORNER_LIMIT)
    fixed_fine_tune = space.get("fine_tune")
    if fixed_fine_tune and fixed_fine_tune.kind == "fixed" and fixed_fine_tune.values[0]:
        from corolla.models import get_model

        models = space["model"].corners() if "model" in space else (base.model,)
        if not any(get_model(model).pretrained for model in models if model != "auto"):
            raise CorollaError(f"The space fixes fine_tune: true, and none of its models ({', '.join(map(str, models))}) has a pretrained backbone to fine-tune. Add one (e.g. efficientnet_lite0) or drop fine_tune.")
    for corner in corners:
        options = trial_options(space, dict(zip(names, corner)))
        try:
            settings = base.updated(**options)
            if settings.model == "auto":
                from corolla.config import AUTO_MODELS

                settings = settings.updated(model=AUTO_MODELS[(settings.kind, settings.task)])
            check(settings)
        except CorollaError as error:
            chosen = ", ".join(f"{name}={value!r}" for name, value in zip(names, corner)) or "its fixed values"
            raise CorollaError(f"The search space contradicts itself: a trial with {chosen} could not train: {error}") from None
        except TypeError as error:
            raise CorollaError(f"A value in the search space has the wrong type: {error}. Received: {options!r}") from None


def default_space(*, train_images: int, image_size: int, channels: int) -> dict:
    """The built-in space for data of this size (written to OUT/space.yaml, to edit and pass with --space)."""
    common = {"label_smoothing": [0.0, 0.1], "weight_decay": [0.0, 0.0001]}
    if channels == 3 and image_size >= 64 and train_images <= 20_000:
        # Few photos: ImageNet features win; head-only trials with augment none share cached features.
        return {
            "model": ["efficientnet_lite0"],
            "fine_tune": [False, True],
            "learning_rate": {"min": 0.0003, "max": 0.03, "log": True},
            "batch_size": [16, 32],
            "augment": ["none", "light"],
            **common,
            "epochs": 12,
        }
    models = ["convnet", "fastnet"] if image_size <= 64 else ["squeezenet", "resnet18"]
    return {
        "model": models,
        "learning_rate": {"min": 0.0003, "max": 0.01, "log": True},
        "batch_size": [64, 128],
        "augment": ["none", "light"],
        **common,
        "epochs": 12 if train_images <= 20_000 else 8,
    }


def space_yaml(raw: dict, *, header: str) -> str:
    lines = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return lines + yaml.safe_dump(raw, sort_keys=False, default_flow_style=None, allow_unicode=True)

