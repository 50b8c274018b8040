"""Training: config round-trip, recipes, optimizers and schedules, resume after kill -9, LR finder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
import yaml

from corolla.config import TrainConfig
from corolla.errors import CorollaError
from corolla.train import train
from corolla.train.callbacks import read_state
from tests.conftest import TRAINED_BATCH, TRAINED_EPOCHS


def _iterations(path) -> int:
    from corolla.models.saving import load_model_file

    return int(load_model_file(path).optimizer.iterations)


def test_config_round_trip_reproduces_the_settings(prepared, tmp_path):
    first = tmp_path / "first"
    train(prepared, out=first, epochs=1, batch_size=16, optimizer="sgd", nesterov=True, label_smoothing=0.1,
          weight_decay=1e-4, clipnorm=1.0, schedule="step", verbose=False)  # fmt: skip
    saved = TrainConfig.load(first)
    assert (saved.optimizer, saved.nesterov, saved.label_smoothing, saved.schedule) == ("sgd", True, 0.1, "step")
    again = tmp_path / "again"
    train(config=first / "config.yaml", out=again, verbose=False)
    assert TrainConfig.load(again) == saved
    assert TrainConfig.from_file(first / "config.yaml") == saved


def test_flags_override_config_which_overrides_recipe(prepared, tmp_path):
    config_file = tmp_path / "mine.yaml"
    config_file.write_text(yaml.safe_dump({"epochs": 2, "learning_rate": 0.01}))
    out = tmp_path / "run"
    train(prepared, out=out, recipe="fashion-mnist", config=config_file, epochs=1, batch_size=16, verbose=False)
    saved = TrainConfig.load(out)
    assert (saved.model, saved.augment, saved.recipe) == ("fastnet", "light", "fashion-mnist")  # from the recipe
    assert saved.learning_rate == 0.01  # from the config file
    assert saved.epochs == 1  # from the flag
    assert len(json.loads((out / "history.json").read_text())["loss"]) == 1


@pytest.mark.parametrize(
    "options, message",
    [
        ({"optimizer": "adamax"}, "Unknown optimizer 'adamax'"),
        ({"schedule": "cyclic"}, "Unknown schedule"),
        ({"label_smoothing": 1.5}, "label_smoothing"),
        ({"fine_tune": True}, "pretrained backbone"),
        ({"cache_features": "on"}, "frozen backbone"),
        ({"recipe": "imagenet-in-1-hour"}, "Unknown recipe"),
        ({"learning_rte": 0.1}, "Unknown training option"),
    ],
)
def test_bad_settings_fail_with_a_clear_message(prepared, tmp_path, options, message):
    with pytest.raises(CorollaError, match=message):
        train(prepared, out=tmp_path / "run", epochs=1, verbose=False, **options)
    assert not (tmp_path / "run").exists(), "nothing is written before the settings are checked"


def test_warmup_cosine_schedule_shape():
    from corolla.train.optim import make_schedule

    schedule = make_schedule("warmup_cosine", 0.1, total_steps=100, warmup_steps=10)
    values = [float(schedule(step)) for step in (0, 5, 10, 55, 100)]
    assert values[0] == 0 and values[1] == pytest.approx(0.05) and values[2] == pytest.approx(0.1)
    assert values[2] > values[3] > values[4] == pytest.approx(0.001)
    step = make_schedule("step", 0.1, total_steps=90)
    assert [round(float(step(s)), 6) for s in (0, 29, 30, 60)] == [0.1, 0.1, 0.01, 0.001]


def test_train_steps_with_steps_per_eval(prepared, tmp_path):
    out = tmp_path / "steps"
    summary = train(prepared, out=out, train_steps=10, steps_per_eval=5, batch_size=8, verbose=False)
    assert summary["epochs"] == 2
    assert _iterations(out / "checkpoints" / "last.keras") == 10
    assert (out / "history.csv").read_text().count("\n") == 3  # header + one row per evaluation
    assert list((out / "logs").rglob("events.out.tfevents.*")), "TensorBoard logs"


@pytest.mark.slow
def test_resume_after_kill_continues_at_the_right_epoch_with_optimizer_state(prepared, tmp_path):
    out = tmp_path / "killed"
    args = ["--out", str(out), "--train-steps", "60", "--steps-per-eval", "3", "--batch-size", "4", "--seed", "7"]
    process = subprocess.Popen([sys.executable, "-m", "corolla.cli", "train", str(prepared), *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = out / "checkpoints" / "last.keras"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if last.exists() and read_state(last)["epoch"] >= 2:
                break
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    killed_at = read_state(last)["epoch"]
    assert 2 <= killed_at < 20, "the kill must land mid-run"
    history_before = read_state(last)["history"]["loss"]
    # A save that was killed half-way leaves only a temporary file: never loaded, cleaned up.
    (out / "checkpoints" / ".last.tmp-999.keras").write_bytes(b"PK\x03\x04 half a zip")

    summary = train(prepared, out=out, train_steps=60, steps_per_eval=3, batch_size=4, seed=7, verbose=False)
    state = read_state(last)
    assert summary["epochs"] == state["epoch"] == 20
    assert state["history"]["loss"][:killed_at] == history_before[:killed_at]
    assert len(state["history"]["loss"]) == 20
    assert _iterations(last) == 60, "the optimizer's step counter (and so the LR schedule) continued"
    assert not list((out / "checkpoints").glob(".*tmp*"))


def test_a_damaged_checkpoint_is_refused(trained_run, tmp_path):
    damaged = tmp_path / "last.keras"
    data = (trained_run / "checkpoints" / "last.keras").read_bytes()
    damaged.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorollaError, match="not a complete corolla checkpoint"):
        read_state(damaged)
    with zipfile.ZipFile(trained_run / "checkpoints" / "last.keras") as archive:
        assert "corolla_state.json" in archive.namelist()


def test_resume_needs_a_run_and_refuses_changed_settings(trained_run, prepared, tmp_path):
    with pytest.raises(CorollaError, match="--resume continues a run folder"):
        train(out=tmp_path / "nothing", resume=True, verbose=False)
    with pytest.raises(CorollaError, match="other settings"):
        train(prepared, out=trained_run, epochs=TRAINED_EPOCHS, batch_size=TRAINED_BATCH, optimizer="sgd", verbose=False)
    summary = train(out=trained_run, resume=True, verbose=False)
    assert summary["seconds"] == 0.0 and summary["epochs"] == TRAINED_EPOCHS


def test_lr_finder_suggests_a_rate_inside_its_sweep(prepared, tmp_path):
    result = train(prepared, out=tmp_path / "lr", find_lr=40, batch_size=8, verbose=False)
    sweep = json.loads((tmp_path / "lr" / "lr_finder" / "lr_finder.json").read_text())
    assert min(sweep["rates"]) <= result["suggestion"] <= max(sweep["rates"])
    assert sweep["rates"] == sorted(sweep["rates"]) and len(sweep["rates"]) == result["steps"] <= 40
    assert (tmp_path / "lr" / "lr_finder" / "lr_finder.png").stat().st_size > 10_000
    assert not (tmp_path / "lr" / "config.yaml").exists(), "a sweep is not a run"


def test_lr_suggestion_is_the_steepest_fall_before_the_minimum():
    """A loss curve whose fastest fall (per log-LR) is at 1e-3 and whose minimum is at 1e-1, then diverges."""
    from corolla.train.lr_finder import suggest

    rates = list(np.logspace(-6, 0, 61))
    logs = np.log10(rates)
    smoothed = 2.0 - 1.5 / (1 + np.exp(-3 * (logs + 3))) + np.where(logs > -1, 40 * (logs + 1) ** 2, 0.0)
    suggestion, lowest = suggest(rates, list(smoothed))
    assert suggestion == pytest.approx(1e-3, rel=0.15)
    assert lowest == pytest.approx(1e-1, rel=0.3)
    diverged = list(smoothed[:-5]) + [float("nan")] * 5  # the loss blew up at the end of the sweep
    assert suggest(rates, diverged) == (suggestion, lowest)


@pytest.fixture(scope="module")
def fine_tuned(prepared, tmp_path_factory):
    """Two epochs of a head on cached efficientnet_lite0 features, then one of its top 12 layers: (run folder, summary)."""
    out = tmp_path_factory.mktemp("runs") / "ft"
    summary = train(prepared, out=out, model="efficientnet_lite0", epochs=2, batch_size=16, fine_tune=True,
                    fine_tune_epochs=1, fine_tune_layers=12, verbose=False)  # fmt: skip
    return out, summary


@pytest.mark.slow
def test_fine_tune_unfreezes_the_top_of_the_backbone_after_a_cached_feature_head(prepared, fine_tuned):
    from corolla.models import build_model
    from corolla.models.saving import load_model_file
    from corolla.models.transfer import backbone_of

    out, summary = fine_tuned
    assert summary["epochs"] == 3
    tuned = load_model_file(out / "checkpoints" / "last.keras")
    fresh = build_model("efficientnet_lite0", input_shape=(32, 32, 3), num_classes=3)
    tuned_backbone, fresh_backbone = backbone_of(tuned), backbone_of(fresh)
    trainable = [layer.name for layer in tuned_backbone.layers if layer.trainable and layer.weights]
    assert trainable and len(trainable) <= 12
    assert not any("bn" in name.lower() or "batch" in name.lower() for name in trainable)
    for layer in tuned_backbone.layers:
        changed = any(not np.array_equal(a, b) for a, b in zip(layer.get_weights(), fresh_backbone.get_layer(layer.name).get_weights()))
        assert changed == (layer.name in trainable), layer.name
    history = json.loads((out / "history.json").read_text())
    assert history["learning_rate"][2] < history["learning_rate"][0], "the fine-tune stage runs at a lower LR"
    # Epochs 1–2 trained the head on cached features, epoch 3 the whole network: each speed is named for what it timed.
    from corolla.data.manifest import Manifest

    manifest = Manifest.load(prepared)
    assert history["feature_pass"]["images"] == summary["feature_pass"]["images"] == manifest.count("train") + manifest.count("eval")
    assert history["feature_pass"]["seconds"] > 0
    assert [value is None for value in history["head_images_per_second"]] == [False, False, True]
    assert [value is None for value in history["images_per_second"]] == [True, True, False]
    assert summary["head_images_per_second"] > 0 and summary["images_per_second"] > 0
    rows = (out / "history.csv").read_text().splitlines()
    assert len(rows) == 4 and "feature_pass" not in rows[0]
    from corolla.evaluate import evaluate

    evaluate(out, verbose=False)  # its report plots the per-epoch lists only, not feature_pass (a dict)
    assert (out / "report" / "training_curves.png").stat().st_size > 1000


@pytest.mark.slow
def test_a_cached_feature_head_reports_the_feature_pass_then_each_stage(fine_tuned):
    out, _ = fine_tuned
    events = [json.loads(line) for line in (out / "progress.jsonl").read_text(encoding="utf-8").splitlines()]
    kinds = [event["event"] for event in events]
    assert kinds[:2] == ["start", "features"] and kinds[-1] == "end"
    features = [event for event in events if event["event"] == "features"]
    history = json.loads((out / "history.json").read_text())
    assert features[-1]["done"] and features[-1]["images"] == features[-1]["total"] == history["feature_pass"]["images"]
    assert max(event["id"] for event in features) < kinds.index("batch") + 1, "the pass comes before the head trains"
    starts = [event for event in events if event["event"] == "start"]
    assert [(event["stage"], event["epoch"], event["end_epoch"]) for event in starts] == [("train", 0, 2), ("fine_tune", 2, 3)]
    epochs = [event for event in events if event["event"] == "epoch"]
    assert [event["stage"] for event in epochs] == ["train", "train", "fine_tune"]
    assert [event["images_per_second"] for event in epochs] == [*history["head_images_per_second"][:2], history["images_per_second"][2]]
    assert epochs[-1]["eta_seconds"] == 0 and events[-1]["status"] == "finished"


def test_the_summary_line_names_what_each_speed_measured():
    from corolla.train.cli import speed

    assert speed({"images_per_second": 5400.0}) == "training: 5,400 img/s"
    cached = {"images_per_second": 0.0, "head_images_per_second": 14029.0, "feature_pass": {"images": 3670, "seconds": 61.24}}
    assert speed(cached) == "features: 3,670 images in 61.2 s; head: 14,029 img/s"
    assert speed({**cached, "images_per_second": 80.0}).endswith("; fine-tune: 80 img/s")
