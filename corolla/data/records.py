"""The one tf.train.Example schema every corolla shard uses.

Example:
    serialized = encode_example(prepared, label=3, label_text="roses", key="flowers/roses/1.jpg")
    features = parse_example(serialized)          # inside tf.data
"""

from __future__ import annotations

import tensorflow as tf

IMAGE = "image/encoded"
FORMAT = "image/format"
HEIGHT = "image/height"
WIDTH = "image/width"
LABEL = "image/class/label"
LABEL_TEXT = "image/class/text"
KEY = "image/key"

FEATURES = {
    IMAGE: tf.io.FixedLenFeature([], tf.string),
    FORMAT: tf.io.FixedLenFeature([], tf.string),
    HEIGHT: tf.io.FixedLenFeature([], tf.int64),
    WIDTH: tf.io.FixedLenFeature([], tf.int64),
    LABEL: tf.io.FixedLenFeature([], tf.int64),
    LABEL_TEXT: tf.io.FixedLenFeature([], tf.string),
    KEY: tf.io.FixedLenFeature([], tf.string),
}


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def encode_example(prepared, *, label: int, label_text: str, key: str) -> bytes:
    """Serialize one prepared image (see `corolla.data.images.prepare_image`)."""
    feature = {
        IMAGE: _bytes(prepared.encoded),
        FORMAT: _bytes(prepared.format.encode()),
        HEIGHT: _int(prepared.height),
        WIDTH: _int(prepared.width),
        LABEL: _int(label),
        LABEL_TEXT: _bytes(label_text.encode("utf-8")),
        KEY: _bytes(key.encode("utf-8")),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def parse_example(serialized: tf.Tensor, keys=tuple(FEATURES)) -> dict[str, tf.Tensor]:
    """The `keys` features of one record (all by default; the training pipeline reads two)."""
    return tf.io.parse_single_example(serialized, {key: FEATURES[key] for key in keys})
