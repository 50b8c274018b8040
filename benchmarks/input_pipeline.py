"""Input pipeline: images/s delivered at 224×224, batch 64 — corolla's shards vs image_dataset_from_directory.

Same 2,000 source JPEGs (500×375, 5 classes), same run, one full pass each, no caching for either
(first-epoch speed), then corolla's pipeline again with its RAM cache warm. Goal (issue 3): ≥ 3×.

    .venv/bin/python benchmarks/input_pipeline.py [--images 2000]
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import OUT, make_photo_folder, report  # noqa: E402


def images_per_second(dataset, passes: int = 1) -> float:
    count, started = 0, time.perf_counter()
    for _ in range(passes):
        for images, _ in dataset:
            count += int(images.shape[0])
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from corolla.data.pipeline import load
    from corolla.data.prepare import prepare

    photos = make_photo_folder(OUT / "photos", per_class=args.images // 5)
    data = OUT / "photos-prepared"
    prepare(str(photos), out=data, image_size=224, eval_fraction=0.0, overwrite=True, verbose=False)

    reference = keras.utils.image_dataset_from_directory(
        str(photos), image_size=(224, 224), batch_size=64, shuffle=True, seed=1
    ).prefetch(tf.data.AUTOTUNE)
    ours = load(data, "train", batch_size=64, cache=False)
    cached = load(data, "train", batch_size=64, cache=True)
    images_per_second(cached)  # fill the cache

    # Alternate and keep each one's best, so background load biases neither side.
    keras_rate = corolla_rate = cached_rate = 0.0
    for _ in range(args.rounds):
        keras_rate = max(keras_rate, images_per_second(reference))
        corolla_rate = max(corolla_rate, images_per_second(ours))
        cached_rate = max(cached_rate, images_per_second(cached))
    rows = [
        {"pipeline": "keras image_dataset_from_directory (source JPEGs)", "images_per_s": keras_rate, "ratio": 1.0},
        {"pipeline": "corolla load (prepared shards, no cache)", "images_per_s": corolla_rate, "ratio": corolla_rate / keras_rate},
        {"pipeline": "corolla load (prepared shards, RAM cache warm)", "images_per_s": cached_rate, "ratio": cached_rate / keras_rate},
    ]
    report("input_pipeline", rows, images=args.images, image_size=224, batch_size=64, source=str(pathlib.Path(photos)))


if __name__ == "__main__":
    main()
