"""Checkpoints a run can always resume from, and the history files.

`best.keras` and `last.keras` are each written to a temporary name and renamed, so a crash or
`kill -9` mid-save never leaves a damaged file under the final name (Keras' ModelCheckpoint writes
in place). `last.keras` also carries the run's progress (epoch, stage, history, best value) as an
extra `corolla_state.json` entry in the same zip: model, optimizer state (its step counter drives
the LR schedule) and progress are committed by one rename, so they can never disagree.

Example:
    state = read_state(run_dir / "checkpoints" / "last.keras")   # {"epoch": 3, "stage": "train", ...}
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import pathlib
import time
import zipfile

import keras

from corolla.data.storage import write_text
from corolla.errors import CorollaError

STATE_ENTRY = "corolla_state.json"


def save_atomically(model, path: pathlib.Path, state: dict | None = None) -> None:
    path = pathlib.Path(path)
    temporary = path.with_name(f".{path.stem}.tmp-{os.getpid()}.keras")
    model.save(temporary)
    if state is not None:
        with zipfile.ZipFile(temporary, "a") as archive:
            archive.writestr(STATE_ENTRY, json.dumps(state))
    os.replace(temporary, path)


def read_state(path: pathlib.Path) -> dict:
    """The progress saved in `last.keras`; a damaged file is refused with a clear error."""
    try:
        with zipfile.ZipFile(path) as archive:
            if archive.testzip() is not None:
                raise zipfile.BadZipFile("CRC mismatch")
            return json.loads(archive.read(STATE_ENTRY))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError) as error:
        raise CorollaError(
            f"{path} is not a complete corolla checkpoint ({error}); it will not be loaded. "
            f"Delete it to restart the run from scratch, or pass --overwrite."
        ) from None


def remove_temporaries(folder: pathlib.Path) -> None:
    """Leftovers of a save that was killed mid-write (never loaded, only cleaned up)."""
    for leftover in pathlib.Path(folder).glob(".*.tmp-*.keras"):
        leftover.unlink(missing_ok=True)


class RunCheckpoints(keras.callbacks.Callback):
    """After each evaluation: history.json/csv, `best.keras` if `monitor` improved, `last.keras`.

    `progress` is the state to continue from ({"epoch", "history", "best"}, empty for a new run);
    `save_model` is the model to write when the one being fitted is only part of it (a head
    trained on cached features).
    """

    def __init__(
        self, folder: pathlib.Path, history_dir: pathlib.Path, *, monitor: str, stage: str, progress: dict, images_per_epoch: int, end_epoch: int,
        save_model=None, feature_pass: dict | None = None,
    ):  # fmt: skip
        super().__init__()
        self.folder, self.history_dir = pathlib.Path(folder), pathlib.Path(history_dir)
        self.monitor, self.stage, self.images_per_epoch, self.save_model = monitor, stage, images_per_epoch, save_model
        self.end_epoch = end_epoch
        self.epoch = progress.get("epoch", 0)
        self.history = {name: list(values) if isinstance(values, list) else values for name, values in progress.get("history", {}).items()}
        # A head trained on cached features: its speed is not the network's, so it is named apart,
        # and the one pass of the backbone over the images is recorded beside it.
        self.speed_name = "head_images_per_second" if feature_pass else "images_per_second"
        if feature_pass:
            self.history["feature_pass"] = feature_pass
        self.best = progress.get("best", -math.inf)
        self.best_epoch = progress.get("best_epoch", 0)

    def on_epoch_begin(self, epoch, logs=None):
        self.started, self.eval_seconds = time.perf_counter(), 0.0

    def on_test_begin(self, logs=None):  # fit's evaluation pass: timed apart, so img/s is training alone
        self.eval_started = time.perf_counter()

    def on_test_end(self, logs=None):
        self.eval_seconds += time.perf_counter() - self.eval_started

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        seconds = time.perf_counter() - self.started
        self.epoch += 1
        optimizer = self.model.optimizer
        train_seconds = seconds - self.eval_seconds
        logs.update({"learning_rate": float(optimizer.learning_rate), "epoch_seconds": seconds, self.speed_name: self.images_per_epoch / train_seconds})
        _append_row(self.history, {name: float(value) for name, value in logs.items()})
        value = logs.get(self.monitor)
        if value is not None and value > self.best:
            self.best, self.best_epoch = float(value), self.epoch
            save_atomically(self.save_model or self.model, self.folder / "best.keras")
        self._save_last()
        write_history(self.history_dir, self.history)

    def on_train_end(self, logs=None):
        if self.model.stop_training and self.epoch < self.end_epoch:  # early stopping: the stage is over
            self.epoch = self.end_epoch
            self._save_last()

    def state(self) -> dict:
        return {"epoch": self.epoch, "stage": self.stage, "history": self.history, "best": self.best, "best_epoch": self.best_epoch}

    def _save_last(self) -> None:
        save_atomically(self.save_model or self.model, self.folder / "last.keras", self.state())


def _append_row(history: dict, row: dict[str, float]) -> None:
    """One evaluation's values; a metric missing from it (or new in it) is None there, so columns stay aligned."""
    columns = {name: values for name, values in history.items() if isinstance(values, list)}
    rows = max((len(values) for values in columns.values()), default=0)
    for name in row.keys() - columns.keys():
        history[name] = columns[name] = [None] * rows
    for name, values in columns.items():
        values.append(row.get(name))


def write_history(folder: pathlib.Path, history: dict) -> None:
    """history.json ({metric: [per evaluation]}, plus `feature_pass` when features were cached) and history.csv."""
    write_text(pathlib.Path(folder) / "history.json", json.dumps(history, indent=2) + "\n")
    names = [name for name, values in history.items() if isinstance(values, list)]
    rows = max((len(history[name]) for name in names), default=0)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["epoch", *names])
    for row in range(rows):
        writer.writerow([row + 1, *(f"{history[name][row]:.6g}" if row < len(history[name]) and history[name][row] is not None else "" for name in names)])
    write_text(pathlib.Path(folder) / "history.csv", buffer.getvalue())
