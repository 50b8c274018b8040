"""Evaluation numbers against values worked out by hand, and `evaluate` on prepared and raw data."""

import json

import numpy as np
import pytest

from corolla.errors import CorollaError
from corolla.evaluate import calibration, classification_metrics, evaluate
from corolla.evaluate.predictions import collect_predictions
from corolla.run import Run

# 4 classes; "c" is never predicted, "d" never occurs. Rows: true class, columns: predicted.
#   a: [3, 1, 0, 0]   b: [1, 2, 0, 0]   c: [1, 1, 0, 0]   d: [0, 0, 0, 0]
TRUTH = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2])
PROBABILITIES = np.array(
    [
        [0.92, 0.04, 0.02, 0.02],  # a ✓
        [0.72, 0.20, 0.05, 0.03],  # a ✓
        [0.62, 0.30, 0.05, 0.03],  # a ✓
        [0.40, 0.52, 0.05, 0.03],  # a → b, true class 2nd
        [0.10, 0.82, 0.05, 0.03],  # b ✓
        [0.30, 0.66, 0.02, 0.02],  # b ✓
        [0.56, 0.35, 0.05, 0.04],  # b → a, true class 2nd
        [0.48, 0.30, 0.17, 0.05],  # c → a, true class 3rd
        [0.20, 0.45, 0.30, 0.05],  # c → b, true class 2nd
    ]
)
CLASSES = ["a", "b", "c", "d"]


def test_per_class_scores_by_hand():
    metrics = classification_metrics(TRUTH, None, CLASSES, probabilities=PROBABILITIES, top_k=(2, 3))
    assert metrics["confusion_matrix"] == [[3, 1, 0, 0], [1, 2, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]]
    assert metrics["accuracy"] == pytest.approx(5 / 9) and metrics["count"] == 9
    a, b, c, d = (metrics["per_class"][name] for name in CLASSES)
    assert (a["precision"], a["recall"], a["f1"], a["support"]) == pytest.approx((3 / 5, 3 / 4, 2 / 3, 4))
    assert (b["precision"], b["recall"], b["f1"], b["support"]) == pytest.approx((2 / 4, 2 / 3, 4 / 7, 3))
    assert c["precision"] is None and c["recall"] == 0 and c["f1"] == 0  # never predicted, all missed
    assert d == {"accuracy": None, "count": 0, "precision": None, "recall": None, "f1": None, "support": 0}
    assert a["accuracy"] == a["recall"] and a["count"] == a["support"]  # the keys older readers use
    assert metrics["macro_avg"] == pytest.approx({"precision": 0.55, "recall": (3 / 4 + 2 / 3 + 0) / 3, "f1": (2 / 3 + 4 / 7 + 0) / 3})
    assert metrics["confusion_matrix_normalized"][1] == pytest.approx([1 / 3, 2 / 3, 0, 0], abs=1e-6)
    assert metrics["confusion_matrix_normalized"][3] == [0, 0, 0, 0]


def test_top_k_and_most_confused_pairs_by_hand():
    metrics = classification_metrics(TRUTH, None, CLASSES, probabilities=PROBABILITIES, top_k=(2, 3, 4))
    assert metrics["top_k_accuracy"] == pytest.approx({"2": 8 / 9, "3": 1.0})  # k = 4 classes says nothing
    pairs = [(pair["true"], pair["predicted"], pair["count"]) for pair in metrics["most_confused"]]
    assert pairs == [("c", "a", 1), ("c", "b", 1), ("b", "a", 1), ("a", "b", 1)]  # ties: larger share of the true class first
    assert metrics["most_confused"][0]["share_of_true"] == 0.5


def test_expected_calibration_error_by_hand():
    result = calibration(TRUTH, PROBABILITIES, bins=10)
    # Occupied bins (confidences → accuracy): (.4,.5] .48 .45 → 0; (.5,.6] .52 .56 → 0; (.6,.7] .62 .66 → 1;
    # (.7,.8] .72 → 1; (.8,.9] .82 → 1; (.9,1] .92 → 1.
    assert result["ece"] == pytest.approx((2 * 0.465 + 2 * 0.54 + 2 * 0.36 + 0.28 + 0.18 + 0.08) / 9)
    assert [row["count"] for row in result["bins"]] == [0, 0, 0, 0, 2, 2, 2, 1, 1, 1]
    assert result["bins"][5]["confidence"] == pytest.approx(0.54) and result["bins"][6]["accuracy"] == 1.0


def test_labels_only_give_no_probability_metrics():
    metrics = classification_metrics(np.array([0, 1]), np.array([0, 0]), ["x", "y"])
    assert "calibration" not in metrics and "top_k_accuracy" not in metrics
    assert metrics["per_class"]["x"]["precision"] == 0.5


def test_evaluate_writes_the_full_metrics(trained_run, prepared):
    metrics = evaluate(trained_run, verbose=False)
    saved = json.loads((trained_run / "report" / "metrics.json").read_text())
    eval_count = json.loads((prepared / "manifest.json").read_text())["splits"]["eval"]["count"]
    assert saved["count"] == eval_count and saved["split"] == "eval" and saved["skipped"] == []
    assert set(saved) >= {"accuracy", "per_class", "confusion_matrix", "confusion_matrix_normalized", "most_confused", "top_k_accuracy", "calibration", "macro_avg"}
    assert saved["top_k_accuracy"].keys() == {"2"}  # 3 classes
    assert 0 <= metrics["calibration"]["ece"] <= 1
    for name in ("index.html", "confusion_matrix.png", "reliability.png", "training_curves.png"):
        assert (trained_run / "report" / name).stat().st_size > 1000


def test_evaluate_on_a_raw_folder_skips_unreadable_files(trained_run, image_folder, prepared):
    metrics = evaluate(trained_run, data_dir=image_folder, verbose=False)
    assert metrics["count"] == 60 and metrics["split"] == "all"
    assert sorted(row["source"].split("/")[-1] for row in metrics["skipped"]) == ["empty.png", "notes.txt", "truncated.jpg"]
    # Far above chance (1/3); not "perfect": the short shared run lands at 87-100% depending on the CPU.
    assert metrics["accuracy"] > 0.6
    # A raw file is read as prepare reads it: the eval images score as their prepared shards do.
    raw = collect_predictions(Run(trained_run), image_folder, split="all", verbose=False)
    shards = collect_predictions(Run(trained_run), prepared, split="eval", verbose=False)
    by_key = {key: (truth, scores) for key, truth, scores in zip(raw.keys, raw.truth, raw.probabilities)}
    for key, truth, scores in zip(shards.keys, shards.truth, shards.probabilities):
        assert by_key[key][0] == truth
        np.testing.assert_allclose(by_key[key][1], scores, atol=1e-4, err_msg=key)


def test_evaluate_rejects_classes_the_run_never_saw(trained_run, tmp_path):
    (tmp_path / "purple").mkdir()
    (tmp_path / "purple" / "x.png").write_bytes(b"")
    with pytest.raises(CorollaError, match="purple"):
        evaluate(trained_run, data_dir=tmp_path, verbose=False)
