"""RUN_DIR/progress.jsonl: live events in order, the same numbers as history.json, ids continued on resume, failures recorded."""

from __future__ import annotations

import json
import os
import signal
import weakref

import keras
import pytest

from corolla.train import train
from corolla.train import progress as progress_module
from corolla.train.progress import ProgressLog


def _events(run_dir) -> list[dict]:
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    text = (run_dir / "progress.jsonl").read_text(encoding="utf-8")
    assert text.endswith("\n"), "only whole lines"
    return [json.loads(line, parse_constant=refuse) for line in text.splitlines()]


def _fail_at_epoch(monkeypatch, epoch: int, error):
    """TensorBoard (after the checkpointer and the progress callback) raises `error` at the end of 0-based `epoch`."""
    original = keras.callbacks.TensorBoard.on_epoch_end

    def on_epoch_end(self, index, logs=None):
        original(self, index, logs)
        if index == epoch:
            raise error() if callable(error) else error

    monkeypatch.setattr(keras.callbacks.TensorBoard, "on_epoch_end", on_epoch_end)


def test_a_run_streams_start_batches_epochs_and_end_matching_its_history(prepared, tmp_path, monkeypatch):
    monkeypatch.setattr(progress_module, "BATCH_INTERVAL", 0.0)  # every batch, so the order can be checked
    out = tmp_path / "run"
    summary = train(prepared, out=out, epochs=3, batch_size=8, verbose=False)
    events = _events(out)
    assert [event["id"] for event in events] == list(range(1, len(events) + 1))
    assert [event["event"] for event in events[:2]] == ["start", "batch"] and events[-1]["event"] == "end"
    start = events[0]
    assert (start["stage"], start["epoch"], start["epochs"], start["end_epoch"]) == ("train", 0, 3, 3)
    assert start["settings"]["model"] == "convnet" and start["settings"]["batch_size"] == 8 and start["settings"]["image_size"] == 32
    steps = start["steps"]
    assert steps == -(-start["settings"]["train_images"] // 8)
    assert all(event["time"] >= start["time"] for event in events)

    batches = [event for event in events if event["event"] == "batch"]
    epochs = [event for event in events if event["event"] == "epoch"]
    assert [event["epoch"] for event in epochs] == [1, 2, 3]
    for number, epoch in enumerate(epochs, 1):
        own = [event for event in batches if event["epoch"] == number]
        assert [event["step"] for event in own] == list(range(1, steps + 1))
        assert max(event["id"] for event in own) < epoch["id"] < min((event["id"] for event in batches if event["epoch"] > number), default=10**9)
    for event in batches:
        assert event["steps"] == steps and event["images_per_second"] > 0 and event["eta_seconds"] >= 0
        assert {"loss", "accuracy"} <= event["metrics"].keys()

    history = json.loads((out / "history.json").read_text())
    for row, epoch in enumerate(epochs):
        for name in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"):
            assert epoch["metrics"][name] == history[name][row], name
        assert epoch["images_per_second"] == history["images_per_second"][row]
        assert epoch["epoch_seconds"] == history["epoch_seconds"][row]
    etas = [event["eta_seconds"] for event in epochs]
    assert all(eta >= 0 for eta in etas) and etas[-1] == 0 and etas[0] > etas[-1]
    last_epoch = [event["eta_seconds"] for event in batches if event["epoch"] == 3]
    assert last_epoch[-1] <= last_epoch[0] < batches[0]["eta_seconds"], "the estimate falls as the run goes on"

    end = events[-1]
    assert (end["status"], end["epoch"], end["epochs"], end["monitor"]) == ("finished", 3, 3, "val_accuracy")
    assert (end["best"], end["best_epoch"]) == (summary["best_accuracy"], summary["best_epoch"])


def test_a_failing_run_records_its_error_and_a_resume_continues_the_ids(prepared, tmp_path, monkeypatch):
    out = tmp_path / "run"
    _fail_at_epoch(monkeypatch, 1, RuntimeError("the disk caught fire"))
    with pytest.raises(RuntimeError, match="caught fire"):
        train(prepared, out=out, epochs=3, batch_size=8, verbose=False)
    failed = _events(out)
    assert [event["epoch"] for event in failed if event["event"] == "epoch"] == [1, 2]
    assert failed[-1]["event"] == "end"
    assert (failed[-1]["status"], failed[-1]["error"], failed[-1]["error_type"]) == ("failed", "the disk caught fire", "RuntimeError")
    batch_times = [event["time"] for event in failed if event["event"] == "batch"]
    assert all(later - earlier >= 0.49 for earlier, later in zip(batch_times, batch_times[1:])), "throttled"

    monkeypatch.undo()
    train(out=out, resume=True, verbose=False)
    events = _events(out)
    assert events[: len(failed)] == failed, "appended to, never rewritten"
    resumed = events[len(failed) :]
    assert [event["id"] for event in events] == list(range(1, len(events) + 1))
    assert resumed[0]["event"] == "start" and (resumed[0]["epoch"], resumed[0]["epochs"]) == (2, 3)
    assert [event["epoch"] for event in resumed if event["event"] == "epoch"] == [3]
    history = json.loads((out / "history.json").read_text())
    assert [event["metrics"]["loss"] for event in events if event["event"] == "epoch"] == history["loss"]
    assert resumed[-1]["event"] == "end" and resumed[-1]["status"] == "finished" and resumed[-1]["epoch"] == 3


def test_ctrl_c_and_sigterm_are_recorded_as_interrupted(prepared, tmp_path, monkeypatch):
    _fail_at_epoch(monkeypatch, 0, KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        train(prepared, out=tmp_path / "ctrl-c", epochs=2, batch_size=8, verbose=False)
    end = _events(tmp_path / "ctrl-c")[-1]
    assert (end["event"], end["status"], end["error"]) == ("end", "interrupted", "Interrupted (Ctrl-C)")
    monkeypatch.undo()

    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        pytest.skip("something else handles SIGTERM in this process")

    def terminate():
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL, "training turns SIGTERM into an exception"
        os.kill(os.getpid(), signal.SIGTERM)
        return RuntimeError("SIGTERM did not stop the run")

    _fail_at_epoch(monkeypatch, 0, terminate)
    with pytest.raises(SystemExit) as stopped:
        train(prepared, out=tmp_path / "sigterm", epochs=2, batch_size=8, verbose=False)
    assert stopped.value.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, "the default handler is back"
    end = _events(tmp_path / "sigterm")[-1]
    assert (end["status"], end["error"], end["error_type"]) == ("interrupted", "Stopped by SIGTERM", "Terminated")


def _sigterm_in_a_weakref_callback():
    """SIGTERM to this process, handled inside a weakref callback, where Python drops what the handler raises."""

    def callback(_):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # bytecodes to run the handler on, inside the callback
            pass

    target = keras.callbacks.Callback()
    reference = weakref.ref(target, callback)  # noqa: F841 (kept alive: its callback runs when `target` goes)
    del target


@pytest.mark.parametrize("hook, epochs", [("on_epoch_end", 3), ("on_train_end", 1)], ids=["mid-training", "after-the-last-batch"])
def test_sigterm_that_lands_in_a_weakref_callback_still_stops_the_run(prepared, tmp_path, monkeypatch, hook, epochs):
    """Python drops an exception raised in a weakref callback ("Exception ignored in …"): a studio's stop once
    landed there, and the training ran on until SIGKILL. The next batch raises it again, or after the last
    batch the end of `stop_on_sigterm`'s block does."""
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        pytest.skip("something else handles SIGTERM in this process")
    original = getattr(keras.callbacks.TensorBoard, hook)

    def hook_then_sigterm(self, *args, **kwargs):
        original(self, *args, **kwargs)
        _sigterm_in_a_weakref_callback()

    monkeypatch.setattr(keras.callbacks.TensorBoard, hook, hook_then_sigterm)
    with pytest.raises(SystemExit) as stopped:
        train(prepared, out=tmp_path / "run", epochs=epochs, batch_size=8, verbose=False)
    assert stopped.value.code == 128 + signal.SIGTERM
    events = _events(tmp_path / "run")
    assert [event["epoch"] for event in events if event["event"] == "epoch"] == [1], "stopped within the next epoch"
    assert (events[-1]["status"], events[-1]["error_type"]) == ("interrupted", "Terminated")


def test_the_log_continues_after_a_cut_line_and_writes_no_nan(tmp_path):
    path = tmp_path / "progress.jsonl"
    first = ProgressLog(path)
    first.write("start", epoch=0)
    first.write("batch", metrics={"loss": float("nan"), "accuracy": 0.5}, eta_seconds=float("inf"))
    with open(path, "ab") as file:
        file.write(b'{"id": 3, "time": 1, "ev')  # killed mid-write
    again = ProgressLog(path)
    assert again.write("start", epoch=1)["id"] == 3
    events = _events(tmp_path)
    assert [event["id"] for event in events] == [1, 2, 3]
    assert events[1]["metrics"] == {"loss": None, "accuracy": 0.5} and events[1]["eta_seconds"] is None
    silent = ProgressLog(None)
    assert silent.write("batch")["id"] == 1 and silent.path is None


def test_the_end_line_follows_a_line_written_as_sigterm_landed(tmp_path):
    log = ProgressLog(tmp_path / "progress.jsonl")
    log.write("start", epoch=0)
    log.write("batch", step=1)
    log.next_id -= 1  # what SIGTERM raised between the batch line's write and its count leaves
    assert log.failed(progress_module.Terminated(143))["id"] == 3
    assert [event["id"] for event in _events(tmp_path)] == [1, 2, 3]
