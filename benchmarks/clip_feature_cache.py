"""Clips with a frozen pretrained encoder: epoch time of `clip_lstm` with cached frame features vs without.

`clip_lstm` (EfficientNet-Lite0 frame encoder with the ImageNet weights of the installed package,
frozen; LSTM 128; no augmentation) on the same prepared clips (tests/clipgen.py: MP4/H.264,
2 classes, 2–4 s, prepared at --frames and --image-size). `cache_features="auto"` (the default
when the encoder is frozen and there is no augmentation) runs the encoder once over every frame
of train and eval, then trains only the head (LSTM, Dropout, Dense) on the stored features;
`"off"` pushes every frame through the encoder every epoch. Per-epoch times are read from
RUN_DIR/history.json (`epoch_seconds`, which includes the eval pass and the checkpoint writes;
median of epochs 2…N: epoch 1 traces the graphs), the one feature pass from `feature_pass`.
`train_clips_per_s` is training alone (`images_per_second` / `head_images_per_second`: clips a
second with the eval pass timed apart).
Goal: head epoch ≥ 10× faster than an uncached epoch.

    .venv/bin/python benchmarks/clip_feature_cache.py [--clips 100] [--frames 16] [--image-size 64] [--epochs 5]
    .venv/bin/python benchmarks/clip_feature_cache.py --image-size 96 --name clip_feature_cache_96
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import tempfile
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import make_clip_folder, report  # noqa: E402

SCRATCH = pathlib.Path(tempfile.gettempdir()) / "corolla-bench"


def run(data_dir: str, out: str, *, cache: str, epochs: int, batch_size: int) -> dict:
    from corolla.train import train

    started = time.perf_counter()
    train(data_dir, out=out, model="clip_lstm", epochs=epochs, batch_size=batch_size, cache_features=cache, overwrite=True, verbose=False)
    wall = time.perf_counter() - started
    history = json.loads(pathlib.Path(out, "history.json").read_text())
    later = history["epoch_seconds"][1:] or history["epoch_seconds"]  # epoch 1 includes tracing
    speed = history.get("head_images_per_second") or history["images_per_second"]
    feature_pass = history.get("feature_pass")
    return {
        "cache_features": cache,
        "features_cached": feature_pass is not None,
        "epoch_seconds": statistics.median(later),
        "first_epoch_seconds": history["epoch_seconds"][0],
        "train_clips_per_s": statistics.median(speed[1:] or speed),
        "feature_pass_seconds": feature_pass["seconds"] if feature_pass else "",
        "feature_pass_clips": feature_pass["images"] if feature_pass else "",
        "wall_seconds": wall,
        "final_val_accuracy": history["val_accuracy"][-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=100)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--name", default="clip_feature_cache", help="name of the JSON written to benchmarks/out/")
    args = parser.parse_args()

    from corolla.data.prepare import prepare

    began = time.perf_counter()
    clips = make_clip_folder(SCRATCH / f"clips-{args.clips}", clips=args.clips, seed=args.clips)
    with tempfile.TemporaryDirectory() as scratch:
        manifest = prepare(str(clips), out=f"{scratch}/data", kind="clips", frames=args.frames, image_size=args.image_size, verbose=False)
        data_dir = str(manifest.directory)
        common = dict(epochs=args.epochs, batch_size=args.batch_size)
        cached = run(data_dir, f"{scratch}/cached", cache="auto", **common)
        plain = run(data_dir, f"{scratch}/plain", cache="off", **common)
    if not cached["features_cached"] or plain["features_cached"]:
        raise SystemExit(f"expected features cached with auto and not with off: {cached}, {plain}")
    rows = [
        {**plain, "epoch_speed_up": 1.0, "training_speed_up": 1.0},
        {**cached, "epoch_speed_up": plain["epoch_seconds"] / cached["epoch_seconds"],
         "training_speed_up": cached["train_clips_per_s"] / plain["train_clips_per_s"]},
    ]  # fmt: skip
    report(
        args.name, rows, clips=args.clips, train_clips=manifest.count("train"), eval_clips=manifest.count("eval"),
        frames=args.frames, image_size=args.image_size, epochs=args.epochs, batch_size=args.batch_size,
        model="clip_lstm (efficientnet_lite0, imagenet, frozen)", wall_seconds=time.perf_counter() - began,
    )  # fmt: skip


if __name__ == "__main__":
    main()
