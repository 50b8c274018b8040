"""Model zoo speed on this machine: training and inference images/s, parameters, MACs; optionally
fastnet's accuracy on Fashion-MNIST per epoch (the time-to-accuracy goal of the training issue).

Training: `model.fit` on in-memory random pixels, batch 128, one warm-up epoch, then `--steps`
timed steps, no XLA (measured slower on CPU). Inference: `predict` at batch 256.

    .venv/bin/python benchmarks/models_speed.py [--models fastnet convnet] [--steps 40]
    .venv/bin/python benchmarks/models_speed.py --models fastnet --fashion-mnist-epochs 12 [--augment]
"""

from __future__ import annotations

import argparse
import sys
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import report  # noqa: E402


def speed(name: str, steps: int, batch_size: int = 128) -> dict:
    import keras
    import numpy as np

    from corolla.models import build_model, get_model
    from corolla.models.stats import model_stats

    spec = get_model(name)
    shape = (spec.input_size, spec.input_size, spec.channels)
    model = build_model(name, input_shape=shape, num_classes=10, **({"weights": None} if spec.pretrained else {}))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", jit_compile=False)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch_size * steps, *shape)).astype("float32")
    labels = rng.integers(0, 10, len(images))
    model.fit(images[: batch_size * 2], labels[: batch_size * 2], batch_size=batch_size, verbose=0)  # warm-up: tracing
    started = time.perf_counter()
    model.fit(images, labels, batch_size=batch_size, verbose=0)
    train = len(images) / (time.perf_counter() - started)
    model.predict(images[:256], batch_size=256, verbose=0)
    started = time.perf_counter()
    model.predict(images, batch_size=256, verbose=0)
    infer = len(images) / (time.perf_counter() - started)
    stats = model_stats(model)
    return {"model": name, "input": "×".join(map(str, shape)), "parameters": stats["parameters"], "MMACs": round(stats["macs"] / 1e6, 1),
            "train img/s": round(train), "predict img/s": round(infer)}


def fashion_mnist(name: str, epochs: int, batch_size: int = 128, learning_rate: float = 3e-3, augment: bool = False) -> list[dict]:
    """Test accuracy after each epoch, Adam with cosine decay as `corolla train` uses.

    augment: random horizontal flips and ±2 px shifts (seed 004's generator), applied in tf.data.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    from corolla.data.datasets import load_arrays
    from corolla.models import build_model

    arrays = load_arrays("fashion-mnist")
    (train_x, train_y), (test_x, test_y) = arrays["train"], arrays["test"]
    train_x, test_x = train_x[..., None].astype(np.float32), test_x[..., None].astype(np.float32)
    keras.utils.set_random_seed(0)
    model = build_model(name, input_shape=(28, 28, 1), num_classes=10)
    steps = -(-len(train_x) // batch_size) * epochs
    model.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(learning_rate, steps, alpha=0.01)),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"], jit_compile=False)
    train = tf.data.Dataset.from_tensor_slices((train_x, train_y)).shuffle(len(train_x), seed=0).batch(batch_size)
    if augment:
        shift = keras.Sequential([keras.layers.RandomFlip("horizontal", seed=0), keras.layers.RandomTranslation(2 / 28, 2 / 28, fill_mode="constant", seed=0)])
        train = train.map(lambda images, labels: (shift(images, training=True), labels), num_parallel_calls=tf.data.AUTOTUNE)
    train = train.prefetch(tf.data.AUTOTUNE)
    rows, started = [], time.perf_counter()
    for epoch in range(epochs):
        model.fit(train, epochs=1, verbose=0)
        accuracy = model.evaluate(test_x, test_y, batch_size=512, verbose=0)[1]
        rows.append({"model": name, "augment": augment, "epoch": epoch + 1, "seconds": round(time.perf_counter() - started, 1), "test accuracy": round(accuracy, 4)})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["dense", "convnet", "fastnet", "cifar_cnn"])
    parser.add_argument("--steps", type=int, default=40, help="Timed training steps of 128 images per model.")
    parser.add_argument("--fashion-mnist-epochs", type=int, default=0, help="Only train each model on Fashion-MNIST for this many epochs.")
    parser.add_argument("--augment", action="store_true", help="With --fashion-mnist-epochs: random flips and shifts.")
    args = parser.parse_args()
    if args.fashion_mnist_epochs:
        rows = [row for name in args.models for row in fashion_mnist(name, args.fashion_mnist_epochs, augment=args.augment)]
        report("models_fashion_mnist" + ("_augmented" if args.augment else ""), rows)
    else:
        report("models_speed", [speed(name, args.steps) for name in args.models])


if __name__ == "__main__":
    main()
