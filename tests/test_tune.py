"""`corolla tune`: a tiny space end to end, resume after kill -9, best.yaml reproduces, bad spaces refused up front."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

from corolla.errors import CorollaError

TINY_SPACE = {"model": ["convnet", "fastnet"], "learning_rate": {"min": 0.003, "max": 0.03, "log": True}, "batch_size": 8, "epochs": 3}


@pytest.fixture(scope="module")
def tuned(prepared, tmp_path_factory):
    from corolla.tune import tune

    out = tmp_path_factory.mktemp("tune") / "shapes"
    result = tune(prepared, out=out, space=TINY_SPACE, algorithm="random", max_trials=3, verbose=False)
    return out, result


def records(data_dir, split):
    from corolla.data.manifest import Manifest
    from corolla.data.records import KEY, parse_example
    import tensorflow as tf

    manifest = Manifest.load(data_dir)
    dataset = tf.data.TFRecordDataset(manifest.shard_paths(split)).map(lambda record: parse_example(record, keys=(KEY,))[KEY])
    return [key.decode() for key in dataset.as_numpy_iterator()]


def test_trials_are_ordinary_runs_ranked_best_first(tuned):
    from corolla.config import TrainConfig

    out, result = tuned
    assert [row["trial"] for row in sorted(result["trials"], key=lambda row: row["trial"])] == ["001", "002", "003"]
    for row in result["trials"]:
        run = out / "trials" / row["trial"]
        assert (run / "checkpoints" / "best.keras").is_file() and (run / "history.json").is_file()
        config = TrainConfig.load(run)
        assert config.model == row["values"]["model"] and config.learning_rate == pytest.approx(row["values"]["learning_rate"])
        assert 0.003 <= config.learning_rate <= 0.03 and config.epochs == 3 and config.batch_size == 8
        assert row["val_accuracy"] == pytest.approx(max(json.loads((run / "history.json").read_text())["val_accuracy"]))
    scores = [row["val_accuracy"] for row in result["trials"]]
    assert scores == sorted(scores, reverse=True)
    assert result["best"]["trial"] == result["trials"][0]["trial"]
    saved = json.loads((out / "results.json").read_text())
    assert [row["trial"] for row in saved["trials"]] == [row["trial"] for row in result["trials"]]
    assert yaml.safe_load((out / "space.yaml").read_text()) == TINY_SPACE


def test_trials_never_see_the_eval_split(tuned, prepared):
    out, _ = tuned
    view = out / "validation-data"
    train, validation, test = records(view, "train"), records(view, "eval"), set(records(prepared, "eval"))
    assert sorted(train + validation) == sorted(records(prepared, "train")), "the view is the train split, cut in two"
    assert validation and not set(validation) & set(train)
    assert not (set(train) | set(validation)) & test, "no record of the prepared eval split is tuned on"
    for row in tuned[1]["trials"]:
        assert yaml.safe_load((out / "trials" / row["trial"] / "config.yaml").read_text())["data_dir"] == str(view.resolve())


def test_best_config_reproduces_the_best_trial(tuned, tmp_path):
    out, result = tuned
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert best["model"] == result["best"]["values"]["model"]
    completed = subprocess.run([sys.executable, "-m", "corolla.cli", "train", "--config", str(out / "best.yaml"), "--out", str(tmp_path / "again")], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    again = max(json.loads((tmp_path / "again" / "history.json").read_text())["val_accuracy"])
    assert again == pytest.approx(result["best"]["val_accuracy"], abs=0.15)  # same data, seed and settings; CPU kernels may differ slightly


def test_a_finished_tune_resumes_as_a_no_op_and_another_space_is_refused(tuned, prepared):
    from corolla.tune import tune

    out, result = tuned
    mtimes = {path: path.stat().st_mtime for path in (out / "trials").rglob("history.json")}
    again = tune(prepared, out=out, space=TINY_SPACE, algorithm="random", max_trials=3, verbose=False)
    assert [row["trial"] for row in again["trials"]] == [row["trial"] for row in result["trials"]]
    assert {path: path.stat().st_mtime for path in mtimes} == mtimes
    with pytest.raises(CorollaError, match=r"other settings \(space differ\).*--overwrite"):
        tune(prepared, out=out, space={**TINY_SPACE, "epochs": 4}, algorithm="random", max_trials=3, verbose=False)


def test_a_trial_that_would_overrun_the_time_budget_is_deferred_to_a_resume(tuned, prepared, tmp_path, capsys):
    """--time-budget ends the tune in time: the next trial does not start when finished trials alike say it cannot fit."""
    from corolla.tune import tune

    out, result = tuned
    copy = tmp_path / "tune"
    shutil.copytree(out, copy)
    state = json.loads((copy / "tune.json").read_text())
    spent = state["spent_seconds"] = state["spent_seconds"] + 60  # as if it had spent a minute more: the budget below stays ≥ the 30 s minimum
    (copy / "tune.json").write_text(json.dumps(state))
    shortest = min(row["seconds"] for row in result["trials"])  # every 4th trial is estimated at ≥ this (same epochs)
    short = tune(prepared, out=copy, space=TINY_SPACE, algorithm="random", max_trials=4, time_budget=spent + 0.9 * shortest, verbose=True)
    expected, left = map(float, re.search(r"Trial 004 would take about (\d+) s .*more than the (\d+) s", " ".join(capsys.readouterr().err.split())).groups())
    assert expected >= left >= 0, "the message gives the estimate that stopped the tune"  # both rounded to whole seconds
    statuses = {row["trial"]: row["status"] for row in short["trials"]}
    assert statuses == {"001": "completed", "002": "completed", "003": "completed", "004": "deferred"}
    assert not (copy / "trials" / "004").exists(), "the deferred trial did not start"
    longer = tune(prepared, out=copy, space=TINY_SPACE, algorithm="random", max_trials=4, verbose=False)
    assert sorted((row["trial"], row["status"]) for row in longer["trials"]) == [(f"00{n}", "completed") for n in range(1, 5)]
    deferred = next(row for row in short["trials"] if row["trial"] == "004")
    assert next(row for row in longer["trials"] if row["trial"] == "004")["values"] == deferred["values"], "the resume ran the deferred trial"


@pytest.mark.slow
def test_kill_9_mid_trial_then_resume(prepared, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({**TINY_SPACE, "epochs": 8}))
    out = tmp_path / "tune"
    command = [sys.executable, "-m", "corolla.cli", "tune", str(prepared), "--out", str(out), "--space", str(space), "--algorithm", "random", "--max-trials", "3"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    deadline = time.monotonic() + 240
    while not (out / "trials" / "002" / "checkpoints" / "last.keras").exists():
        assert process.poll() is None and time.monotonic() < deadline, "the tune ended or stalled before its second trial checkpointed"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    first = (out / "trials" / "001" / "history.json").stat().st_mtime
    before = json.loads((out / "trials" / "002" / "history.json").read_text())
    assert 1 <= len(before["val_accuracy"]) < 8, "killed in the middle of trial 002"
    completed = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert completed.returncode == 0, completed.stderr
    assert "Resuming the tune" in completed.stderr
    result = json.loads((out / "results.json").read_text())
    assert sorted(row["trial"] for row in result["trials"]) == ["001", "002", "003"]
    assert all(row["status"] == "completed" for row in result["trials"])
    assert (out / "trials" / "001" / "history.json").stat().st_mtime == first, "the finished trial was not run again"
    history = json.loads((out / "trials" / "002" / "history.json").read_text())
    assert len(history["val_accuracy"]) == 8, "the killed trial continued from its checkpoint to its 8 epochs, not past them"
    done = len(before["epoch_seconds"])
    assert history["epoch_seconds"][:done] == before["epoch_seconds"], "its first epochs were kept, not trained again"
    assert (out / "best.yaml").is_file()


@pytest.mark.slow
def test_hyperband_gives_trials_their_epochs_and_frozen_backbones_share_features(prepared, tmp_path):
    from corolla.tune import tune

    space = {"model": "efficientnet_lite0", "learning_rate": {"min": 0.003, "max": 0.03, "log": True}, "batch_size": 16, "augment": "none", "epochs": 3}
    result = tune(prepared, out=tmp_path / "hb", space=space, max_trials=4, verbose=False)
    assert len(result["trials"]) == 4 and all(row["status"] == "completed" for row in result["trials"])
    epochs = sorted(row["epochs"] for row in result["trials"])
    assert epochs[0] < 3 and all(1 <= value <= 3 for value in epochs), "Hyperband's early rounds train fewer epochs"
    passes = [json.loads((tmp_path / "hb" / "trials" / row["trial"] / "history.json").read_text())["feature_pass"] for row in sorted(result["trials"], key=lambda row: row["trial"])]
    assert [feature_pass["reused"] for feature_pass in passes] == [False, True, True, True]


@pytest.mark.slow
def test_shared_features_serve_runs_with_and_without_label_smoothing(prepared, tmp_path):
    """Label smoothing one-hots the labels: runs sharing features must each get their own encoding."""
    from corolla.train import train
    from corolla.train.features import shared_features

    with shared_features():
        for index, smoothing in enumerate((0.1, 0.0, 0.1)):
            train(prepared, out=tmp_path / f"run{index}", model="efficientnet_lite0", epochs=1, batch_size=16, label_smoothing=smoothing, verbose=False)
    passes = [json.loads((tmp_path / f"run{index}" / "history.json").read_text())["feature_pass"]["reused"] for index in range(3)]
    assert passes == [False, True, True]


def test_default_space_follows_the_data():
    from corolla.tune.space import default_space

    photos = default_space(train_images=800, image_size=224, channels=3)
    assert photos["model"] == ["efficientnet_lite0"] and photos["fine_tune"] == [False, True]
    small_gray = default_space(train_images=60_000, image_size=28, channels=1)
    assert "efficientnet_lite0" not in small_gray["model"] and "fine_tune" not in small_gray


@pytest.mark.parametrize(
    ("space", "options", "message"),
    [
        ({}, {}, "is empty"),
        ({"learning_rat": [0.1]}, {}, r"Unknown option\(s\) in the search space: learning_rat\. Expected only: .*learning_rate"),
        ({"model": []}, {}, "'model' in the search space has no choices"),
        ({"learning_rate": {"min": 0.1, "max": 0.01}}, {}, "runs backwards"),
        ({"learning_rate": {"min": 0, "max": 0.1, "log": True}}, {}, "log range needs min > 0"),
        ({"augment": {"min": 1, "max": 2}}, {}, "'augment' is not a number"),
        ({"model": "efficientnet_lite0", "augment": ["none", "light"], "cache_features": "on"}, {}, "contradicts itself: a trial with augment='light' could not train: cache_features=on"),
        ({"model": ["convnet"], "fine_tune": True}, {}, "none of its models .* pretrained backbone"),
        ({"model": ["convnet", "no_such_net"]}, {}, "contradicts itself: a trial with model='no_such_net'"),
        ({"epochs": {"min": 2, "max": 6}}, {}, "Hyperband decides each trial's epochs"),
        (TINY_SPACE, {"time_budget": "5s"}, "cannot fit one trial"),
        (TINY_SPACE, {"time_budget": "soon"}, "duration such as 20m"),
        (TINY_SPACE, {"algorithm": "grid"}, "Unknown search algorithm 'grid'"),
        (TINY_SPACE, {"max_trials": 0}, "must be ≥ 1"),
    ],
)
def test_bad_spaces_and_budgets_fail_before_anything_runs(prepared, tmp_path, space, options, message):
    from corolla.tune import tune

    with pytest.raises(CorollaError, match=message):
        tune(prepared, out=tmp_path / "tune", space=space, verbose=False, **options)
    assert not (tmp_path / "tune").exists()


def test_a_space_file_with_a_typo_names_the_key(prepared, tmp_path):
    (tmp_path / "space.yaml").write_text("model: [convnet]\nbatchsize: [8, 16]\n")
    completed = subprocess.run([sys.executable, "-m", "corolla.cli", "tune", str(prepared), "--space", str(tmp_path / "space.yaml"), "--out", str(tmp_path / "t")], capture_output=True, text=True)
    assert completed.returncode == 1
    assert "Unknown option(s) in" in completed.stderr and "batchsize" in completed.stderr and "batch_size" in completed.stderr
    assert not (tmp_path / "t").exists()


def test_tune_needs_prepared_data(image_folder, tmp_path):
    from corolla.tune import tune

    with pytest.raises(CorollaError, match="not written by `corolla prepare`"):
        tune(image_folder, out=tmp_path / "t", space=TINY_SPACE, verbose=False)
