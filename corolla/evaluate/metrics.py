"""`corolla evaluate`: accuracy, per-class accuracy and the confusion matrix on a prepared split.

Writes RUN_DIR/report/metrics.json.

Example:
    metrics = evaluate("runs/fm")
    metrics["accuracy"], metrics["per_class"]["Shirt"]["accuracy"]
"""

from __future__ import annotations

import json
import os

import numpy as np

from corolla.data.manifest import Manifest, write_text_atomic
from corolla.errors import CorollaError
from corolla.run import Run


def evaluate(
    run_dir: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    split: str = "eval",
    batch_size: int = 256,
) -> dict:
    """Evaluate the run's best checkpoint on `split` of `data_dir` (default: the data it trained on)."""
    run = Run(run_dir)
    data_dir = data_dir or run.config.data_dir
    manifest = Manifest.load(data_dir)
    if manifest.classes != run.config.classes:
        raise CorollaError(
            f"The classes of {data_dir} differ from the ones {run.dir} was trained on. "
            f"Expected: {run.config.classes}. Received: {manifest.classes}"
        )
    from corolla.data.pipeline import load  # TensorFlow loads only after the inputs checked out

    model = run.load_model()
    dataset = load(data_dir, split, batch_size=batch_size, shuffle=False, cache=False, manifest=manifest)
    truths, predictions = [], []
    for images, labels in dataset:
        predictions.append(np.argmax(model.predict_on_batch(images), axis=-1))
        truths.append(labels.numpy())
    metrics = classification_metrics(np.concatenate(truths), np.concatenate(predictions), manifest.classes)
    metrics.update(split=split, data_dir=str(data_dir), checkpoint=str(run.best_checkpoint))
    run.report_dir.mkdir(exist_ok=True)
    write_text_atomic(run.report_dir / "metrics.json", json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    return metrics


def classification_metrics(truth: np.ndarray, predicted: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, per-class accuracy (recall) and the confusion matrix (rows: true, columns: predicted)."""
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    support = confusion.sum(axis=1)
    per_class = {
        name: {"accuracy": float(confusion[i, i] / support[i]) if support[i] else None, "count": int(support[i])}
        for i, name in enumerate(classes)
    }
    return {
        "accuracy": float(np.trace(confusion) / max(1, confusion.sum())),
        "count": int(confusion.sum()),
        "per_class": per_class,
        "confusion_matrix": confusion.tolist(),
    }
