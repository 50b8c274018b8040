"""Resolved configuration of a training run, saved as `RUN_DIR/config.yaml`.

Precedence, lowest first: TrainConfig's defaults < `--recipe` < `--config FILE` < flags. Values
that come from the data (classes, image size, channels, counts) are copied from the manifest by
`train`, never typed by the user, and read back by `evaluate` and `export`; a config file that
carries them is checked against the data instead of trusted.

Example:
    config = TrainConfig.load("runs/fm")
    config.image_size, config.classes
    TrainConfig.from_file("runs/fm/config.yaml", epochs=20)   # reproduce, one thing changed
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

import yaml

from corolla.data.storage import write_text
from corolla.errors import CorollaError

CONFIG = "config.yaml"
DERIVED = ("classes", "image_size", "channels", "train_images", "eval_images", "kind", "frames", "task", "question_length", "vocabulary")
AUTO_MODELS = {("images", "classify"): "convnet", ("clips", "classify"): "clip_lstm", ("clips", "qa"): "clip_qa"}


@dataclasses.dataclass
class TrainConfig:
    data_dir: str = ""
    model: str = "auto"  # auto: convnet for images, clip_lstm for clips, clip_qa for clips with questions
    model_options: dict = dataclasses.field(default_factory=dict)  # builder keywords, e.g. {widths: [32, 64, 128]}
    backbone: str = ""  # clip models: the image model that encodes each frame ("": the clip model's default)
    epochs: int = 5
    train_steps: int = 0  # > 0: train this many steps instead of `epochs` …
    steps_per_eval: int = 0  # … evaluating and checkpointing every this many (0: once per pass)
    batch_size: int = 128  # per replica; the global batch is this × replicas
    optimizer: str = "adam"
    learning_rate: float = 3e-3  # for `batch_size`; scaled linearly with the global batch
    schedule: str = "warmup_cosine"
    warmup: float = 0.05  # fraction of the steps spent warming up (warmup_cosine)
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    clipnorm: float = 0.0  # 0: no gradient clipping
    early_stopping: int = 0  # patience in evaluations; 0: off
    augment: str = "none"
    tta: str = "none"  # test-time augmentation evaluate and export apply by default: none | flip | flip_shift (corolla.models.tta)
    fine_tune: bool = False  # second stage: unfreeze a pretrained backbone
    fine_tune_epochs: int = 0  # 0: same as `epochs`
    fine_tune_layers: int | str = "all"  # top N backbone layers, or "all"
    fine_tune_learning_rate: float = 0.0  # 0: learning_rate / 10
    cache_features: str = "auto"  # frozen backbone + no augmentation: run the backbone once (auto|on|off)
    distribute: str = "auto"
    mixed_precision: str = "auto"  # auto | float32 | mixed_bfloat16 | mixed_float16
    jit_compile: str = "auto"  # auto: XLA on GPU/TPU only
    seed: int = 42
    recipe: str = ""
    # Filled from the manifest:
    classes: list[str] = dataclasses.field(default_factory=list)
    image_size: int = 0
    channels: int = 0
    train_images: int = 0
    eval_images: int = 0
    kind: str = "images"  # or "clips": examples are `frames` frames of image_size² pixels
    frames: int = 0
    task: str = "classify"  # or "qa": `classes` are the answers, questions read with `vocabulary`
    question_length: int = 0
    vocabulary: list[str] = dataclasses.field(default_factory=list)

    def save(self, run_dir: str | os.PathLike) -> None:
        text = yaml.safe_dump(dataclasses.asdict(self), sort_keys=False, allow_unicode=True)
        write_text(pathlib.Path(run_dir) / CONFIG, text)

    @classmethod
    def load(cls, run_dir: str | os.PathLike) -> "TrainConfig":
        """The config of an existing run folder."""
        path = pathlib.Path(run_dir) / CONFIG
        if not path.is_file():
            raise CorollaError(
                f"{run_dir} is not a training run: it has no {CONFIG}. "
                f"Train one with `corolla train DATA_DIR --out {run_dir}`. Received: run_dir={str(run_dir)!r}"
            )
        return cls(**read_yaml(path))

    @classmethod
    def from_file(cls, path: str | os.PathLike, **overrides) -> "TrainConfig":
        """A config file (a recipe, or a run's config.yaml) with `overrides` on top."""
        return cls().updated(**read_yaml(path)).updated(**overrides)

    def updated(self, **values) -> "TrainConfig":
        """A copy with `values` set; None means "not given" and keeps the current value."""
        check_keys(values, "options")
        given = {key: value for key, value in values.items() if value is not None}
        return dataclasses.replace(self, **given)

    def training_settings(self) -> dict:
        """Everything a user chose (not what the data decided)."""
        return {key: value for key, value in dataclasses.asdict(self).items() if key not in DERIVED + ("recipe",)}


def read_yaml(path: str | os.PathLike) -> dict:
    path = pathlib.Path(path)
    if not path.is_file():
        raise CorollaError(f"No config file at {path}. Expected a YAML file such as a run's {CONFIG}. Received: config={str(path)!r}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise CorollaError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise CorollaError(f"{path} must hold a mapping of option: value. Received: {type(data).__name__}")
    check_keys(data, str(path))
    return data


def check_keys(values: dict, where: str) -> None:
    fields = {field.name for field in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise CorollaError(f"Unknown training option(s) in {where}: {', '.join(unknown)}. Expected only: {', '.join(sorted(fields))}.")
