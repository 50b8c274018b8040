"""Test-time augmentation (flip, flip_shift): the wrappers' arithmetic, `evaluate --tta/--checkpoint`, and every export format carrying it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from corolla.errors import CorollaError


@pytest.fixture()
def run_copy(trained_run, tmp_path):
    """A private copy: evaluate rewrites report/, which other tests of the shared run read."""
    return shutil.copytree(trained_run, tmp_path / "run")


def sample_pixels(count: int = 6) -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.uniform(0, 255, size=(count, 32, 32, 3)).astype("float32")


def test_flip_tta_is_the_mean_of_both_views(trained_run):
    from corolla.run import Run

    run = Run(trained_run)
    plain, averaged = run.load_model(tta="none"), run.load_model(tta="flip")
    pixels = sample_pixels()
    expected = (plain.predict_on_batch(pixels) + plain.predict_on_batch(pixels[:, :, ::-1])) / 2
    np.testing.assert_allclose(averaged.predict_on_batch(pixels), expected, atol=1e-6)
    # Asymmetric inputs: the mirror view really changes the answer, so the check above has teeth.
    assert np.abs(plain.predict_on_batch(pixels) - expected).max() > 1e-4


def shifted(pixels: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """One pixel down/up (rows ±1) or right/left (columns ±1), the edge repeated into the gap, in NumPy."""
    pad = ((0, 0), (max(rows, 0), max(-rows, 0)), (max(columns, 0), max(-columns, 0)), (0, 0))
    padded, height, width = np.pad(pixels, pad, mode="edge"), pixels.shape[1], pixels.shape[2]
    top, left = max(-rows, 0), max(-columns, 0)
    return padded[:, top : top + height, left : left + width]


def flip_shift_mean(model, pixels: np.ndarray) -> np.ndarray:
    views = [shifted(image, rows, columns) for image in (pixels, pixels[:, :, ::-1]) for rows, columns in ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))]
    return np.mean([model.predict_on_batch(view) for view in views], axis=0)


def test_flip_shift_tta_is_the_mean_of_ten_views(trained_run):
    from corolla.run import Run

    run = Run(trained_run)
    plain, averaged = run.load_model(tta="none"), run.load_model(tta="flip_shift")
    pixels = sample_pixels()
    assert shifted(pixels, 1, 0)[:, 1:].tobytes() == pixels[:, :-1].tobytes() and (shifted(pixels, 0, -1)[:, :, -1] == pixels[:, :, -1]).all()
    expected = flip_shift_mean(plain, pixels)
    np.testing.assert_allclose(averaged.predict_on_batch(pixels), expected, atol=1e-6)
    flip = run.load_model(tta="flip").predict_on_batch(pixels)
    assert np.abs(flip - expected).max() > 1e-4  # the shifted views count: flip alone gives another answer


def test_evaluate_with_tta_and_the_last_checkpoint(run_copy):
    from corolla.evaluate import evaluate

    one_view = evaluate(run_copy, checkpoint="last", tta="none", verbose=False)
    both = evaluate(run_copy, checkpoint="last", tta="flip", verbose=False)
    assert (one_view["tta"], both["tta"]) == ("none", "flip")
    assert both["checkpoint"].endswith("last.keras")
    assert both["count"] == one_view["count"]
    saved = json.loads((run_copy / "report" / "metrics.json").read_text())
    assert saved["tta"] == "flip"


@pytest.mark.parametrize(
    ("options", "message"),
    [({"checkpoint": "newest"}, "Unknown checkpoint 'newest'. Expected one of: best, last"), ({"tta": "rotate"}, "Unknown test-time augmentation 'rotate'. Expected one of: none, flip, flip_shift")],
)
def test_bad_choices_are_refused_by_name(run_copy, options, message):
    from corolla.evaluate import evaluate

    with pytest.raises(CorollaError, match=message):
        evaluate(run_copy, verbose=False, **options)


def test_train_refuses_an_unknown_tta(prepared, tmp_path):
    from corolla.train import train

    with pytest.raises(CorollaError, match="Unknown test-time augmentation 'mirror'"):
        train(prepared, out=tmp_path / "run", epochs=1, tta="mirror", verbose=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_export_builds_the_averaging_into_every_format(run_copy):
    """flip_shift, whose graph holds flip's mirror too: its ten views in the SavedModel and ONNX files, checked against NumPy."""
    import onnxruntime
    import tensorflow as tf

    from corolla.export import export
    from corolla.run import Run

    path = export(run_copy, formats="saved_model,onnx", tta="flip_shift", parity_images=50, verbose=False)
    card = json.loads((path / "model_card.json").read_text())
    assert card["test_time_augmentation"].startswith("flip_shift: mean of 10 views")
    assert all(row["top1_agreement"] == 1.0 for row in card["parity"].values())
    pixels = sample_pixels()
    expected = flip_shift_mean(Run(run_copy).load_model(tta="none"), pixels)
    session = onnxruntime.InferenceSession(str(path / "model.onnx"))
    np.testing.assert_allclose(session.run(None, {session.get_inputs()[0].name: pixels})[0], expected, atol=1e-5)
    served = tf.saved_model.load(str(path)).signatures["pixels"](pixels=tf.constant(pixels))
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, atol=1e-5)
