"""`corolla tune` as a Typer command; `corolla.cli` registers it."""

from __future__ import annotations

import pathlib
from typing import Optional

import typer


def tune(
    data_dir: pathlib.Path = typer.Argument(..., help="Prepared data (`corolla prepare`); its eval split is never used to choose."),
    out: Optional[pathlib.Path] = typer.Option(None, "--out", "-o", help="Tune folder \\[default: tune/<DATA_DIR name>]. Running again with the same settings resumes it."),
    space: Optional[pathlib.Path] = typer.Option(None, help="Search space YAML: option: [choices] | {min, max, log} | value \\[default: a built-in space for this data's size, written to OUT/space.yaml]."),
    algorithm: str = typer.Option("hyperband", help="hyperband, bayesian or random."),
    max_trials: Optional[int] = typer.Option(None, help="Stop after this many trials \\[default: hyperband: when its brackets are done; bayesian/random: 20]."),
    time_budget: Optional[str] = typer.Option(None, help="End within this long, e.g. 20m, 1h30m, 900s (counted across resumes): a trial starts only if finished trials alike say it ends in time."),
    executions_per_trial: int = typer.Option(1, help="Train each setting this many times (seeds seed, seed+1, …) and score the mean."),
    validation_fraction: float = typer.Option(0.1, help="Share of each class of the train split held out to score trials."),
    seed: int = typer.Option(42, help="Seed of the search, the validation holdout and each trial's training."),
    overwrite: bool = typer.Option(False, help="Discard an existing tune in --out and start over."),
):
    """Search training settings with KerasTuner; every trial is a `corolla train` run under OUT/trials/NNN.

    Writes OUT/best.yaml (reproduce with `corolla train --config OUT/best.yaml`) and
    OUT/results.json. Example: `corolla tune data/stamps --time-budget 20m`.
    """
    from corolla.tune import tune as run_tune

    run_tune(
        data_dir, out=out, space=space, algorithm=algorithm, max_trials=max_trials, time_budget=time_budget,
        executions_per_trial=executions_per_trial, validation_fraction=validation_fraction, seed=seed, overwrite=overwrite,
    )  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command()(tune)
