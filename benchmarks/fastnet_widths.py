"""What a fastnet epoch costs in reference epochs, per width: the figure behind the recipe's widths.

The time-to-accuracy budget (issue 16, benchmarks/time_to_accuracy.py) counts one plain-Keras
epoch of the seeds' convnet as the unit, so what matters is each model's training step against
that reference's step, timed side by side in one process. Each figure is the **median** of
`--steps` `train_on_batch` calls on one in-memory batch (after warm-up steps): this VM stalls for
whole seconds at times, and a median of steps ignores the stalls that a timed epoch would absorb.
Models are timed in interleaved rounds, so a drift of the machine's speed hits them all alike.

    taskset -c 0 .venv/bin/python benchmarks/fastnet_widths.py [--widths 32,64,128 24,48,96] [--rounds 2] [--steps 25]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import report  # noqa: E402

EPOCH_IMAGES = 60_000


def epoch_seconds(model_name: str, *, steps: int, batch_size: int = 128, **options) -> float:
    """Seconds of a 60,000-image epoch at the median step time (Adam, no XLA, as `corolla train` on CPU)."""
    import keras
    import tensorflow as tf

    from corolla.models import build_model

    keras.utils.set_random_seed(0)
    model = build_model(model_name, input_shape=(28, 28, 1), num_classes=10, **options)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", jit_compile=False)
    images = tf.random.uniform((batch_size, 28, 28, 1), maxval=255)
    labels = tf.random.uniform((batch_size,), maxval=10, dtype=tf.int32)
    for _ in range(3):  # tracing and allocation
        model.train_on_batch(images, labels)
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        model.train_on_batch(images, labels)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * EPOCH_IMAGES / batch_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", nargs="+", default=["32,64,128", "24,48,96"], help="fastnet widths to time, each as a,b,c")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=25)
    args = parser.parse_args()

    candidates = {"convnet (reference)": ("convnet", {})}
    for widths in args.widths:
        candidates[f"fastnet {widths}"] = ("fastnet", {"widths": [int(width) for width in widths.split(",")]})
    seconds = {label: [] for label in candidates}
    for round_index in range(args.rounds):
        for label, (name, options) in candidates.items():
            seconds[label].append(epoch_seconds(name, steps=args.steps, **options))
            print(f"round {round_index + 1}: {label}: {seconds[label][-1]:.1f} s per epoch", flush=True)

    reference = seconds["convnet (reference)"]
    rows = []
    for label, times in seconds.items():
        ratios = [time_ / ref for time_, ref in zip(times, reference)]  # each round against its own reference
        rows.append({"model": label, "epoch s (per round)": " / ".join(f"{time_:.0f}" for time_ in times),
                     "reference epochs per epoch": round(statistics.mean(ratios), 2),
                     "spread": f"{min(ratios):.2f}–{max(ratios):.2f}"})
    report("fastnet_widths", rows, steps=args.steps, rounds=args.rounds, seconds=seconds)


if __name__ == "__main__":
    main()
