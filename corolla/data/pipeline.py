"""The tf.data input pipeline over prepared shards, and the one decode/resize both training and export use.

Example:
    dataset = load("data/fm", "train", batch_size=128)   # yields (float32 [B, H, W, C] in 0..255, int32 [B])
"""

from __future__ import annotations

import math
import os

import tensorflow as tf

from corolla.data import records
from corolla.data.manifest import Manifest

AUTOTUNE = tf.data.AUTOTUNE
CACHE_LIMIT_BYTES = 2 * 2**30  # decoded images cached in RAM up to this size


def decode_and_resize(image_bytes: tf.Tensor, *, image_size: int, channels: int) -> tf.Tensor:
    """Encoded JPEG/PNG/GIF/BMP bytes → float32 [image_size, image_size, channels] in 0..255.

    Scaling to the model's range happens inside the model, so this is all any caller does.
    """
    image = tf.io.decode_image(image_bytes, channels=channels, expand_animations=False)
    image = tf.image.resize(image, [image_size, image_size], method="bilinear", antialias=True)
    image.set_shape([image_size, image_size, channels])
    return image


def load(
    data_dir: str | os.PathLike,
    split: str = "train",
    *,
    batch_size: int = 128,
    shuffle: bool | None = None,
    repeat: bool = False,
    cache: bool | None = None,
    seed: int = 42,
    manifest: Manifest | None = None,
) -> tf.data.Dataset:
    """Batched (images, labels) from `data_dir`'s `split`, sized per its manifest.

    Shards are read in parallel and interleaved; decode runs on all cores; decoded images are
    cached in RAM when they fit (`cache=None` decides from the manifest); the train split is
    shuffled by default with a seeded, per-epoch reshuffle.
    """
    manifest = manifest or Manifest.load(data_dir)
    size, channels = manifest.image_size, manifest.channels
    shuffle = (split == "train") if shuffle is None else shuffle
    if cache is None:
        cache = manifest.count(split) * size * size * channels * 4 <= CACHE_LIMIT_BYTES

    files = tf.data.Dataset.from_tensor_slices(manifest.shard_paths(split))
    if shuffle:
        files = files.shuffle(len(manifest.shard_paths(split)), seed=seed)
    dataset = files.interleave(
        tf.data.TFRecordDataset, cycle_length=AUTOTUNE, num_parallel_calls=AUTOTUNE, deterministic=not shuffle
    )

    def parse(serialized):
        features = records.parse_example(serialized)
        image = decode_and_resize(features[records.IMAGE], image_size=size, channels=channels)
        return image, tf.cast(features[records.LABEL], tf.int32)

    dataset = dataset.map(parse, num_parallel_calls=AUTOTUNE, deterministic=not shuffle)
    if cache:
        dataset = dataset.cache()
    if shuffle:
        dataset = dataset.shuffle(min(manifest.count(split), 10_000), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if repeat:
        dataset = dataset.repeat()
    else:  # interleave hides the length; the manifest knows it, so progress bars and Keras do too
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(math.ceil(manifest.count(split) / batch_size)))
    return dataset.prefetch(AUTOTUNE)
