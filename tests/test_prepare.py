"""The Beam `prepare` pipeline: real TFRecords, a truthful manifest, bad files skipped with reasons."""

import collections
import json
import sys

import numpy as np
import pytest
import tensorflow as tf

from corolla.data import records
from corolla.data.manifest import Manifest
from corolla.data.pipeline import load
from corolla.data.prepare import prepare
from corolla.errors import CorollaError


def test_manifest_counts_match_the_shards(prepared):
    manifest = Manifest.load(prepared)
    assert manifest.classes == ["blue", "green", "red"]
    assert (prepared / "labels.txt").read_text() == "blue\ngreen\nred\n"
    assert (manifest.image_size, manifest.channels) == (32, 3)
    assert manifest.count("train") + manifest.count("eval") == 60
    # 21 files listed per class → 2 of each in eval, less any bad file that was drawn for eval:
    skipped_eval = collections.Counter(entry["source"].split("/")[0] for entry in manifest.skipped if entry["split"] == "eval")
    assert {name: n + skipped_eval[name] for name, n in manifest.splits["eval"].per_class.items()} == {"blue": 2, "green": 2, "red": 2}
    assert sum(manifest.splits["train"].per_class.values()) == 60 - manifest.count("eval")
    for split in ("train", "eval"):
        for shard, path in zip(manifest.splits[split].shards, manifest.shard_paths(split)):
            assert sum(1 for _ in tf.data.TFRecordDataset(path)) == shard.records
    assert sorted(p.name for p in prepared.iterdir()) == [
        "eval-00000-of-00001.tfrecord", "labels.txt", "manifest.json", "train-00000-of-00001.tfrecord"
    ]


def test_bad_files_are_skipped_with_reasons(prepared):
    entries = json.loads((prepared / "manifest.json").read_text())["skipped"]
    assert all(entry["split"] in ("train", "eval") for entry in entries)
    skipped = {entry["source"]: entry["reason"] for entry in entries}
    assert skipped == {
        "blue/notes.txt": "not an image (unrecognised content)",
        "green/empty.png": "empty file",
        "red/truncated.jpg": skipped["red/truncated.jpg"],
    }
    assert skipped["red/truncated.jpg"].startswith("corrupt or truncated JPEG")


def test_round_trip_image_to_record_to_tensor(prepared, image_folder):
    """A record holds the (resized) image, its size and label; the pipeline turns it into a float tensor."""
    raw = next(iter(tf.data.TFRecordDataset(Manifest.load(prepared).shard_paths("train"))))
    features = records.parse_example(raw)
    key = features[records.KEY].numpy().decode()
    label_text = features[records.LABEL_TEXT].numpy().decode()
    assert key.split("/")[0] == label_text
    stored = tf.io.decode_image(features[records.IMAGE]).numpy()
    assert stored.shape[:2] == (features[records.HEIGHT].numpy(), features[records.WIDTH].numpy())
    assert stored.shape[:2] == (32, 32)  # stored at the model's size: loading is a bare decode
    images, labels = next(iter(load(prepared, "train", batch_size=8, shuffle=False)))
    assert images.shape == (8, 32, 32, 3) and images.dtype == tf.float32
    assert 0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 255
    assert labels.dtype == tf.int32


def test_pipeline_knows_its_length(prepared):
    dataset = load(prepared, "train", batch_size=16)
    count = Manifest.load(prepared).count("train")
    assert int(dataset.cardinality()) == -(-count // 16)
    assert sum(int(labels.shape[0]) for _, labels in dataset) == count


def test_refuses_a_non_empty_output_without_overwrite(prepared, image_folder):
    with pytest.raises(CorollaError, match="--overwrite"):
        prepare(str(image_folder), out=prepared, verbose=False)


def test_csv_source_lists_missing_files_and_overwrite_replaces(image_folder, tmp_path):
    csv_path = tmp_path / "images.csv"
    lines = [f"{path},{path.parent.name}" for path in sorted(image_folder.glob("*/*.png"))]
    csv_path.write_text("\n".join(lines + [f"{tmp_path}/gone.png,red"]) + "\n")
    out = tmp_path / "out"
    (out / "train-00000-of-00009.tfrecord").parent.mkdir()
    (out / "train-00000-of-00009.tfrecord").write_bytes(b"stale")
    manifest = prepare(str(csv_path), out=out, image_size=32, eval_fraction=0.25, overwrite=True, verbose=False)
    assert manifest.count("train") + manifest.count("eval") == len(lines) - 1  # green/empty.png is skipped
    assert [(entry["source"], entry["reason"]) for entry in manifest.skipped] == [
        (str(image_folder / "green/empty.png"), "empty file"),
        (f"{tmp_path}/gone.png", "file not found (CSV line %d)" % (len(lines) + 1)),
    ]
    assert not (out / "train-00000-of-00009.tfrecord").exists()
    assert not list(out.glob(".*tmp*")) and not (out / "_prepare_work").exists()


def test_builtin_dataset_keeps_its_official_test_split(tmp_path):
    """A tiny registered built-in dataset: its 'test' arrays become the eval split, untouched by eval_fraction."""
    import gzip

    from corolla.data import datasets

    rng = np.random.default_rng(0)
    folder = tmp_path / "idx"
    folder.mkdir()
    for prefix, count in (("train", 12), ("t10k", 5)):
        images = rng.integers(0, 255, (count, 28, 28), dtype=np.uint8)
        labels = np.arange(count, dtype=np.uint8) % 3
        header = np.array([2051, count, 28, 28], ">u4").tobytes()
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + images.tobytes()))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(np.array([2049, count], ">u4").tobytes() + labels.tobytes()))
    real = datasets.get_dataset("fashion-mnist")
    tiny = datasets.BuiltinDataset(
        name="tiny-idx", description="test", base_url="http://127.0.0.1:9", files=real.files,
        system_dirs=(str(folder),), labels=("a", "b", "c"), image_size=28, channels=1,
    )
    datasets.register_dataset(tiny)
    try:
        import os

        os.environ["COROLLA_HOME"] = str(tmp_path / "home")
        manifest = prepare("tiny-idx", out=tmp_path / "out", verbose=False)
    finally:
        datasets.unregister_dataset("tiny-idx")
        os.environ.pop("COROLLA_HOME")
    assert (manifest.count("train"), manifest.count("eval")) == (12, 5)
    assert (manifest.image_size, manifest.channels) == (28, 1)
    images, labels = next(iter(load(tmp_path / "out", "eval", batch_size=5, shuffle=False)))
    assert images.shape == (5, 28, 28, 1)


def test_a_class_too_small_to_split_is_reported(image_folder, tmp_path):
    source = tmp_path / "src"
    for name, count in (("big", 10), ("tiny", 2)):
        (source / name).mkdir(parents=True)
        for index, path in enumerate(sorted((image_folder / "red").glob("*.png"))[:count]):
            (source / name / f"{index}.png").write_bytes(path.read_bytes())
    manifest = prepare(str(source), out=tmp_path / "out", image_size=32, verbose=False)
    assert manifest.splits["eval"].per_class == {"big": 1, "tiny": 0}
    assert manifest.notes == ["class 'tiny' has 2 usable training image(s) and none for eval"]


def test_shards_option_gives_exactly_that_many(image_folder, tmp_path):
    manifest = prepare(str(image_folder), out=tmp_path / "out", image_size=32, shards=3, verbose=False)
    assert [shard.file for shard in manifest.splits["train"].shards] == [f"train-0000{i}-of-00003.tfrecord" for i in range(3)]
    counts = [shard.records for shard in manifest.splits["train"].shards]
    assert max(counts) - min(counts) <= 1 and sum(counts) == manifest.count("train")


def test_killed_prepare_leaves_nothing_that_looks_complete(tmp_path):
    """SIGKILL while shards are being written: no manifest, no shard under a final name; a re-run succeeds."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import encode

    rng = np.random.default_rng(0)
    source = tmp_path / "many"
    for label in ("a", "b"):
        (source / label).mkdir(parents=True)
        for index in range(400):
            (source / label / f"{index}.jpg").write_bytes(encode(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8), "JPEG"))
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "corolla.cli", "prepare", str(source), "--out", str(out), "--image-size", "64"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not list(out.glob("_prepare_work/*.tfrecord")):
        assert process.poll() is None and time.monotonic() < deadline, "prepare ended before it started writing"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (out / "manifest.json").exists()
    assert not list(out.glob("*.tfrecord"))
    with pytest.raises(CorollaError):
        Manifest.load(out)  # the loader refuses the unfinished folder
    manifest = prepare(str(source), out=out, image_size=64, overwrite=True, verbose=False)
    assert manifest.count("train") + manifest.count("eval") == 800


def test_identical_files_across_train_and_eval_are_reported(image_folder, tmp_path):
    evaluation = tmp_path / "eval"
    (evaluation / "red").mkdir(parents=True)
    copied = (image_folder / "red" / "3.jpg").read_bytes()
    (evaluation / "red" / "copy.jpg").write_bytes(copied)
    manifest = prepare(str(image_folder), out=tmp_path / "out", eval_source=str(evaluation), image_size=32, verbose=False)
    assert manifest.count("eval") == 1
    assert manifest.duplicates == [{
        "sha1": __import__("hashlib").sha1(copied).hexdigest(),
        "sources": [{"source": "red/3.jpg", "split": "train"}, {"source": "red/copy.jpg", "split": "eval"}],
        "across_splits": True,
    }]
    assert "1 image(s) appear in both train and eval (identical bytes): see 'duplicates' in the manifest" in manifest.notes
    none = prepare(str(image_folder), out=tmp_path / "out2", image_size=32, find_duplicates=False, verbose=False)
    assert none.duplicates == []


def test_images_smaller_than_the_model_size_are_counted_and_resized_on_load(tmp_path):
    from tests.conftest import encode

    for name, shape in {"a/big.png": (50, 80, 3), "a/small.png": (20, 24, 3), "b/big.jpg": (64, 64, 3), "b/square.png": (32, 32, 3)}.items():
        path = tmp_path / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(np.full(shape, 120, np.uint8), "JPEG" if name.endswith(".jpg") else "PNG"))
    manifest = prepare(str(tmp_path / "src"), out=tmp_path / "data", image_size=32, eval_fraction=0.0, verbose=False)
    assert manifest.off_size_images == 1  # only the 20×24 one: never enlarged, so loading resizes it
    assert Manifest.load(tmp_path / "data").off_size_images == 1
    images = np.concatenate([batch.numpy() for batch, _ in load(tmp_path / "data", "train", batch_size=3)])
    assert images.shape == (4, 32, 32, 3) and np.abs(images - 120).max() <= 2


def test_a_local_prepare_prints_only_corollas_own_lines_on_stderr(image_folder, tmp_path):
    import os
    import re
    import subprocess

    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}  # as a user's shell has it
    # Wide enough that the progress line keeps "(Apache Beam)" after a long temporary path (Rich cuts lines at
    # COLUMNS, 80 when stderr is a pipe; pytest-xdist workers' tmp paths are longer and set COLUMNS=80).
    env["COLUMNS"] = "400"
    result = subprocess.run(
        [sys.executable, "-m", "corolla.cli", "prepare", str(image_folder), "--out", str(tmp_path / "data"), "--image-size", "32"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    foreign = [line for line in lines if not re.fullmatch(r"\S? ?Preparing [\d,]+ images from .* \(Apache Beam\).*", line)]
    assert lines and not foreign, f"lines on stderr that are not corolla's: {foreign}"


def test_beams_other_warnings_still_reach_the_log_while_its_gcp_probe_is_dropped(caplog):
    import logging

    from corolla.data.beam_steps import _without_gcp_probe_warning

    with _without_gcp_probe_warning():
        logging.warning("apitools not found, and bigquery client libraries are not available")
        logging.warning("a real warning from Beam")
        logging.getLogger("apache_beam.runners").error("a real error from Beam")
    assert [record.getMessage() for record in caplog.records] == ["a real warning from Beam", "a real error from Beam"]
    assert not logging.getLogger().filters
