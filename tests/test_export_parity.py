"""Every export format answers like Keras, a perturbed one is caught, and a failed export changes nothing."""

import base64
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from corolla.data.pipeline import decode_and_resize

from corolla.errors import CorollaError
from corolla.export import check_parity, export
from corolla.export.parity import sample_split
from corolla.run import Run
from corolla.runtime.exported import ExportedModel, find_version
from tests.conftest import COLOURS, encode, noisy_colour


@pytest.fixture(scope="module")
def sample(trained_run):
    return sample_split(Run(trained_run).config.data_dir, Run(trained_run).config, "eval", count=1000)


def test_version_holds_every_format_its_card_and_parity(exported):
    names = {path.name for path in exported.iterdir()}
    assert {"saved_model.pb", "model.onnx", "model.tflite", "labels.txt", "model_card.json", "parity.json", "corolla.json"} <= names
    assert (exported / "labels.txt").read_text() == "blue\ngreen\nred\n"
    parity = json.loads((exported / "parity.json").read_text())
    assert set(parity["formats"]) == {"saved_model", "saved_model:pixels", "onnx", "litert"}
    for name, row in parity["formats"].items():
        assert row["passed"] and row["top1_agreement"] == 1.0 and row["max_abs_diff"] <= 1e-4, name
    card = json.loads((exported / "model_card.json").read_text())
    assert card["labels"] == ["blue", "green", "red"] and card["input"]["pixels"]["shape"] == [None, 32, 32, 3]
    assert card["training"]["model"] == "convnet" and card["parity_images"] == parity["images"]
    for name, entry in card["files"].items():
        assert hashlib.sha256((exported / name).read_bytes()).hexdigest() == entry["sha256"], name


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "BMP"])
def test_saved_model_signatures_on_base64_decoded_images(exported, keras_predict, fmt):
    rng = np.random.default_rng(5)
    # What a TF Serving client sends: base64 in JSON; the signature gets the decoded bytes.
    sent = [base64.b64encode(encode(noisy_colour(rng, colour, 45, 61), fmt)).decode() for colour in COLOURS.values()]
    images = [base64.b64decode(text) for text in sent]
    signatures = tf.saved_model.load(str(exported)).signatures
    outputs = signatures["serving_default"](image_bytes=tf.constant(images), key=tf.constant(["k0", "k1", "k2"]))
    expected = np.stack([keras_predict(data) for data in images])
    np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, atol=1e-5)
    assert [label.decode() for label in outputs["labels"].numpy()] == [["blue", "green", "red"][i] for i in expected.argmax(-1)]
    assert [key.decode() for key in outputs["key"].numpy()] == ["k0", "k1", "k2"]
    pixels = np.stack([decode_and_resize(tf.constant(data), image_size=32, channels=3).numpy() for data in images])
    np.testing.assert_allclose(signatures["pixels"](pixels=tf.constant(pixels))["probabilities"].numpy(), expected, atol=1e-5)
    as_uint8 = signatures["pixels_uint8"](pixels=tf.constant(np.round(pixels).astype(np.uint8)))
    assert list(as_uint8["classes"].numpy()) == list(expected.argmax(-1))


def test_parity_catches_a_perturbed_onnx_file(exported, trained_run, sample, tmp_path):
    import onnx
    from onnx import numpy_helper

    copy = shutil.copytree(exported, tmp_path / "version")
    graph = onnx.load(str(copy / "model.onnx"))
    largest = max(graph.graph.initializer, key=lambda tensor: np.prod(tensor.dims))
    largest.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(largest) * 1.05, largest.name))
    onnx.save(graph, str(copy / "model.onnx"))
    with pytest.raises(CorollaError, match=r"onnx: max \|Δp\|"):
        check_parity(Run(trained_run).load_model(), copy, sample)
    report = json.loads((copy / "parity.json").read_text())["formats"]
    assert not report["onnx"]["passed"] and report["onnx"]["max_abs_diff"] > 1e-4
    assert all(row["passed"] for name, row in report.items() if name != "onnx")


def test_parity_catches_every_format_drifting_from_keras(exported, trained_run, sample, tmp_path):
    import keras

    drifted = Run(trained_run).load_model()
    bias = drifted.layers[-1].bias
    bias.assign(bias + keras.ops.convert_to_tensor([0.5, 0.0, -0.5]))  # the files no longer match this model
    copy = shutil.copytree(exported, tmp_path / "version")
    with pytest.raises(CorollaError, match="parity failed") as raised:
        check_parity(drifted, copy, sample)
    for name in ("saved_model", "saved_model:pixels", "onnx", "litert"):
        assert f"{name}: max |Δp|" in str(raised.value)


def test_quantized_litert_files_pass_on_agreement(trained_run, tmp_path):
    path = export(trained_run, out=tmp_path / "export", formats="litert", quantize="int8", verbose=False)
    parity = json.loads((path / "parity.json").read_text())["formats"]
    assert set(parity) == {"litert", "litert:int8"} and parity["litert:int8"]["precision"] == "quantized"
    assert parity["litert:int8"]["top1_agreement"] >= 0.99
    card = json.loads((path / "model_card.json").read_text())
    assert card["formats"]["litert:int8"]["input"]["dtype"] == "uint8"
    assert not (path / "saved_model.pb").exists()


def test_bad_options_fail_before_anything_is_written(trained_run, tmp_path):
    with pytest.raises(CorollaError, match="Expected a comma-separated subset of: saved_model, onnx, litert"):
        export(trained_run, out=tmp_path / "export", formats="saved_model,pytorch", verbose=False)
    with pytest.raises(CorollaError, match="add litert to --format"):
        export(trained_run, out=tmp_path / "export", formats="onnx", quantize="int8", verbose=False)
    assert not (tmp_path / "export").exists()


def test_failure_midway_leaves_the_previous_version_newest(trained_run, image_folder, tmp_path):
    base = tmp_path / "export"
    first = export(trained_run, out=base, formats="saved_model", verbose=False)
    wrong = tmp_path / "wrong"
    shutil.copytree(image_folder, wrong)
    (wrong / "purple").mkdir()  # files are written, then the parity data fails to load
    with pytest.raises(CorollaError, match="version 1 stays the newest"):
        export(trained_run, out=base, data_dir=wrong, verbose=False)
    assert sorted(path.name for path in base.iterdir()) == ["1"]
    assert find_version(base) == first


@pytest.mark.slow
def test_killed_export_leaves_the_previous_version_serving(trained_run, tmp_path):
    base = tmp_path / "export"
    first = export(trained_run, out=base, formats="saved_model", verbose=False)
    process = subprocess.Popen(
        [sys.executable, "-m", "corolla.cli", "export", str(trained_run), "--out", str(base)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    deadline = time.monotonic() + 120
    while not list(base.glob(".tmp-2-*/saved_model.pb")):  # killed with the SavedModel written, ONNX and LiteRT not
        assert process.poll() is None and time.monotonic() < deadline, "the export ended before it could be interrupted"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert find_version(base) == first
    rng = np.random.default_rng(1)
    assert ExportedModel.load(base).predict([encode(noisy_colour(rng, COLOURS["red"]))])["labels"][0] == b"red"
    second = export(trained_run, out=base, formats="saved_model", verbose=False)
    assert second.name == "2" and sorted(path.name for path in base.iterdir()) == ["1", "2"]  # the abandoned temp is gone


@pytest.mark.slow
def test_imagenet_scaled_model_exports_to_onnx_with_one_input(tmp_path):
    """The per-channel ImageNet scaling must be constants in the graph, not extra inputs."""
    import numpy as np
    import tensorflow as tf

    from corolla.export.onnx import write_onnx
    from corolla.runtime.runners import OnnxRunner
    from corolla.models import build_model

    model = build_model("resnet18", input_shape=(32, 32, 3), num_classes=3)
    write_onnx(model, tmp_path / "model.onnx", input_spec=tf.TensorSpec([None, 32, 32, 3], tf.float32))
    runner = OnnxRunner(tmp_path / "model.onnx")
    assert len(runner._session.get_inputs()) == 1
    pixels = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(runner(pixels), model.predict(pixels, verbose=0), atol=1e-5)
