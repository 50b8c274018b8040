"""End to end over HTTP: a real `corolla serve` process on a loopback port, both protocols, real requests.

Also home of the helpers the other test_serve_* modules import (servers in a subprocess or a thread).
"""

import base64
import contextlib
import os
import socket
import struct
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest

from corolla.predict import predict
from tests.conftest import COLOURS, encode, noisy_colour

pytestmark = pytest.mark.slow
MODEL = "shapes-run"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def wait_ready(url: str, process=None, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout  # TensorFlow start-up on a loaded 2-core machine
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            pytest.fail(f"corolla serve exited early:\n{process.output()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    pytest.fail(f"the server at {url} was not ready within {timeout} s")


@contextlib.contextmanager
def cli_server(path, *args):
    """`corolla serve PATH ARGS` in a subprocess; yields (url, process); process.output() is its stdout + stderr so far."""
    import tempfile

    port = free_port()
    with tempfile.TemporaryFile("a+") as log:  # a file, not a pipe (a full pipe would block the server); appends only
        process = subprocess.Popen(
            [sys.executable, "-m", "corolla.cli", "serve", str(path), "--port", str(port), *args],
            stdout=log, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        process.output = lambda: (log.seek(0), log.read())[1]
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, process)
            yield url, process
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()


@contextlib.contextmanager
def thread_server(path, *, fast_path: bool = True, **options):
    """A real uvicorn server on loopback, in a thread of the test process (TensorFlow is already loaded)."""
    import uvicorn

    from corolla.serve import create_app
    from corolla.serve.fast_path import InferenceFastPath

    app = create_app(path, access_log=False, **options)
    if not fast_path:  # before the first request builds the middleware stack
        app.user_middleware = [entry for entry in app.user_middleware if entry.cls is not InferenceFastPath]
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, timeout=120)
        yield url, app
    finally:
        server.should_exit = True
        thread.join(30)


def images(seed: int = 11) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [encode(noisy_colour(rng, colour, 50, 64), fmt) for colour, fmt in zip(COLOURS.values(), ["JPEG", "PNG", "JPEG"])]


@pytest.fixture(scope="module")
def server(exported):
    with cli_server(exported.parent.parent, "--max-batch-size", "8") as (url, _):  # the run folder
        yield url


def post(url, path, body=None, **kwargs):
    return httpx.post(f"{url}{path}", timeout=30, **kwargs, **({"json": body} if body is not None else {}))


def test_tf_serving_status_and_metadata(server):
    status = {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    assert httpx.get(f"{server}/v1/models/{MODEL}").json() == {"model_version_status": [status]}
    assert httpx.get(f"{server}/v1/models/{MODEL}/versions/1").json() == {"model_version_status": [status]}
    for path in (f"/v1/models/{MODEL}/metadata", f"/v1/models/{MODEL}/versions/1/metadata"):
        metadata = httpx.get(f"{server}{path}").json()
        assert metadata["model_spec"] == {"name": MODEL, "signature_name": "", "version": "1"}
        signatures = metadata["metadata"]["signature_def"]["signature_def"]
        assert set(signatures) == {"serving_default", "pixels", "pixels_uint8"}
        assert signatures["serving_default"]["inputs"]["image_bytes"]["dtype"] == "DT_STRING"
        assert [d["size"] for d in signatures["pixels"]["inputs"]["pixels"]["tensor_shape"]["dim"]] == ["-1", "32", "32", "3"]
    assert httpx.get(f"{server}/v1/models").json()["models"][0] == {"name": MODEL, "version": "1", "labels": ["blue", "green", "red"], "kind": "images"}


def test_predict_rows_and_columns_equal_in_process_keras(server, keras_predict):
    data = images()
    expected = [keras_predict(item) for item in data]
    rows = post(server, f"/v1/models/{MODEL}:predict", {"instances": [{"image_bytes": {"b64": b64(d)}, "key": f"k{i}"} for i, d in enumerate(data)]})
    assert rows.status_code == 200, rows.text
    for i, (row, reference) in enumerate(zip(rows.json()["predictions"], expected)):
        np.testing.assert_allclose(row["probabilities"], reference, atol=1e-5)
        assert row["classes"] == int(np.argmax(reference)) and row["labels"] == ["blue", "green", "red"][row["classes"]] and row["key"] == f"k{i}"
    columns = post(server, f"/v1/models/{MODEL}/versions/1:predict", {"signature_name": "serving_default", "inputs": {"image_bytes": [{"b64": b64(d)} for d in data]}})
    assert columns.status_code == 200, columns.text
    outputs = columns.json()["outputs"]
    np.testing.assert_allclose(outputs["probabilities"], expected, atol=1e-5)
    assert outputs["key"] == ["", "", ""] and len(outputs["labels"]) == 3
    # The key is optional, and a bare {"b64": …} instance is the image:
    bare = post(server, f"/v1/models/{MODEL}:predict", {"instances": [{"b64": b64(data[0])}]}).json()["predictions"][0]
    np.testing.assert_allclose(bare["probabilities"], expected[0], atol=1e-5)
    assert bare["key"] == ""


def test_pixel_signatures_and_classify(server, keras_predict):
    import tensorflow as tf

    from corolla.data.pipeline import decode_and_resize

    data = images()[0]
    pixels = decode_and_resize(tf.constant(data), image_size=32, channels=3).numpy()
    as_float = post(server, f"/v1/models/{MODEL}:predict", {"signature_name": "pixels", "instances": [pixels.tolist()]})
    np.testing.assert_allclose(as_float.json()["predictions"][0]["probabilities"], keras_predict(data), atol=1e-5)
    rounded = np.round(pixels).astype(np.uint8)
    as_uint8 = post(server, f"/v1/models/{MODEL}:predict", {"signature_name": "pixels_uint8", "inputs": {"pixels": [rounded.tolist()]}})
    assert as_uint8.status_code == 200 and "key" not in as_uint8.json()["outputs"]
    classified = post(server, f"/v1/models/{MODEL}:classify", {"examples": [{"image_bytes": {"b64": b64(data)}}]})
    assert classified.status_code == 200, classified.text
    result = classified.json()["results"][0]
    assert [label for label, _ in result] == ["blue", "green", "red"]
    np.testing.assert_allclose([score for _, score in result], keras_predict(data), atol=1e-5)


def test_kserve_v2_endpoints(server, keras_predict):
    assert httpx.get(f"{server}/v2").json()["name"] == "corolla"
    assert httpx.get(f"{server}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{server}/v2/health/ready").json() == {"ready": True}
    for path in (f"/v2/models/{MODEL}/ready", f"/v2/models/{MODEL}/versions/1/ready"):
        assert httpx.get(f"{server}{path}").json() == {"name": MODEL, "ready": True}
    metadata = httpx.get(f"{server}/v2/models/{MODEL}").json()
    assert metadata["versions"] == ["1"] and metadata["platform"] in ("tensorflow_savedmodel", "onnxruntime_onnx")
    assert {tensor["name"]: tensor["shape"] for tensor in metadata["inputs"]} == {"image_bytes": [-1], "pixels": [-1, 32, 32, 3]}
    assert httpx.get(f"{server}/v2/models/{MODEL}/versions/1").json() == metadata
    data = images()
    request = {"id": "r1", "inputs": [{"name": "image_bytes", "shape": [3], "datatype": "BYTES", "data": [b64(d) for d in data]}]}
    answer = post(server, f"/v2/models/{MODEL}/infer", request).json()
    assert answer["id"] == "r1" and answer["model_name"] == MODEL and answer["model_version"] == "1"
    outputs = {tensor["name"]: tensor for tensor in answer["outputs"]}
    assert outputs["probabilities"]["shape"] == [3, 3] and outputs["probabilities"]["datatype"] == "FP32"
    np.testing.assert_allclose(np.reshape(outputs["probabilities"]["data"], (3, 3)), [keras_predict(d) for d in data], atol=1e-5)
    assert outputs["labels"]["data"] == [["blue", "green", "red"][c] for c in outputs["classes"]["data"]]
    # Pixels as FP32 (flat data, as the protocol sends it) and as UINT8, to one version:
    import tensorflow as tf

    from corolla.data.pipeline import decode_and_resize

    pixels = decode_and_resize(tf.constant(data[0]), image_size=32, channels=3).numpy()
    fp32 = {"inputs": [{"name": "pixels", "shape": [1, 32, 32, 3], "datatype": "FP32", "data": pixels.reshape(-1).tolist()}], "outputs": [{"name": "probabilities"}]}
    answer = post(server, f"/v2/models/{MODEL}/versions/1/infer", fp32).json()
    assert [tensor["name"] for tensor in answer["outputs"]] == ["probabilities"]
    np.testing.assert_allclose(answer["outputs"][0]["data"], keras_predict(data[0]), atol=1e-5)
    uint8 = {"inputs": [{"name": "pixels", "shape": [1, 32, 32, 3], "datatype": "UINT8", "data": np.round(pixels).astype(int).tolist()}]}
    assert post(server, f"/v2/models/{MODEL}/infer", uint8).status_code == 200
    # Triton's classification extension: "score:index:label", best first.
    top = post(server, f"/v2/models/{MODEL}/infer", {**request, "outputs": [{"name": "probabilities", "parameters": {"classification": 2}}]}).json()
    first = top["outputs"][0]
    assert first["shape"] == [3, 2] and first["datatype"] == "BYTES" and first["data"][0].count(":") == 2


def test_kserve_binary_tensor_extension(server, keras_predict):
    """What tritonclient sends by default: a JSON header, then length-prefixed raw bytes; answers in binary too."""
    data = images()[:2]
    blob = b"".join(struct.pack("<I", len(item)) + item for item in data)
    header = (
        b'{"inputs":[{"name":"image_bytes","shape":[2],"datatype":"BYTES","parameters":{"binary_data_size":%d}}],'
        b'"parameters":{"binary_data_output":true}}' % len(blob)
    )
    response = post(server, f"/v2/models/{MODEL}/infer", content=header + blob, headers={"Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"})
    assert response.status_code == 200, response.text
    length = int(response.headers["Inference-Header-Content-Length"])
    import json

    meta = json.loads(response.content[:length])
    offset, tensors = length, {}
    for tensor in meta["outputs"]:
        size = tensor["parameters"]["binary_data_size"]
        tensors[tensor["name"]] = response.content[offset : offset + size]
        offset += size
    probabilities = np.frombuffer(tensors["probabilities"], "<f4").reshape(2, 3)
    np.testing.assert_allclose(probabilities, [keras_predict(d) for d in data], atol=1e-5)
    assert np.frombuffer(tensors["classes"], "<i8").tolist() == np.argmax(probabilities, -1).tolist()
    labels, offset = [], 0
    while offset < len(tensors["labels"]):
        (size,) = struct.unpack_from("<I", tensors["labels"], offset)
        labels.append(tensors["labels"][offset + 4 : offset + 4 + size].decode())
        offset += 4 + size
    assert labels == [["blue", "green", "red"][i] for i in np.argmax(probabilities, -1)]


def test_predict_url_agrees_with_local_predict(server, exported, tmp_path):
    paths = []
    for i, data in enumerate(images()):
        paths.append(tmp_path / f"{i}.img")
        paths[-1].write_bytes(data)
    remote = predict(paths, url=server, top_k=2)
    local = predict(paths, model=exported.parent, top_k=2)
    assert [r["top"][0]["label"] for r in remote] == [r["top"][0]["label"] for r in local]
    for r, l in zip(remote, local):
        assert r["top"][0]["probability"] == pytest.approx(l["top"][0]["probability"], abs=1e-5)


def test_metrics_page_and_openapi(server):
    post(server, f"/v1/models/{MODEL}:predict", {"instances": []})  # one 400
    text = httpx.get(f"{server}/metrics").text
    assert 'corolla_requests_total{route="/v1/models/{name}:predict",method="POST",code="200"}' in text
    assert 'corolla_request_errors_total{code="400"}' in text
    for family in ("corolla_request_duration_seconds_bucket", "corolla_batch_size_bucket", "corolla_queue_depth", "corolla_model_version"):
        assert family in text
    page = httpx.get(f"{server}/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"] and "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/style.css"):
        body = httpx.get(f"{server}{asset}").text
        assert "http://" not in body and "https://" not in body and "//cdn" not in body
    paths = httpx.get(f"{server}/openapi.json").json()["paths"]
    assert "/v1/models/{name}:predict" in paths and "/v2/models/{name}/infer" in paths


def test_tritonclient_works_unchanged(server, keras_predict):
    """The Open Inference Protocol's most used client, as its users call it (binary tensors by default)."""
    http = pytest.importorskip("tritonclient.http", reason="tritonclient[http] is not installed")
    client = http.InferenceServerClient(server.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(MODEL)
    assert client.get_model_metadata(MODEL)["outputs"][0]["name"] == "probabilities"
    data = images()
    image = http.InferInput("image_bytes", [len(data)], "BYTES")
    image.set_data_from_numpy(np.array(data, dtype=object))
    result = client.infer(MODEL, [image])
    np.testing.assert_allclose(result.as_numpy("probabilities"), [keras_predict(d) for d in data], atol=1e-5)
    top = client.infer(MODEL, [image], outputs=[http.InferRequestedOutput("probabilities", class_count=1)]).as_numpy("probabilities")
    assert top.shape == (3, 1) and top[0, 0].decode().count(":") == 2


def test_the_inference_fast_path_answers_as_fastapi_routing_does(exported):
    """corolla.serve.fast_path skips FastAPI's routing for inference POSTs: same answers, errors and metrics."""
    image = b64(images()[0])
    requests = [
        (f"/v1/models/{MODEL}:predict", {"instances": [{"b64": image}]}),
        (f"/v1/models/{MODEL}/versions/1:predict", {"inputs": {"image_bytes": [{"b64": image}]}}),
        (f"/v1/models/{MODEL}:classify", {"examples": [{"image_bytes": {"b64": image}}]}),
        (f"/v2/models/{MODEL}/infer", {"inputs": [{"name": "image_bytes", "shape": [1], "datatype": "BYTES", "data": [image]}]}),
        (f"/v2/models/{MODEL}/versions/1/infer", {"inputs": [{"name": "image_bytes", "shape": [1], "datatype": "BYTES", "data": [image]}]}),
        (f"/v1/models/{MODEL}:predict", b"{not json"),
        (f"/v1/models/{MODEL}:predict", {"instances": [{"b64": base64.b64encode(b"GIF89a junk").decode()}]}),
        (f"/v1/models/other:predict", {"instances": [{"b64": image}]}),
        (f"/v1/models/{MODEL}/versions/abc:predict", {"instances": [{"b64": image}]}),
        (f"/v1/models/{MODEL}/versions/7:predict", {"instances": [{"b64": image}]}),
        (f"/v2/models/{MODEL}/versions/1/infer", {"inputs": "nope"}),
    ]
    answers = {}
    for fast_path in (True, False):
        with thread_server(exported.parent, fast_path=fast_path) as (url, _):
            replies = [httpx.post(f"{url}{path}", timeout=30, **({"content": body} if isinstance(body, bytes) else {"json": body})) for path, body in requests]
            metrics = [line for line in httpx.get(f"{url}/metrics").text.splitlines() if line.startswith("corolla_requests_total{")]
        answers[fast_path] = [(reply.status_code, reply.headers["content-type"], reply.json()) for reply in replies], sorted(metrics)
    (fast, fast_metrics), (routed, routed_metrics) = answers[True], answers[False]
    assert [status for status, _, _ in fast] == [200] * 5 + [400, 400, 404, 400, 404, 400]
    assert fast_metrics == routed_metrics and any("versions/{version}/infer" in line for line in fast_metrics)
    assert_same_json(fast, routed)  # each server picks its runtime by timing: TF's and ONNX's floats differ at 1e-7



def assert_same_json(left, right, tolerance: float = 1e-5, where: str = "") -> None:
    """`left` == `right` (JSON: dicts, lists, tuples), floats within `tolerance`."""
    if isinstance(left, float) and isinstance(right, float):
        assert abs(left - right) <= tolerance, f"{where}: {left} != {right}"
    elif isinstance(left, dict) and isinstance(right, dict):
        assert left.keys() == right.keys(), f"{where}: {sorted(left)} != {sorted(right)}"
        for key in left:
            assert_same_json(left[key], right[key], tolerance, f"{where}.{key}")
    elif isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
        assert len(left) == len(right), f"{where}: {len(left)} != {len(right)} items"
        for index, (a, b) in enumerate(zip(left, right)):
            assert_same_json(a, b, tolerance, f"{where}[{index}]")
    else:
        assert left == right, f"{where}: {left!r} != {right!r}"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"runtime_threads": -1}, r"runtime_threads must be ≥ 0 .*Received: runtime_threads=-1"),
        ({"runtime": "torch"}, r"Unknown runtime 'torch'\. Expected one of: auto, tf, onnx\. Received: runtime='torch'"),
        ({"max_queue": 0}, r"Expected max_batch_size ≥ 1, batch_timeout_ms ≥ 0 and max_queue ≥ 1\. .*max_queue=0"),
        ({"request_timeout_s": 0}, r"Timeouts must be positive\. Received: request_timeout_s=0"),
    ],
)
def test_bad_server_options_are_refused_before_anything_loads(exported, options, message):
    from corolla.errors import CorollaError
    from corolla.serve.app import create_app

    with pytest.raises(CorollaError, match=message):
        create_app(exported.parent, **options)


def test_runtime_threads_reach_onnx_runtime(exported):
    from corolla.runtime.exported import find_version
    from corolla.runtime.runners import load_runtime

    for threads in (1, 2):
        runtime, _, _ = load_runtime(find_version(exported), "onnx", max_batch_size=2, threads=threads)
        assert runtime._session.get_session_options().intra_op_num_threads == threads


def test_tf_threads_that_cannot_apply_any_more_are_said(exported):
    import logging

    import tensorflow as tf

    from corolla.runtime.exported import find_version
    from corolla.runtime.runners import load_runtime

    tf.constant(1)  # TensorFlow runs in this process now: its thread pools are fixed
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("corolla.serve")
    logger.addHandler(handler)
    try:
        threads = tf.config.threading.get_intra_op_parallelism_threads() + 1  # any count but the current one
        load_runtime(find_version(exported), "tf", max_batch_size=2, threads=threads)
    finally:
        logger.removeHandler(handler)
    assert any(f"threads={threads} does not apply" in record.getMessage() for record in records), records
