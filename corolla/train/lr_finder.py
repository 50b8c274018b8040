"""The learning-rate range test (Smith, 2017; fastai's lr_find): `corolla train … --find-lr`.

The LR grows exponentially from `start` to `end` over `steps` training steps of a fresh model;
the loss is smoothed (exponential moving average, bias-corrected) and the sweep stops early once
it explodes. The suggestion is the LR where the smoothed loss falls fastest, before its minimum —
a value inside the sweep by construction.

Example:
    result = find_lr(model, train_data, steps=200)
    result["suggestion"]
"""

from __future__ import annotations

import json
import math
import pathlib

import keras
import numpy as np

from corolla.data.storage import write_text


class _RangeTest(keras.callbacks.Callback):
    def __init__(self, *, start: float, end: float, steps: int, smoothing: float = 0.98):
        super().__init__()
        self.start, self.end, self.steps, self.smoothing = start, end, steps, smoothing
        self.rates, self.losses, self.smoothed = [], [], []
        self._average, self._previous_mean = 0.0, 0.0

    def _rate(self, step: int) -> float:
        return self.start * (self.end / self.start) ** (step / max(1, self.steps - 1))

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate = self._rate(batch)

    def on_train_batch_end(self, batch, logs=None):
        # Keras reports the running mean over the epoch; recover this batch's own loss.
        mean = float(logs["loss"])
        loss = (batch + 1) * mean - batch * self._previous_mean
        self._previous_mean = mean
        self._average = self.smoothing * self._average + (1 - self.smoothing) * loss
        smoothed = self._average / (1 - self.smoothing ** (batch + 1))
        self.rates.append(self._rate(batch))
        self.losses.append(loss)
        self.smoothed.append(smoothed)
        if not math.isfinite(smoothed) or (batch > 10 and smoothed > 4 * min(self.smoothed)):
            self.model.stop_training = True


def suggest(rates, smoothed) -> tuple[float, float]:
    """(rate where the smoothed loss falls fastest per log-LR before its minimum, rate of the minimum).

    Example:
        suggest([1e-4, 1e-3, 1e-2, 1e-1, 1.0], [2.0, 1.9, 1.0, 0.95, 5.0])    # (0.001, 0.1)
    """
    smoothed = np.array(smoothed, dtype=float)
    lowest = int(np.argmin(np.where(np.isfinite(smoothed), smoothed, np.inf)))
    slopes = np.gradient(smoothed[: lowest + 1], np.log(rates[: lowest + 1])) if lowest >= 2 else np.zeros(1)
    return rates[int(np.argmin(slopes))], rates[lowest]


def find_lr(model, dataset, *, steps: int = 200, start: float = 1e-6, end: float = 1.0, out_dir=None) -> dict:
    """Run the range test on a compiled `model` over a repeating `dataset`; optionally write a plot.

    Returns {"suggestion", "min_loss_lr", "rates", "losses", "smoothed"}; with `out_dir`, also
    `out_dir/lr_finder.json` and `out_dir/lr_finder.png`.
    """
    test = _RangeTest(start=start, end=end, steps=steps)
    model.fit(dataset, epochs=1, steps_per_epoch=steps, callbacks=[test], shuffle=False, verbose=0)
    suggestion, min_loss_lr = suggest(test.rates, test.smoothed)
    result = {"suggestion": suggestion, "min_loss_lr": min_loss_lr, "rates": test.rates, "losses": test.losses, "smoothed": test.smoothed}
    if out_dir is not None:
        out_dir = pathlib.Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_text(out_dir / "lr_finder.json", json.dumps(result, indent=2) + "\n")
        _plot(result, out_dir / "lr_finder.png")
    return result


def _plot(result: dict, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(6, 4))
    axes.plot(result["rates"], result["losses"], color="0.8", label="loss per step")
    axes.plot(result["rates"], result["smoothed"], label="smoothed")
    axes.axvline(result["suggestion"], color="tab:red", linestyle="--", label=f"suggested {result['suggestion']:.2g}")
    axes.set(xscale="log", xlabel="learning rate", ylabel="training loss", title="Learning-rate range test")
    finite = [value for value in result["smoothed"] + result["losses"] if math.isfinite(value)]
    if finite:
        axes.set_ylim(max(0.0, min(finite) * 0.9), min(max(finite), 1.5 * result["smoothed"][0]) * 1.05)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
