"""The tf.data pipeline for clips, and the one frame decode that training, evaluation, export and serving share.

A clip example is float32 [frames, size, size, channels] in 0..255: its sampled frames decoded
and resized as images are (`corolla.data.pipeline.decode_and_resize`), then PAD_VALUE frames
after the last real one, which the clip models mask. For question answering the example is
((frames, question token ids), answer).

Example:
    dataset = load_clips(Manifest.load("data/moves"), "train", batch_size=8)   # ([8, 16, 64, 64, 3], [8])
    pixels = clip_pixels(encoded_frames, frames=16, image_size=64, channels=3)
"""

from __future__ import annotations

import math

import tensorflow as tf

from corolla.data import records
from corolla.data.manifest import Manifest
from corolla.data.pipeline import AUTOTUNE, CACHE_LIMIT_BYTES, decode_and_resize, finish
from corolla.data.video import PAD_VALUE
from corolla.errors import CorollaError


def clip_pixels(encoded_frames: tf.Tensor, *, frames: int, image_size: int, channels: int) -> tf.Tensor:
    """Encoded frames [n] (empty strings allowed after the real ones) → float32 [frames, size, size, channels].

    Frames past `frames` are dropped; missing ones, and empty strings, become PAD_VALUE frames.
    """
    encoded_frames = encoded_frames[:frames]
    real = tf.shape(tf.boolean_mask(encoded_frames, tf.strings.length(encoded_frames) > 0))[0]
    shape = [image_size, image_size, channels]
    pixels = tf.map_fn(
        lambda data: decode_and_resize(data, image_size=image_size, channels=channels),
        encoded_frames[:real],
        fn_output_signature=tf.TensorSpec(shape, tf.float32),
    )
    padding = tf.fill(tf.concat([[frames - real], shape], 0), tf.constant(PAD_VALUE, tf.float32))
    return tf.ensure_shape(tf.concat([pixels, padding], 0), [frames, *shape])


def question_ids(manifest: Manifest):
    """The vectorizer of `manifest`'s questions (string → int64 [question_length]), or None for plain clips."""
    from corolla.data.questions import vectorizer

    return vectorizer(manifest.vocabulary, question_length=manifest.question_length) if manifest.task == "qa" else None


def load_clips(
    manifest: Manifest, split: str, *, batch_size: int, augment: str, shuffle: bool, repeat: bool, cache: bool | None, seed: int
) -> tf.data.Dataset:
    """Batched (frames, labels), or ((frames, question ids), answers) for QA; see `corolla.data.load`."""
    if augment != "none":
        raise CorollaError(f"Clips take no augmentation preset yet. Expected augment='none'. Received: augment={augment!r}")
    if manifest.files is not None:
        raise CorollaError(f"Clips are read from prepared shards. Run `corolla prepare {manifest.source} --out DATA_DIR` first.")
    size, channels, frames = manifest.image_size, manifest.channels, manifest.frames
    count = manifest.count(split)
    if cache is None:
        cache = count * frames * size * size * channels * 4 <= CACHE_LIMIT_BYTES
    vectorize = question_ids(manifest)
    paths = manifest.shard_paths(split)
    files = tf.data.Dataset.from_tensor_slices(paths)
    if shuffle:
        files = files.shuffle(len(paths), seed=seed)
    dataset = files.interleave(tf.data.TFRecordDataset, cycle_length=AUTOTUNE, num_parallel_calls=AUTOTUNE, deterministic=not shuffle)
    if shuffle and not cache:
        dataset = dataset.shuffle(min(count, 2_000), seed=seed, reshuffle_each_iteration=True)

    def parse(serialized):
        features = records.parse_clip_example(serialized, keys=(records.FRAMES, records.LABEL, records.QUESTION))
        pixels = clip_pixels(features[records.FRAMES], frames=frames, image_size=size, channels=channels)
        label = tf.cast(features[records.LABEL], tf.int32)
        return ((pixels, features[records.QUESTION]), label) if vectorize is not None else (pixels, label)

    dataset = dataset.map(parse, num_parallel_calls=AUTOTUNE, deterministic=not shuffle)
    if cache:
        dataset = dataset.cache()
        if shuffle:
            dataset = dataset.shuffle(min(count, 10_000), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if vectorize is not None:  # on whole batches: one lookup per batch
        dataset = dataset.map(lambda inputs, label: ((inputs[0], vectorize(inputs[1])), label), num_parallel_calls=AUTOTUNE)
    if repeat:
        dataset = dataset.repeat()
    else:
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(math.ceil(count / batch_size)))
    return finish(dataset)
