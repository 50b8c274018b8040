"""The run folder that `train` writes and `evaluate`, `export` and `serve` read.

    RUN_DIR/config.yaml              resolved training config (see corolla.config)
    RUN_DIR/checkpoints/best.keras   best model so far
    RUN_DIR/history.json             per-epoch metrics
    RUN_DIR/report/metrics.json      from `corolla evaluate`
    RUN_DIR/export/<version>/        from `corolla export`

Example:
    run = Run("runs/fm")
    model = run.load_model()
"""

from __future__ import annotations

import os
import pathlib

from corolla.config import TrainConfig
from corolla.errors import CorollaError


class Run:
    def __init__(self, run_dir: str | os.PathLike):
        self.dir = pathlib.Path(run_dir)
        self.config = TrainConfig.load(self.dir)  # also proves this is a run folder

    best_checkpoint = property(lambda self: self.dir / "checkpoints" / "best.keras")
    history = property(lambda self: self.dir / "history.json")
    report_dir = property(lambda self: self.dir / "report")
    export_dir = property(lambda self: self.dir / "export")

    def load_model(self):
        """The best checkpoint, loaded with Keras safe mode on (no arbitrary code from the file)."""
        from corolla.models.saving import load_model_file

        if not self.best_checkpoint.is_file():
            raise CorollaError(
                f"{self.dir} has no checkpoint at {self.best_checkpoint}: training did not finish an epoch. "
                f"Run `corolla train {self.config.data_dir} --out {self.dir} --overwrite`."
            )
        return load_model_file(self.best_checkpoint)
