"""The Apache Beam steps of `corolla prepare`: validate and encode each image, write shards.

Runs on any Beam runner; `corolla.data.prepare` drives it and turns its outputs into the manifest.
"""

from __future__ import annotations

import json
import os
import uuid
import zlib

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from corolla.data.images import DEFAULT_MAX_PIXELS, InvalidImage
from corolla.data.sources import EVAL, TRAIN, Source, SourceItem


class _EncodeExample(beam.DoFn):
    """Read, validate, normalise and serialize one image; bad files go to the 'skipped' output."""

    def __init__(self, classes, channels, image_size, seed):
        self.classes, self.channels, self.image_size, self.seed = classes, channels, image_size, seed

    def process(self, item: SourceItem):
        from corolla.data.images import prepare_image
        from corolla.data.records import encode_example

        try:
            data = item.data if item.data is not None else _read(item.path)
            prepared = prepare_image(data, channels=self.channels, max_side=self.image_size, max_pixels=DEFAULT_MAX_PIXELS)
        except (InvalidImage, OSError) as error:
            yield beam.pvalue.TaggedOutput("skipped", {"source": item.key, "reason": str(error)})
            return
        serialized = encode_example(prepared, label=item.label, label_text=self.classes[item.label], key=item.key)
        # A seeded hash decides the eval split, spreads classes over shards and orders each shard.
        order = zlib.crc32(f"{self.seed}:{item.key}".encode())
        yield item.split, item.label, order, serialized


def _read(path: str) -> bytes:
    if "://" in path:
        import tensorflow as tf

        try:
            with tf.io.gfile.GFile(path, "rb") as file:
                return file.read()
        except tf.errors.OpError as error:
            raise OSError(f"unreadable: {error.message}") from None
    with open(path, "rb") as file:
        return file.read()


class _WriteShard(beam.DoFn):
    """Write one shard under a temporary name, then rename: a crash never leaves a file that looks whole."""

    def __init__(self, out, shard_counts):
        self.out, self.shard_counts = str(out), shard_counts

    def process(self, element):
        import tensorflow as tf

        (split, shard), records = element
        records = sorted(records, key=lambda record: record[0])
        name = f"{split}-{shard:05d}-of-{self.shard_counts[split]:05d}.tfrecord"
        final = os.path.join(self.out, name)
        temporary = os.path.join(self.out, f".{name}.tmp-{uuid.uuid4().hex[:8]}")
        per_class: dict[int, int] = {}
        with tf.io.TFRecordWriter(temporary) as writer:
            for _, label, serialized in records:
                writer.write(serialized)
                per_class[label] = per_class.get(label, 0) + 1
        tf.io.gfile.rename(temporary, final, overwrite=True)
        yield json.dumps({"split": split, "file": name, "records": len(records), "per_class": per_class})


def eval_threshold(orders: list[int], eval_fraction: float) -> int:
    """Images of a class whose order is below this go to eval: exactly round(n × fraction) of them."""
    orders = sorted(orders)
    n_eval = round(len(orders) * eval_fraction)
    return orders[n_eval] if n_eval < len(orders) else orders[-1] + 1


def _assign_shard(record, thresholds, shard_counts):
    split, label, order, serialized = record
    if split is None:
        split = EVAL if order < thresholds[label] else TRAIN
    return (split, order % shard_counts[split]), (order, label, serialized)


def run_pipeline(items, source: Source, *, out, work, image_size, eval_fraction, shard_counts, seed, beam_args) -> None:
    options = PipelineOptions(beam_args or [])
    with beam.Pipeline(options=options) as pipeline:
        encoded = (
            pipeline
            | "List images" >> beam.Create(items, reshuffle=False)
            | "Reshuffle" >> beam.Reshuffle()  # spread the work evenly over workers
            | "Validate and encode"
            >> beam.ParDo(_EncodeExample(source.classes, source.channels, image_size, seed)).with_outputs("skipped", main="records")
        )
        # Split after validation, so a skipped file never leaves its class short in eval.
        thresholds = (
            encoded.records
            | "Unsplit images" >> beam.Filter(lambda record: record[0] is None)
            | "Order by class" >> beam.Map(lambda record: (record[1], record[2]))
            | "Group orders" >> beam.GroupByKey()
            | "Eval threshold" >> beam.MapTuple(lambda label, orders: (label, eval_threshold(list(orders), eval_fraction)))
        )
        (
            encoded.records
            | "Assign split and shard" >> beam.Map(_assign_shard, beam.pvalue.AsDict(thresholds), shard_counts)
            | "Group by shard" >> beam.GroupByKey()
            | "Write shards" >> beam.ParDo(_WriteShard(out, shard_counts))
            | "Save shard list" >> beam.io.WriteToText(str(work / "shards"), file_name_suffix=".jsonl")
        )
        (
            encoded.skipped
            | "Format skipped" >> beam.Map(json.dumps)
            | "Save skipped" >> beam.io.WriteToText(str(work / "skipped"), file_name_suffix=".jsonl")
        )
