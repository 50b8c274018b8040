"""Versions appear, load and swap; the queue fills; deadlines pass; SIGTERM drains; both runtimes agree."""

import functools
import json
import os
import re
import shutil
import signal
import threading
import time

import httpx
import numpy as np
import pytest

from tests.test_serve_e2e import MODEL, b64, cli_server, images, thread_server

pytestmark = pytest.mark.slow


def predict_body(data: bytes, count: int = 1) -> dict:
    return {"instances": [{"image_bytes": {"b64": b64(data)}}] * count}


@functools.cache
def big_photo(side: int = 4800) -> bytes:
    """A smooth 23-megapixel PNG: 80 kB to send, 0.3–1.9 s per core to decode and shrink (by the day), so a request of a few stays in flight."""
    import io

    from PIL import Image

    y, x = np.mgrid[0:side, 0:side].astype(np.float32)
    pixels = np.stack([x / side * 255, y / side * 255, np.full_like(x, 128)], -1).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=9)
    return buffer.getvalue()


def test_new_version_is_picked_up_only_when_complete_and_old_one_answers_meanwhile(exported, tmp_path):
    base = tmp_path / "export"
    shutil.copytree(exported, base / "1")
    body = predict_body(images()[0])
    with cli_server(base, "--model-name", MODEL, "--poll-seconds", "0.3", "--no-access-log") as (url, _):
        statuses, stop = [], threading.Event()

        def hammer():
            with httpx.Client(timeout=30) as client:
                while not stop.is_set():
                    statuses.append(client.post(f"{url}/v1/models/{MODEL}:predict", json=body).status_code)

        thread = threading.Thread(target=hammer)
        thread.start()
        try:
            # A version being copied: its card is there, its files are not all there yet.
            partial = base / "2"
            partial.mkdir()
            for name in ("model_card.json", "corolla.json", "saved_model.pb"):
                shutil.copy2(exported / name, partial / name)
            onnx = (exported / "model.onnx").read_bytes()
            (partial / "model.onnx").write_bytes(onnx[: len(onnx) // 2])
            time.sleep(2)
            assert [row["version"] for row in httpx.get(f"{url}/v1/models/{MODEL}").json()["model_version_status"]] == ["1"]
            shutil.copytree(exported, partial, dirs_exist_ok=True)  # the copy completes
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                versions = httpx.get(f"{url}/v1/models/{MODEL}").json()["model_version_status"]
                if [(row["version"], row["state"]) for row in versions] == [("2", "AVAILABLE")]:
                    break
                time.sleep(0.2)
            else:
                pytest.fail(f"version 2 was not served within 120 s: {versions}")
            time.sleep(0.5)
        finally:
            stop.set()
            thread.join()
        assert statuses and set(statuses) == {200}, f"{len(statuses)} requests: {sorted(set(statuses))}"
        infer = {"inputs": [{"name": "image_bytes", "shape": [1], "datatype": "BYTES", "data": [body["instances"][0]["image_bytes"]["b64"]]}]}
        assert httpx.post(f"{url}/v2/models/{MODEL}/infer", json=infer).json()["model_version"] == "2"
        assert httpx.get(f"{url}/v1/models/{MODEL}/versions/1").status_code == 404
        assert httpx.post(f"{url}/v1/models/{MODEL}/versions/2:predict", json=body).status_code == 200
        assert "corolla_model_loads_total{outcome=\"loaded\"} 2" in httpx.get(f"{url}/metrics").text


def test_sigterm_drains_in_flight_requests_and_refuses_new_ones(exported):
    # 16 photos of 23 megapixels stay in flight for 2.5 s on 2 fast cores and ~30 s on one slow one
    # (1.4–1.9 s each there): the deadline is raised so that only the drain is tested, not the machine.
    slow, body = predict_body(big_photo(), count=16), predict_body(images()[1])
    with cli_server(exported.parent, "--request-timeout-s", "120") as (url, process):
        result = {}
        thread = threading.Thread(target=lambda: result.update(response=httpx.post(f"{url}/v1/models/shapes-run:predict", json=slow, timeout=150)))
        thread.start()
        time.sleep(0.4)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        refused = httpx.post(f"{url}/v1/models/shapes-run:predict", json=body, timeout=10)
        assert refused.status_code == 503 and "shutting down" in refused.json()["error"]
        assert httpx.get(f"{url}/v2/health/ready", timeout=10).status_code == 503
        assert httpx.get(f"{url}/v2/health/live", timeout=10).status_code == 200
        thread.join(150)
        assert result["response"].status_code == 200, result["response"].text
        assert len(result["response"].json()["predictions"]) == 16
        process.wait(timeout=30)
        log = process.output()
        access = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
        assert "draining" in log and any(entry["status"] == 200 and entry["route"].endswith(":predict") for entry in access)  # the structured access log saw it


def test_overload_answers_503_at_once(exported):
    with thread_server(exported.parent, max_batch_size=1, batch_timeout_ms=0, max_queue=1) as (url, _):
        body = predict_body(images()[2])
        answers = []

        def client():
            with httpx.Client(timeout=30) as http:
                for _ in range(4):
                    started = time.perf_counter()
                    response = http.post(f"{url}/v1/models/shapes-run:predict", json=body)
                    answers.append((response.status_code, time.perf_counter() - started, response.headers.get("retry-after")))

        threads = [threading.Thread(target=client) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        codes = [code for code, _, _ in answers]
        assert set(codes) == {200, 503}, codes
        assert all(retry == "1" for code, _, retry in answers if code == 503)
        assert httpx.post(f"{url}/v1/models/shapes-run:predict", json=body).status_code == 200  # and it recovers


def test_deadline_answers_504(exported):
    with thread_server(exported.parent, request_timeout_s=0.2) as (url, _):
        response = httpx.post(f"{url}/v1/models/shapes-run:predict", json=predict_body(big_photo(), count=4), timeout=30)
        assert response.status_code == 504 and "deadline" in response.json()["error"]
        assert httpx.post(f"{url}/v1/models/shapes-run:predict", json=predict_body(images()[0]), timeout=30).status_code == 200


def test_tf_and_onnx_runtimes_give_the_same_answers(exported):
    data = images(seed=4)
    body = {"instances": [{"image_bytes": {"b64": b64(item)}} for item in data]}
    answers = {}
    for runtime in ("tf", "onnx"):
        with thread_server(exported.parent, runtime=runtime) as (url, app):
            assert app.state.manager.current.runtime_name == runtime
            platform = httpx.get(f"{url}/v2/models/shapes-run").json()["platform"]
            assert platform == {"tf": "tensorflow_savedmodel", "onnx": "onnxruntime_onnx"}[runtime]
            answers[runtime] = np.array([row["probabilities"] for row in httpx.post(f"{url}/v1/models/shapes-run:predict", json=body).json()["predictions"]])
    np.testing.assert_allclose(answers["tf"], answers["onnx"], atol=1e-5)
    assert (answers["tf"].argmax(-1) == answers["onnx"].argmax(-1)).all()


def test_workers_each_load_the_model_answer_alike_and_stop_on_sigterm(exported):
    body = predict_body(images()[0])
    with cli_server(exported.parent, "--workers", "2") as (url, process):
        answers = []

        def client():
            with httpx.Client(timeout=60) as http:  # a connection per client, so the workers share them out
                answers.extend(http.post(f"{url}/v1/models/shapes-run:predict", json=body) for _ in range(5))

        threads = [threading.Thread(target=client) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [response.status_code for response in answers] == [200] * 40
        rows = [response.json()["predictions"][0] for response in answers]
        assert {row["labels"] for row in rows} == {"red"}  # same model, same answer, whichever worker or batch size
        np.testing.assert_allclose([row["probabilities"] for row in rows], [rows[0]["probabilities"]] * 40, atol=1e-5)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        started = re.findall(r"Started server process \[(\d+)\]", process.output())
        assert len(set(started)) == 2, process.output()
        # Each worker's runtime gets its share of the cores, not a pool sized for all of them.
        share = max(1, (os.cpu_count() or 1) // 2)
        ready = re.findall(r"Worker \d+ ready: .* runtime on (\d+) threads?,", process.output())
        assert ready == [str(share)] * 2, process.output()
        assert len(re.findall(r"Finished server process", process.output())) == 2
