"""`corolla prepare`: images → validated, sharded TFRecords + manifest.json, as an Apache Beam pipeline.

DirectRunner by default; any Beam runner (Dataflow, Flink, Spark) by passing its options.

Example:
    manifest = prepare("photos/", out="data/flowers")
    manifest = prepare("fashion-mnist", out="data/fm")
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import shutil

from corolla.data.manifest import MANIFEST, Manifest, Shard, Split
from corolla.data.sources import EVAL, TRAIN, Source, SourceItem, resolve_source
from corolla.errors import CorollaError

TARGET_SHARD_BYTES = 100 * 2**20  # the seeds' advice: 10s–100s of MB per shard
DEFAULT_IMAGE_SIZE = 224
_WORK = "_prepare_work"


def prepare(
    source: str,
    *,
    out: str | os.PathLike,
    image_size: int | None = None,
    eval_fraction: float = 0.1,
    shards: int | None = None,
    labels_file: str | None = None,
    seed: int = 42,
    overwrite: bool = False,
    beam_args: list[str] | None = None,
    verbose: bool = True,
) -> Manifest:
    """Prepare `source` (folder, CSV or built-in dataset name) into `out`; returns the manifest.

    `image_size` is the training input size recorded in the manifest; stored images are
    shrunk so their shorter side is at most that (never enlarged). `beam_args` pass straight
    to Beam, e.g. ["--runner=DataflowRunner", "--project=…", "--temp_location=gs://…"].
    """
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    if not 0 <= eval_fraction < 1:
        raise CorollaError(f"eval_fraction must be in [0, 1). Received: eval_fraction={eval_fraction}")
    resolved = resolve_source(source, labels_file=labels_file)
    if not resolved.items:
        raise CorollaError(f"No images found in {resolved.description}.")
    out = pathlib.Path(out)
    _check_output(out, overwrite)
    console = Console(stderr=True, quiet=not verbose)
    image_size = image_size or resolved.native_size or DEFAULT_IMAGE_SIZE
    items = resolved.items
    shard_counts = {split: shards or _auto_shards(items, split, eval_fraction) for split in (TRAIN, EVAL)}

    out.mkdir(parents=True, exist_ok=True)
    work = out / _WORK
    shutil.rmtree(work, ignore_errors=True)
    from corolla.data.beam_steps import run_pipeline  # Apache Beam loads only once the inputs checked out

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console) as progress:
        progress.add_task(f"Preparing {len(items):,} images from {resolved.description} (Apache Beam)", total=None)
        run_pipeline(
            items, resolved, out=out, work=work, image_size=image_size, eval_fraction=eval_fraction,
            shard_counts=shard_counts, seed=seed, beam_args=beam_args,
        )
    manifest = _collect(work, resolved, image_size=image_size, eval_fraction=eval_fraction, directory=out)
    manifest.save(out)
    shutil.rmtree(work, ignore_errors=True)
    return manifest


def _check_output(out: pathlib.Path, overwrite: bool) -> None:
    if not out.exists() or not any(out.iterdir()):
        return
    if not overwrite:
        raise CorollaError(f"Output folder {out} is not empty. Pass --overwrite to replace what is there, or choose another --out.")
    for old in list(out.glob("*.tfrecord")) + [out / MANIFEST, out / "labels.txt"]:
        old.unlink(missing_ok=True)


def _auto_shards(items: list[SourceItem], split: str, eval_fraction: float) -> int:
    share = {None: eval_fraction if split == EVAL else 1 - eval_fraction, split: 1.0}
    total = sum(
        share.get(item.split, 0.0) * (len(item.data) if item.data is not None else _size(item.path)) for item in items
    )
    return max(1, math.ceil(total / TARGET_SHARD_BYTES))


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 100_000  # remote (gs://) or unreadable: a typical photo's size is a fine guess


def _collect(work: pathlib.Path, source: Source, *, image_size, eval_fraction, directory) -> Manifest:
    shards = [json.loads(line) for path in sorted(work.glob("shards*.jsonl")) for line in path.read_text().splitlines()]
    skipped = [json.loads(line) for path in sorted(work.glob("skipped*.jsonl")) for line in path.read_text().splitlines()]
    splits = {}
    for split in (TRAIN, EVAL):
        mine = sorted((shard for shard in shards if shard["split"] == split), key=lambda shard: shard["file"])
        per_class = {name: 0 for name in source.classes}
        for shard in mine:
            for label, count in shard["per_class"].items():
                per_class[source.classes[int(label)]] += count
        if mine:
            splits[split] = Split(
                count=sum(shard["records"] for shard in mine),
                per_class=per_class,
                shards=[Shard(file=shard["file"], records=shard["records"]) for shard in mine],
            )
    if TRAIN not in splits:
        raise CorollaError(f"No usable training images in {source.description}: all {len(skipped)} were skipped.")
    eval_counts = splits[EVAL].per_class if EVAL in splits else {}
    notes = [
        f"class '{name}' has {count} usable image(s), too few for a {eval_fraction:.0%} eval split; all went to train"
        for name, count in splits[TRAIN].per_class.items()
        if count and eval_fraction > 0 and not eval_counts.get(name)
    ]
    return Manifest(
        source=source.description,
        classes=source.classes,
        image_size=image_size,
        channels=source.channels,
        splits=splits,
        skipped=sorted(source.skipped + skipped, key=lambda entry: entry["source"]),
        notes=notes,
        directory=directory,
    )
