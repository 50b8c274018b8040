"""The run folder that `train` writes and `evaluate`, `export` and `serve` read.

    RUN_DIR/config.yaml              resolved training config (see corolla.config)
    RUN_DIR/checkpoints/best.keras   best model so far (by the eval split: fine to serve, not to report)
    RUN_DIR/checkpoints/last.keras   the model after the last epoch
    RUN_DIR/history.json             per-epoch metrics
    RUN_DIR/report/metrics.json      from `corolla evaluate`
    RUN_DIR/export/<version>/        from `corolla export`

Example:
    run = Run("runs/fm")
    model = run.load_model()                      # best.keras, with the run's test-time augmentation
    model = run.load_model("last", tta="none")    # the last epoch's model, one pass per image
"""

from __future__ import annotations

import os
import pathlib

from corolla.config import TrainConfig
from corolla.errors import CorollaError

CHECKPOINTS = ("best", "last")


class Run:
    def __init__(self, run_dir: str | os.PathLike):
        self.dir = pathlib.Path(run_dir)
        self.config = TrainConfig.load(self.dir)  # also proves this is a run folder

    best_checkpoint = property(lambda self: self.dir / "checkpoints" / "best.keras")
    history = property(lambda self: self.dir / "history.json")
    report_dir = property(lambda self: self.dir / "report")
    export_dir = property(lambda self: self.dir / "export")

    def checkpoint(self, name: str = "best") -> pathlib.Path:
        if name not in CHECKPOINTS:
            raise CorollaError(f"Unknown checkpoint '{name}'. Expected one of: {', '.join(CHECKPOINTS)}. Received: checkpoint={name!r}")
        return self.dir / "checkpoints" / f"{name}.keras"

    def load_model(self, checkpoint: str = "best", *, tta: str | None = None):
        """A checkpoint ("best" or "last"), loaded with Keras safe mode on (no arbitrary code from the file).

        `tta` (default: the run's config) wraps it in test-time augmentation (corolla.models.tta).
        """
        from corolla.models.saving import load_model_file
        from corolla.models.tta import check_tta, with_tta

        tta = check_tta(self.config.tta if tta is None else tta, kind=self.config.kind)
        path = self.checkpoint(checkpoint)
        if not path.is_file():
            raise CorollaError(
                f"{self.dir} has no checkpoint at {path}: training did not finish an epoch. "
                f"Run `corolla train {self.config.data_dir} --out {self.dir} --overwrite`."
            )
        return with_tta(load_model_file(path), tta)
