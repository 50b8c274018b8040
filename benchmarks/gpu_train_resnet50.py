"""GPU training throughput: ResNet-50, mixed_bfloat16, XLA, batch 256 — and whether the input or the model limits it.

Goal (issue 5): ≥ 5,000 img/s on one H100. Three measurements in one process, same compiled model:

  synthetic   one in-memory batch repeated (no decode): what the model can take. The host→device
              copy stays, as in real training, so the gap to `pipeline` is decode/resize/shuffle.
  pipeline    synthetic JPEGs written as TFRecord shards in corolla's schema, read by
              `corolla.data.pipeline.load` (interleave, decode, resize, shuffle, batch, prefetch),
              uncached by default as with ImageNet-sized data: what `corolla train` sees.
  input only  the same pipeline iterated without the model: what the CPU can feed.

    python benchmarks/gpu_train_resnet50.py                 # 224 px, batch 256, 20 warm-up + 100 timed steps
    python benchmarks/gpu_train_resnet50.py --smoke         # CPU check: 64 px, batch 8, 3 steps (any machine)

Writes benchmarks/out/gpu_train_resnet50.json (--smoke: gpu_train_resnet50-smoke.json). Needs only
this repository and TensorFlow + Keras (no network).

Measured: not yet on a GPU (no GPU was lent to the session that wrote it; see docs/distributed.md).
"""

from __future__ import annotations

import argparse
import io
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from common import report  # noqa: E402

GOAL = 5_000  # img/s on one H100 (issue 5)


def write_shards(folder: pathlib.Path, *, images: int, image_size: int, classes: int, shards: int, seed: int = 0):
    """Synthetic photos (gradients + noise, JPEG q90, 4:3, shorter side = image_size) as prepared shards + manifest."""
    import numpy as np
    import tensorflow as tf
    from PIL import Image

    from corolla.data import records
    from corolla.data.images import PreparedImage
    from corolla.data.manifest import Manifest, Shard, Split

    rng = np.random.default_rng(seed)
    height, width = image_size, image_size * 4 // 3
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    names = [f"class_{index}" for index in range(classes)]
    per_shard = [[] for _ in range(shards)]
    for index in range(images):
        angle, label = rng.uniform(0, 2 * np.pi), index % classes
        wave = np.sin((x * np.cos(angle) + y * np.sin(angle)) / rng.uniform(10, 60))
        pixels = rng.uniform(40, 215, 3) + 40 * wave[..., None] + rng.normal(0, 12, (height, width, 3))
        buffer = io.BytesIO()
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
        image = PreparedImage(buffer.getvalue(), "jpeg", width, height)
        per_shard[index % shards].append(records.encode_example(image, label=label, label_text=names[label], key=f"synthetic/{index}.jpg"))
    split_shards = []
    for number, examples in enumerate(per_shard):
        name = f"train-{number:05d}-of-{shards:05d}.tfrecord"
        with tf.io.TFRecordWriter(str(folder / name)) as writer:
            for example in examples:
                writer.write(example)
        split_shards.append(Shard(name, len(examples)))
    per_class = {name: images // classes + (index < images % classes) for index, name in enumerate(names)}
    manifest = Manifest(source="synthetic", classes=names, image_size=image_size, channels=3, splits={"train": Split(images, per_class, split_shards)})
    manifest.save(folder)
    return Manifest.load(folder)


def synthetic_dataset(*, batch_size: int, image_size: int, classes: int):
    import tensorflow as tf

    images = tf.random.uniform([batch_size, image_size, image_size, 3], 0, 255, seed=1)
    labels = tf.random.uniform([batch_size], 0, classes, dtype=tf.int32, seed=2)
    return tf.data.Dataset.from_tensors((images, labels)).repeat()


class StepTimer:
    """Wall time between the end of warm-up and the end of the last step, synchronised on the loss at both ends."""

    def __init__(self, warmup: int):
        import keras

        timer = self

        class Callback(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if batch == warmup - 1 or batch == timer.last:
                    float(logs["loss"])  # waits for the device
                    timer.marks.append(time.perf_counter())

        self.warmup, self.marks, self.last, self.callback = warmup, [], None, Callback()

    def images_per_second(self, model, dataset, *, steps: int, batch_size: int) -> float:
        self.marks, self.last = [], self.warmup + steps - 1
        model.fit(dataset, epochs=1, steps_per_epoch=self.warmup + steps, callbacks=[self.callback], shuffle=False, verbose=0)
        return steps * batch_size / (self.marks[-1] - self.marks[0])


def input_only(dataset, *, steps: int, warmup: int, batch_size: int) -> float:
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    started = time.perf_counter()
    for _ in range(steps):
        images, _ = next(iterator)
    images.numpy()
    return steps * batch_size / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="Tiny settings that run anywhere in a minute: 64 px, batch 8, 3 steps.")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=100, help="Timed steps per measurement.")
    parser.add_argument("--warmup", type=int, default=20, help="Untimed steps first (XLA compilation, autotuning).")
    parser.add_argument("--images", type=int, default=4096, help="Synthetic JPEGs written for the pipeline (repeated as needed).")
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--precision", default="mixed_bfloat16", help="Keras dtype policy.")
    parser.add_argument("--jit", choices=("auto", "on", "off"), default="auto", help="XLA: auto is on for GPU/TPU, off on CPU.")
    parser.add_argument("--cache", action="store_true", help="Let the pipeline cache decoded images in RAM (off: decode every step, as with ImageNet).")
    parser.add_argument("--augment", default="none", help="corolla augmentation preset in the pipeline (none, light, standard).")
    args = parser.parse_args()
    if args.smoke:
        args.batch_size, args.image_size, args.steps, args.warmup, args.images, args.shards = 8, 64, 3, 1, 64, 2
    if min(args.batch_size, args.steps, args.warmup, args.images, args.shards) < 1:
        parser.error("--batch-size, --steps, --warmup, --images and --shards must be ≥ 1")
    classes = 1000

    import keras
    import tensorflow as tf

    from corolla.cores import schedulable_cores
    from corolla.data.pipeline import load
    from corolla.models import build_model
    from corolla.train.distribute import device_kind, use_xla

    kind = device_kind()
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:  # before anything starts the runtime
        tf.config.experimental.set_memory_growth(gpu, True)
    details = [tf.config.experimental.get_device_details(gpu) for gpu in gpus]
    if not gpus:
        print("No GPU found: this measures the CPU (the figure the issue asks for needs a GPU).", file=sys.stderr)
    jit = use_xla(kind) if args.jit == "auto" else args.jit == "on"
    keras.mixed_precision.set_global_policy(args.precision)
    keras.utils.set_random_seed(0)
    model = build_model("resnet50", input_shape=(args.image_size, args.image_size, 3), num_classes=classes)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),  # the seeds' ResNet recipe
        loss="sparse_categorical_crossentropy",
        jit_compile=jit,
    )
    timer = StepTimer(args.warmup)
    measure = dict(steps=args.steps, batch_size=args.batch_size)
    rows = []

    def row(name: str, images_per_second: float, note: str) -> None:
        rows.append({"measurement": name, "images_per_s": images_per_second, "ms_per_step": 1000 * args.batch_size / images_per_second, "note": note})
        print(f"{name}: {images_per_second:,.0f} img/s", flush=True)

    row("synthetic (in-memory, no decode)", timer.images_per_second(model, synthetic_dataset(batch_size=args.batch_size, image_size=args.image_size, classes=classes), **measure), "model ceiling")
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        manifest = write_shards(pathlib.Path(scratch), images=args.images, image_size=args.image_size, classes=classes, shards=args.shards)
        print(f"wrote {args.images} JPEGs in {args.shards} shards in {time.perf_counter() - started:.1f} s", flush=True)
        dataset = load(scratch, "train", batch_size=args.batch_size, augment=args.augment, repeat=True, cache=args.cache, manifest=manifest)
        row("pipeline (corolla.data.pipeline.load)", timer.images_per_second(model, dataset, **measure), "what corolla train sees")
        row("input only (no model)", input_only(dataset, warmup=args.warmup, **measure), f"tf.data AUTOTUNE on {schedulable_cores()} cores")

    model_speed, pipeline_speed, input_speed = (entry["images_per_s"] for entry in rows)
    if pipeline_speed >= 0.9 * model_speed:
        verdict = f"model ({kind.upper()}): the pipeline keeps up with it"
    elif input_speed < model_speed:
        verdict = f"input pipeline: the CPU feeds {input_speed:,.0f} img/s, the model could take {model_speed:,.0f}"
    else:
        verdict = f"input pipeline, sharing the CPU: alone it feeds {input_speed:,.0f} img/s, but only {pipeline_speed:,.0f} while training"
    if args.smoke:
        verdict += " (smoke settings: a check that the script runs, not a figure)"
    print(f"bottleneck: {verdict}")
    if gpus and not args.smoke:
        print(f"goal ≥ {GOAL:,} img/s on one H100: {'met' if pipeline_speed >= GOAL else 'NOT met'} ({pipeline_speed:,.0f} img/s)")
    report(
        "gpu_train_resnet50-smoke" if args.smoke else "gpu_train_resnet50",
        rows,
        bottleneck=verdict,
        device=kind,
        gpu_details=[{key: str(value) for key, value in detail.items()} for detail in details],
        settings={"batch_size": args.batch_size, "image_size": args.image_size, "steps": args.steps, "warmup": args.warmup, "precision": args.precision,
                  "jit_compile": jit, "cache": args.cache, "augment": args.augment, "images": args.images, "shards": args.shards, "keras": keras.__version__},
        goal_images_per_s=GOAL,
    )  # fmt: skip


if __name__ == "__main__":
    main()
