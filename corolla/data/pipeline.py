"""The tf.data input pipeline, and the one decode/resize that training, evaluation and export share.

Example:
    dataset = load("data/fm", "train", batch_size=128, augment="light")   # (float32 [B, H, W, C] in 0..255, int32 [B])
    dataset = load("photos/", "train")        # direct from a folder of class sub-folders, no `prepare`
"""

from __future__ import annotations

import math
import os

import tensorflow as tf

from corolla.data import records
from corolla.data.manifest import Manifest, describe
from corolla.errors import CorollaError

AUTOTUNE = tf.data.AUTOTUNE
CACHE_LIMIT_BYTES = 2 * 2**30  # decoded images cached in RAM up to this size


def resize(image: tf.Tensor, *, image_size: int) -> tf.Tensor:
    """Any image → float32 [image_size, image_size, c], bilinear (no crop).

    Antialiasing only when shrinking more than 2× (a big photo sent to the server): it costs 4×
    the plain resize and changes nothing visible on the small factors prepared data needs.
    """
    size = [image_size, image_size]
    large = tf.reduce_max(tf.shape(image)[:2]) > 2 * image_size
    image = tf.cond(
        large,
        lambda: tf.image.resize(image, size, method="bilinear", antialias=True),
        lambda: tf.image.resize(image, size, method="bilinear"),
    )
    return tf.ensure_shape(image, [image_size, image_size, image.shape[-1]])


def decode(image_bytes: tf.Tensor, *, channels: int) -> tf.Tensor:
    """JPEG/PNG/GIF (first frame)/BMP bytes → uint8 [h, w, channels]."""
    return tf.io.decode_image(image_bytes, channels=channels, expand_animations=False)


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

    Shards are read in parallel and interleaved; decoding runs on all cores; decoded images are
    cached in RAM when they fit (`cache=None` decides from the manifest); the train split is
    shuffled by default, seeded and reshuffled each epoch; `augment` is a preset of
    `corolla.data.augment` (applied only when given, so eval stays clean).
    """
    from corolla.data import augment as augmentation

    manifest = manifest or describe(data_dir)
    size, channels = manifest.image_size, manifest.channels
    shuffle = (split == "train") if shuffle is None else shuffle
    augmentation.check_preset(augment)
    count = manifest.count(split)
    # 'standard' caches the stored uint8 image (up to 4:3), the others the resized float32 one.
    bytes_per_image = (size * 4 / 3 * size if augment == "standard" else size * size * 4) * channels
    if cache is None:
        cache = count * bytes_per_image <= CACHE_LIMIT_BYTES

    # Without the cache, shuffle the compressed records before decoding: the buffer then holds
    # ~30 kB JPEGs, not decoded images, and memory stays flat whatever the dataset size.
    dataset = _decoded(manifest, split, shuffle=shuffle, shuffle_records=shuffle and not cache, seed=seed)
    finish = augmentation.per_image(augment, image_size=size)
    if augment != "standard":  # deterministic resize: cache its result
        dataset = dataset.map(lambda image, label: (finish(image), label), num_parallel_calls=AUTOTUNE, deterministic=not shuffle)
    if cache:
        dataset = dataset.cache()
        if shuffle:
            dataset = dataset.shuffle(min(count, 10_000), seed=seed, reshuffle_each_iteration=True)
    if augment == "standard":
        dataset = dataset.map(lambda image, label: (finish(image), label), num_parallel_calls=AUTOTUNE, deterministic=not shuffle)
    dataset = dataset.batch(batch_size)
    layers = augmentation.batch_layers(augment, seed=seed)
    if layers is not None:
        dataset = dataset.map(lambda images, labels: (layers(images, training=True), labels), num_parallel_calls=AUTOTUNE)
    if repeat:
        dataset = dataset.repeat()
    elif manifest.files is None:  # interleave hides the length; the manifest knows it (folder mode may drop bad files)
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(math.ceil(count / batch_size)))
    return dataset.prefetch(AUTOTUNE)


def _decoded(manifest: Manifest, split: str, *, shuffle: bool, shuffle_records: bool, seed: int) -> tf.data.Dataset:
    """(uint8 image of its stored size, int32 label) pairs, from shards or straight from files."""
    channels = manifest.channels
    if manifest.files is not None:
        pairs = manifest.files.get(split)
        if not pairs:
            raise CorollaError(f"{manifest.source} has no '{split}' images. Received: split={split!r}")
        paths, labels = zip(*pairs)
        dataset = tf.data.Dataset.from_tensor_slices((list(paths), list(labels)))
        if shuffle:
            dataset = dataset.shuffle(len(paths), seed=seed)
        dataset = dataset.map(
            lambda path, label: (decode(tf.io.read_file(path), channels=channels), tf.cast(label, tf.int32)),
            num_parallel_calls=AUTOTUNE, deterministic=not shuffle,
        )
        return dataset.ignore_errors(log_warning=True)  # unvalidated files: skip what cannot be decoded

    files = tf.data.Dataset.from_tensor_slices(manifest.shard_paths(split))
    if shuffle:
        files = files.shuffle(len(manifest.shard_paths(split)), seed=seed)
    dataset = files.interleave(tf.data.TFRecordDataset, cycle_length=AUTOTUNE, num_parallel_calls=AUTOTUNE, deterministic=not shuffle)
    if shuffle_records:
        dataset = dataset.shuffle(min(manifest.count(split), 10_000), seed=seed, reshuffle_each_iteration=True)

    def parse(serialized):
        features = records.parse_example(serialized)
        return decode(features[records.IMAGE], channels=channels), tf.cast(features[records.LABEL], tf.int32)

    return dataset.map(parse, num_parallel_calls=AUTOTUNE, deterministic=not shuffle)
