"""RUN/report/predictions.csv: every evaluated example with its label, prediction, confidence and loss, worst first."""

import csv
import io
import json
import math

import numpy as np
import pytest
import tensorflow as tf

from corolla.data import records
from corolla.data.manifest import Manifest
from corolla.evaluate import evaluate
from corolla.evaluate.predictions import Predictions
from tests.test_evaluate_metrics import CLASSES, PROBABILITIES, TRUTH


def rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_to_csv_by_hand():
    keys = [f"img{i}.png" for i in range(len(TRUTH))]
    table = rows(Predictions(TRUTH, PROBABILITIES, [], "eval", [], keys).to_csv(CLASSES))
    assert list(table[0]) == ["key", "label", "predicted", "confidence", "loss"]
    # Highest loss first: img7 (c, p=0.17), img8 (c, 0.30), img6 (b, 0.35), img3 (a, 0.40), …, img0 (a, 0.92).
    assert [row["key"] for row in table] == ["img7.png", "img8.png", "img6.png", "img3.png", "img2.png", "img5.png", "img1.png", "img4.png", "img0.png"]
    assert table[0] == {"key": "img7.png", "label": "c", "predicted": "a", "confidence": "0.48", "loss": f"{-math.log(0.17):.6g}"}
    assert table[-1] == {"key": "img0.png", "label": "a", "predicted": "a", "confidence": "0.92", "loss": f"{-math.log(0.92):.6g}"}


def test_keys_with_commas_and_quotes_survive():
    keys = ['a,b.png', 'say "hi".png']
    table = rows(Predictions(np.array([0, 1]), np.array([[0.9, 0.1], [0.2, 0.8]]), [], "eval", [], keys).to_csv(["x", "y"]))
    assert sorted(row["key"] for row in table) == sorted(keys)


def test_evaluate_writes_one_row_per_eval_example(trained_run, prepared):
    metrics = evaluate(trained_run, verbose=False)
    text = (trained_run / "report" / "predictions.csv").read_text(encoding="utf-8")
    table = rows(text)
    manifest = Manifest.load(prepared)
    truth = {}
    for raw in tf.data.TFRecordDataset(manifest.shard_paths("eval")):
        features = records.parse_example(raw, keys=(records.KEY, records.LABEL_TEXT))
        truth[features[records.KEY].numpy().decode()] = features[records.LABEL_TEXT].numpy().decode()
    assert len(table) == metrics["count"] == manifest.count("eval")
    assert {row["key"]: row["label"] for row in table} == truth  # the eval split's record keys, each once, with its class
    losses = [float(row["loss"]) for row in table]
    assert losses == sorted(losses, reverse=True)
    assert set(row["predicted"] for row in table) <= set(manifest.classes)
    correct = [row["predicted"] == row["label"] for row in table]
    assert sum(correct) / len(table) == pytest.approx(json.loads((trained_run / "report" / "metrics.json").read_text())["accuracy"])
    for row, right in zip(table, correct):
        confidence, loss = float(row["confidence"]), float(row["loss"])
        assert 0 < confidence <= 1 and loss >= 0
        if right:  # the true class is the predicted one: loss is −log(confidence)
            assert loss == pytest.approx(-math.log(confidence), rel=1e-4, abs=1e-6)
        else:  # the true class had less than the predicted one
            assert math.exp(-loss) <= confidence + 1e-6
