"""`corolla tune DATA_DIR`: search training settings with KerasTuner; every trial an ordinary run.

    OUT/space.yaml            the search space used (the built-in one for this data, or --space)
    OUT/validation-data/      the train split with a validation part held out (corolla.tune.holdout)
    OUT/trials/NNN/           one `corolla train` run per trial (config.yaml, history.json, checkpoints)
    OUT/keras_tuner/          the oracle's state, saved after every change: a killed tune resumes
    OUT/results.json          every trial, best first
    OUT/best.yaml             the best trial's config: `corolla train --config OUT/best.yaml` reproduces it

Example:
    result = tune("data/stamps", out="tune/stamps", time_budget="20m")
    result["best"]["val_accuracy"], result["best_config"]
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil

from corolla.errors import CorollaError
from corolla.tune.space import check_space, default_space, parse_space, read_space, space_yaml

SETTINGS = "tune_settings.json"
MIN_TRIAL_SECONDS = 30  # start-up, tracing, one epoch and the checkpoints of the smallest trial, roughly


def parse_duration(text) -> float | None:
    """'20m', '1h30m', '90s', '90' (seconds) → seconds; None stays None."""
    if text is None or isinstance(text, (int, float)):
        return None if text is None else float(text)
    parts = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", str(text))
    if not parts or not any(parts.groups()):
        raise CorollaError(f"A time budget is a duration such as 20m, 1h30m or 90s. Received: time_budget={text!r}")
    hours, minutes, seconds = (float(value or 0) for value in parts.groups())
    return hours * 3600 + minutes * 60 + seconds


def tune(
    data_dir: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    space: str | os.PathLike | dict | None = None,
    algorithm: str = "hyperband",
    max_trials: int | None = None,
    time_budget: str | float | None = None,
    executions_per_trial: int = 1,
    validation_fraction: float = 0.1,
    seed: int = 42,
    overwrite: bool = False,
    verbose: bool = True,
) -> dict:
    """Search settings for `data_dir` (prepared data); returns the ranking and the best config's path.

    `space` is a YAML file or dict of ranges and choices (default: the built-in space for this
    data's size). `algorithm` is hyperband, bayesian or random. The search stops at
    `max_trials`, at `time_budget` (e.g. "20m"; counted across resumes), or when the oracle is done.
    """
    from corolla.config import TrainConfig
    from corolla.data.manifest import Manifest
    from corolla.train.trainer import with_data
    from corolla.tune.tuner import ALGORITHMS

    if algorithm not in ALGORITHMS:
        raise CorollaError(f"Unknown search algorithm '{algorithm}'. Expected one of: {', '.join(ALGORITHMS)}. Received: algorithm={algorithm!r}")
    seconds = parse_duration(time_budget)
    if (max_trials is not None and max_trials < 1) or executions_per_trial < 1:
        raise CorollaError(f"max_trials and executions_per_trial must be ≥ 1. Received: max_trials={max_trials}, executions_per_trial={executions_per_trial}")
    if seconds is not None and seconds < MIN_TRIAL_SECONDS * executions_per_trial:
        raise CorollaError(
            f"A time budget of {seconds:g} s cannot fit one trial: even the smallest takes about {MIN_TRIAL_SECONDS} s "
            f"(start-up, tracing, one epoch, checkpoints) × {executions_per_trial} execution(s). Give --time-budget 10m or more. Received: time_budget={time_budget!r}"
        )
    manifest = Manifest.load(data_dir)
    if "train" not in manifest.splits:
        raise CorollaError(f"{data_dir} has no train split to tune on. Received: data_dir={str(data_dir)!r}")
    raw = space if isinstance(space, dict) else read_space(space) if space else default_space(train_images=manifest.count("train"), image_size=manifest.image_size, channels=manifest.channels)
    params = parse_space(raw, where=str(space) if space and not isinstance(space, dict) else "the search space")
    base = with_data(TrainConfig(data_dir=str(data_dir)), manifest)
    check_space(params, base, hyperband=algorithm == "hyperband")

    out = pathlib.Path(out) if out else pathlib.Path("tune") / pathlib.Path(data_dir).name
    settings = {"data_dir": str(pathlib.Path(data_dir).resolve()), "space": raw, "algorithm": algorithm, "executions_per_trial": executions_per_trial, "validation_fraction": validation_fraction, "seed": seed}
    resuming = _open_out(out, settings, overwrite=overwrite)
    header = "corolla tune search space (edit it and pass it back with --space FILE).\nLists are choices; {min, max, log} are ranges; plain values are fixed."
    (out / "space.yaml").write_text(space_yaml(raw, header=header), encoding="utf-8")

    from corolla.train.features import shared_features
    from corolla.tune.holdout import validation_view
    from corolla.tune.live import LiveTrials
    from corolla.tune.tuner import Budget, CorollaTuner, make_oracle

    view = validation_view(data_dir, out=out / "validation-data", fraction=validation_fraction, seed=seed)
    budget = Budget(out, seconds)
    live = LiveTrials(params, verbose=verbose)
    tuner = CorollaTuner(
        make_oracle(algorithm, space=params, max_trials=max_trials, seed=seed), space=params, data_dir=view.resolve(), out=out,
        executions=executions_per_trial, seed=seed, budget=budget, max_trials=max_trials, on_event=live.event,
    )  # fmt: skip
    live.attach(tuner, resuming=resuming)
    with shared_features(), live:
        tuner.search()
    return _finish(tuner, out, live)


def _open_out(out: pathlib.Path, settings: dict, *, overwrite: bool) -> bool:
    """True when `out` holds this same tune to resume; a different one is refused unless `overwrite`."""
    path = out / SETTINGS
    if path.is_file() and not overwrite:
        saved = json.loads(path.read_text())
        if saved == json.loads(json.dumps(settings)):
            return True
        changed = sorted(key for key in settings if saved.get(key) != json.loads(json.dumps(settings)).get(key))
        raise CorollaError(
            f"{out} holds a tune with other settings ({', '.join(changed)} differ), which would mix trials of two searches. "
            f"Pass --overwrite to start over, or a new --out. Received: out={str(out)!r}"
        )
    if out.exists() and any(out.iterdir()) and not overwrite and not path.is_file():
        raise CorollaError(f"{out} exists and is not a tune folder. Pick an empty or new --out. Received: out={str(out)!r}")
    if overwrite and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2) + "\n")
    return False


def _finish(tuner, out: pathlib.Path, live) -> dict:
    from corolla.config import TrainConfig
    from corolla.tune.table import trial_rows
    from corolla.tune.tuner import OBJECTIVE

    rows = trial_rows(tuner, ranked=True)
    completed = [row for row in rows if row[OBJECTIVE] is not None]
    result = {"trials": rows, "seconds": round(tuner.budget.spent(), 1), "best": completed[0] if completed else None, "best_config": None}
    if completed:
        best = completed[0]
        config = TrainConfig.load(best["run_dir"])
        chosen = {"data_dir": config.data_dir, **config.training_settings()}
        header = (
            f"Best of {len(completed)} trials of `corolla tune` in {out}: trial {best['trial']}, validation accuracy {best[OBJECTIVE]:.2%}\n"
            f"(on {config.data_dir}, whose eval split is held out of the train split).\n"
            f"Reproduce: corolla train --config {out / 'best.yaml'} --out runs/best\n"
            "To train on the whole train split and test on the prepared eval split instead, change data_dir to the prepared folder."
        )
        (out / "best.yaml").write_text(space_yaml(chosen, header=header), encoding="utf-8")
        result["best_config"] = str(out / "best.yaml")
    (out / "results.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    live.summary(rows, result)
    return result
