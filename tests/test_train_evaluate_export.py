"""Train → evaluate → export: the run folder describes itself and the export answers like Keras."""

import json

import numpy as np
import pytest
import tensorflow as tf
import yaml

from corolla.data.manifest import Manifest
from corolla.evaluate import classification_metrics, evaluate
from corolla.export import export
from corolla.run import Run
from corolla.train import train
from tests.conftest import COLOURS, TRAINED_EPOCHS, encode, noisy_colour


def test_run_folder_takes_its_facts_from_the_manifest(trained_run, prepared):
    config = yaml.safe_load((trained_run / "config.yaml").read_text())
    manifest = json.loads((prepared / "manifest.json").read_text())
    assert config["classes"] == manifest["classes"]
    assert (config["image_size"], config["channels"]) == (manifest["image_size"], manifest["channels"])
    assert config["train_images"] == manifest["splits"]["train"]["count"]
    assert (trained_run / "checkpoints" / "best.keras").is_file()
    history = json.loads((trained_run / "history.json").read_text())
    assert len(history["loss"]) == TRAINED_EPOCHS and history["loss"][-1] < history["loss"][0]
    assert not list((trained_run / "checkpoints").glob(".*tmp*"))


def test_existing_run_is_not_silently_replaced(trained_run, prepared):
    from corolla.errors import CorollaError

    with pytest.raises(CorollaError, match="--overwrite"):
        train(prepared, out=trained_run, epochs=1, verbose=False)


def test_evaluate_writes_metrics(trained_run):
    metrics = evaluate(trained_run)
    saved = json.loads((trained_run / "report" / "metrics.json").read_text())
    assert saved["accuracy"] == metrics["accuracy"] and metrics["count"] == Manifest.load(Run(trained_run).config.data_dir).count("eval")
    assert set(metrics["per_class"]) == {"blue", "green", "red"}
    assert np.sum(metrics["confusion_matrix"]) == metrics["count"]


def test_classification_metrics_by_hand():
    truth = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 0, 2])
    metrics = classification_metrics(truth, predicted, ["a", "b", "c"])
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert {k: metrics["per_class"]["a"][k] for k in ("accuracy", "count")} == {"accuracy": pytest.approx(2 / 3), "count": 3}
    assert metrics["per_class"]["b"]["accuracy"] == 0.5
    assert metrics["confusion_matrix"] == [[2, 1, 0], [1, 1, 0], [0, 0, 1]]


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_saved_model_signature_matches_keras(exported, keras_predict, fmt):
    rng = np.random.default_rng(7)
    images = [encode(noisy_colour(rng, colour, 57, 41), fmt) for colour in COLOURS.values()]
    signature = tf.saved_model.load(str(exported)).signatures["serving_default"]
    outputs = signature(image_bytes=tf.constant(images), key=tf.constant(["a", "b", "c"]))
    labels = Run(exported.parent.parent).config.classes
    for i, data in enumerate(images):
        expected = keras_predict(data)
        np.testing.assert_allclose(outputs["probabilities"][i].numpy(), expected, atol=1e-5)
        assert int(outputs["classes"][i]) == int(np.argmax(expected))
        assert outputs["labels"][i].numpy().decode() == labels[int(np.argmax(expected))]
    assert [key.decode() for key in outputs["key"].numpy()] == ["a", "b", "c"]


def test_each_export_is_a_new_complete_version(trained_run, exported, tmp_path):
    import shutil

    # A copy of the shared run, export/1 included: the session's export folder must keep only version 1 for the
    # tests that serve it, whichever order (or pytest-xdist worker) they run in.
    run = shutil.copytree(trained_run, tmp_path / "run")
    assert sorted(path.name for path in (run / "export").iterdir()) == [exported.name]
    second = export(run)
    assert (exported.name, second.name) == ("1", "2")
    info = json.loads((second / "corolla.json").read_text())
    assert info["labels"] == ["blue", "green", "red"] and info["image_size"] == 32
    assert sorted(path.name for path in (run / "export").iterdir()) == ["1", "2"]  # no temporary left
