"""The tf.data input pipeline: augmentation presets (eager and inside tf.data) and direct-from-folder mode."""

import os

import numpy as np
import pytest
import tensorflow as tf

from corolla.data import augment
from corolla.data.manifest import describe
from corolla.data.pipeline import load
from corolla.errors import CorollaError


def test_random_resized_crop_eagerly():
    image = tf.constant(np.random.default_rng(0).integers(0, 255, (60, 80, 3)), tf.uint8)
    crops = [augment.per_image("standard", image_size=32)(image) for _ in range(8)]
    assert all(crop.shape == (32, 32, 3) and crop.dtype == tf.uint8 for crop in crops)
    assert all(0 <= float(tf.reduce_min(c)) and float(tf.reduce_max(c)) <= 255 for c in crops)
    assert len({float(tf.reduce_sum(crop)) for crop in crops}) > 1  # random, not one fixed crop


@pytest.mark.parametrize("preset", ["light", "standard"])
def test_batch_layers_eagerly_keep_shape_and_range(preset):
    images = tf.constant(np.random.default_rng(1).uniform(0, 255, (16, 32, 32, 3)), tf.float32)
    out = augment.batch_layers(preset, seed=3)(images, training=True)
    assert out.shape == images.shape
    assert 0 <= float(tf.reduce_min(out)) and float(tf.reduce_max(out)) <= 255
    assert not np.allclose(out.numpy(), images.numpy())
    assert augment.batch_layers("none") is None


@pytest.mark.parametrize("preset", ["none", "light", "standard"])
def test_presets_inside_tf_data(prepared, preset):
    dataset = load(prepared, "train", batch_size=8, augment=preset)
    epochs = [np.concatenate([images.numpy() for images, _ in dataset]) for _ in range(2)]
    assert epochs[0].shape == (describe(prepared).count("train"), 32, 32, 3)
    assert 0 <= epochs[0].min() and epochs[0].max() <= 255
    if preset != "none":
        assert not np.allclose(np.sort(epochs[0].ravel()), np.sort(epochs[1].ravel()))  # fresh randomness each epoch


def test_unknown_preset_is_a_clear_error(prepared):
    with pytest.raises(CorollaError, match="Unknown augmentation 'heavy'. Available: none, light, standard"):
        load(prepared, "train", augment="heavy")


def test_direct_from_folder_skips_bad_files(image_folder):
    manifest = describe(image_folder)
    assert manifest.classes == ["blue", "green", "red"] and manifest.image_size == 224
    listed = manifest.count("train") + manifest.count("eval")
    assert listed == 63  # 60 images + 3 bad files, unvalidated
    images = sum(int(labels.shape[0]) for split in ("train", "eval") for _, labels in load(image_folder, split, batch_size=16))
    assert images == 60  # truncated.jpg, empty.png and notes.txt are dropped while reading


def test_train_straight_from_a_folder(image_folder, tmp_path):
    from corolla.train import train

    summary = train(image_folder, out=tmp_path / "run", epochs=1, batch_size=16, verbose=False)
    assert summary["best_epoch"] == 1
    assert (tmp_path / "run" / "checkpoints" / "best.keras").is_file()


def test_fit_keeps_stored_images_and_rounds_others_to_the_float_resize():
    from corolla.data.pipeline import fit, resize

    stored = tf.constant(np.random.default_rng(2).integers(0, 256, (32, 32, 3)), tf.uint8)
    assert np.array_equal(fit(stored, image_size=32).numpy(), stored.numpy())
    other = tf.constant(np.random.default_rng(3).integers(0, 256, (45, 70, 3)), tf.uint8)
    fitted = fit(other, image_size=32)
    assert fitted.dtype == tf.uint8 and fitted.shape == (32, 32, 3)
    assert np.abs(fitted.numpy() - resize(other, image_size=32).numpy()).max() <= 0.5


def test_training_batches_equal_what_the_server_decodes(prepared):
    """Prepared images reach training exactly as `decode_and_resize` (export, serving, evaluate) gives them."""
    from corolla.data import records
    from corolla.data.manifest import Manifest
    from corolla.data.pipeline import decode_and_resize

    manifest = Manifest.load(prepared)
    served = [
        decode_and_resize(records.parse_example(raw)[records.IMAGE], image_size=32, channels=3).numpy()
        for raw in tf.data.TFRecordDataset(manifest.shard_paths("eval"))
    ]
    loaded = np.concatenate([images.numpy() for images, _ in load(prepared, "eval", batch_size=4, shuffle=False)])
    by_content = lambda images: sorted(images, key=lambda image: image.tobytes())  # shards interleave
    assert loaded.dtype == np.float32 and np.array_equal(by_content(loaded), by_content(served))


def test_one_schedulable_core_turns_the_autotuner_off_and_keeps_the_batches(prepared):
    """Pinned to one core (as `taskset -c 0` pins a process), the pipeline runs without tf.data's autotuner
    (which there cost a third of a small model's step) and yields the same batches; on all cores it keeps it."""
    cores = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(cores)})  # this thread only: TensorFlow's own thread pools are unchanged
        pinned = load(prepared, "eval", batch_size=8)
    finally:
        os.sched_setaffinity(0, cores)
    free = load(prepared, "eval", batch_size=8)
    assert pinned.options().autotune.enabled is False
    assert (free.options().autotune.enabled is not False) == (len(cores) > 1)  # unset means on
    for (a, labels_a), (b, labels_b) in zip(pinned, free, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        np.testing.assert_array_equal(labels_a.numpy(), labels_b.numpy())
