"""Train a frozen backbone's head on features computed once.

With the backbone frozen and no augmentation, every epoch would push the same images through the
same backbone (the seeds' frozen MobileNetV2 does exactly that). Instead the backbone runs once
over each split, its pooled features stay in memory, and only the head — Dropout and the Dense
softmax — trains on them. The head shares its layers with the full model, so the full model is
what gets checkpointed and exported.

Example:
    features, head = split_at_features(model)       # model from `transfer_model`
    train_features = compute_features(features, train_data)
    head.fit(train_features, ...)                    # trains model's own head layers
"""

from __future__ import annotations

import keras
import numpy as np

from corolla.errors import CorollaError
from corolla.models.transfer import backbone_of

FEATURE_LAYERS = ("pool", "flatten")  # weightless, deterministic: safe to run once


def frozen_backbone(model):
    """The nested, frozen backbone of a transfer model, or None."""
    try:
        backbone = backbone_of(model)
    except CorollaError:  # not a transfer model
        return None
    return None if backbone.trainable else backbone


def split_at_features(model):
    """(model input → pooled backbone features, head model on those features sharing `model`'s layers)."""
    backbone = frozen_backbone(model)
    names = [layer.name for layer in model.layers]
    cut = names.index(backbone.name)
    while cut + 1 < len(names) and names[cut + 1] in FEATURE_LAYERS:
        cut += 1
    feature_output = model.layers[cut].output
    extractor = keras.Model(model.inputs, feature_output, name="features")
    inputs = keras.Input(shape=feature_output.shape[1:], name="features")
    x = inputs
    for layer in model.layers[cut + 1 :]:
        x = layer(x)
    return extractor, keras.Model(inputs, x, name="head")


def compute_features(extractor, dataset):
    """(features, labels) as NumPy arrays, one pass over a batched dataset."""
    features, labels = [], []
    for images, batch_labels in dataset:
        features.append(np.asarray(extractor(images, training=False)))
        labels.append(np.asarray(batch_labels))
    return np.concatenate(features), np.concatenate(labels)


def feature_dataset(features, labels, *, batch_size: int, shuffle: bool, seed: int):
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((features, labels))
    if shuffle:
        dataset = dataset.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
