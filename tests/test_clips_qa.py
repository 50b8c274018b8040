"""Clips that answer a question, end to end: the clip_qa model (frames + question → answer) through
`prepare` (a path,question,answer CSV), `train`, `evaluate`, `export` and a real `corolla serve`.

The clips are those of tests/test_clips.py (tests/clipkit.py says how they are made, test_clips.py
what was measured); each is asked "what colour is the square" and "which way does it move". Kept
apart from test_clips.py so that pytest-xdist's `--dist loadfile` trains the two models on two workers.
"""

from __future__ import annotations

import collections
import json

import httpx
import numpy as np
import pytest

from tests.clipkit import (
    BATCH,
    CHANCE_AT_MOST,
    COLOUR_QUESTION,
    DIRECTION_QUESTION,
    DIRECTIONS,
    FRAMES,
    QA_EPOCHS,
    QA_EVAL_PER_CLASS,
    QA_LEARNING_RATE,
    SEED,
    SIZE,
    arrays,
    b64,
    by_label,
    check_clip_export,
    curve,
    predicted,
    shuffled,
    write_questions,
)
from tests.conftest import COLOURS
from tests.test_serve_e2e import cli_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def qa_rows(moves):
    root, clips = moves
    (root / "qa").mkdir()
    return {split: write_questions(root / "qa" / f"{split}.csv", clips, split) for split in ("train", "eval")}


@pytest.fixture(scope="module")
def qa_data(moves, qa_rows, tmp_path_factory):
    import corolla

    root, _ = moves
    out = tmp_path_factory.mktemp("data") / "qa"
    corolla.prepare(str(root / "qa" / "train.csv"), eval_source=str(root / "qa" / "eval.csv"), out=out, image_size=SIZE, frames=FRAMES, verbose=False)
    return out


@pytest.fixture(scope="module")
def qa_run(qa_data, tmp_path_factory):
    import corolla

    out = tmp_path_factory.mktemp("runs") / "qa"
    corolla.train(qa_data, out=out, model="clip_qa", backbone="frame_cnn", epochs=QA_EPOCHS, batch_size=BATCH,
                  learning_rate=QA_LEARNING_RATE, seed=SEED, verbose=False)  # fmt: skip
    return out


@pytest.fixture(scope="module")
def qa_metrics(qa_run):
    import corolla

    return corolla.evaluate(qa_run, verbose=False)


@pytest.fixture(scope="module")
def qa_export(qa_run, qa_metrics):
    import corolla

    return corolla.export(qa_run, verbose=False)


# --- 2. question answering needs the video and the question ---------------------------------------


def test_clip_qa_needs_both_the_video_and_the_question(qa_data, qa_run, qa_rows, qa_metrics):
    import corolla

    from corolla.data.manifest import Manifest
    from corolla.data.questions import vectorizer
    from corolla.run import Run

    manifest = Manifest.load(qa_data)
    assert (manifest.kind, manifest.task, manifest.classes) == ("clips", "qa", ["blue", "green", "left", "red", "right"])
    assert manifest.count("train") == len(qa_rows["train"]) and manifest.count("eval") == len(qa_rows["eval"])
    assert [row["reason"] for row in manifest.skipped] == ["empty question"]
    assert set(manifest.vocabulary) == set(f"{COLOUR_QUESTION} {DIRECTION_QUESTION}".split())
    # The best any predictor can do on these eval rows from one branch alone:
    rows, count = qa_rows["eval"], len(qa_rows["eval"])
    by_question, by_clip = collections.defaultdict(collections.Counter), collections.defaultdict(collections.Counter)
    for path, question, answer in rows:
        by_question[question][answer] += 1
        by_clip[path][answer] += 1
    question_only = sum(max(answers.values()) for answers in by_question.values()) / count  # the majority answer per question
    video_only = sum(max(answers.values()) for answers in by_clip.values()) / count  # one answer per clip, whatever is asked
    print(f"\nclip_qa eval accuracy {qa_metrics['accuracy']:.3f} on {qa_metrics['count']} (by epoch: {curve(qa_run)}); "
          f"bounds: question only {question_only:.3f}, video only {video_only:.3f}")  # fmt: skip
    assert question_only == pytest.approx(5 / 12) and video_only == 0.5
    assert qa_metrics["count"] == count and qa_metrics["accuracy"] >= 0.90

    # The trained model uses each branch for what it carries: the order for the direction, the question for the kind of answer.
    model = Run(qa_run).load_model()
    (frames, ids), answers = arrays(corolla.data.load(qa_data, "eval", batch_size=64))
    colour = np.isin(answers, [manifest.classes.index(name) for name in COLOURS])
    rng = np.random.default_rng(SEED)
    mixed = [predicted(model, (shuffled(frames, rng), ids)) == answers for _ in range(5)]
    direction_shuffled, colour_shuffled = np.mean([right[~colour] for right in mixed]), np.mean([right[colour] for right in mixed])
    vectorize = vectorizer(manifest.vocabulary, question_length=manifest.question_length)
    colour_ids, direction_ids = np.asarray(vectorize([COLOUR_QUESTION, DIRECTION_QUESTION]))
    swapped = np.where(colour[:, None], direction_ids, colour_ids)  # ask the other question
    follows = np.mean(np.isin(predicted(model, (frames, swapped)), [manifest.classes.index(name) for name in DIRECTIONS]) == colour)
    print(f"shuffled frames: direction answers {direction_shuffled:.3f}, colour answers {colour_shuffled:.3f}; "
          f"the other question asked: {follows:.3f} of answers of its kind")  # fmt: skip
    assert direction_shuffled <= CHANCE_AT_MOST and colour_shuffled >= 0.9
    assert follows >= 0.95


# --- 3. one decode for training, evaluation and the server ----------------------------------------


def test_qa_exports_pass_parity_and_describe_a_question_model(qa_export):
    info, card = check_clip_export(qa_export, task="qa", inputs=["question"], count=4 * QA_EVAL_PER_CLASS)
    assert info["vocabulary"] == card["training"]["vocabulary"] and info["question_length"] == card["training"]["question_length"]


@pytest.fixture(scope="module")
def qa_server(qa_export):
    with cli_server(qa_export.parent) as (url, _):
        yield url, httpx.get(f"{url}/v1/models").json()["models"][0]["name"]


def test_a_served_qa_model_answers_a_question_as_corolla_predict(qa_server, qa_export, handled):
    import corolla
    import tritonclient.http as triton

    url, name = qa_server
    labels = json.loads((qa_export / "corolla.json").read_text())["labels"]
    videos = [path.read_bytes() for path in handled]
    client = triton.InferenceServerClient(url.removeprefix("http://"))
    for question in (COLOUR_QUESTION, DIRECTION_QUESTION, "which way did it go"):  # "did" and "go": unknown words, answered
        local = by_label(corolla.predict(handled, model=qa_export, question=question, top_k=len(labels)), labels)
        clips = triton.InferInput("video_bytes", [len(videos)], "BYTES")
        clips.set_data_from_numpy(np.array(videos, dtype=object))
        asked = triton.InferInput("question", [len(videos)], "BYTES")
        asked.set_data_from_numpy(np.array([question.encode()] * len(videos), dtype=object))
        np.testing.assert_allclose(client.infer(name, [clips, asked]).as_numpy("probabilities"), local, atol=1e-5)
        rows = httpx.post(f"{url}/v1/models/{name}:predict", json={"instances": [{"video_bytes": {"b64": b64(v)}, "question": question} for v in videos]}, timeout=60)
        assert rows.status_code == 200, rows.text
        np.testing.assert_allclose([row["probabilities"] for row in rows.json()["predictions"]], local, atol=1e-5)
        answers = [labels[i] for i in local[:4].argmax(-1)]  # the eval clips left/00, left/01, right/00, right/01
        if question != "which way did it go":
            assert answers == (["red", "green", "red", "green"] if question == COLOUR_QUESTION else ["left", "left", "right", "right"])
    for question, reason in (("", "The question is empty"), ("   ", "The question is empty"), ("xyzzy plugh", "None of the question's words")):
        response = httpx.post(f"{url}/v1/models/{name}:predict", json={"instances": [{"video_bytes": {"b64": b64(videos[0])}, "question": question}]}, timeout=60)
        assert response.status_code == 400 and reason in response.json()["error"], response.text
    missing = httpx.post(f"{url}/v1/models/{name}:predict", json={"instances": [{"video_bytes": {"b64": b64(videos[0])}}]}, timeout=60)
    assert missing.status_code == 400 and "one question per clip" in missing.json()["error"]
