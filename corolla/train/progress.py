"""Live training progress: RUN_DIR/progress.jsonl, one JSON event per line, while the run goes on.

Each line is written whole, in one append, and carries an increasing integer "id" (continued
after the file's last one when a run is resumed), "time" (unix seconds) and "event":

    start     a stage begins: stage, epoch (epochs already done), epochs (the run's total),
              end_epoch (the stage's last), steps (per epoch), settings (model, batch_size, image_size, …)
    features  the frozen encoder's one pass (cached features): images done of total, images_per_second, done
    batch     at most one per BATCH_INTERVAL seconds: stage, epoch (1-based, in progress), step, steps,
              images_per_second (this epoch's training so far), eta_seconds (the whole run), metrics (loss, …)
    epoch     an epoch completed: stage, epoch (1-based), epochs, metrics (history.json's values),
              images_per_second, epoch_seconds, eta_seconds (0 after the last)
    end       status finished | stopped (early stopping) | failed | interrupted (Ctrl-C, SIGTERM),
              epoch, epochs, monitor, best, best_epoch, seconds; or error and error_type

ETAs come from this stage's speed so far (its mean epoch time once an epoch is done). Non-finite
numbers (a diverged loss) are written as null, so every line is valid JSON.

Example:
    events = ProgressLog("runs/fm/progress.jsonl")
    events.write("start", stage="train", epoch=0, epochs=5)     # {"id": 1, "time": …, "event": "start", …}
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pathlib
import signal
import statistics
import threading
import time

import keras

PROGRESS_FILE = "progress.jsonl"
BATCH_INTERVAL = 0.5  # seconds between "batch" (and "features") events
_TAIL = 1 << 16  # bytes read back to find the last id


class ProgressLog:
    """Appends events to `path` (None: writes nothing, as on a worker that is not the chief)."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = pathlib.Path(path) if path is not None else None
        self.next_id = _last_id(self.path) + 1 if self.path is not None else 1
        self.stopped_early = False  # set by TrainingProgress when early stopping ended the last stage

    def write(self, event: str, **fields) -> dict:
        record = {"id": self.next_id, "time": round(time.time(), 3), "event": event, **fields}
        if self.path is not None:
            line = json.dumps(_finite(record), separators=(",", ":")) + "\n"
            with open(self.path, "ab") as file:  # one write of a whole line: a reader never sees half of one
                file.write(line.encode())
        self.next_id += 1
        return record

    def start(self, settings, *, stage: str, epoch: int, epochs: int, end_epoch: int, steps: int, global_batch: int) -> dict:
        summary = {
            "model": settings.model, "kind": settings.kind, "batch_size": settings.batch_size, "global_batch": global_batch,
            "image_size": settings.image_size, "classes": len(settings.classes), "train_images": settings.train_images,
            "eval_images": settings.eval_images, "optimizer": settings.optimizer, "learning_rate": settings.learning_rate,
        }  # fmt: skip
        return self.write("start", stage=stage, epoch=epoch, epochs=epochs, end_epoch=end_epoch, steps=steps, settings=summary)

    def end(self, progress: dict, *, epochs: int, monitor: str, seconds: float) -> dict:
        best = progress.get("best")
        return self.write(
            "end", status="stopped" if self.stopped_early else "finished", epoch=progress.get("epoch", 0), epochs=epochs,
            monitor=monitor, best=best if best is not None and math.isfinite(best) else None, best_epoch=progress.get("best_epoch", 0),
            seconds=seconds,
        )  # fmt: skip

    def failed(self, error: BaseException) -> dict:
        """The "end" line of a run that raised: status failed, or interrupted for Ctrl-C / SIGTERM."""
        if isinstance(error, Terminated):
            status, message = "interrupted", "Stopped by SIGTERM"
        elif isinstance(error, (KeyboardInterrupt, SystemExit)):
            status, message = "interrupted", str(error) or "Interrupted (Ctrl-C)"
        else:
            status, message = "failed", str(error) or type(error).__name__
        if self.path is not None:  # SIGTERM can land between a line's write and its count: the file has the last id
            self.next_id = _last_id(self.path) + 1
        return self.write("end", status=status, error=message, error_type=type(error).__name__)


class TrainingProgress(keras.callbacks.Callback):
    """"batch" (throttled) and "epoch" events for one stage.

    Goes after RunCheckpoints in the callback list: `history` is its history (updated in place),
    so an epoch event carries the very values history.json gets. Per batch it does one time check (and
    one flag check: `raise_if_terminated`).
    """

    def __init__(self, log: ProgressLog, *, stage: str, history: dict, epochs: int, steps: int, batch_size: int, images_per_epoch: int, speed_name: str):
        super().__init__()
        self.log, self.stage, self.history, self.epochs, self.steps = log, stage, history, epochs, steps
        self.batch_size, self.images_per_epoch, self.speed_name = batch_size, images_per_epoch, speed_name
        self.epoch, self.done, self.started, self.next_report, self.epoch_seconds = 0, 0, 0.0, 0.0, []

    def on_train_begin(self, logs=None):
        self.log.stopped_early = False
        self.next_report = 0.0  # the first batch is always reported: the UI sees the stage moving

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.started = epoch, time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        raise_if_terminated()
        now = time.perf_counter()
        if now < self.next_report:
            return
        self.next_report = now + BATCH_INTERVAL
        step, elapsed = batch + 1, max(now - self.started, 1e-9)
        per_step = elapsed / step
        epoch_estimate = statistics.fmean(self.epoch_seconds) if self.epoch_seconds else per_step * self.steps
        eta = max(self.steps - step, 0) * per_step + (self.epochs - self.epoch - 1) * epoch_estimate
        self.log.write(
            "batch", stage=self.stage, epoch=self.epoch + 1, epochs=self.epochs, step=step, steps=self.steps,
            images_per_second=min(step * self.batch_size, self.images_per_epoch) / elapsed, eta_seconds=max(eta, 0.0),
            metrics={name: float(value) for name, value in (logs or {}).items() if isinstance(value, (int, float))},
        )  # fmt: skip

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds.append(time.perf_counter() - self.started)  # with evaluation and checkpoint saves: what the ETA needs
        self.done = epoch + 1
        row = {name: values[-1] for name, values in self.history.items() if isinstance(values, list) and values and values[-1] is not None}
        speeds = {name: row.pop(name, None) for name in ("images_per_second", "head_images_per_second")}
        seconds = row.pop("epoch_seconds", None)
        self.log.write(
            "epoch", stage=self.stage, epoch=self.done, epochs=self.epochs, metrics=row, images_per_second=speeds[self.speed_name],
            epoch_seconds=seconds, eta_seconds=(self.epochs - self.done) * statistics.fmean(self.epoch_seconds),
        )  # fmt: skip

    def on_train_end(self, logs=None):
        if self.model.stop_training and self.done < self.params.get("epochs", self.done):
            self.log.stopped_early = True


class FeatureProgress:
    """`compute_features`' per-batch report: "features" events, the first at once, then throttled.

    Example:
        report = FeatureProgress(events, stage="train", images=3670)
        compute_features(extractor, data, on_batch=report); report.finish()
    """

    def __init__(self, log: ProgressLog, *, stage: str, images: int):
        self.log, self.stage, self.total, self.done = log, stage, images, 0
        self.started = time.perf_counter()
        self.next_report = self.started + BATCH_INTERVAL
        self._write(done=False)

    def __call__(self, images: int) -> None:
        raise_if_terminated()
        self.done += images
        now = time.perf_counter()
        if now >= self.next_report:
            self.next_report = now + BATCH_INTERVAL
            self._write(done=False)

    def finish(self) -> None:
        self._write(done=True)

    def _write(self, *, done: bool) -> None:
        seconds = time.perf_counter() - self.started
        speed = self.done / seconds if seconds > 0 else 0.0
        self.log.write("features", stage=self.stage, images=self.done, total=self.total, images_per_second=speed, done=done)


class Terminated(SystemExit):
    """SIGTERM, raised in the main thread so the run records "interrupted" before the process exits (code 143)."""


_sigterm = threading.Event()  # set by stop_on_sigterm's handler, cleared when its block ends


@contextlib.contextmanager
def stop_on_sigterm():
    """Within: SIGTERM raises Terminated, where it would have ended the process at once (main thread, default handler only).

    Python runs the handler between any two bytecodes, a weakref callback's or a `__del__`'s included, and
    there it prints the exception and drops it ("Exception ignored in …"): training went on until SIGKILL.
    So the handler also records the signal: `raise_if_terminated` raises it again per batch, and once
    more as the block ends, for a signal swallowed after the last batch check.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def terminate(signum, frame):
        _sigterm.set()
        raise Terminated(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
        raise_if_terminated()
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _sigterm.clear()


def raise_if_terminated() -> None:
    """Terminated, if SIGTERM came within `stop_on_sigterm` and its own raise was swallowed."""
    if _sigterm.is_set():
        raise Terminated(128 + signal.SIGTERM)


def _finite(value):
    """NaN and ±inf as None (JSON has no such numbers), through dicts and lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def _last_id(path: pathlib.Path) -> int:
    """The last complete line's id (0 for no file); a line cut short by a crash is removed first."""
    try:
        with open(path, "rb+") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(0, size - _TAIL))
            tail = file.read()
            if tail and not tail.endswith(b"\n"):
                kept = tail[: tail.rfind(b"\n") + 1]
                file.truncate(size - len(tail) + len(kept))
                tail = kept
    except FileNotFoundError:
        return 0
    for line in reversed(tail.splitlines()):
        try:
            return int(json.loads(line)["id"])
        except (ValueError, KeyError, TypeError):  # the window's first, partial line
            continue
    return 0
