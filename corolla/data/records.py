"""The one tf.train.Example schema every corolla shard uses, for images and for clips.

An image record holds one encoded image; a clip record holds its sampled frames, each an
encoded image (`clip/frames`, a list), and for question answering the question's text. Both
share the label, label text and key fields, so everything that counts or lists records reads
them alike.

Example:
    serialized = encode_example(prepared, label=3, label_text="roses", key="flowers/roses/1.jpg")
    serialized = encode_clip_example(clip, label=1, label_text="left", key="moves/left/3.mp4")
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
FRAMES = "clip/frames"  # the sampled frames, each an encoded image (JPEG), in time order
FRAME_SECONDS = "clip/timestamps"  # each frame's time in the clip
DURATION = "clip/duration"
QUESTION = "clip/question"  # question answering: the question's text ("" for plain classification)

FEATURES = {
    IMAGE: tf.io.FixedLenFeature([], tf.string),
    FORMAT: tf.io.FixedLenFeature([], tf.string),
    HEIGHT: tf.io.FixedLenFeature([], tf.int64),
    WIDTH: tf.io.FixedLenFeature([], tf.int64),
    LABEL: tf.io.FixedLenFeature([], tf.int64),
    LABEL_TEXT: tf.io.FixedLenFeature([], tf.string),
    KEY: tf.io.FixedLenFeature([], tf.string),
}
CLIP_FEATURES = {
    FRAMES: tf.io.VarLenFeature(tf.string),
    FRAME_SECONDS: tf.io.VarLenFeature(tf.float32),
    DURATION: tf.io.FixedLenFeature([], tf.float32),
    HEIGHT: tf.io.FixedLenFeature([], tf.int64),
    WIDTH: tf.io.FixedLenFeature([], tf.int64),
    LABEL: tf.io.FixedLenFeature([], tf.int64),
    LABEL_TEXT: tf.io.FixedLenFeature([], tf.string),
    KEY: tf.io.FixedLenFeature([], tf.string),
    QUESTION: tf.io.FixedLenFeature([], tf.string, default_value=""),
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


def encode_clip_example(clip, *, label: int, label_text: str, key: str, question: str = "") -> bytes:
    """Serialize one sampled clip (see `corolla.data.video.read_clip`) and, for QA, its question."""
    feature = {
        FRAMES: tf.train.Feature(bytes_list=tf.train.BytesList(value=list(clip.frames))),
        FRAME_SECONDS: tf.train.Feature(float_list=tf.train.FloatList(value=list(clip.timestamps))),
        DURATION: tf.train.Feature(float_list=tf.train.FloatList(value=[clip.info.duration_s])),
        HEIGHT: _int(clip.height),
        WIDTH: _int(clip.width),
        LABEL: _int(label),
        LABEL_TEXT: _bytes(label_text.encode("utf-8")),
        KEY: _bytes(key.encode("utf-8")),
        QUESTION: _bytes(question.encode("utf-8")),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def parse_example(serialized: tf.Tensor, keys=tuple(FEATURES)) -> dict[str, tf.Tensor]:
    """The `keys` features of one image record (all by default; the training pipeline reads two)."""
    return tf.io.parse_single_example(serialized, {key: FEATURES[key] for key in keys})


def parse_clip_example(serialized: tf.Tensor, keys=tuple(CLIP_FEATURES)) -> dict[str, tf.Tensor]:
    """The `keys` features of one clip record; `clip/frames` comes back as a dense string vector."""
    features = tf.io.parse_single_example(serialized, {key: CLIP_FEATURES[key] for key in keys})
    for key in (FRAMES, FRAME_SECONDS):
        if key in features:
            features[key] = tf.sparse.to_dense(features[key])
    return features
