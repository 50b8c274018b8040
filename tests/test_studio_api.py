"""The studio's API against a real `corolla studio` process: projects, classes, pictures, overrides, runs.

Trainings are tiny (24 pictures of 16 px, model convnet) and every one of them is the real thing:
the studio runs `corolla prepare/train/evaluate` as child processes, as a user's page would.
"""

from __future__ import annotations

import csv
import json
import os
import pathlib
import struct
import subprocess
import sys
import threading

import pytest

from tests.studiokit import BLUE, RED, Studio, alive, job_record, pictures, progress_events, wait_for

TINY = {"model": "convnet", "image_size": 16, "batch_size": 8}


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """ROOT/photos/{red,blue}: 3 pictures each, a folder the studio may link."""
    root = tmp_path_factory.mktemp("studio-root")
    for class_name, colour, seed in (("red", RED, 1), ("blue", BLUE, 2)):
        (root / "photos" / class_name).mkdir(parents=True)
        for index, data in enumerate(pictures(colour, 3, seed=seed)):
            (root / "photos" / class_name / f"{index}.png").write_bytes(data)
    return root


@pytest.fixture(scope="module")
def studio(photos, tmp_path_factory):
    with Studio(tmp_path_factory.mktemp("studio-api"), "--root", photos) as running:
        yield running


@pytest.fixture(scope="module")
def client(studio):
    with studio.client() as browser:
        yield browser


def two_classes(count: int, seed: int) -> dict[str, list[bytes]]:
    return {"red": pictures(RED, count, seed=seed), "blue": pictures(BLUE, count, seed=seed + 1)}


def keys_of(client, project: str, class_name: str) -> list[str]:
    """The picture keys (absolute paths) of a class, in items.csv order."""
    return sorted(str(path) for path in (client.studio.workdir / project / "pictures" / class_name).iterdir() if path.is_file())


# --- projects, classes, pictures --------------------------------------------------------------


def test_projects_classes_uploads_and_counts(client):
    made = client.ok("POST", "/api/projects", 201, json={"name": "mixed"})
    assert made["folder"] == str(client.studio.workdir / "mixed")
    assert client.post("/api/projects", json={"name": "mixed"}).status_code == 409
    for bad in ("", "../up", "a/b", ".hidden", "x" * 65):
        assert client.post("/api/projects", json={"name": bad}).status_code == 400, bad
    assert client.get("/api/projects/nothing").status_code == 404
    added = client.ok("POST", "/api/projects/mixed/classes", 201, json={"name": " red "})
    assert added["class"] == "red" and added["command"].startswith("mkdir -p ")
    client.ok("POST", "/api/projects/mixed/classes", 201, json={"name": "blue"})
    reds = pictures(RED, 5, seed=3)
    body = client.upload("mixed", "red", reds + reds[:1]).json()  # the same bytes twice are one picture
    assert len(body["added"]) == 6 and len(set(body["added"])) == 5 and body["refused"] == []
    assert body["command"].startswith("cp FILES ")
    assert all(pathlib.Path(path).parent == client.studio.workdir / "mixed" / "pictures" / "red" for path in body["added"])
    assert client.upload("mixed", "green", reds[:1]).status_code == 404
    assert client.counts("mixed") == {"red": 5, "blue": 0}
    # A linked folder adds its pictures to classes of the same name, and its other classes.
    client.ok("POST", "/api/projects/mixed/sources", 201, json={"path": "photos"})
    view = client.ok("GET", "/api/projects/mixed")
    assert {row["name"]: row["count"] for row in view["classes"]} == {"red": 8, "blue": 3}
    assert view["pictures"] == 11 and view["prepared"] is False and view["overrides"] == []
    assert "corolla prepare" in view["command"]
    for row in view["classes"]:
        assert 0 < len(row["samples"]) <= 8
        for key in row["samples"]:
            assert client.get("/api/projects/mixed/thumbnail", params={"key": key}).status_code == 200
    listed = {p["name"]: p for p in client.ok("GET", "/api/projects")["projects"]}
    assert listed["mixed"]["classes"] == 2 and listed["mixed"]["runs"] == 0


def test_rename_and_remove_classes_and_bring_them_back(client):
    client.project("garden", {"roses": pictures(RED, 3, seed=5), "tulips": pictures(BLUE, 2, seed=6)})
    folder = client.studio.workdir / "garden" / "pictures"
    renamed = client.ok("PATCH", "/api/projects/garden/classes/roses", json={"name": "rose"})
    assert renamed["class"] == "rose"
    assert client.counts("garden") == {"rose": 3, "tulips": 2}
    assert client.patch("/api/projects/garden/classes/roses", json={"name": "x"}).status_code == 404  # the old name is gone
    client.upload("garden", "rose", pictures(RED, 1, seed=7))  # uploads follow the renamed class
    assert client.counts("garden") == {"rose": 4, "tulips": 2}
    assert len(list((folder / "roses").iterdir())) == 4
    # Remove: the class and its pictures leave the data, no file is deleted.
    removed = client.ok("DELETE", "/api/projects/garden/classes/rose")
    assert removed["removed"] == "rose" and "add a class of that name again" in removed["note"]
    assert client.counts("garden") == {"tulips": 2}
    assert len(list((folder / "roses").iterdir())) == 4
    with open(client.studio.workdir / "garden" / "items.csv", newline="", encoding="utf-8") as file:
        assert [label for _, label in list(csv.reader(file))[1:]] == ["tulips", "tulips"]
    # Undo: add it back, with every picture.
    client.ok("POST", "/api/projects/garden/classes", 201, json={"name": "rose"})
    assert client.counts("garden") == {"rose": 4, "tulips": 2}
    client.ok("DELETE", "/api/projects/garden/classes/tulips")
    assert client.counts("garden") == {"rose": 4}
    client.ok("POST", "/api/projects/garden/classes", 201, json={"name": "tulips"})
    assert client.counts("garden") == {"rose": 4, "tulips": 2}
    assert client.delete("/api/projects/garden/classes/lilies").status_code == 404


def read_overrides(client, project: str) -> list[list[str]]:
    with open(client.studio.workdir / project / "overrides.csv", newline="", encoding="utf-8") as file:
        return list(csv.reader(file))


def test_overrides_relabel_exclude_and_undo(client):
    client.project("fixes", two_classes(4, seed=8))
    red = keys_of(client, "fixes", "red")
    moved = client.ok("POST", "/api/projects/fixes/overrides", json={"key": red[0], "label": "blue"})
    assert moved["overrides"] == 1 and "--overrides" in moved["command"]
    client.ok("POST", "/api/projects/fixes/overrides", json={"key": red[1], "label": None})
    view = client.ok("GET", "/api/projects/fixes")
    assert {row["name"]: row["count"] for row in view["classes"]} == {"red": 2, "blue": 5}
    assert {(row["key"], row["label"]) for row in view["overrides"]} == {(red[0], "blue"), (red[1], None)}
    assert view["can_undo"] is True
    assert read_overrides(client, "fixes") == [["key", "label"], [red[0], "blue"], [red[1], ""]]
    # Relabelling the same picture twice, then undoing, goes back one step at a time.
    client.ok("POST", "/api/projects/fixes/overrides", json={"key": red[0], "label": "red"})
    assert client.counts("fixes") == {"red": 3, "blue": 4}
    assert client.ok("POST", "/api/projects/fixes/overrides/undo")["undone"]["key"] == red[0]
    assert client.counts("fixes") == {"red": 2, "blue": 5}
    assert client.ok("POST", "/api/projects/fixes/overrides/undo")["undone"]["key"] == red[1]
    assert client.counts("fixes") == {"red": 3, "blue": 5}
    assert read_overrides(client, "fixes") == [["key", "label"], [red[0], "blue"]]
    client.ok("POST", "/api/projects/fixes/overrides/undo")
    assert client.counts("fixes") == {"red": 4, "blue": 4}
    assert read_overrides(client, "fixes") == [["key", "label"]]
    assert client.ok("POST", "/api/projects/fixes/overrides/undo") == {"undone": None, "overrides": 0}
    assert client.ok("GET", "/api/projects/fixes")["can_undo"] is False
    # Only the project's pictures, only to its classes.
    assert client.post("/api/projects/fixes/overrides", json={"key": "/etc/passwd", "label": "red"}).status_code == 404
    assert client.post("/api/projects/fixes/overrides", json={"key": red[0], "label": "green"}).status_code == 400
    # A class renamed after a picture moved to it takes the picture along.
    client.ok("POST", "/api/projects/fixes/overrides", json={"key": red[2], "label": "blue"})
    client.ok("PATCH", "/api/projects/fixes/classes/blue", json={"name": "navy"})
    assert client.counts("fixes") == {"red": 3, "navy": 5}
    assert read_overrides(client, "fixes") == [["key", "label"], [red[2], "navy"]]


# --- prepared data ----------------------------------------------------------------------------------


def tfrecords(path: pathlib.Path):
    """The serialized records of an (uncompressed) TFRecord file."""
    data, offset = path.read_bytes(), 0
    while offset < len(data):
        (length,) = struct.unpack_from("<Q", data, offset)
        yield data[offset + 12 : offset + 12 + length]
        offset += 12 + length + 4


def _fields(buffer: bytes):
    """(field number, value) of a protobuf message: ints for varints, bytes for length-delimited fields."""
    offset = 0

    def varint():
        nonlocal offset
        value = shift = 0
        while True:
            byte = buffer[offset]
            offset += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    while offset < len(buffer):
        tag = varint()
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            yield number, varint()
        elif wire == 2:
            length = varint()
            yield number, buffer[offset : offset + length]
            offset += length
        elif wire in (1, 5):
            offset += 8 if wire == 1 else 4
        else:
            raise ValueError(f"wire type {wire}")


def example(record: bytes) -> dict[str, bytes]:
    """A tf.train.Example's bytes features (Example.features.feature[name].bytes_list.value[0]), without TensorFlow."""
    found = {}
    for _, features in _fields(record):
        for _, entry in _fields(features):
            parts = dict(_fields(entry))
            kinds = dict(_fields(parts[2]))
            if 1 in kinds:  # bytes_list
                found[parts[1].decode()] = dict(_fields(kinds[1]))[1]
    return found


def stored(data_dir: pathlib.Path) -> dict[str, str]:
    """key → class name of every record prepare wrote."""
    manifest, found = json.loads((data_dir / "manifest.json").read_text()), {}
    for split in manifest["splits"].values():
        for shard in split["shards"]:
            for record in tfrecords(data_dir / shard["file"]):
                features = example(record)
                found[features["image/key"].decode()] = features["image/class/text"].decode()
    return found


def kill_after_first_epoch(studio: Studio, run_dir: pathlib.Path) -> dict:
    """SIGKILL the studio as soon as the run has a checkpoint, whichever test is running then (a thread)."""
    seen: dict = {}

    def watch():
        try:
            wait_for(lambda: any(event["event"] == "epoch" for event in progress_events(run_dir)), timeout=300, what="a first epoch", every=0.05)
            seen["pid"] = job_record(run_dir)["pid"]
            studio.kill()
            seen["epochs"] = [event["epoch"] for event in progress_events(run_dir) if event["event"] == "epoch"]
            seen["record"] = job_record(run_dir)
        except BaseException as error:  # reported by the test
            seen["error"] = error

    seen["thread"] = threading.Thread(target=watch, daemon=True)
    seen["thread"].start()
    return seen


@pytest.fixture(scope="module")
def launched(client, tmp_path_factory):
    """Every slow test's job, started at once: projects run in parallel (each has its own queue), so the
    slow tests take about as long as the longest of them instead of their sum.

    - prep: 12 + 12 pictures, one red moved to blue, one excluded, one moved and undone; prepared.
    - flowers: a long training (stopped by its test); broken: a training with a model that does not exist.
    - k, in a studio of its own (its test kills it): a 20-epoch training.
    """
    with Studio(tmp_path_factory.mktemp("studio-killed")) as killed:
        killed_client = killed.client()
        killed_client.project("k", two_classes(12, seed=30))
        jobs = {"killed": killed, "k": killed_client.ok("POST", "/api/projects/k/runs", 202, json={**TINY, "epochs": 20})["run"]}
        jobs["kill"] = kill_after_first_epoch(killed, killed.workdir / "k" / "runs" / jobs["k"])
        killed_client.close()
        client.project("flowers", two_classes(12, seed=20))
        jobs["flowers"] = client.ok("POST", "/api/projects/flowers/runs", 202, json={**TINY, "epochs": 200})
        client.project("broken", two_classes(12, seed=22))
        jobs["broken"] = client.ok("POST", "/api/projects/broken/runs", 202, json={**TINY, "model": "no_such_model", "epochs": 1})["run"]
        client.project("prep", two_classes(12, seed=12))
        red = keys_of(client, "prep", "red")
        client.ok("POST", "/api/projects/prep/overrides", json={"key": red[0], "label": "blue"})
        client.ok("POST", "/api/projects/prep/overrides", json={"key": red[1], "label": None})
        client.ok("POST", "/api/projects/prep/overrides", json={"key": red[2], "label": "blue"})
        client.ok("POST", "/api/projects/prep/overrides/undo")
        jobs["prep"] = {"red": red, "started": client.ok("POST", "/api/projects/prep/prepare"), "data": client.studio.workdir / "prep" / "data"}
        yield jobs


@pytest.fixture(scope="module")
def prepared(client, launched):
    last = {}

    def done():
        last.update(client.ok("GET", "/api/projects/prep/prepare"))
        return last["state"] in ("finished", "failed")

    wait_for(done, timeout=240, what=lambda: f"prepare: {last}")
    return {**launched["prep"], "job": last}


@pytest.mark.slow
def test_the_next_prepare_applies_the_overrides(client, prepared):
    assert prepared["job"]["state"] == "finished", prepared["job"]
    command = prepared["started"]["command"]
    assert command.startswith("corolla prepare ") and "--overrides" in command and "overrides.csv" in command
    red = prepared["red"]
    records = stored(prepared["data"])
    assert records[red[0]] == "blue"  # relabelled: stored under its new class
    assert red[1] not in records  # excluded
    assert records[red[2]] == "red"  # moved, then undone
    assert len(records) == 23
    manifest = json.loads((prepared["data"] / "manifest.json").read_text())
    assert {key: manifest["overrides"][key] for key in ("relabelled", "excluded")} == {"relabelled": 1, "excluded": 1}
    per_class = {name: sum(split["per_class"][name] for split in manifest["splits"].values()) for name in ("red", "blue")}
    assert per_class == {"red": 10, "blue": 13}
    view = client.ok("GET", "/api/projects/prep")
    assert view["prepared"] is True
    assert [row["source"] for row in view["skipped"] if "excluded by overrides" in row["reason"]] == [red[1]]


@pytest.mark.slow
def test_a_run_made_by_the_cli_shows_up(client, prepared):
    project = client.studio.workdir / "prep"
    subprocess.run(
        [sys.executable, "-m", "corolla.cli", "train", str(project / "data"), "--out", str(project / "runs" / "cli1"),
         "--model", "convnet", "--epochs", "1", "--batch-size", "8"],
        check=True, capture_output=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=300,
    )  # fmt: skip
    runs = {run["run"]: run for run in client.ok("GET", "/api/projects/prep/runs")["runs"]}
    assert set(runs) == {"cli1"}
    assert runs["cli1"]["state"] == "finished" and runs["cli1"]["commands"] == []
    assert runs["cli1"]["settings"]["model"] == "convnet" and runs["cli1"]["settings"]["epochs"] == 1
    assert runs["cli1"]["train_seconds"] > 0
    detail = client.run("prep", "cli1")
    assert len(detail["history"]["epoch_seconds"]) == 1
    assert {p["name"]: p["runs"] for p in client.ok("GET", "/api/projects")["projects"]}["prep"] == 1


# --- trainings: stop, fail, survive a killed studio ---------------------------------------------------


@pytest.mark.slow
def test_stopping_a_running_training(client, launched):
    started = launched["flowers"]
    run, run_dir = started["run"], client.studio.workdir / "flowers" / "runs" / started["run"]
    assert started["command"].splitlines()[1].startswith("corolla train ")
    wait_for(lambda: any(event["event"] == "start" for event in progress_events(run_dir)), timeout=180, what="the training to start")
    pid = job_record(run_dir)["pid"]
    assert alive(pid)
    client.ok("POST", f"/api/projects/flowers/runs/{run}/stop")
    assert client.wait_state("flowers", run, ("stopped", "finished", "failed"), timeout=60)["state"] == "stopped"
    assert not alive(pid)
    assert progress_events(run_dir)[-1]["event"] == "end" and progress_events(run_dir)[-1]["status"] == "interrupted"
    assert not (run_dir / "report").exists()  # evaluate never ran
    assert {row["run"]: row["state"] for row in client.ok("GET", "/api/projects/flowers/runs")["runs"]}[run] == "stopped"


@pytest.mark.slow
def test_a_failing_run_says_why_in_the_clis_words(client, launched):
    run = launched["broken"]
    failed = client.wait_state("broken", run, ("failed", "finished", "stopped"))
    assert failed["state"] == "failed"
    error = failed["error"]
    assert error.startswith("`corolla train ") and "no_such_model" in error
    assert "Error: Unknown model 'no_such_model'. Available:" in error and "convnet" in error
    assert any("Unknown model" in line for line in failed["log"])
    listed = {row["run"]: row for row in client.ok("GET", "/api/projects/broken/runs")["runs"]}
    assert listed[run]["state"] == "failed" and listed[run]["error"] == error  # listed though training never wrote a file


@pytest.mark.slow
def test_a_killed_studio_leaves_a_resumable_interrupted_run(launched):
    studio, run, kill = launched["killed"], launched["k"], launched["kill"]
    run_dir = studio.workdir / "k" / "runs" / run
    kill["thread"].join(300)
    assert "error" not in kill, kill.get("error")
    assert kill["epochs"][-1] < 20 and kill["record"]["state"] == "running"  # killed mid-training, the record left "running"
    assert (run_dir / "checkpoints" / "last.keras").is_file()
    # The training did not outlive its studio (it would go on unseen, and hold the run).
    wait_for(lambda: not alive(kill["pid"]), timeout=60, what="the orphaned training to end")
    assert [event["epoch"] for event in progress_events(run_dir) if event["event"] == "epoch"][-1] < 20
    assert progress_events(run_dir)[-1]["status"] == "interrupted"
    studio.start()
    with studio.client() as client:  # a new studio: a new CSRF secret, so the page is loaded again
        interrupted = client.wait_state("k", run, ("interrupted",), timeout=60)
        assert interrupted["log"], "an interrupted run shows its log's last lines"
        resumed = client.ok("POST", f"/api/projects/k/runs/{run}/resume", 202)
        assert "--resume" in resumed["command"]
        client.wait_state("k", run, ("finished",))
        detail = client.run("k", run)
    assert len(detail["history"]["epoch_seconds"]) == 20
    assert (run_dir / "report" / "metrics.json").is_file()
    events = progress_events(run_dir)
    ids = [event["id"] for event in events]
    assert ids == list(range(1, len(ids) + 1))  # the resumed run's events follow on
    assert [event["status"] for event in events if event["event"] == "end"][-1] == "finished"
    assert [event["epoch"] for event in events if event["event"] == "epoch"][-1] == 20
