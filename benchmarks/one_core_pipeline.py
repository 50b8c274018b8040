"""One core: a training step fed by corolla's pipeline, with and without tf.data's autotuner.

On a process pinned to one core (`taskset -c 0`, `docker --cpuset-cpus=0`, a 1-vCPU VM) the
autotuner's own work competes with the model for that core. `corolla.data.pipeline.finish` turns
it off there. This times `model.fit` of fastnet-24 (the fashion-mnist recipe's model, batch 128,
`augment: light`) on Fashion-MNIST, fed by:

- corolla: `corolla.data.load` as it is (on one core: autotuner off);
- autotuner on: the same dataset with `autotune.enabled = True` forced back;
- fixed batch: one in-memory batch repeated (the step alone, no input work; Keras' default options).

Rounds alternate the three in one process, after a full pass fills each pipeline's RAM cache.

    .venv/bin/python benchmarks/one_core_pipeline.py --data DATA_DIR [--cores 0] [--rounds 3] [--steps 60]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import report  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="A prepared Fashion-MNIST folder (corolla prepare fashion-mnist --out DIR)")
    parser.add_argument("--cores", default="0", help="Comma-separated cores to pin to before TensorFlow starts, or 'all'")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    if args.cores != "all":
        os.sched_setaffinity(0, {int(core) for core in args.cores.split(",")})
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import keras
    import numpy as np
    import tensorflow as tf

    from corolla.cores import schedulable_cores
    from corolla.data.manifest import describe
    from corolla.data.pipeline import load
    from corolla.models import build_model

    model = build_model("fastnet", input_shape=(28, 28, 1), num_classes=10, widths=[24, 48, 96])
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", jit_compile=False)
    autotuned = tf.data.Options()
    autotuned.autotune.enabled = True
    corolla = load(args.data, "train", batch_size=128, augment="light", repeat=True)
    images = np.random.default_rng(0).uniform(0, 255, (128, 28, 28, 1)).astype(np.float32)
    feeds = {
        "corolla": corolla,
        "autotuner on": corolla.with_options(autotuned),
        "fixed batch": tf.data.Dataset.from_tensors((images, np.arange(128) % 10)).repeat(),
    }
    steps_per_epoch = -(-describe(args.data).count("train") // 128)
    for name, dataset in feeds.items():  # trace, and fill the RAM cache of the pipeline's first epoch
        model.fit(dataset, steps_per_epoch=steps_per_epoch if name != "fixed batch" else 10, verbose=0)
    timings = {name: [] for name in feeds}
    for _ in range(args.rounds):
        for name, dataset in feeds.items():
            started = time.perf_counter()
            model.fit(dataset, steps_per_epoch=args.steps, verbose=0)
            timings[name].append((time.perf_counter() - started) / args.steps * 1000)
    baseline = statistics.median(timings["corolla"])
    rows = [
        {"feed": name, "ms per step (rounds)": " ".join(f"{value:.0f}" for value in values),
         "median ms": statistics.median(values), "vs corolla": statistics.median(values) / baseline}
        for name, values in timings.items()
    ]
    report("one_core_pipeline" if args.cores != "all" else "one_core_pipeline_all_cores", rows,
           cores=args.cores, schedulable=schedulable_cores(), steps=args.steps, rounds=args.rounds)


if __name__ == "__main__":
    main()
