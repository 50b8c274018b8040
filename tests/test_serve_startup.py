"""Start-up as a script meets it: the port opens only once the model can answer, and one line says so."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import httpx
import pytest

from tests.test_serve_e2e import MODEL, b64, free_port, images

pytestmark = pytest.mark.slow


def start(path, *args):
    """`corolla serve PATH ARGS` in a subprocess logging to a file; returns (process, port, read_log)."""
    port = free_port()
    log = tempfile.TemporaryFile("a+")
    process = subprocess.Popen(
        [sys.executable, "-m", "corolla.cli", "serve", str(path), "--port", str(port), "--no-access-log", *args],
        stdout=log, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    return process, port, lambda: (log.seek(0), log.read())[1]


def wait_for_port(port: int, process, timeout: float = 180) -> None:
    """Return the moment a TCP connection is accepted (what `curl --retry-connrefused` waits for)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited before opening its port"
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    pytest.fail(f"port {port} did not open within {timeout} s")


def stop(process) -> None:
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=60)


def test_the_first_predict_after_the_port_opens_is_answered_and_ready_is_said_once(exported):
    process, port, log = start(exported.parent)
    try:
        wait_for_port(port, process)
        body = {"instances": [{"image_bytes": {"b64": b64(images()[0])}}]}
        response = httpx.post(f"http://127.0.0.1:{port}/v1/models/{MODEL}:predict", json=body, timeout=60)
        assert response.status_code == 200, response.text
        assert response.json()["predictions"][0]["labels"] == "red"
        ready = [line for line in log().splitlines() if "Ready at" in line]
        assert len(ready) == 1, log()
        assert f"http://127.0.0.1:{port}/v1/models/{MODEL}" in ready[0] and "version 1" in ready[0] and "runtime" in ready[0], ready[0]
        assert "batches of up to" in ready[0]
    finally:
        stop(process)


def test_listen_while_loading_answers_liveness_before_the_model_is_warm(exported):
    process, port, log = start(exported.parent, "--listen-while-loading")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_port(port, process)
        assert httpx.get(f"{url}/v2/health/live", timeout=10).status_code == 200
        assert httpx.get(f"{url}/v2/health/ready", timeout=10).status_code == 503  # TensorFlow alone takes seconds to import
        deadline = time.monotonic() + 180
        while httpx.get(f"{url}/v2/health/ready", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, log()
            time.sleep(0.2)
        time.sleep(0.5)
        assert sum("Ready at" in line for line in log().splitlines()) == 1, log()
    finally:
        stop(process)


def test_a_version_that_cannot_load_stops_serve_with_the_reason(exported, tmp_path):
    version = tmp_path / "1"
    shutil.copytree(exported, version)
    pb = version / "saved_model.pb"
    pb.write_bytes(b"\0" * pb.stat().st_size)  # same size, garbage content
    process, port, log = start(version)
    assert process.wait(timeout=180) == 1
    assert "Could not load version 1" in log() and "Traceback" not in log(), log()
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0  # it never listened


def test_the_onnx_runtime_serves_without_tensorflow_and_answers_as_the_savedmodel(exported):
    """--runtime onnx decodes with corolla.runtime.pixels: TensorFlow (~550 MB) is never mapped into the process."""
    import numpy as np

    from corolla.runtime.exported import ExportedModel
    from tests.conftest import encode, noisy_colour

    rng = np.random.default_rng(21)
    data = [*images(seed=21), encode(noisy_colour(rng, (30, 30, 200), 400, 300), "JPEG"), encode(noisy_colour(rng, (200, 30, 30), 17, 90), "PNG")]
    expected = ExportedModel.load(exported.parent).predict(data)["probabilities"]  # the SavedModel decodes in its graph
    process, port, log = start(exported.parent, "--runtime", "onnx")
    try:
        wait_for_port(port, process)
        body = {"instances": [{"image_bytes": {"b64": b64(item)}} for item in data]}
        response = httpx.post(f"http://127.0.0.1:{port}/v1/models/{MODEL}:predict", json=body, timeout=60)
        assert response.status_code == 200, response.text
        maps = open(f"/proc/{process.pid}/maps").read()
        assert "onnxruntime" in maps and "tensorflow" not in maps, log()
        answers = np.array([row["probabilities"] for row in response.json()["predictions"]])
        np.testing.assert_allclose(answers, expected, atol=1e-5)
    finally:
        stop(process)
