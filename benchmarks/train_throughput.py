"""Training throughput: `corolla train` (tf.data over prepared shards) vs `model.fit` on NumPy arrays.

Same model (the seeds' convnet), batch 128, Fashion-MNIST, same process, alternating, so the
ratio holds even when absolute speed drifts. Goal (issue 5): ratio ≥ 1.0 — the tool adds no overhead.

    .venv/bin/python benchmarks/train_throughput.py [--epochs 3] [--rounds 2] [--data DATA_DIR]

Without --data it prepares Fashion-MNIST into a temporary folder first (not timed).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import report  # noqa: E402


def numpy_fit(epochs: int, batch_size: int) -> float:
    """Images/s of a plain Keras fit on in-memory arrays, the reference a user would write by hand."""
    import keras
    import numpy as np

    from corolla.data.datasets import load_arrays
    from corolla.models import build_model

    images, labels = load_arrays("fashion-mnist")["train"]
    images = images[..., None].astype(np.float32)
    model = build_model("convnet", input_shape=(28, 28, 1), num_classes=10)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"], jit_compile=False)
    model.fit(images, labels, batch_size=batch_size, epochs=1, verbose=0)  # warm-up: tracing, allocation
    started = time.perf_counter()
    model.fit(images, labels, batch_size=batch_size, epochs=epochs, verbose=0)
    return len(images) * epochs / (time.perf_counter() - started)


def corolla_fit(data_dir: str, epochs: int, batch_size: int, out: str) -> float:
    """Training images/s of `corolla train` itself (its history times the eval pass apart), after a warm-up epoch."""
    import numpy as np

    from corolla.train import train

    train(data_dir, out=out, model="convnet", epochs=epochs + 1, batch_size=batch_size, learning_rate=1e-3, verbose=False)
    history = json.loads(pathlib.Path(out, "history.json").read_text())
    return float(np.mean(history["images_per_second"][1:]))  # epoch 1: tracing, and fills the decoded-image cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--data", help="Prepared Fashion-MNIST (default: prepare into a temporary folder)")
    args = parser.parse_args()

    from corolla.data.prepare import prepare

    with tempfile.TemporaryDirectory() as scratch:
        data_dir = args.data or prepare("fashion-mnist", out=f"{scratch}/fm").directory
        reference = ours = 0.0
        for round_ in range(args.rounds):  # alternate, keep each one's best: contention hits both alike
            reference = max(reference, numpy_fit(args.epochs, args.batch_size))
            ours = max(ours, corolla_fit(str(data_dir), args.epochs, args.batch_size, out=f"{scratch}/run{round_}"))
            print(f"round {round_ + 1}: NumPy fit {reference:,.0f} img/s, corolla train {ours:,.0f} img/s (best so far)")
    rows = [
        {"pipeline": "keras fit on NumPy arrays", "images_per_s": reference, "ratio": 1.0},
        {"pipeline": "corolla train (tf.data over TFRecord shards, TensorBoard; eval and checkpoint writes timed apart)", "images_per_s": ours, "ratio": ours / reference},
    ]
    report("train_throughput", rows, epochs=args.epochs, batch_size=args.batch_size, rounds=args.rounds)


if __name__ == "__main__":
    main()
