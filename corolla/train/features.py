"""Train a frozen backbone's head on features computed once.

With the backbone frozen and no augmentation, every epoch would push the same images through the
same backbone (the seeds' frozen MobileNetV2 does exactly that). Instead the backbone runs once
over each split, its pooled features stay in memory, and only the head — Dropout and the Dense
softmax — trains on them. The head shares its layers with the full model, so the full model is
what gets checkpointed and exported.

Clip models (`clip_lstm`, `clip_qa`) are cut at their per-frame features [T, D] the same way:
the frozen image encoder runs once over every frame, the LSTM head trains on the features (with
the question ids beside them for QA).

Example:
    features, head = split_at_features(model)       # model from `transfer_model` or a clip model
    train_features = compute_features(features, train_data)
    head.fit(train_features, ...)                    # trains model's own head layers
"""

from __future__ import annotations

import contextlib
import json

import keras
import numpy as np

from corolla.errors import CorollaError
from corolla.models.transfer import backbone_of

FEATURE_LAYERS = ("pool", "flatten")  # weightless, deterministic: safe to run once
_shared: dict | None = None  # inside `shared_features()`: features by (data, encoder), for every run in this process


@contextlib.contextmanager
def shared_features():
    """Runs in this block reuse each other's cached features of the same data through the same frozen encoder.

    `corolla tune` trains its trials in one process inside this block: a head-only trial then
    costs its head's epochs, not another pass of the backbone.
    """
    global _shared
    outer, _shared = _shared, {} if _shared is None else _shared
    try:
        yield
    finally:
        _shared = outer


def frozen_backbone(model):
    """The nested, frozen backbone of a transfer model, or None."""
    try:
        backbone = backbone_of(model)
    except CorollaError:  # not a transfer model
        return None
    return None if backbone.trainable else backbone


def _clip_encoder(model):
    """The FrameEncoder layer of a clip model, or None for an image model."""
    from corolla.models.clips import FrameEncoder

    return next((layer for layer in model.layers if isinstance(layer, FrameEncoder)), None)


def has_frozen_encoder(model) -> bool:
    """A frozen backbone (image transfer model) or frozen frame encoder (clip model): features can be cached."""
    from corolla.models.clips import clip_encoder_frozen

    return clip_encoder_frozen(model) if _clip_encoder(model) is not None else frozen_backbone(model) is not None


def unfreeze_encoder(model, *, layers):
    """`--fine-tune`: unfreeze the top `layers` of the backbone, also inside a clip model's frame encoder."""
    from corolla.models.transfer import unfreeze

    encoder = _clip_encoder(model)
    if encoder is None:
        return unfreeze(model, layers=layers)
    encoder.trainable = encoder.layer.trainable = True  # then unfreeze keeps BatchNorm and the lower layers frozen
    unfreeze(encoder.layer, layers=layers)
    return model


def split_at_features(model):
    """(model input → pooled backbone features, head model on those features sharing `model`'s layers)."""
    if _clip_encoder(model) is not None:
        from corolla.models.clips import split_clip_at_features

        return split_clip_at_features(model)
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


def compute_features(extractor, dataset, *, on_batch=None):
    """(features, labels) as NumPy arrays, one pass over a batched dataset.

    For inputs (frames, question ids) the extractor sees the frames, and the features come back
    as (features, question ids): the head's two inputs. `on_batch(n)` is told each batch's size.
    """
    features, extras, labels = [], [], []
    for inputs, batch_labels in dataset:
        if isinstance(inputs, (tuple, list)):
            inputs, extra = inputs
            extras.append(np.asarray(extra))
        features.append(np.asarray(extractor.predict_on_batch(inputs)))  # compiled: ~2.5× an eager call per batch
        labels.append(np.asarray(batch_labels))
        if on_batch is not None:
            on_batch(len(labels[-1]))
    features = np.concatenate(features)
    return ((features, np.concatenate(extras)) if extras else features), np.concatenate(labels)


def feature_dataset(features, labels, *, batch_size: int, shuffle: bool, seed: int):
    import tensorflow as tf

    from corolla.data.pipeline import finish

    dataset = tf.data.Dataset.from_tensor_slices((tuple(features) if isinstance(features, tuple) else features, labels))
    if shuffle:
        dataset = dataset.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    return finish(dataset.batch(batch_size))


def _labels_for(features_and_labels, settings):
    """Shared features keep whatever labels their first run had: one-hot them (label smoothing) or not, for this run."""
    features, labels = features_and_labels
    if settings.label_smoothing and labels.ndim == 1:
        return features, np.eye(len(settings.classes), dtype=np.float32)[labels]
    if not settings.label_smoothing and labels.ndim == 2:
        return features, labels.argmax(axis=-1).astype(np.int32)
    return features, labels


def cached_feature_data(network, data, settings, *, verbose: int, on_batch=None):
    """(head, train features, eval features or None, feature_pass) for a stage training `network`'s head alone.

    `data` holds the stage's datasets (`plain_train()`, `eval`, `global_batch`); `feature_pass`
    is {"images", "seconds", "images_per_second"} of the encoder's one pass over both splits.
    """
    import time

    extractor, head = split_at_features(network)
    key = json.dumps([str(settings.data_dir), settings.model, settings.backbone, settings.model_options], sort_keys=True, default=str)
    started = time.perf_counter()
    reused = _shared is not None and key in _shared
    if reused:
        train_features, eval_features = _shared[key]
        if verbose:
            print("Frozen encoder, no augmentation: reusing the features an earlier run in this process computed.")
    else:
        if verbose:
            print("Frozen encoder, no augmentation: computing its features once, then training the head on them.")
        train_features = compute_features(extractor, data.plain_train(), on_batch=on_batch)
        eval_features = compute_features(extractor, data.eval, on_batch=on_batch) if data.eval is not None else None
        if _shared is not None:
            _shared[key] = (train_features, eval_features)
    train_data = feature_dataset(*_labels_for(train_features, settings), batch_size=data.global_batch, shuffle=True, seed=settings.seed)
    images, eval_data = len(train_features[1]), None
    if eval_features is not None:
        eval_data = feature_dataset(*_labels_for(eval_features, settings), batch_size=data.global_batch, shuffle=False, seed=settings.seed)
        images += len(eval_features[1])
    seconds = time.perf_counter() - started
    if verbose:
        print(f"Features: {images:,} {settings.kind} in {seconds:.1f} s ({images / max(seconds, 1e-9):,.0f}/s through the frozen encoder).")
    train_data = train_data.repeat() if settings.train_steps else train_data
    return head, train_data, eval_data, {"images": images, "seconds": seconds, "images_per_second": images / max(seconds, 1e-9), "reused": reused}
