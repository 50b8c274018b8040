"""The Apache Beam steps of `corolla prepare`: validate, encode and write each image, streaming.

There is deliberately no GroupByKey over image data: DirectRunner keeps every shuffle in memory,
so each bundle writes its records straight into rolling temporary shard files (about
`target_shard_bytes` each) as it goes. Memory stays flat whatever the dataset size. The files and
their record counts are output from `finish_bundle`, so only committed bundles are counted; the
driver (`corolla.data.prepare`) renames them to their final names.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import uuid

import tensorflow as tf

GCP_PROBE = "apitools not found"  # Beam's own message when its optional GCP clients are absent


class _NotTheGcpProbe(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(GCP_PROBE)


@contextlib.contextmanager
def _without_gcp_probe_warning():
    """Drop the one warning Beam logs at import when its GCP clients are missing (no GCP is involved here).

    Beam logs it with `logging.warning`, straight to the root logger, which also installs a root
    handler on the way (`basicConfig`). A filter on the root logger drops that record and nothing
    else; where no handler exists yet, a temporary one of basicConfig's own format stands in for
    the import, so any other warning still prints as it would have and no handler is left behind.
    """
    root, probe = logging.getLogger(), _NotTheGcpProbe()
    standin = None if root.handlers else logging.StreamHandler()
    if standin is not None:
        standin.setFormatter(logging.Formatter(logging.BASIC_FORMAT))
        root.addHandler(standin)
    root.addFilter(probe)
    try:
        yield
    finally:
        root.removeFilter(probe)
        if standin is not None:
            root.removeHandler(standin)


with _without_gcp_probe_warning():
    import apache_beam as beam
    from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions
    from apache_beam.transforms.window import GlobalWindow
    from apache_beam.utils.windowed_value import WindowedValue

from corolla.cores import schedulable_cores
from corolla.data import storage
from corolla.data.images import DEFAULT_MAX_PIXELS, InvalidImage, prepare_image
from corolla.data.clip_sources import read_clip_item
from corolla.data.records import encode_clip_example, encode_example
from corolla.data.sources import BUILTIN, Source, SourceItem, builtin_image

CHUNK = 64  # images per Beam element
CLIP_CHUNK = 4  # clips per Beam element: one clip is ~frames× an image's work, and small elements spread over the workers


def read_bytes(path: str) -> bytes:
    """Local paths with open(); built-in dataset references; other schemes (gs://, s3://…) through tf.io.gfile."""
    if path.startswith(BUILTIN):
        return builtin_image(path)
    if "://" not in path:
        with open(path, "rb") as file:
            return file.read()
    try:
        with tf.io.gfile.GFile(path, "rb") as file:
            return file.read()
    except tf.errors.OpError as error:
        raise OSError(f"unreadable: {error.message}") from None


class _RollingWriter:
    """One temporary TFRecord file at a time per split, rolled over at `target_bytes`."""

    def __init__(self, work: str, split: str, target_bytes: int):
        self.work, self.split, self.target_bytes = work, split, target_bytes
        self.writer, self.closed = None, []

    def write(self, serialized: bytes, label: int, content: tuple[str, str] | None, *, off_size: bool, clip=None) -> None:
        if self.writer is None:
            self.path = storage.join(self.work, f"{self.split}-{uuid.uuid4().hex}.tfrecord")
            self.writer, self.records, self.bytes, self.per_class = tf.io.TFRecordWriter(self.path), 0, 0, {}
            self.hashes, self.off_size, self.clip_stats = [], 0, {}
        if clip is not None:
            add_clip_stats(self.clip_stats, clip)
        self.writer.write(serialized)
        if content:
            self.hashes.append(content)
        self.records += 1
        self.off_size += off_size
        self.bytes += len(serialized)
        self.per_class[label] = self.per_class.get(label, 0) + 1
        if self.bytes >= self.target_bytes:
            self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.closed.append(
                {"split": self.split, "file": self.path, "records": self.records, "per_class": self.per_class, "hashes": self.hashes,
                 "off_size": self.off_size, "clip_stats": self.clip_stats}
            )
            self.writer = None


def add_clip_stats(stats: dict, clip) -> None:
    """Running count, sum, min and max of a clip's frames, duration and frame rate (merged by `prepare`)."""
    for name, value in (("frames", len(clip.frames)), ("duration_s", clip.info.duration_s), ("fps", clip.info.fps)):
        entry = stats.setdefault(name, {"count": 0, "sum": 0.0, "min": value, "max": value})
        entry["count"] += 1
        entry["sum"] += value
        entry["min"], entry["max"] = min(entry["min"], value), max(entry["max"], value)
    stats["variable_frame_rate"] = stats.get("variable_frame_rate", 0) + int(clip.info.variable_frame_rate)


class _EncodeAndWrite(beam.DoFn):
    """Read, validate, normalise, serialize and write one image or clip; bad files go to the 'skipped' output.

    `clips`: None for images, else how clips are sampled ({"frames": N} or {"fps": F}, "max_seconds").
    """

    def __init__(self, classes, channels, image_size, work, target_bytes, shards, find_duplicates, clips=None):
        self.classes, self.channels, self.image_size = classes, channels, image_size
        self.work, self.target_bytes, self.shards, self.find_duplicates = str(work), target_bytes, shards, find_duplicates
        self.clips = clips

    def start_bundle(self):
        self.writers: dict[tuple[str, int], _RollingWriter] = {}
        self.seen: dict[str, int] = {}

    def process(self, line: str):
        for fields in json.loads(line):
            yield from self._encode_and_write(SourceItem(**fields))

    def _encode_and_write(self, item: SourceItem):
        clip = None
        try:
            if self.clips is not None:
                data, clip = read_clip_item(item.path, image_size=self.image_size, **self.clips)
            else:
                data = read_bytes(item.path)
                prepared = prepare_image(data, channels=self.channels, image_size=self.image_size, max_pixels=DEFAULT_MAX_PIXELS)
        except (InvalidImage, OSError) as error:
            yield beam.pvalue.TaggedOutput("skipped", {"source": item.key, "split": item.split, "reason": str(error)})
            return
        # A clip asked several questions is one example per question: the question is part of its content.
        content = (hashlib.sha1(data + item.question.encode("utf-8")).hexdigest(), item.key) if self.find_duplicates and data else None
        label_text = self.classes[item.label]
        if clip is not None:
            serialized = encode_clip_example(clip, label=item.label, label_text=label_text, key=item.key, question=item.question)
            prepared = clip
        else:
            serialized = encode_example(prepared, label=item.label, label_text=label_text, key=item.key)
        # --shards N: round-robin over N files per split (exactly N on the DirectRunner); else roll over by size.
        slot = self.seen.get(item.split, 0) % self.shards if self.shards else 0
        self.seen[item.split] = self.seen.get(item.split, 0) + 1
        if (item.split, slot) not in self.writers:
            target = float("inf") if self.shards else self.target_bytes
            self.writers[item.split, slot] = _RollingWriter(self.work, item.split, target)
        off_size = (prepared.width, prepared.height) != (self.image_size, self.image_size)  # loading must resize these
        self.writers[item.split, slot].write(serialized, item.label, content, off_size=off_size, clip=clip)

    def finish_bundle(self):
        for writer in self.writers.values():
            writer.close()
            for shard in writer.closed:
                yield WindowedValue(json.dumps(shard), GlobalWindow().max_timestamp(), [GlobalWindow()])


def _options(beam_args: list[str], *, image_files: bool) -> PipelineOptions:
    """The user's Beam options; on the DirectRunner, by default one thread per core for image files.

    Threads, not processes: Pillow and TensorFlow release the GIL while decoding and encoding
    photos, which measured 1.5x the single worker on 2 cores while processes measured 0.7x. Tiny
    in-memory images (the built-in arrays) are Python-bound: threads made them 1.6x slower, so
    they stay on one worker (benchmarks/RESULTS.md).
    """
    options = PipelineOptions(beam_args)
    direct = options.view_as(DirectOptions)
    if image_files and not any(arg.startswith(("--direct_num_workers", "--direct_running_mode")) for arg in beam_args):
        direct.direct_num_workers = schedulable_cores()
        direct.direct_running_mode = "multi_threading"
    return options


def run_pipeline(
    items: list[SourceItem], source: Source, *, work, image_size, target_shard_bytes, shards, find_duplicates, beam_args, clips=None
) -> None:
    """Write every valid item into temporary shards under `work`, plus shards*.jsonl and skipped*.jsonl.

    With `find_duplicates`, each shard's entry lists the (sha1, key) of its source files.
    """
    # The item list goes through a file, not beam.Create (which pickles and bz2-compresses every
    # element into the pipeline graph); a line holds CHUNK items to amortise per-element overhead.
    listing = storage.join(work, "items.jsonl")
    chunk = CLIP_CHUNK if clips is not None else CHUNK
    with storage.open_file(listing, "w") as file:
        for start in range(0, len(items), chunk):
            file.write(json.dumps([dataclasses.asdict(item) for item in items[start : start + chunk]]) + "\n")
    # --shards N is exact only on one worker (each parallel bundle would write its own N files).
    image_files = shards is None and not all(item.path.startswith(BUILTIN) for item in items)
    with beam.Pipeline(options=_options(beam_args or [], image_files=image_files)) as pipeline:
        listed = pipeline | "List images" >> beam.io.ReadFromText(listing)
        if image_files:  # the listing is one small file, read as one bundle: without this, one worker does everything
            listed = listed | "Spread over workers" >> beam.Reshuffle()
        encoded = (
            listed
            | "Validate, encode, write"
            >> beam.ParDo(
                _EncodeAndWrite(source.classes, source.channels, image_size, work, target_shard_bytes, shards, find_duplicates, clips)
            ).with_outputs("skipped", main="shards")
        )
        encoded.shards | "Save shard list" >> beam.io.WriteToText(storage.join(work, "shards"), file_name_suffix=".jsonl")
        (
            encoded.skipped
            | "Format skipped" >> beam.Map(json.dumps)
            | "Save skipped" >> beam.io.WriteToText(storage.join(work, "skipped"), file_name_suffix=".jsonl")
        )
