"""Training throughput: corolla's input pipeline (`corolla.data.load` over prepared shards) vs `model.fit` on NumPy arrays.

Same model (the seeds' convnet), batch 128, Fashion-MNIST, same process, alternating, so the
ratio holds even when absolute speed drifts. Goal (issue 5): ratio ≥ 1.0 — the tool adds no overhead.

    .venv/bin/python benchmarks/train_throughput.py [--epochs 3] [--data DATA_DIR]

Without --data it prepares Fashion-MNIST into a temporary folder first (not timed).
"""

from __future__ import annotations

import argparse
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


def corolla_fit(data_dir: str, epochs: int, batch_size: int) -> float:
    """Images/s of a fit on `corolla.data.load`, the pipeline `corolla train` uses (no eval pass, like the reference)."""
    import keras

    from corolla.data.manifest import Manifest
    from corolla.data.pipeline import load
    from corolla.models import build_model

    manifest = Manifest.load(data_dir)
    dataset = load(data_dir, "train", batch_size=batch_size, manifest=manifest)
    model = build_model("convnet", input_shape=(28, 28, 1), num_classes=10)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"], jit_compile=False)
    model.fit(dataset, epochs=1, shuffle=False, verbose=0)  # warm-up, and fills the decoded-image cache
    started = time.perf_counter()
    model.fit(dataset, epochs=epochs, shuffle=False, verbose=0)
    return manifest.count("train") * epochs / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--data", help="Prepared Fashion-MNIST (default: prepare into a temporary folder)")
    args = parser.parse_args()

    from corolla.data.prepare import prepare

    with tempfile.TemporaryDirectory() as scratch:
        data_dir = args.data or prepare("fashion-mnist", out=f"{scratch}/fm").directory
        reference = numpy_fit(args.epochs, args.batch_size)
        ours = corolla_fit(str(data_dir), args.epochs, args.batch_size)
    rows = [
        {"pipeline": "keras fit on NumPy arrays", "images_per_s": reference, "ratio": 1.0},
        {"pipeline": "corolla (tf.data over TFRecord shards)", "images_per_s": ours, "ratio": ours / reference},
    ]
    report("train_throughput", rows, epochs=args.epochs, batch_size=args.batch_size)


if __name__ == "__main__":
    main()
