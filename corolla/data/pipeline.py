"""The tf.data input pipeline, and the one decode/resize that training, evaluation and export share.

Example:
    dataset = load("data/fm", "train", batch_size=128, augment="light")   # (float32 [B, H, W, C] in 0..255, int32 [B])
    dataset = load("photos/", "train")        # direct from a folder of class sub-folders, no `prepare`
"""

from __future__ import annotations

import functools
import math
import os

import tensorflow as tf

from corolla.cores import schedulable_cores
from corolla.data import records
from corolla.data.manifest import Manifest, describe
from corolla.errors import CorollaError

AUTOTUNE = tf.data.AUTOTUNE
CACHE_LIMIT_BYTES = 2 * 2**30  # decoded images cached in RAM up to this size


def finish(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Prefetch, and on a single core turn tf.data's autotuner off.

    On one core the autotuner's own work competes with the training step: a fastnet-24 step
    (batch 128) took 171 ms with it and 101–111 ms without (`taskset -c 0`,
    benchmarks/one_core_pipeline.py). Without it each AUTOTUNE parallelism is the core count, here 1.
    On two cores or more the two measured alike, so it stays on there.
    """
    dataset = dataset.prefetch(AUTOTUNE)
    if schedulable_cores() > 1:
        return dataset
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def resize(image: tf.Tensor, *, image_size: int) -> tf.Tensor:
    """Any image → float32 [image_size, image_size, c], bilinear (no crop).

    An image already of that size (what `prepare` stores) is only cast. Antialiasing only when
    shrinking more than 2× (a big photo sent to the server): it costs 4× the plain resize and
    changes nothing visible on smaller factors.
    """
    size = [image_size, image_size]
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    image = tf.case(
        [
            (tf.logical_and(tf.equal(height, image_size), tf.equal(width, image_size)), lambda: tf.cast(image, tf.float32)),
            (tf.maximum(height, width) > 2 * image_size, lambda: tf.image.resize(image, size, method="bilinear", antialias=True)),
        ],
        default=lambda: tf.image.resize(image, size, method="bilinear"),
        exclusive=False,
    )
    return tf.ensure_shape(image, [image_size, image_size, image.shape[-1]])


def fit(image: tf.Tensor, *, image_size: int) -> tf.Tensor:
    """Any image → uint8 [image_size, image_size, c]: `resize`, rounded back to 8 bits.

    `load` batches these and casts each batch once: batching 8-bit images moves a quarter of the
    bytes and the RAM cache holds 4× as many. The rounding (≤ 0.5 of 255) only touches images
    not already stored at the model size.
    """
    if image.dtype == tf.uint8:
        height, width = tf.shape(image)[0], tf.shape(image)[1]
        stored = tf.logical_and(tf.equal(height, image_size), tf.equal(width, image_size))
        image = tf.cond(stored, lambda: image, lambda: _to_uint8(resize(image, image_size=image_size)))
        return tf.ensure_shape(image, [image_size, image_size, image.shape[-1]])
    return _to_uint8(resize(image, image_size=image_size))


def _to_uint8(image: tf.Tensor) -> tf.Tensor:
    return tf.saturate_cast(tf.round(image), tf.uint8)


def decode(image_bytes: tf.Tensor, *, channels: int) -> tf.Tensor:
    """JPEG/PNG/GIF (first frame)/BMP bytes → uint8 [h, w, channels].

    JPEGs use libjpeg's fast integer IDCT and plain chroma upsampling, as NVIDIA's reference
    TensorFlow input pipelines do: ~15% faster decoding, pixels within a level or two of the
    accurate decoder. Training, evaluation, export and serving all decode here, so they agree.
    """
    image = tf.cond(
        tf.io.is_jpeg(image_bytes),
        lambda: tf.io.decode_jpeg(image_bytes, channels=channels, dct_method="INTEGER_FAST", fancy_upscaling=False),
        lambda: tf.io.decode_image(image_bytes, channels=channels, expand_animations=False),
    )
    return tf.ensure_shape(image, [None, None, channels])


def decode_and_resize(image_bytes: tf.Tensor, *, image_size: int, channels: int) -> tf.Tensor:
    """Encoded bytes → float32 [image_size, image_size, channels] in 0..255: what every model is fed.

    Scaling to the model's range happens inside the model, so this is all any caller does.
    """
    return resize(decode(image_bytes, channels=channels), image_size=image_size)


def load(
    data_dir: str | os.PathLike,
    split: str = "train",
    *,
    batch_size: int = 128,
    augment: str = "none",
    shuffle: bool | None = None,
    repeat: bool = False,
    cache: bool | None = None,
    seed: int = 42,
    manifest: Manifest | None = None,
) -> tf.data.Dataset:
    """Batched (images, labels) of `split`, sized per the manifest (see `describe`).

    For clips (`manifest.kind == "clips"`): (frames, labels), or ((frames, question ids), answers)
    for question answering (see `corolla.data.clip_pipeline`).

    Shards are read in parallel and interleaved; decoding runs on all cores; decoded images are
    cached in RAM when they fit (`cache=None` decides from the manifest); the train split is
    shuffled by default, seeded and reshuffled each epoch; `augment` is a preset of
    `corolla.data.augment` (applied only when given, so eval stays clean).
    """
    from corolla.data import augment as augmentation

    manifest = manifest or describe(data_dir)
    if manifest.kind == "clips":
        from corolla.data.clip_pipeline import load_clips

        shuffle = (split == "train") if shuffle is None else shuffle
        return load_clips(manifest, split, batch_size=batch_size, augment=augment, shuffle=shuffle, repeat=repeat, cache=cache, seed=seed)
    size, channels = manifest.image_size, manifest.channels
    shuffle = (split == "train") if shuffle is None else shuffle
    augmentation.check_preset(augment)
    count = manifest.count(split)
    if cache is None:  # the cache holds uint8 images of the model size ('standard': the stored ones, same size)
        cache = count * size * size * channels <= CACHE_LIMIT_BYTES

    per_image = augmentation.per_image(augment, image_size=size)
    if manifest.off_size_images == 0:  # `prepare` stored every image at the model size: decoding is all
        then = functools.partial(tf.ensure_shape, shape=[size, size, channels])
    else:  # a deterministic per-image step runs with the decode, and the cache keeps its result
        then = None if augment == "standard" else per_image
    dataset = _decoded(manifest, split, then=then, shuffle=shuffle, shuffle_records=shuffle and not cache, seed=seed)
    if cache:
        dataset = dataset.cache()
        if shuffle:
            dataset = dataset.shuffle(min(count, 10_000), seed=seed, reshuffle_each_iteration=True)
    if augment == "standard":
        dataset = dataset.map(lambda image, label: (per_image(image), label), num_parallel_calls=AUTOTUNE, deterministic=not shuffle)
    dataset = dataset.batch(batch_size)
    layers = augmentation.batch_layers(augment, seed=seed)

    def to_float(images, labels):  # one cast per batch, then the batch augmentation layers
        images = tf.cast(images, tf.float32)
        return (images if layers is None else layers(images, training=True)), labels

    dataset = dataset.map(to_float, num_parallel_calls=AUTOTUNE)
    if repeat:
        dataset = dataset.repeat()
    elif manifest.files is None:  # interleave hides the length; the manifest knows it (folder mode may drop bad files)
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(math.ceil(count / batch_size)))
    return finish(dataset)


def _decoded(manifest: Manifest, split: str, *, then, shuffle: bool, shuffle_records: bool, seed: int) -> tf.data.Dataset:
    """(uint8 image, int32 label) pairs, from shards or straight from files; `then(image)` applied if given."""
    channels = manifest.channels
    then = then or (lambda image: image)
    if manifest.files is not None:
        pairs = manifest.files.get(split)
        if not pairs:
            raise CorollaError(f"{manifest.source} has no '{split}' images. Received: split={split!r}")
        paths, labels = zip(*pairs)
        dataset = tf.data.Dataset.from_tensor_slices((list(paths), list(labels)))
        if shuffle:
            dataset = dataset.shuffle(len(paths), seed=seed)
        dataset = dataset.map(
            lambda path, label: (then(decode(tf.io.read_file(path), channels=channels)), tf.cast(label, tf.int32)),
            num_parallel_calls=AUTOTUNE, deterministic=not shuffle,
        )
        return dataset.ignore_errors(log_warning=True)  # unvalidated files: skip what cannot be decoded

    files = tf.data.Dataset.from_tensor_slices(manifest.shard_paths(split))
    if shuffle:
        files = files.shuffle(len(manifest.shard_paths(split)), seed=seed)
    dataset = files.interleave(tf.data.TFRecordDataset, cycle_length=AUTOTUNE, num_parallel_calls=AUTOTUNE, deterministic=not shuffle)
    if shuffle_records:  # before decoding: the buffer holds ~15 kB JPEGs and memory stays flat
        dataset = dataset.shuffle(min(manifest.count(split), 10_000), seed=seed, reshuffle_each_iteration=True)

    def parse(serialized):
        features = records.parse_example(serialized, keys=(records.IMAGE, records.LABEL))
        return then(decode(features[records.IMAGE], channels=channels)), tf.cast(features[records.LABEL], tf.int32)

    return dataset.map(parse, num_parallel_calls=AUTOTUNE, deterministic=not shuffle)
