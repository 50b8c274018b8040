"""SavedModel signatures of a clip model: the same serving contract as images, for frame sequences.

    serving_default  frames   string [batch, n]  each clip's sampled frames, encoded (JPEG/PNG), "" after the last
                     question string [batch]     (question answering only) the question, in words
                     key      string [batch]     anything; echoed back
                     → probabilities float32 [batch, classes], classes int64, labels string, key string
    pixels           pixels float32 [batch, frames, size, size, channels], PAD_VALUE (-1) frames after the last
                     question_ids int64 [batch, question_length] (QA only: TextVectorization's ids)
                     → probabilities, classes, labels

Frames decode with `corolla.data.clip_pipeline.clip_pixels` and questions with the run's
TextVectorization (`corolla.data.questions`), both inside the graph, so TF Serving, Vertex AI or
KServe answer exactly as `corolla predict` does. Decoding the video file itself (PyAV) happens
before, in `corolla.data.video.read_clip`: the server and `predict` call it for video uploads.

Example:
    write_clip_saved_model(model, "runs/moves/export/.tmp-1", config=run.config)
"""

from __future__ import annotations

import os


def pixel_specs(config, *, batch: int | None = None) -> list:
    """The pixel model's input specs: frames (and question ids), as ONNX and LiteRT take them.

    LiteRT gets `batch=1`: its converter lowers a masked LSTM only with a static batch size, and
    one clip at a time is what a phone runs anyway.
    """
    import tensorflow as tf

    frames = tf.TensorSpec([batch, config.frames, config.image_size, config.image_size, config.channels], tf.float32, name="pixels")
    if config.task != "qa":
        return [frames]
    return [frames, tf.TensorSpec([batch, config.question_length], tf.int64, name="question_ids")]


def write_clip_saved_model(model, path: str | os.PathLike, *, config) -> None:
    import keras
    import tensorflow as tf

    from corolla.data.clip_pipeline import clip_pixels
    from corolla.data.questions import vectorizer

    label_table = tf.constant(config.classes)
    size, channels, frames = config.image_size, config.channels, config.frames
    qa = config.task == "qa"
    vectorize = vectorizer(config.vocabulary, question_length=config.question_length) if qa else None

    def answer(pixels, question_ids=None):
        probabilities = model([pixels, question_ids] if qa else pixels, training=False)
        indices = tf.argmax(probabilities, axis=-1)
        return {"probabilities": probabilities, "classes": indices, "labels": tf.gather(label_table, indices)}

    def decode(encoded):
        return tf.map_fn(
            lambda clip: clip_pixels(clip, frames=frames, image_size=size, channels=channels),
            encoded,
            fn_output_signature=tf.TensorSpec([frames, size, size, channels], tf.float32),
        )

    archive = keras.export.ExportArchive()
    archive.track(model)
    clips_spec = tf.TensorSpec([None, None], tf.string, name="frames")
    key_spec = tf.TensorSpec([None], tf.string, name="key")
    if qa:
        archive.track(vectorize)
        archive.add_endpoint(
            name="serving_default",
            fn=lambda frames, question, key: {**answer(decode(frames), vectorize(question)), "key": key},
            input_signature=[clips_spec, tf.TensorSpec([None], tf.string, name="question"), key_spec],
        )
    else:
        archive.add_endpoint(name="serving_default", fn=lambda frames, key: {**answer(decode(frames)), "key": key}, input_signature=[clips_spec, key_spec])
    archive.add_endpoint(name="pixels", fn=answer, input_signature=pixel_specs(config))
    archive.write_out(str(path), verbose=False)
