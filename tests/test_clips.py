"""Clips end to end, the acceptance of the video-clip issue: real PyAV files, a real Beam `prepare`,
real training, `evaluate`, `export`, a real `corolla serve` process and a real tritonclient.

The clips (tests/clipkit.py says how they are made): a square crosses noise to the left or to the
right, and only the order of the frames tells which.
The question-answering half (clip_qa) is in tests/test_clips_qa.py, a file of its own so that
pytest-xdist's `--dist loadfile` trains the two models on two workers.

Measured on 2 shared CPU cores, seeds 0–4 (COROLLA_CLIP_SEED picks another; `-s` prints the figures):
clip_lstm 100% on the 100 eval clips on all five (100% from epoch 3–5 of 12), 0% with the frames
reversed, 49.6–52.5% with them shuffled (10 shuffles each); frame_cnn on single frames 50.0–54.7%
(800 frames); clip_qa 100% on 120 questions (question-only bound 41.7%, video-only bound 50%), its
direction answers 47–52% with the frames shuffled while its colour answers stay 100%.
Careful when changing the clips: sampling 8 of 16 frames takes odd positions one way and even ones
the other (a single-frame model then reaches 58–66%), and MJPEG's rate control lowers the quality
frame by frame (36 → 22 dB over a clip), which a single frame also betrays (66–74%).
"""

from __future__ import annotations

import re

import httpx
import numpy as np
import pytest

from tests import clipgen
from tests.clipkit import (
    BATCH,
    CHANCE_AT_MOST,
    DIRECTIONS,
    EPOCHS,
    EVAL_PER_CLASS,
    FRAMES,
    MAX_BODY_MB,
    MAX_PIXELS,
    SEED,
    SIZE,
    SOURCE_FRAMES,
    TRAIN_PER_CLASS,
    arrays,
    b64,
    by_label,
    check_clip_export,
    curve,
    predicted,
    shuffled,
)
from tests.test_serve_e2e import cli_server

pytestmark = pytest.mark.slow


# --- the shared data, runs and exports -----------------------------------------------------------


@pytest.fixture(scope="module")
def moves_data(moves, tmp_path_factory):
    import corolla

    root, _ = moves
    out = tmp_path_factory.mktemp("data") / "moves"
    corolla.prepare(str(root / "train"), eval_source=str(root / "eval"), out=out, image_size=SIZE, frames=FRAMES, verbose=False)  # kind: auto
    return out


@pytest.fixture(scope="module")
def moves_run(moves_data, tmp_path_factory):
    import corolla

    out = tmp_path_factory.mktemp("runs") / "moves"
    corolla.train(moves_data, out=out, model="clip_lstm", backbone="frame_cnn", epochs=EPOCHS, batch_size=BATCH, seed=SEED, verbose=False)
    return out


@pytest.fixture(scope="module")
def moves_metrics(moves_run):
    import corolla

    return corolla.evaluate(moves_run, verbose=False)


@pytest.fixture(scope="module")
def moves_export(moves_run, moves_metrics):
    import corolla

    return corolla.export(moves_run, verbose=False)  # every format, parity-checked on the eval clips


# --- 1. only the order tells the class ------------------------------------------------------------


def test_order_only_clips_are_learnt(moves_data, moves_run, moves_metrics):
    from corolla.data.manifest import Manifest

    manifest = Manifest.load(moves_data)
    assert (manifest.kind, manifest.frames, manifest.image_size, manifest.classes) == ("clips", FRAMES, SIZE, list(DIRECTIONS))
    assert (manifest.count("train"), manifest.count("eval"), manifest.skipped) == (2 * TRAIN_PER_CLASS, 2 * EVAL_PER_CLASS, [])
    assert manifest.clips["frames"]["min"] == manifest.clips["frames"]["max"] == FRAMES
    assert manifest.clips["duration_s"]["mean"] == pytest.approx(SOURCE_FRAMES / 8, abs=0.01)
    print(f"\nclip_lstm eval accuracy: {moves_metrics['accuracy']:.3f} on {moves_metrics['count']} clips (seed {SEED}); by epoch: {curve(moves_run)}")
    assert moves_metrics["split"] == "eval" and moves_metrics["count"] == 2 * EVAL_PER_CLASS
    assert moves_metrics["accuracy"] >= 0.95


def test_the_model_reads_the_order_of_the_frames(moves_data, moves_run):
    import corolla
    from corolla.run import Run

    model = Run(moves_run).load_model()
    frames, labels = arrays(corolla.data.load(moves_data, "eval", batch_size=64))
    assert frames.shape == (2 * EVAL_PER_CLASS, FRAMES, SIZE, SIZE, 3) and frames.min() >= 0  # all frames real
    assert np.mean(predicted(model, frames) == labels) >= 0.95
    # Reversed, a left clip is a right clip: the model must say the other class.
    reversed_accuracy = float(np.mean(predicted(model, frames[:, ::-1]) == labels))
    rng = np.random.default_rng(SEED)
    shuffled_accuracy = [float(np.mean(predicted(model, shuffled(frames, rng)) == labels)) for _ in range(10)]
    print(f"\nreversed frames: {reversed_accuracy:.3f}; shuffled frames: {np.mean(shuffled_accuracy):.3f} (10 shuffles, {min(shuffled_accuracy):.2f}–{max(shuffled_accuracy):.2f})")
    assert reversed_accuracy <= 0.1
    assert np.mean(shuffled_accuracy) <= CHANCE_AT_MOST


def test_an_image_model_on_single_frames_stays_near_chance(moves_data, tmp_path):
    """Every frame of every clip as an image of its clip's class, exactly as the clip model sees it: no frame tells the class."""
    import corolla
    import tensorflow as tf

    from corolla.data import records
    from corolla.data.manifest import Manifest

    manifest = Manifest.load(moves_data)
    for split in ("train", "eval"):
        for record in tf.data.TFRecordDataset(manifest.shard_paths(split)).map(records.parse_clip_example).as_numpy_iterator():
            folder = tmp_path / "frames" / split / manifest.classes[record[records.LABEL]]
            folder.mkdir(parents=True, exist_ok=True)
            name = record[records.KEY].decode().replace("/", "-")
            for index, frame in enumerate(record[records.FRAMES]):
                (folder / f"{name}-{index}.jpg").write_bytes(frame)  # the stored 32×32 JPEG: prepare keeps it as it is
    frames = tmp_path / "frames"
    manifest = corolla.prepare(str(frames / "train"), eval_source=str(frames / "eval"), out=tmp_path / "data", image_size=SIZE, find_duplicates=False, verbose=False)
    assert manifest.kind == "images" and manifest.count("eval") == 2 * EVAL_PER_CLASS * FRAMES and manifest.off_size_images == 0
    corolla.train(tmp_path / "data", out=tmp_path / "run", model="frame_cnn", epochs=8, batch_size=32, seed=SEED, verbose=False)
    metrics = corolla.evaluate(tmp_path / "run", verbose=False)
    print(f"\nframe_cnn on single frames: eval accuracy {metrics['accuracy']:.3f} on {metrics['count']} frames")
    assert metrics["accuracy"] <= CHANCE_AT_MOST


def test_training_evaluation_and_the_server_see_the_same_pixels(moves, moves_data, moves_run):
    import corolla
    import tensorflow as tf

    from corolla.data import records
    from corolla.data.manifest import Manifest
    from corolla.evaluate.predictions import decoder, labelled_images
    from corolla.run import Run
    from corolla.runtime.exported import ClipDecoder
    from corolla.serve.limits import DEFAULT_MAX_PIXELS

    manifest, config = Manifest.load(moves_data), Run(moves_run).config
    training, _ = arrays(corolla.data.load(moves_data, "eval", batch_size=16, shuffle=False))  # interleaved shards: matched by content below
    in_training = {clip.tobytes(): index for index, clip in enumerate(training)}
    assert len(in_training) == len(training) == 2 * EVAL_PER_CLASS  # every clip's pixels differ (fresh noise)
    stored = tf.data.TFRecordDataset(manifest.shard_paths("eval")).map(records.parse_clip_example).as_numpy_iterator()
    decode = decoder(config)  # `corolla evaluate`: the stored records, decoded in a tf.data map
    evaluation = labelled_images(moves_data, config, split="eval").dataset.map(lambda frames, label, key: (decode(frames), key)).as_numpy_iterator()
    server = ClipDecoder(frames=config.frames, image_size=config.image_size, channels=config.channels, max_pixels=DEFAULT_MAX_PIXELS)
    matched = set()
    for record, (pixels, key) in zip(stored, evaluation, strict=True):
        assert key == record[records.KEY]
        video = (moves[0] / "eval" / key.decode()).read_bytes()
        assert server.sample(video) == list(record[records.FRAMES])  # the very JPEG bytes prepare stored
        assert pixels.tobytes() in in_training, key  # exactly a clip of the training pipeline
        matched.add(in_training[pixels.tobytes()])
        np.testing.assert_array_equal(server(video), pixels)
    assert len(matched) == 2 * EVAL_PER_CLASS


# --- 6. export: every format checked, the files say what the model takes --------------------------


def test_clip_exports_pass_parity_and_describe_clips(moves_export):
    check_clip_export(moves_export, task="classify", inputs=[], count=2 * EVAL_PER_CLASS)


# --- 4. serving answers as `corolla predict` does --------------------------------------------------


@pytest.fixture(scope="module")
def moves_server(moves_export):
    with cli_server(moves_export.parent, "--max-pixels", str(MAX_PIXELS), "--max-body-mb", str(MAX_BODY_MB)) as (url, _):
        yield url, httpx.get(f"{url}/v1/models").json()["models"][0]["name"]


def test_a_served_clip_model_answers_as_corolla_predict(moves_server, moves_export, handled):
    import corolla
    import tritonclient.http as triton

    url, name = moves_server
    labels = list(DIRECTIONS)
    local = by_label(corolla.predict(handled, model=moves_export, top_k=len(labels)), labels)
    assert [labels[i] for i in local[:4].argmax(-1)] == ["left", "left", "right", "right"]  # the eval clips are right
    videos = [path.read_bytes() for path in handled]
    client = triton.InferenceServerClient(url.removeprefix("http://"))
    tensor = triton.InferInput("video_bytes", [len(videos)], "BYTES")
    tensor.set_data_from_numpy(np.array(videos, dtype=object))
    result = client.infer(name, [tensor])
    np.testing.assert_allclose(result.as_numpy("probabilities"), local, atol=1e-5)
    assert [label.decode() for label in result.as_numpy("labels")] == [labels[i] for i in local.argmax(-1)]
    rows = httpx.post(f"{url}/v1/models/{name}:predict", json={"instances": [{"video_bytes": {"b64": b64(v)}, "key": p.name} for v, p in zip(videos, handled)]}, timeout=60)
    assert rows.status_code == 200, rows.text
    predictions = rows.json()["predictions"]
    np.testing.assert_allclose([row["probabilities"] for row in predictions], local, atol=1e-5)
    assert [row["key"] for row in predictions] == [path.name for path in handled]
    np.testing.assert_allclose(by_label(corolla.predict(handled, url=url, top_k=len(labels)), labels), local, atol=1e-5)


def test_bad_clips_get_a_4xx_with_the_reason(moves_server):
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    url, name = moves_server
    whole = clipgen.make_clip(frames=40)
    cases = {
        "text named .mp4": (b"just some notes, not a video\n" * 20, 400, r"not a video"),
        "truncated MP4": (whole[: len(whole) // 2], 400, r"truncated MP4/MOV: it has no 'moov' index"),
        "audio only": (clipgen.make_audio_only(codec="aac"), 400, r"no video stream \(audio only\)"),
        "zero frames": (clipgen.make_empty_video(), 400, r"the video stream has no frames"),
        "too long": (clipgen.make_clip(frames=130, fps=1), 413, r"clip too long: 130.0 s exceeds the limit of 120 s"),
        "too many pixels": (clipgen.make_clip(frames=4, size=(200, 150)), 413, r"frame too large: 200x150 pixels exceeds the limit of 20,000"),
    }
    client = triton.InferenceServerClient(url.removeprefix("http://"))
    for case, (data, status, reason) in cases.items():
        response = httpx.post(f"{url}/v1/models/{name}:predict", json={"instances": [{"video_bytes": {"b64": b64(data)}}]}, timeout=60)
        assert response.status_code == status, (case, response.text)
        assert re.search(rf"^instances\[0\]: .*{reason}", response.json()["error"]), (case, response.json())
        tensor = triton.InferInput("video_bytes", [1], "BYTES")
        tensor.set_data_from_numpy(np.array([data], dtype=object))
        with pytest.raises(InferenceServerException) as raised:
            client.infer(name, [tensor])
        assert raised.value.status() == str(status) and re.search(reason, raised.value.message()), case
    big = clipgen.make_clip(frames=40, size=(320, 240))  # noise compresses badly: ~0.8 MB
    assert len(big) > MAX_BODY_MB * 2**20
    response = httpx.post(f"{url}/v1/models/{name}:predict", json={"instances": [{"video_bytes": {"b64": b64(big)}}]}, timeout=60)
    assert response.status_code == 413 and "exceeds the limit" in response.json()["error"], response.text
    asked = httpx.post(f"{url}/v1/models/{name}:predict", json={"instances": [{"video_bytes": {"b64": b64(whole)}, "question": "which way"}]}, timeout=60)
    assert asked.status_code == 400 and "answers no questions" in asked.json()["error"]
    assert httpx.get(f"{url}/v2/health/ready").status_code == 200  # none of it hurt the server


# --- 5. bad and awkward files through `prepare` ---------------------------------------------------


def test_prepare_skips_bad_clips_with_a_reason_and_keeps_awkward_ones(tmp_path):
    import corolla
    import tensorflow as tf

    from corolla.data import records
    from corolla.data.video import PAD_VALUE, read_clip

    source = tmp_path / "clips"
    whole = clipgen.make_clip(frames=40)
    bad = {
        "left/notes.mp4": (b"just some notes, not a video\n" * 20, r"not a video \(unrecognised content\)"),
        "left/cut.mp4": (whole[: len(whole) // 2], r"truncated MP4/MOV: it has no 'moov' index"),
        "left/silent.mp4": (clipgen.make_audio_only(codec="aac"), r"no video stream \(audio only\)"),
        "right/nothing.mkv": (clipgen.make_empty_video(), r"the video stream has no frames"),
        "right/long.mp4": (clipgen.make_clip(frames=40, fps=8), r"clip too long: 5.0 s exceeds the limit of 3 s"),  # --max-seconds 3
        "right/huge.mkv": (  # 42 megapixels a frame: over prepare's 40-megapixel limit, refused from the header
            clipgen.write_video(None, [np.full((6000, 7000, 3), 128, np.uint8)], codec="mjpeg", container="matroska"),
            r"frame too large: 7000x6000 pixels exceeds the limit of 40,000,000",
        ),
    }
    for name, (data, _) in bad.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(data)
    awkward = {
        "left/plain.mp4": dict(direction="left", frames=SOURCE_FRAMES, seed=5),
        "left/vfr.mp4": dict(direction="left", frames=SOURCE_FRAMES, variable_frame_rate=True, seed=6),
        "left/short.mp4": dict(direction="left", frames=10, seed=7),  # 10 frames, 16 asked
        "right/phone.mp4": dict(direction="right", frames=SOURCE_FRAMES, rotation=90, seed=8),
        "right/odd.webm": dict(direction="right", frames=SOURCE_FRAMES, size=(161, 97), codec="libvpx-vp9", seed=9),
    }
    for name, options in awkward.items():
        clipgen.make_clip(source / name, **options)
    manifest = corolla.prepare(str(source), out=tmp_path / "data", image_size=SIZE, frames=16, max_seconds=3, eval_fraction=0, verbose=False)

    reasons = {row["source"]: row["reason"] for row in manifest.skipped}
    assert set(reasons) == set(bad), reasons
    for name, (_, reason) in bad.items():
        assert re.search(reason, reasons[name]), (name, reasons[name])
    assert (manifest.kind, manifest.frames, manifest.count("train")) == ("clips", 16, len(awkward))
    assert manifest.clips["frames"]["min"] == 10 and manifest.clips["frames"]["max"] == 16 and manifest.clips["variable_frame_rate"] == 1
    assert any("fewer than 16 frames" in note and "masks" in note for note in manifest.notes)
    stored = {record[records.KEY].decode(): record for record in tf.data.TFRecordDataset(manifest.shard_paths("train")).map(records.parse_clip_example).as_numpy_iterator()}
    assert set(stored) == set(awkward)
    assert len(stored["left/short.mp4"][records.FRAMES]) == 10
    for key, record in stored.items():
        shapes = {tf.io.decode_jpeg(frame).shape for frame in record[records.FRAMES]}
        assert shapes == {(SIZE, SIZE, 3)}, key  # 161×97, and the phone's 48×64 stored frames, squashed to 32×32 upright
    upright = read_clip(clipgen.make_clip(direction="right", frames=SOURCE_FRAMES, seed=8), frames=16, image_size=SIZE).frames
    phone = [tf.io.decode_jpeg(frame).numpy().astype(float) for frame in stored["right/phone.mp4"][records.FRAMES]]
    reference = [tf.io.decode_jpeg(frame).numpy().astype(float) for frame in upright]
    assert np.mean([np.abs(a - b).mean() for a, b in zip(phone, reference)]) < 6
    # The 10-frame clip is padded to 16 in the training pipeline, and the server's decoder pads it alike.
    from corolla.runtime.exported import ClipDecoder
    from corolla.serve.limits import DEFAULT_MAX_PIXELS

    frames, _ = arrays(corolla.data.load(tmp_path / "data", "train", batch_size=8))
    padded = [clip for clip in frames if (clip == PAD_VALUE).all(axis=(1, 2, 3)).any()]
    assert len(padded) == 1  # the short clip, and only it
    short = padded[0]
    assert short.shape == (16, SIZE, SIZE, 3) and (short[10:] == PAD_VALUE).all() and (short[:10] >= 0).all()
    server = ClipDecoder(frames=16, image_size=SIZE, channels=3, max_pixels=DEFAULT_MAX_PIXELS)
    np.testing.assert_array_equal(server((source / "left/short.mp4").read_bytes()), short)
