"""The data `corolla tune` trains its trials on: the train split, with a validation part held out.

The prepared eval split is often the test set (Fashion-MNIST's official one), so it must never
pick a setting. Tune therefore writes, once, a prepared dataset of its own: the original train
records, split per class by a seeded hash of each record's key into `train` and `eval`
(the validation part). Records are copied byte for byte, so the pixels are the ones `prepare`
stored, and every trial is an ordinary `corolla train` of an ordinary prepared folder — the
best config (`best.yaml`) names it and reproduces on it.

Example:
    data = validation_view("data/fm", out="tune/fm/validation-data", fraction=0.1)   # a data dir
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import pathlib

from corolla.data.manifest import MANIFEST, VOCABULARY, Manifest, Shard, Split
from corolla.data.storage import sha256_file
from corolla.errors import CorollaError

SOURCE_FILE = "holdout.json"  # which manifest, fraction and seed this view was cut from
SHARD_BYTES = 100 * 2**20


def validation_view(data_dir: str | os.PathLike, *, out: str | os.PathLike, fraction: float = 0.1, seed: int = 42) -> pathlib.Path:
    """The prepared folder `out`: `data_dir`'s train split cut into train and a validation 'eval' split."""
    if not 0 < fraction < 1:
        raise CorollaError(f"The validation fraction must lie in (0, 1). Received: validation_fraction={fraction}")
    source = Manifest.load(data_dir)  # prepared data only: a clear error otherwise
    out = pathlib.Path(out)
    origin = {"data_dir": str(pathlib.Path(data_dir).resolve()), "manifest_sha256": sha256_file(pathlib.Path(data_dir) / MANIFEST), "fraction": fraction, "seed": seed}
    if (out / MANIFEST).is_file() and (out / SOURCE_FILE).is_file() and json.loads((out / SOURCE_FILE).read_text()) == origin:
        return out  # made earlier by this tune (a resumed one): same records
    import tensorflow as tf

    from corolla.data.records import KEY, LABEL, parse_example

    records = list(tf.data.TFRecordDataset(source.shard_paths("train")).as_numpy_iterator())
    parsed = tf.data.Dataset.from_tensor_slices(records).map(lambda record: parse_example(record, keys=(LABEL, KEY)))
    labels, keys = [], []
    for features in parsed.batch(4096).as_numpy_iterator():
        labels += features[LABEL].tolist()
        keys += features[KEY].tolist()
    held_out = _held_out(labels, keys, fraction=fraction, seed=seed)
    if not held_out:
        raise CorollaError(f"{data_dir} has too few training examples per class to hold any out for validation (each class needs ≥ 2). Add examples, or tune with a larger --validation-fraction.")
    out.mkdir(parents=True, exist_ok=True)
    splits = {}
    for split, chosen in (("train", [i for i in range(len(records)) if i not in held_out]), ("eval", sorted(held_out))):
        splits[split] = _write_split(out, split, [records[i] for i in chosen], [labels[i] for i in chosen], source.classes)
    description = f"{source.source}: train split, {fraction:.0%} per class held out as eval (validation) by corolla tune"
    view = dataclasses.replace(source, source=description, splits=splits, duplicates=[], notes=[], skipped=[], overrides=None, directory=None)
    if source.task == "qa":
        (out / VOCABULARY).write_bytes((pathlib.Path(data_dir) / VOCABULARY).read_bytes())
    view.save(out)
    (out / SOURCE_FILE).write_text(json.dumps(origin, indent=2) + "\n")
    return out


def _held_out(labels: list[int], keys: list[bytes], *, fraction: float, seed: int) -> set[int]:
    """Per class, the round(fraction × n) records (≥ 1 where n ≥ 2) whose seeded key hash is smallest."""
    by_class: dict[int, list[tuple[str, int]]] = {}
    for index, (label, key) in enumerate(zip(labels, keys)):
        by_class.setdefault(label, []).append((hashlib.sha256(f"{seed}:".encode() + key).hexdigest(), index))
    chosen = set()
    for members in by_class.values():
        if len(members) < 2:
            continue
        count = min(len(members) - 1, max(1, round(fraction * len(members))))
        chosen.update(index for _, index in sorted(members)[:count])
    return chosen


def _write_split(out: pathlib.Path, split: str, records: list[bytes], labels: list[int], classes: list[str]) -> Split:
    import tensorflow as tf

    shards = max(1, math.ceil(sum(len(record) for record in records) / SHARD_BYTES))
    files = []
    for shard in range(shards):
        name = f"{split}-{shard:05d}-of-{shards:05d}.tfrecord"
        part = records[shard::shards]
        with tf.io.TFRecordWriter(str(out / name)) as writer:
            for record in part:
                writer.write(record)
        files.append(Shard(name, len(part)))
    per_class = {name: 0 for name in classes}
    for label in labels:
        per_class[classes[label]] += 1
    return Split(len(records), per_class, files)
