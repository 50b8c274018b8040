"""Resolved configuration of a training run, saved as `RUN_DIR/config.yaml`.

Values that come from the data (classes, image size, channels, counts) are copied from the
manifest by `train`, never typed by the user, and read back by `evaluate` and `export`.

Example:
    config = TrainConfig.load("runs/fm")
    config.image_size, config.classes
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

import yaml

from corolla.data.storage import write_text
from corolla.errors import CorollaError

CONFIG = "config.yaml"


@dataclasses.dataclass
class TrainConfig:
    data_dir: str
    model: str = "convnet"
    epochs: int = 5
    batch_size: int = 128
    learning_rate: float = 3e-3
    augment: str = "none"
    seed: int = 42
    # Filled from the manifest:
    classes: list[str] = dataclasses.field(default_factory=list)
    image_size: int = 0
    channels: int = 0
    train_images: int = 0
    eval_images: int = 0

    def save(self, run_dir: str | os.PathLike) -> None:
        text = yaml.safe_dump(dataclasses.asdict(self), sort_keys=False, allow_unicode=True)
        write_text(pathlib.Path(run_dir) / CONFIG, text)

    @classmethod
    def load(cls, run_dir: str | os.PathLike) -> "TrainConfig":
        path = pathlib.Path(run_dir) / CONFIG
        if not path.is_file():
            raise CorollaError(
                f"{run_dir} is not a training run: it has no {CONFIG}. "
                f"Train one with `corolla train DATA_DIR --out {run_dir}`. Received: run_dir={str(run_dir)!r}"
            )
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        fields = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise CorollaError(f"{path} has unknown keys: {', '.join(unknown)}. Expected only: {', '.join(sorted(fields))}.")
        return cls(**data)
