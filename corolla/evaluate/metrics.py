"""`corolla evaluate`: where the model is right and wrong, as numbers, plots and one HTML page.

Writes RUN_DIR/report/metrics.json, predictions.csv (every example: key, label, predicted,
confidence, loss; highest loss first), PNG plots and a self-contained RUN_DIR/report/index.html.

Example:
    metrics = evaluate("runs/fm")                       # the eval split the run trained with
    metrics = evaluate("runs/fm", data_dir="photos/")   # or a folder / CSV of new images
    metrics["accuracy"], metrics["per_class"]["Shirt"]["f1"], metrics["calibration"]["ece"]
"""

from __future__ import annotations

import json
import os

import numpy as np

from corolla.data.storage import write_text
from corolla.run import Run


def evaluate(
    run_dir: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    split: str = "eval",
    checkpoint: str = "best",
    tta: str | None = None,
    batch_size: int = 256,
    top_k: tuple[int, ...] = (2, 3, 5),
    mistakes: int = 24,
    verbose: bool = True,
) -> dict:
    """Evaluate one of the run's checkpoints ("best" or "last") and write its report; returns the metrics.

    `tta` "flip" averages each image with its mirror image, "flip_shift" over 10 views (default: the run's `tta`).

    `data_dir` is prepared data (its `split` is used; default: the data the run trained on),
    or a folder of class sub-folders or a CSV of `path,label` lines, decoded as training did.
    """
    from corolla.evaluate.predictions import collect_predictions
    from corolla.evaluate.report import write_report

    run = Run(run_dir)
    data = data_dir or run.config.data_dir
    predictions = collect_predictions(run, data, split=split, checkpoint=checkpoint, tta=tta, batch_size=batch_size, mistakes=mistakes, verbose=verbose)
    metrics = classification_metrics(predictions.truth, None, run.config.classes, probabilities=predictions.probabilities, top_k=top_k)
    metrics.update(split=predictions.split, data_dir=str(data), checkpoint=str(run.checkpoint(checkpoint)), tta=run.config.tta if tta is None else tta, skipped=predictions.skipped)
    run.report_dir.mkdir(exist_ok=True)
    write_text(run.report_dir / "metrics.json", json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    write_text(run.report_dir / "predictions.csv", predictions.to_csv(run.config.classes))
    write_report(run, metrics, predictions.mistakes)
    return metrics


def classification_metrics(
    truth: np.ndarray,
    predicted: np.ndarray | None,
    classes: list[str],
    *,
    probabilities: np.ndarray | None = None,
    top_k: tuple[int, ...] = (2, 3, 5),
    calibration_bins: int = 10,
    confused_pairs: int = 10,
) -> dict:
    """Accuracy, per-class precision/recall/F1/support, confusion matrix and its top pairs.

    With `probabilities` ([n, classes]; `predicted` may then be None) also top-k accuracy for
    each k below the class count, and calibration. Rows of the confusion matrix are true
    classes, columns predicted ones; F1 is 2·TP / (support + predicted count). A ratio with a
    zero denominator (precision of a class never predicted) is None, and left out of the
    macro average.

    Example:
        classification_metrics(np.array([0, 1, 1]), np.array([0, 1, 0]), ["cat", "dog"])["accuracy"]  # 2/3
    """
    truth = np.asarray(truth, dtype=np.int64)
    if probabilities is not None:
        probabilities = np.asarray(probabilities, dtype=np.float64)
        predicted = np.argmax(probabilities, axis=-1)
    predicted = np.asarray(predicted, dtype=np.int64)
    count = len(classes)
    confusion = np.zeros((count, count), dtype=np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    correct, support, predicted_count = np.diag(confusion), confusion.sum(axis=1), confusion.sum(axis=0)
    recall, precision, f1 = _ratio(correct, support), _ratio(correct, predicted_count), _ratio(2 * correct, support + predicted_count)
    per_class = {
        name: {"accuracy": recall[i], "count": int(support[i]), "precision": precision[i], "recall": recall[i], "f1": f1[i], "support": int(support[i])}
        for i, name in enumerate(classes)
    }
    pairs = sorted(
        ((int(confusion[i, j]), i, j) for i in range(count) for j in range(count) if i != j and confusion[i, j]),
        key=lambda pair: (-pair[0], -pair[0] / support[pair[1]], pair[1], pair[2]),
    )
    metrics = {
        "accuracy": float(np.trace(confusion) / max(1, confusion.sum())),
        "count": int(confusion.sum()),
        "per_class": per_class,
        "macro_avg": {name: _mean([row[name] for row in per_class.values()]) for name in ("precision", "recall", "f1")},
        "confusion_matrix": confusion.tolist(),
        "confusion_matrix_normalized": (confusion / np.maximum(support, 1)[:, None]).round(6).tolist(),
        "most_confused": [
            {"true": classes[i], "predicted": classes[j], "count": n, "share_of_true": n / int(support[i])} for n, i, j in pairs[:confused_pairs]
        ],
    }
    if probabilities is not None:
        ranks = np.argsort(-probabilities, axis=-1)
        metrics["top_k_accuracy"] = {str(k): float(np.mean(np.any(ranks[:, :k] == truth[:, None], axis=-1))) for k in top_k if k < count}
        metrics["calibration"] = calibration(truth, probabilities, bins=calibration_bins)
    return metrics


def calibration(truth: np.ndarray, probabilities: np.ndarray, *, bins: int = 10) -> dict:
    """Expected calibration error over `bins` equal-width confidence bins, with the bins themselves.

    ECE = Σ_b (n_b / n) · |accuracy_b − mean confidence_b| (Guo et al., 2017).
    """
    confidence = probabilities.max(axis=-1)
    correct = probabilities.argmax(axis=-1) == truth
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        inside = index == b
        n = int(inside.sum())
        accuracy = float(correct[inside].mean()) if n else None
        mean_confidence = float(confidence[inside].mean()) if n else None
        if n:
            ece += n / len(truth) * abs(accuracy - mean_confidence)
        rows.append({"lower": float(edges[b]), "upper": float(edges[b + 1]), "count": n, "accuracy": accuracy, "confidence": mean_confidence})
    return {"ece": float(ece), "bins": rows}


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> list[float | None]:
    return [float(n / d) if d else None for n, d in zip(numerator, denominator)]


def _mean(values: list[float | None]) -> float | None:
    defined = [value for value in values if value is not None]
    return float(np.mean(defined)) if defined else None
