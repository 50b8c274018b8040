"""End to end over HTTP: a real `corolla serve` process on a loopback port, real requests."""

import base64
import os
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

from corolla.predict import predict
from tests.conftest import COLOURS, encode, noisy_colour

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(exported):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "corolla.cli", "serve", str(exported.parent), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120  # TensorFlow start-up on a loaded 2-core machine
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"corolla serve exited early:\n{process.stdout.read()}")
        try:
            if httpx.get(f"{url}/v1/models", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    else:
        process.kill()
        pytest.fail("corolla serve did not answer within 120 s")
    yield url
    process.terminate()
    process.wait(timeout=20)


def post(url, body, **kwargs):
    return httpx.post(f"{url}/v1/models/shapes-run:predict", timeout=30, **kwargs, **({"json": body} if body is not None else {}))


def test_model_status_and_name_from_the_run_folder(server):
    response = httpx.get(f"{server}/v1/models/shapes-run")
    assert response.status_code == 200
    assert response.json()["model_version_status"][0] == {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}


def test_predictions_over_http_equal_in_process_keras(server, exported, keras_predict, tmp_path):
    rng = np.random.default_rng(11)
    images = [encode(noisy_colour(rng, colour, 50, 64), fmt) for colour, fmt in zip(COLOURS.values(), ["JPEG", "PNG", "JPEG"])]
    instances = [{"image_bytes": {"b64": base64.b64encode(data).decode()}, "key": f"k{i}"} for i, data in enumerate(images)]
    response = post(server, {"instances": instances})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    for i, (data, row) in enumerate(zip(images, predictions)):
        expected = keras_predict(data)
        np.testing.assert_allclose(row["probabilities"], expected, atol=1e-5)
        assert row["classes"] == int(np.argmax(expected)) and row["key"] == f"k{i}"
    # The key is optional, as in the seeds' client:
    assert post(server, {"instances": [{"image_bytes": instances[0]["image_bytes"]}]}).json()["predictions"][0]["key"] == ""
    # And the `corolla predict --url` client agrees with `--model` (local) on files:
    paths = []
    for i, data in enumerate(images):
        paths.append(tmp_path / f"{i}.img")
        paths[-1].write_bytes(data)
    remote = predict(paths, url=server, top_k=2)
    local = predict(paths, model=exported.parent, top_k=2)
    assert [r["top"][0]["label"] for r in remote] == [r["top"][0]["label"] for r in local]
    for r, l in zip(remote, local):
        assert r["top"][0]["probability"] == pytest.approx(l["top"][0]["probability"], abs=1e-5)


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"instances": [{"image_bytes": {"b64": "!!not base64!!"}}]}, 400, "not valid base64"),
        ({"instances": [{"image_bytes": {"b64": base64.b64encode(b"just text").decode()}}]}, 400, "not an image"),
        ({"instances": [{"image_bytes": "raw string"}]}, 400, "b64"),
        ({"instances": []}, 400, "empty"),
        ({"inputs": {}}, 400, "instances"),
        ([1, 2, 3], 400, "instances"),
    ],
)
def test_bad_requests_get_4xx_json_errors(server, body, status, message):
    response = post(server, body)
    assert response.status_code == status
    assert message in response.json()["error"]


def test_truncated_image_non_json_unknown_model_and_huge_body(server):
    rng = np.random.default_rng(3)
    jpeg = encode(noisy_colour(rng, (90, 90, 90), 64, 64), "JPEG")
    good = {"image_bytes": {"b64": base64.b64encode(jpeg).decode()}}
    cut = {"image_bytes": {"b64": base64.b64encode(jpeg[: len(jpeg) // 2]).decode()}}
    truncated = post(server, {"instances": [good, cut]})
    assert truncated.status_code == 400
    assert truncated.json()["error"].startswith("image 1 cannot be decoded (jpeg::Uncompress failed")
    bad_json = post(server, None, content=b"{not json")
    assert bad_json.status_code == 400 and "JSON" in bad_json.json()["error"]
    unknown = httpx.post(f"{server}/v1/models/other:predict", json={"instances": []})
    assert unknown.status_code == 404 and "other" in unknown.json()["error"]
    huge = post(server, None, content=b"x" * (11 * 2**20))
    assert huge.status_code == 413 and "limit" in huge.json()["error"]
    assert httpx.get(f"{server}/v1/models/shapes-run").status_code == 200  # still answering
