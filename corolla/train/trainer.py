"""`corolla train`: fit a registered model on prepared shards, writing a self-describing run folder.

    RUN_DIR/config.yaml               the resolved config (`--config` it to reproduce the run)
    RUN_DIR/checkpoints/best.keras    best evaluation so far
    RUN_DIR/checkpoints/last.keras    last evaluation, with optimizer state and progress (resume)
    RUN_DIR/history.json, .csv        per-evaluation metrics, LR, seconds, img/s (head_images_per_second and
                                      feature_pass when a frozen backbone's features were cached)
    RUN_DIR/logs/                     TensorBoard
    RUN_DIR/progress.jsonl            live events, one JSON line each: start, features, batch, epoch, end
                                      (corolla/train/progress.py); appended to, ids continuing, on resume

Reusing a RUN_DIR with the same settings continues it from `last.keras` (as the seeds do), after
Ctrl-C, `kill -9` or a crash; different settings are refused unless `overwrite=True`.

Example:
    summary = train("data/fm", recipe="fashion-mnist", out="runs/fm")
    summary = train(out="runs/fm", resume=True)      # after an interruption
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
import shutil
import statistics
import sys
import time

from corolla.config import AUTO_MODELS, CONFIG, TrainConfig, read_yaml
from corolla.data.manifest import describe
from corolla.data.storage import is_remote
from corolla.errors import CorollaError
from corolla.train import session


def train(
    data_dir: str | os.PathLike | None = None,
    *,
    out: str | os.PathLike | None = None,
    config: str | os.PathLike | None = None,
    recipe: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    find_lr: bool | int = False,
    verbose: bool = True,
    **options,
) -> dict:
    """Train into the run folder `out` (default runs/<data name>); returns a summary dict.

    `options` are TrainConfig fields (model, epochs, optimizer, learning_rate, augment, …) and
    override `config` (a YAML file) which overrides `recipe` (a built-in one, see
    `corolla train --help`). With `resume=True` everything comes from `out/config.yaml`.
    `find_lr=True` (or a number of steps, default 200) runs the learning-rate range test instead
    of training and returns its suggestion.
    """
    settings = _resolve(data_dir, out=out, config=config, recipe=recipe, resume=resume, options=options)
    manifest = describe(settings.data_dir)  # prepared data or a raw folder/CSV; bad input fails here, before TensorFlow loads
    settings = with_data(settings, manifest)
    session.check(settings)
    run_dir = pathlib.Path(out) if out is not None else pathlib.Path("runs") / pathlib.PurePosixPath(settings.data_dir).name
    if find_lr:
        steps = 200 if find_lr is True else int(find_lr)
        return session.find_learning_rate(settings, manifest, out_dir=run_dir / "lr_finder", steps=steps, verbose=verbose)
    progress = _open_run_dir(run_dir, settings, overwrite=overwrite)
    total_epochs = session.total_epochs(settings)
    if progress.get("epoch", 0) >= total_epochs:
        if verbose:
            print(f"{run_dir} is already complete ({total_epochs} epochs); nothing to do.", file=sys.stderr)
        return _summary(run_dir, settings, progress, seconds=0.0)
    from corolla.train.distribute import task_info  # Keras and TensorFlow: not before the settings are checked
    from corolla.train.progress import PROGRESS_FILE, ProgressLog, stop_on_sigterm

    events = ProgressLog(run_dir / PROGRESS_FILE if task_info()[2] else None)  # the chief's alone
    started = time.perf_counter()
    try:
        with stop_on_sigterm():
            progress = session.fit(settings, manifest, run_dir, progress, verbose=(1 if sys.stderr.isatty() else 2) if verbose else 0, events=events)
    except BaseException as error:  # Ctrl-C and SIGTERM too: the progress file says how the run ended
        events.failed(error)
        raise
    summary = _summary(run_dir, settings, progress, seconds=time.perf_counter() - started)
    events.end(progress, epochs=total_epochs, monitor=summary["monitor"], seconds=summary["seconds"])
    return summary


def _resolve(data_dir, *, out, config, recipe, resume, options) -> TrainConfig:
    from corolla.train.recipes import recipe_path

    if resume:
        if out is None or not (pathlib.Path(out) / CONFIG).is_file():
            raise CorollaError(f"--resume continues a run folder, and {out} holds no {CONFIG}. Pass the run's --out. Received: out={out!r}")
        base = TrainConfig.load(out)
        if data_dir is not None and _absolute(data_dir) != base.data_dir:
            raise CorollaError(f"--resume continues {out} on its own data ({base.data_dir}). Received: data_dir={str(data_dir)!r}")
        return base.updated(**options)
    settings = TrainConfig()
    if recipe:
        settings = TrainConfig.from_file(recipe_path(recipe), recipe=recipe)
    if config:
        settings = settings.updated(**read_yaml(config))  # only the keys the file sets
    settings = settings.updated(**options)
    if data_dir is not None:
        settings = settings.updated(data_dir=_absolute(data_dir))
    if not settings.data_dir:
        raise CorollaError("No data to train on. Pass DATA_DIR (prepared data or a folder of class sub-folders), or --config a file with data_dir.")
    return settings


def _absolute(data_dir) -> str:
    """A local path made absolute (the run folder may be read from elsewhere); gs:// and co. as given."""
    return str(data_dir) if is_remote(data_dir) else str(pathlib.Path(data_dir).resolve())


def with_data(settings: TrainConfig, manifest) -> TrainConfig:
    """The config completed from the data; a config that named other classes is refused."""
    if settings.classes and list(settings.classes) != list(manifest.classes):
        raise CorollaError(
            f"The config was written for classes {settings.classes}, but {settings.data_dir} has {list(manifest.classes)}. "
            f"Train on the same data, or drop `classes` from the config."
        )
    has_eval = "eval" in manifest.splits
    return dataclasses.replace(
        settings,
        model=AUTO_MODELS[manifest.kind, manifest.task] if settings.model == "auto" else settings.model,
        classes=list(manifest.classes),
        image_size=manifest.image_size,
        channels=manifest.channels,
        train_images=manifest.count("train"),
        eval_images=manifest.count("eval") if has_eval else 0,
        kind=manifest.kind,
        frames=manifest.frames,
        task=manifest.task,
        question_length=manifest.question_length,
        vocabulary=manifest.vocabulary,
    )


def _open_run_dir(run_dir: pathlib.Path, settings: TrainConfig, *, overwrite: bool) -> dict:
    """The progress to continue from ({} for a new run), after checking the folder may be used.

    Only the chief creates, replaces or configures RUN_DIR; other workers (several hosts sharing
    it) keep to RUN_DIR/workers/<task>/ and continue from their own last.keras, else the chief's.
    """
    from corolla.train.callbacks import read_state, remove_temporaries  # Keras: not at `corolla --help`
    from corolla.train.distribute import last_checkpoint, task_info

    if not task_info()[2]:
        checkpoint = last_checkpoint(run_dir)
        return read_state(checkpoint) if checkpoint.exists() and not overwrite else {}
    if (run_dir / CONFIG).exists():
        if overwrite:
            shutil.rmtree(run_dir)
        else:
            saved = TrainConfig.load(run_dir)
            changed = {k: (v, getattr(settings, k)) for k, v in saved.training_settings().items() if getattr(settings, k) != v}
            if changed:
                listed = ", ".join(f"{k}: {old!r} → {new!r}" for k, (old, new) in list(changed.items())[:4])
                raise CorollaError(
                    f"{run_dir} holds a run with other settings ({listed}). Pass --overwrite to replace it, "
                    f"--resume to continue it as it was, or choose another --out."
                )
            checkpoints = run_dir / "checkpoints"
            remove_temporaries(checkpoints)
            return read_state(checkpoints / "last.keras") if (checkpoints / "last.keras").exists() else {}
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    settings.save(run_dir)
    return {}


def _summary(run_dir, settings: TrainConfig, progress: dict, *, seconds: float) -> dict:
    history = progress.get("history", {})
    monitor = "val_accuracy" if settings.eval_images else "accuracy"
    return {
        "run_dir": str(run_dir),
        "best_epoch": progress.get("best_epoch", 0),
        "monitor": monitor,
        "best_accuracy": progress.get("best", math.nan),
        "epochs": progress.get("epoch", 0),
        "seconds": seconds,
        # The network's training speed; with cached features it is the head's alone, named apart, and
        # the backbone's one pass over the images is `feature_pass` ({"images", "seconds", "images_per_second"}).
        "images_per_second": _median(history.get("images_per_second")),
        "head_images_per_second": _median(history.get("head_images_per_second")),
        "feature_pass": history.get("feature_pass"),
        "kind": settings.kind,
    }


def _median(values) -> float:
    """Median of the evaluations that measured it (None where an epoch did not), 0.0 if none did."""
    measured = [value for value in values or [] if value is not None]
    return float(statistics.median(measured)) if measured else 0.0
