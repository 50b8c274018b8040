"""The model zoo: every registered model builds, trains and round-trips; registry, user-file and loader errors."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from corolla.errors import CorollaError  # noqa: E402
from corolla.models import build_model, get_model, list_models  # noqa: E402
from corolla.models.saving import load_model_file  # noqa: E402
from corolla.models.stats import model_stats  # noqa: E402
from tests.conftest import COLOURS, noisy_colour  # noqa: E402

SIZE = 32
# Trained and round-tripped: one model per code path. The others are the same code at another depth or width
# (ResNet-34 is ResNet-18's blocks, Lite1/2 are Lite0's), or Keras' own architectures under the head mobilenet_v2
# and mobilenet_v3_small already cover with both pixel scalings: those are built, called and counted only
# (training and saving each took 20–37 s on 2 cores and could only fail where the one of its family fails).
SAME_CODE_AS = {"resnet34": "resnet18", "efficientnet_lite1": "efficientnet_lite0", "efficientnet_lite2": "efficientnet_lite0",
                "efficientnet_b0": "mobilenet_v3_small", "efficientnet_v2_b0": "mobilenet_v3_small", "resnet50_v2": "mobilenet_v2"}
# Big enough that building, tracing a train step and saving take seconds each on 2 cores.
SLOW = {"resnet50"} | set(SAME_CODE_AS)
IMAGE_MODELS = sorted(spec.name for spec in list_models(kind="images"))


def batch(channels: int, count: int = 6):
    """`count` noisy images of the three test colours (raw 0–255 floats) and their labels."""
    rng = np.random.default_rng(0)
    images = np.stack([noisy_colour(rng, colour, SIZE, SIZE) for _, colour in zip(range(count), list(COLOURS.values()) * count)])
    images = images.astype("float32") if channels == 3 else images.mean(axis=-1, keepdims=True).astype("float32")
    return images, np.arange(count) % len(COLOURS)


def no_download(spec) -> dict:
    return {"weights": None} if spec.pretrained else {}


def maybe_slow(names):
    return [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name for name in names]


@pytest.mark.parametrize("name", maybe_slow(name for name in IMAGE_MODELS if name not in SAME_CODE_AS))
def test_every_model_builds_trains_and_round_trips(name, tmp_path):
    spec = get_model(name)
    keras.utils.set_random_seed(0)
    gray = build_model(name, input_shape=(SIZE, SIZE, 1), num_classes=3, **no_download(spec))
    probabilities = keras.ops.convert_to_numpy(gray(batch(1)[0], training=False))
    assert probabilities.shape == (6, 3)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1, atol=1e-5)

    model = build_model(name, input_shape=(SIZE, SIZE, 3), num_classes=3, **no_download(spec))
    images, labels = batch(3, count=12)
    # Eager steps: tracing a train step of a 200-layer net costs 10–20 s on 2 cores, an eager step
    # 0.3–2.6 s (ResNet-50); 12 images are learnt within a step or two, so four steps show it.
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", run_eagerly=True)
    losses = [float(model.train_on_batch(images, labels)) for _ in range(4)]  # each is the loss before that step
    assert np.mean(losses[-2:]) < losses[0] - 0.05, losses  # two steps averaged: dropout and stochastic depth are noisy

    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = load_model_file(path)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(images, training=False)), keras.ops.convert_to_numpy(model(images, training=False)))


@pytest.mark.parametrize("name", maybe_slow(SAME_CODE_AS))
def test_the_other_models_build_and_answer_like_their_family(name):
    spec, family = get_model(name), SAME_CODE_AS[name]
    assert spec.pretrained == get_model(family).pretrained
    model = build_model(name, input_shape=(SIZE, SIZE, 1), num_classes=3, **no_download(spec))
    assert model.input_shape == (None, SIZE, SIZE, 1) and model.get_layer("predictions").units == 3
    probabilities = keras.ops.convert_to_numpy(model(batch(1)[0], training=False))
    assert probabilities.shape == (6, 3)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1, atol=1e-5)
    smaller = build_model(family, input_shape=(SIZE, SIZE, 1), num_classes=3, **no_download(get_model(family)))
    assert model.count_params() != smaller.count_params()  # really another depth, width or architecture


def test_every_model_carries_its_input_config():
    for spec in list_models():
        assert spec.description and spec.input_size >= spec.min_size and spec.channels in (1, 3), spec


def test_unknown_model_lists_the_available_ones():
    with pytest.raises(CorollaError, match=r"Unknown model 'resnet51'\. Available: .*resnet50.*Received: model='resnet51'"):
        build_model("resnet51", input_shape=(32, 32, 3), num_classes=2)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"input_shape": (32, 32, 4), "num_classes": 2}, r"1 \(grayscale\) or 3 \(RGB\) channels\. Received: input_shape=\(32, 32, 4\)"),
        ({"input_shape": (16, 16, 3), "num_classes": 2}, r"at least 32×32 pixels .*Received: input_shape=\(16, 16, 3\)"),
        ({"input_shape": (32, 32, 3), "num_classes": 1}, r"at least 2 classes\. Received: num_classes=1"),
        ({"input_shape": (32, 32, 3), "num_classes": 2, "weights": "imagenet"}, r"no option 'weights'.*Received: weights='imagenet'"),
    ],
)
def test_bad_arguments_are_explained(arguments, message):
    with pytest.raises(CorollaError, match=message):
        build_model("resnet18", **arguments)


def test_flops_are_counted_from_layer_shapes():
    stats = model_stats(build_model("convnet", input_shape=(28, 28, 1), num_classes=10))
    # conv 1→24 @28², 24→24 @28², 24→12 @14², 12→6 @7² (3×3 each), then Dense 294→10.
    macs = 784 * 24 * 9 * 1 + 784 * 24 * 9 * 24 + 196 * 12 * 9 * 24 + 49 * 6 * 9 * 12 + 294 * 10
    assert stats == {"parameters": 11_656, "trainable_parameters": 11_656, "macs": macs, "flops": 2 * macs}


def test_keras_file_with_a_lambda_layer_is_refused(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x * 2), keras.layers.Dense(2)])
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(CorollaError, match=r"contains a Lambda layer .*safe mode.*Received: path="):
        load_model_file(tmp_path / "lambda.keras")


def test_h5_model_files_are_refused(tmp_path):
    build_model("dense", input_shape=(8, 8, 1), num_classes=2).save(tmp_path / "model.h5")
    for name in ("model.h5", "MODEL.HDF5"):
        with pytest.raises(CorollaError, match=r"legacy HDF5 model file.*Re-save it .* as \.keras"):
            load_model_file(tmp_path / name)
    with pytest.raises(CorollaError, match=r"Expected a Keras model file ending in \.keras"):
        load_model_file(tmp_path / "model.pb")


def test_unregistered_custom_layer_is_explained(tmp_path):
    class Twice(keras.layers.Layer):
        def call(self, x):
            return x * 2

    keras.Sequential([keras.Input((4,)), Twice(), keras.layers.Dense(2)]).save(tmp_path / "custom.keras")
    with pytest.raises(CorollaError, match=r"Could not locate class 'Twice'.*register_keras_serializable"):
        load_model_file(tmp_path / "custom.keras")


def user_file(tmp_path, body: str):
    path = tmp_path / "my_model.py"
    path.write_text("import keras\nfrom keras import layers\n\n" + textwrap.dedent(body))
    return path


def test_user_model_file_builds_trains_and_round_trips(tmp_path):
    path = user_file(tmp_path, """
        def build(input_shape, num_classes):
            return keras.Sequential([keras.Input(input_shape), layers.Rescaling(1 / 255), layers.Flatten(),
                                     layers.Dense(num_classes, activation="softmax")])
    """)
    model = build_model(f"{path}:build", input_shape=(SIZE, SIZE, 3), num_classes=3)
    assert get_model(str(path)).description == f"your model from {path}"  # the function name defaults to build
    images, labels = batch(3)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    losses = [float(model.train_on_batch(images, labels)) for _ in range(3)]
    assert losses[-1] < losses[0]
    model.save(tmp_path / "mine.keras")
    np.testing.assert_array_equal(load_model_file(tmp_path / "mine.keras").predict(images, verbose=0), model.predict(images, verbose=0))


def test_user_model_returning_logits_gets_a_softmax(tmp_path):
    path = user_file(tmp_path, """
        def logits(input_shape, num_classes):
            return keras.Sequential([keras.Input(input_shape), layers.Flatten(), layers.Dense(num_classes)])
    """)
    with pytest.warns(UserWarning, match="returns logits"):
        model = build_model(f"{path}:logits", input_shape=(8, 8, 1), num_classes=4)
    np.testing.assert_allclose(model.predict(np.full((2, 8, 8, 1), 200.0), verbose=0).sum(axis=-1), 1, atol=1e-5)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("def build(input_shape, num_classes):\n    return keras.Sequential([keras.Input(input_shape), layers.Flatten(), layers.Dense(5)])",
         r"one output of shape \(None, 3\).*Received: output shape=\(None, 5\)"),
        ("def build(input_shape, num_classes):\n    return 'a model'", r"must return a keras\.Model\. Received: str"),
        ("def build(input_shape, num_classes):\n    return keras.Sequential([keras.Input((4, 4, 3)), layers.Flatten(), layers.Dense(num_classes)])",
         r"taking one input of shape \(None, 8, 8, 3\).*Received: input shape=\(None, 4, 4, 3\)"),
        ("def build(input_shape, num_classes):\n    return keras.Sequential([keras.Input(input_shape), layers.Lambda(lambda x: x / 255),"
         " layers.Flatten(), layers.Dense(num_classes, activation='softmax')])", r"uses a Lambda layer.*Received: layer="),
        ("def build(input_shape, num_classes):\n    return keras.Sequential([keras.Input(input_shape), layers.Flatten(), layers.Dense(num_classes, activation='sigmoid')])",
         r"do not sum to 1 \(sigmoid\?\)"),
        ("def make(input_shape, num_classes):\n    pass", r"defines no function build\(input_shape, num_classes\)"),
        ("import not_a_module_anywhere", r"Could not import your model file .*ModuleNotFoundError"),
    ],
)
def test_user_model_errors_are_clear(tmp_path, body, message):
    path = user_file(tmp_path, body)
    with pytest.raises(CorollaError, match=message):
        build_model(f"{path}:build", input_shape=(8, 8, 3), num_classes=3)


def test_missing_user_model_file(tmp_path):
    with pytest.raises(CorollaError, match=r"No model file at .*nothing\.py.*Received: model="):
        get_model(f"{tmp_path}/nothing.py:build")


def test_models_cli_list_and_summary(monkeypatch):
    import typer
    from rich.console import Console
    from typer.testing import CliRunner

    from corolla.models import cli
    from corolla.models.cli import models_app

    # The module's console fixed its width at import when COLUMNS was set then (pytest-xdist workers get COLUMNS=80):
    # a 160-column one, as the runner's COLUMNS asks, so no model name is cut short.
    monkeypatch.setattr(cli, "console", Console(width=160))
    app = typer.Typer()
    app.add_typer(models_app, name="models")
    runner = CliRunner()
    summary = runner.invoke(app, ["models", "summary", "fastnet", "--input-size", "32", "--channels", "3", "--num-classes", "5"], env={"COLUMNS": "160"})
    assert summary.exit_code == 0, summary.output
    assert "group3_b_conv" in summary.output and "MACs / image" in summary.output and "fastnet at 32×32×3, 5 classes" in summary.output
    listing = runner.invoke(app, ["models", "list"], env={"COLUMNS": "160"})
    assert listing.exit_code == 0, listing.output
    for spec in list_models():
        assert spec.name in listing.output
    assert "11,656" in listing.output and "224×224×3" in listing.output and "ImageNet" in listing.output
