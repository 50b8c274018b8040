"""Clip models (seed 003's video QA): any image model encodes each frame, an LSTM reads the frames.

Clips are float32 frames [B, T, H, W, C] of raw 0–255 pixels. Shorter clips are padded to T with
frames filled with PAD_VALUE; padding frames are masked, so they never change the output. The
mask travels as data: padding steps' frame features are set to PAD_VALUE too, and a Masking layer
recomputes the mask from the features for the LSTM, so a head cut at the features (the trainer's
feature cache, `split_clip_at_features`) masks exactly as the whole model does.

    frames ─ FrameMask ──────────────────────┐
    frames ─ FrameEncoder(image model) ─ PadSteps ─ Masking ─ LSTM ─ Dropout ─ Dense softmax                   clip_lstm
    [that LSTM, question ids ─ Embedding(mask_zero) ─ LSTM] ─ Concatenate ─ Dense relu ─ Dropout ─ Dense softmax  clip_qa

Example:
    model = build_model("clip_lstm", input_shape=(16, 32, 32, 3), num_classes=2, backbone="frame_cnn")
    model = build_model("clip_qa", input_shape=(16, 224, 224, 3), num_classes=100, vocabulary_size=5000)
    model.predict([frames, question_ids])
"""

from __future__ import annotations

import numbers

import keras
from keras import layers, ops

from corolla.data.video import PAD_VALUE  # fills padding frames; real pixels are 0–255, so it never occurs in them
from corolla.errors import CorollaError
from corolla.models.blocks import pixels, softmax_head
from corolla.models.registry import build_model, get_model, register_model
from corolla.models.transfer import normalize_weights, unfreeze


@keras.saving.register_keras_serializable(package="corolla")
class FrameMask(layers.Layer):
    """[B, T, …] → bool [B, T]: True where a step has any value other than `pad_value` (a real frame)."""

    def __init__(self, pad_value: float = PAD_VALUE, **kwargs):
        super().__init__(**kwargs)
        self.pad_value = float(pad_value)

    def call(self, inputs):
        return ops.any(ops.not_equal(inputs, ops.cast(self.pad_value, inputs.dtype)), axis=tuple(range(2, len(inputs.shape))))

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape[:2], dtype="bool")

    def get_config(self):
        return {**super().get_config(), "pad_value": self.pad_value}


@keras.saving.register_keras_serializable(package="corolla")
class PadSteps(layers.Layer):
    """[features [B, T, D], mask [B, T]] → features with every masked step set to `pad_value`."""

    def __init__(self, pad_value: float = PAD_VALUE, **kwargs):
        super().__init__(**kwargs)
        self.pad_value = float(pad_value)

    def call(self, inputs):
        features, mask = inputs
        return ops.where(ops.expand_dims(mask, -1), features, ops.cast(self.pad_value, features.dtype))

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "pad_value": self.pad_value}


@keras.saving.register_keras_serializable(package="corolla")
class FrameEncoder(layers.TimeDistributed):
    """TimeDistributed that folds time into the batch: the encoder runs once on B·T frames.

    Stock TimeDistributed unrolls a Python loop when T is known, putting T copies of the encoder in
    every traced graph and export, and updating BatchNorm statistics T times per step.
    """

    def call(self, inputs, training=None):
        shape = ops.shape(inputs)
        frames = ops.reshape(inputs, (-1, *inputs.shape[2:]))
        features = self.layer(frames, training=training) if self.layer._call_has_training_arg else self.layer(frames)
        return ops.reshape(features, (shape[0], shape[1], *features.shape[1:]))


@register_model("frame_cnn", description="Small convnet, the frame encoder for tiny clips", input_size=32, min_size=8)
def frame_cnn(input_shape, num_classes, widths=(16, 32, 64), dropout=0.0, pooling="avg"):
    """[3×3 conv → BatchNorm → ReLU → 2×2 max-pool] per width, then pooling and a softmax."""
    inputs, x = pixels(input_shape)
    for index, filters in enumerate(widths):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer="he_normal", name=f"conv{index + 1}")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"conv{index + 1}_bn")(x)
        x = layers.ReLU(name=f"conv{index + 1}_relu")(x)
        x = layers.MaxPooling2D(2, name=f"conv{index + 1}_pool")(x)
    return keras.Model(inputs, softmax_head(x, num_classes, dropout=dropout, pooling=pooling), name="frame_cnn")


def frame_encoder(backbone: str, *, frame_shape, weights="imagenet", frozen: bool | None = None):
    """The image model `backbone` up to the input of its softmax Dense (trailing Dropout left out): pixels → vector.

    weights: for pretrained backbones ("imagenet", None, or a path); from-scratch ones have none to load.
    frozen: None → frozen when the weights are pretrained, trainable otherwise.
    """
    spec = get_model(backbone)
    if spec.kind != "images":
        raise CorollaError(f"The frame encoder must be an image model; '{spec.name}' takes {spec.kind}. Received: backbone={backbone!r}")
    weights = normalize_weights(weights)
    if spec.pretrained:
        options = {"weights": weights}
    elif weights not in (None, "imagenet"):
        raise CorollaError(
            f"Backbone '{spec.name}' trains from scratch and has no weights to load; use a pretrained backbone "
            f"(see `corolla models list`) or weights=None. Received: weights={weights!r}"
        )
    else:
        weights, options = None, {}
    image_model = build_model(backbone, input_shape=frame_shape, num_classes=2, **options)
    frozen = weights is not None if frozen is None else frozen
    if not frozen and weights is not None:
        unfreeze(image_model)  # fine-tuning a pretrained backbone: BatchNorm keeps its pretrained statistics
    encoder = keras.Model(image_model.inputs, _features(image_model), name=f"{image_model.name}_features")
    if frozen:
        encoder.trainable = False
    return encoder


def _features(model):
    """The tensor that feeds `model`'s final Dense, found through its history (works for Sequential and functional)."""

    def producer(tensor):
        operation, node_index, _ = tensor._keras_history
        return operation, operation._inbound_nodes[node_index].input_tensors

    operation, inputs = producer(model.outputs[0])
    while isinstance(operation, (layers.Softmax, layers.Activation)):  # a user model's added Softmax
        operation, inputs = producer(inputs[0])
    if not isinstance(operation, layers.Dense):
        raise CorollaError(
            f"Cannot use '{model.name}' as a frame encoder: it should end in a Dense softmax classifier, whose input becomes "
            f"the frame's features. Received: last layer={type(operation).__name__}"
        )
    tensor = inputs[0]
    while isinstance(producer(tensor)[0], layers.Dropout):
        tensor = producer(tensor)[1][0]
    return tensor


def _frame_features(input_shape, *, backbone, weights, frozen):
    """(frames input, per-frame features [B, T, D] with padding steps set to PAD_VALUE)."""
    frames = keras.Input(shape=input_shape, name="frames")
    mask = FrameMask(name="frame_mask")(frames)
    encoder = frame_encoder(backbone, frame_shape=input_shape[1:], weights=weights, frozen=frozen)
    x = FrameEncoder(encoder, name="frame_encoder")(frames)
    return frames, PadSteps(name="padded_features")([x, mask])


def _after_features(layer, features, question=None):
    """Everything after the padded features, `layer(name)` giving each layer: one wiring for the builders and the split."""
    x = layer("video_lstm")(layer("step_mask")(features))  # Masking recomputes the mask from the features
    if question is not None:
        q = layer("question_lstm")(layer("question_embedding")(question))
        x = layer("hidden")(layer("video_and_question")([x, q]))
    return layer("predictions")(layer("dropout")(x))


def _by_name(*new_layers):
    return {layer.name: layer for layer in new_layers}.__getitem__


@register_model("clip_lstm", description="Clips: image model per frame → LSTM (seed 003)", pretrained=True, min_size=8, kind="clips", frames=16)
def clip_lstm(input_shape, num_classes, *, backbone="efficientnet_lite0", weights="imagenet", units=128, dropout=0.2, frozen=None):
    """Each frame through `backbone` (any image model, e.g. "frame_cnn" for clips of 32–64 px), an LSTM, softmax.

    frozen: None → the encoder is frozen when its weights are pretrained, trained otherwise.
    """
    frames, features = _frame_features(input_shape, backbone=backbone, weights=weights, frozen=frozen)
    layer = _by_name(layers.Masking(PAD_VALUE, name="step_mask"), layers.LSTM(units, name="video_lstm"),
                     layers.Dropout(dropout, name="dropout"), layers.Dense(num_classes, activation="softmax", name="predictions"))
    return keras.Model(frames, _after_features(layer, features), name="clip_lstm")


@register_model("clip_qa", description="Clip + question → answer: two LSTMs, two Dense (seed 003)", pretrained=True, min_size=8, kind="clips", frames=16)
def clip_qa(input_shape, num_classes, *, vocabulary_size, question_length=16, backbone="efficientnet_lite0", weights="imagenet",
            units=128, embedding_dim=64, question_units=64, hidden=256, dropout=0.2, frozen=None):
    """Inputs [frames, question]: question = int32 token ids [B, question_length] as TextVectorization emits them.

    vocabulary_size: `TextVectorization.vocabulary_size()`, ids 0 (padding) and 1 (out of vocabulary) included.
    num_classes: the number of answers.
    """
    if not isinstance(vocabulary_size, numbers.Integral) or vocabulary_size < 3:
        raise CorollaError(
            f"vocabulary_size counts the token ids, 0 (padding) and 1 (out of vocabulary) included, so it is at least 3. "
            f"Received: vocabulary_size={vocabulary_size!r}"
        )
    if not isinstance(question_length, numbers.Integral) or question_length < 1:
        raise CorollaError(f"question_length is the number of token ids per question, at least 1. Received: question_length={question_length!r}")
    frames, features = _frame_features(input_shape, backbone=backbone, weights=weights, frozen=frozen)
    question = keras.Input(shape=(int(question_length),), dtype="int32", name="question")
    layer = _by_name(
        layers.Masking(PAD_VALUE, name="step_mask"), layers.LSTM(units, name="video_lstm"),
        layers.Embedding(int(vocabulary_size), embedding_dim, mask_zero=True, name="question_embedding"), layers.LSTM(question_units, name="question_lstm"),
        layers.Concatenate(name="video_and_question"), layers.Dense(hidden, activation="relu", name="hidden"),
        layers.Dropout(dropout, name="dropout"), layers.Dense(num_classes, activation="softmax", name="predictions"),
    )
    return keras.Model([frames, question], _after_features(layer, features, question), name="clip_qa")


def _encoder_layer(model):
    layer = next((layer for layer in model.layers if isinstance(layer, FrameEncoder)), None)
    if layer is None or "padded_features" not in [layer.name for layer in model.layers]:
        raise CorollaError(f"Model '{model.name}' is not a corolla clip model (clip_lstm, clip_qa): it has no frame encoder. Received: model={model.name!r}")
    return layer


def clip_encoder_frozen(model) -> bool:
    """Whether the frame encoder of a clip model has no trainable weights (so its features can be cached)."""
    return not _encoder_layer(model).trainable_weights


def split_clip_at_features(model):
    """(frames → per-frame features [B, T, D], head: features (, question) → probabilities), sharing `model`'s layers.

    Padding steps' features are exactly PAD_VALUE, which is how the head (its Masking layer) knows
    them; cache the features as they are. Valid only while the encoder is frozen.
    """
    if not clip_encoder_frozen(model):
        raise CorollaError(
            f"Model '{model.name}' trains its frame encoder, so its features change every step and cannot be computed once. "
            f"Build it with frozen=True (or pretrained weights) to cache features. Received: model={model.name!r}"
        )
    features = model.get_layer("padded_features").output
    extractor = keras.Model(model.inputs[0], features, name="clip_features")
    # New inputs, not the model's own: a head sharing the model's question input breaks saving the model afterwards.
    inputs = [keras.Input(shape=features.shape[1:], name="features")]
    inputs += [keras.Input(shape=tensor.shape[1:], dtype=tensor.dtype, name=tensor.name) for tensor in model.inputs[1:]]
    head = keras.Model(inputs if len(inputs) > 1 else inputs[0], _after_features(model.get_layer, *inputs), name="clip_head")
    return extractor, head
