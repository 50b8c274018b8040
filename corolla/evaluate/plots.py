"""The report's plots as PNG bytes (matplotlib's Agg renderer: no display needed).

Example:
    png = confusion_matrix_png(metrics["confusion_matrix"], ["cat", "dog"])
    pathlib.Path("confusion_matrix.png").write_bytes(png)
"""

from __future__ import annotations

import io

import numpy as np

DPI = 110


def _figure(width: float, height: float):
    # A bare Figure renders with Agg and touches no pyplot state, so a notebook's backend is left alone.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def confusion_matrix_png(confusion: list[list[int]], classes: list[str]) -> bytes:
    """Row-normalised colours (share of each true class), with the counts written in the cells."""
    counts = np.asarray(confusion)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = min(4 + 0.45 * len(classes), 16)
    figure = _figure(size + 1, size)
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, shrink=0.8, label="share of the true class")
    ticks = np.arange(len(classes))
    axes.set_xticks(ticks, classes, rotation=45, ha="right")
    axes.set_yticks(ticks, classes)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title("Confusion matrix")
    if len(classes) <= 30:
        for (row, column), value in np.ndenumerate(counts):
            if value:
                axes.text(column, row, str(value), ha="center", va="center", fontsize=8, color="white" if shares[row, column] > 0.5 else "black")
    return _png(figure)


def reliability_png(calibration: dict) -> bytes:
    """Accuracy against mean confidence per bin, beside the diagonal of perfect calibration."""
    bins = calibration["bins"]
    figure = _figure(5, 4.6)
    axes = figure.add_subplot()
    centres = [(row["lower"] + row["upper"]) / 2 for row in bins]
    width = bins[0]["upper"] - bins[0]["lower"]
    axes.bar(centres, [row["accuracy"] or 0 for row in bins], width=width * 0.95, color="#4c78a8", edgecolor="white", label="accuracy")
    axes.bar(
        centres,
        [(row["confidence"] or 0) - (row["accuracy"] or 0) for row in bins],
        bottom=[row["accuracy"] or 0 for row in bins],
        width=width * 0.95,
        color="#e45756",
        alpha=0.35,
        label="gap to confidence",
    )
    axes.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("confidence (top-1 probability)")
    axes.set_ylabel("accuracy")
    axes.set_title(f"Reliability diagram — ECE {calibration['ece']:.3f}")
    axes.legend(loc="upper left")
    return _png(figure)


def training_curves_png(history: dict[str, list[float]]) -> bytes:
    """Loss and every accuracy-like metric per epoch, train beside validation."""
    from matplotlib.ticker import MaxNLocator

    not_metrics = ("learning_rate", "epoch_seconds", "images_per_second", "head_images_per_second")
    # Per-epoch lists only: a run on cached backbone features also records `feature_pass`, a dict.
    names = [name for name, values in history.items() if isinstance(values, list) and not name.startswith("val_") and name not in not_metrics]
    figure = _figure(4.2 * len(names), 3.6)
    for index, name in enumerate(names, start=1):
        axes = figure.add_subplot(1, len(names), index)
        epochs = np.arange(1, len(history[name]) + 1)
        axes.plot(epochs, history[name], "o-", label="train")
        if f"val_{name}" in history:
            axes.plot(epochs, history[f"val_{name}"], "o-", label="eval")
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_title(name)
        axes.grid(alpha=0.3)
        axes.legend()
    return _png(figure)
