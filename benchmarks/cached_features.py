"""Frozen-backbone transfer learning: epoch time with cached backbone features vs without.

EfficientNet-Lite0 (ImageNet weights, frozen), 224×224 photos, no augmentation, the same data
and run length both ways; `cache_features=off` pushes every image through the backbone each
epoch (what the seeds' frozen MobileNetV2 does), `on` runs it once. Goal (issue 5): ≥ 10×.

    .venv/bin/python benchmarks/cached_features.py [--per-class 100] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import OUT, make_photo_folder, report  # noqa: E402


def run(data_dir: str, out: str, *, cache: str, epochs: int) -> dict:
    from corolla.train import train

    started = time.perf_counter()
    train(data_dir, out=out, model="efficientnet_lite0", epochs=epochs, batch_size=32, cache_features=cache, verbose=False)
    wall = time.perf_counter() - started
    history = json.loads(pathlib.Path(out, "history.json").read_text())
    later = history["epoch_seconds"][1:] or history["epoch_seconds"]  # epoch 1 includes tracing
    return {"cache_features": cache, "epoch_seconds": sum(later) / len(later), "wall_seconds": wall, "final_val_accuracy": history["val_accuracy"][-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    from corolla.data.prepare import prepare

    photos = make_photo_folder(OUT / f"photos-{args.classes}x{args.per_class}", classes=args.classes, per_class=args.per_class)
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = str(prepare(str(photos), out=f"{scratch}/data", image_size=224, verbose=False).directory)
        cached = run(data_dir, f"{scratch}/cached", cache="on", epochs=args.epochs)
        plain = run(data_dir, f"{scratch}/plain", cache="off", epochs=args.epochs)
    rows = [{**plain, "speed-up": 1.0}, {**cached, "speed-up": plain["epoch_seconds"] / cached["epoch_seconds"]}]
    report("cached_features", rows, images=args.classes * args.per_class, epochs=args.epochs, model="efficientnet_lite0")


if __name__ == "__main__":
    main()
