"""`corolla prepare`: images → validated, sharded TFRecords + manifest.json, as an Apache Beam pipeline.

DirectRunner by default; any Beam runner (Dataflow, Flink, Spark) by passing its options.

Example:
    manifest = prepare("photos/", out="data/flowers")
    manifest = prepare("fashion-mnist", out="data/fm")
    manifest = prepare("photos/", out="data/flowers", overrides="fixes.csv")   # key,label: relabel or exclude
"""

from __future__ import annotations

import json
import os
import pathlib

from corolla.data import storage
from corolla.data.clip_manifest import clip_sampling, with_clip_fields
from corolla.data.manifest import MANIFEST, VOCABULARY, Manifest, Shard, Split
from corolla.data.overrides import apply_overrides, read_overrides
from corolla.data.sources import EVAL, TRAIN, Source, resolve_source, split_items, with_eval_source
from corolla.errors import CorollaError

TARGET_SHARD_BYTES = 100 * 2**20  # the seeds' advice: 10s–100s of MB per shard
DEFAULT_IMAGE_SIZE = 224
_WORK = "_prepare_work"


def prepare(
    source: str,
    *,
    out: str | os.PathLike,
    eval_source: str | None = None,
    image_size: int | None = None,
    eval_fraction: float = 0.1,
    shards: int | None = None,
    target_shard_bytes: int = TARGET_SHARD_BYTES,
    labels_file: str | None = None,
    overrides: str | os.PathLike | None = None,
    find_duplicates: bool = True,
    seed: int = 42,
    overwrite: bool = False,
    beam_args: list[str] | None = None,
    kind: str = "auto",
    frames: int | None = None,
    fps: float | None = None,
    max_seconds: float | None = None,
    verbose: bool = True,
) -> Manifest:
    """Prepare `source` (folder, CSV or built-in dataset name) into `out`; returns the manifest.

    `image_size` is the training input size recorded in the manifest; larger images are stored
    resized to exactly image_size × image_size (the whole picture, squashed as the model sees it),
    so loading them is a bare decode of a small JPEG. Files with identical bytes are listed in the manifest's `duplicates`
    (`find_duplicates`), those across train and eval flagged as leaks. `eval_source` gives the eval set; without it `eval_fraction` of each class is held out
    (a built-in dataset keeps its official test set). `beam_args` pass straight to Beam, e.g.
    ["--runner=DataflowRunner", "--project=…", "--temp_location=gs://…"].

    Clips (`kind` "clips", or "auto" finding videos): `frames` (default 16) sampled uniformly over
    each clip's real duration, or every 1/`fps` s; clips longer than `max_seconds` (default 120)
    are skipped. A CSV of `path,question,answer` prepares question answering.

    `overrides`: a CSV of `key,label` lines relabelling items (to an existing or a new class) or,
    with an empty label, excluding them, before the split (see `corolla.data.overrides`).
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    if not 0 <= eval_fraction < 1:
        raise CorollaError(f"eval_fraction must be in [0, 1). Received: eval_fraction={eval_fraction}")
    if shards is not None and shards < 1:
        raise CorollaError(f"shards must be ≥ 1. Received: shards={shards}")
    fixes = read_overrides(overrides) if overrides is not None else None
    resolved = resolve_source(source, labels_file=labels_file, kind=kind)
    if eval_source is not None:
        resolved = with_eval_source(resolved, resolve_source(eval_source, labels_file=labels_file, kind=resolved.kind))
    applied = None
    if fixes is not None:
        resolved, applied = apply_overrides(resolved, fixes, path=str(overrides), labels_file=labels_file)
    noun = "clips" if resolved.kind == "clips" else "images"
    if not resolved.items:
        raise CorollaError(f"No {noun} found in {resolved.description}.")
    clips = clip_sampling(resolved, frames=frames, fps=fps, max_seconds=max_seconds)
    out = str(out) if storage.is_remote(out) else pathlib.Path(out)
    _check_output(out, overwrite)
    console = Console(stderr=True, quiet=not verbose)
    if applied and applied["unmatched"]:
        unmatched = applied["unmatched"]  # files may have been removed since FILE was written: reported, not fatal
        console.print(f"[yellow]warning:[/] {len(unmatched)} key(s) in {escape(str(overrides))} match no item (listed in the manifest), e.g. {escape(repr(unmatched[0]))}", highlight=False)
    image_size = image_size or resolved.native_size or DEFAULT_IMAGE_SIZE
    items = split_items(resolved.items, eval_fraction=eval_fraction, seed=seed)

    work = storage.join(out, _WORK)
    storage.rmtree(work)
    storage.makedirs(work)
    from corolla.data.beam_steps import run_pipeline  # Apache Beam loads only once the inputs checked out

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console) as progress:
        progress.add_task(f"Preparing {len(items):,} {noun} from {resolved.description} (Apache Beam)", total=None)
        run_pipeline(
            items, resolved, work=work, image_size=image_size, clips=clips,
            target_shard_bytes=target_shard_bytes, shards=shards, find_duplicates=find_duplicates, beam_args=beam_args,
        )
    manifest = _finish(work, out, resolved, image_size=image_size, eval_fraction=eval_fraction)
    manifest.overrides = applied
    if clips is not None:
        manifest = with_clip_fields(manifest, work, items, resolved, clips)
    manifest.save(out)  # written last: a folder without manifest.json is an unfinished prepare
    storage.rmtree(work)
    return manifest


def _check_output(out, overwrite: bool) -> None:
    if not storage.listdir(out):
        return
    if not overwrite:
        raise CorollaError(f"Output folder {out} is not empty. Pass --overwrite to replace what is there, or choose another --out.")
    for old in [storage.join(out, MANIFEST), storage.join(out, "labels.txt"), storage.join(out, VOCABULARY), *storage.glob(storage.join(out, "*.tfrecord"))]:
        storage.remove(old)  # the manifest first, so an interrupted overwrite never looks complete


def _jsonl(work: str, prefix: str) -> list[dict]:
    paths = storage.glob(storage.join(work, f"{prefix}*.jsonl"))
    return [json.loads(line) for path in paths for line in storage.read_text(path).splitlines()]


def _finish(work: str, out, source: Source, *, image_size, eval_fraction) -> Manifest:
    """Rename the committed temporary shards to their final names and count everything."""
    shards, skipped = _jsonl(work, "shards"), _jsonl(work, "skipped")
    splits = {}
    for split in (TRAIN, EVAL):
        mine = sorted((shard for shard in shards if shard["split"] == split), key=lambda shard: shard["file"])
        per_class = {name: 0 for name in source.classes}
        final = []
        for index, shard in enumerate(mine):
            name = f"{split}-{index:05d}-of-{len(mine):05d}.tfrecord"
            storage.rename(shard["file"], storage.join(out, name))
            final.append(Shard(file=name, records=shard["records"]))
            for label, count in shard["per_class"].items():
                per_class[source.classes[int(label)]] += count
        if mine:
            splits[split] = Split(count=sum(shard.records for shard in final), per_class=per_class, shards=final)
    if TRAIN not in splits:
        noun = "clips" if source.kind == "clips" else "images"
        reasons = "; ".join(f"{entry['source']}: {entry['reason']}" for entry in skipped[:3])
        raise CorollaError(f"No usable training {noun} in {source.description}: all {len(skipped)} were skipped (e.g. {reasons}).")
    eval_counts = splits[EVAL].per_class if EVAL in splits else {}
    notes = [
        f"class '{name}' has {count} usable training image(s) and none for eval"
        for name, count in splits[TRAIN].per_class.items()
        if count and eval_fraction > 0 and not eval_counts.get(name)
    ]
    duplicates = _duplicates(shards)
    leaks = sum(group["across_splits"] for group in duplicates)
    if leaks:
        notes.append(f"{leaks} image(s) appear in both train and eval (identical bytes): see 'duplicates' in the manifest")
    return Manifest(
        off_size_images=sum(shard.get("off_size", 0) for shard in shards),
        duplicates=duplicates,
        source=source.description,
        classes=source.classes,
        image_size=image_size,
        channels=source.channels,
        splits=splits,
        skipped=sorted(source.skipped + skipped, key=lambda entry: entry["source"]),
        notes=notes,
        directory=out,
    )


def _duplicates(shards: list[dict]) -> list[dict]:
    """Groups of source files with identical bytes; those spanning train and eval are leaks."""
    by_content: dict[str, list[dict]] = {}
    for shard in shards:
        for sha1, key in shard.get("hashes", []):
            by_content.setdefault(sha1, []).append({"source": key, "split": shard["split"]})
    groups = [
        {"sha1": sha1, "sources": sorted(sources, key=lambda entry: entry["source"]), "across_splits": len({e["split"] for e in sources}) > 1}
        for sha1, sources in by_content.items()
        if len(sources) > 1
    ]
    return sorted(groups, key=lambda group: group["sources"][0]["source"])
