"""Whatever a client sends, the answer is a correct prediction or a 4xx JSON error: never a 5xx, never a hang."""

import base64
import io
import socket
import struct
import zlib

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.conftest import encode, noisy_colour
from tests.test_serve_e2e import MODEL, b64, thread_server

pytestmark = pytest.mark.slow
PREDICT = f"/v1/models/{MODEL}:predict"
INFER = f"/v2/models/{MODEL}/infer"


@pytest.fixture(scope="module")
def server(exported):
    with thread_server(exported.parent) as (url, _):
        yield url


def png_declaring(width: int, height: int) -> bytes:
    """A few hundred bytes that claim to be a width × height PNG (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")


def sample(mode: str, fmt: str = "PNG", **options) -> bytes:
    rng = np.random.default_rng(5)
    rgb = Image.fromarray(noisy_colour(rng, (200, 50, 50), 30, 40))
    buffer = io.BytesIO()
    if mode == "I;16":
        Image.fromarray((np.asarray(rgb.convert("L"), np.uint16) * 257)).save(buffer, format="PNG")
    elif mode == "animated":
        frames = [rgb, rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT), rgb.convert("L").convert("RGB")]
        frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    else:
        rgb.convert(mode).save(buffer, format=fmt, **options)
    return buffer.getvalue()


GOOD = encode(noisy_colour(np.random.default_rng(1), (40, 60, 210), 40, 48), "PNG")
JPEG = encode(noisy_colour(np.random.default_rng(2), (40, 190, 60), 64, 64), "JPEG")
STANDARD = base64.b64encode(GOOD).decode()
assert "+" in STANDARD or "/" in STANDARD  # so the URL-safe case below really differs


def one(value) -> dict:
    return {"instances": [{"image_bytes": value}]}


CASES = {
    # base64 variants: lenient where the meaning is clear, 400 otherwise
    "url-safe base64": (one({"b64": base64.urlsafe_b64encode(GOOD).decode()}), 200),
    "base64 without padding": (one({"b64": STANDARD.rstrip("=")}), 200),
    "base64 wrapped in lines": (one({"b64": base64.encodebytes(GOOD).decode()}), 200),
    "base64 with padding inside": (one({"b64": STANDARD[:8] + "=" + STANDARD[8:]}), 400),
    "base64 of impossible length": (one({"b64": STANDARD.rstrip("=") + "A" * (5 - len(STANDARD.rstrip("=")) % 4)}), 400),
    "junk base64": (one({"b64": "!!not base64!!"}), 400),
    "b64 not a string": (one({"b64": 12}), 400),
    "image_bytes a plain string": (one("raw string"), 400),
    # bytes that are not (whole) images
    "non-image bytes": (one({"b64": b64(b"just some text, not an image")}), 400),
    "empty image": (one({"b64": ""}), 400),
    "truncated JPEG": (one({"b64": b64(JPEG[: len(JPEG) // 2])}), 400),
    "JPEG header only": (one({"b64": b64(JPEG[:20])}), 400),
    "PNG declaring 20000x20000": (one({"b64": b64(png_declaring(20000, 20000))}), 413),
    "PNG declaring 0x0": (one({"b64": b64(png_declaring(0, 0))}), 400),
    "PNG with a broken body": (one({"b64": b64(png_declaring(40, 40))}), 400),
    # unusual but real images: predicted
    "animated GIF": (one({"b64": b64(sample("animated"))}), 200),
    "RGBA PNG": (one({"b64": b64(sample("RGBA"))}), 200),
    "grayscale PNG": (one({"b64": b64(sample("L"))}), 200),
    "16-bit PNG": (one({"b64": b64(sample("I;16"))}), 200),
    "palette PNG": (one({"b64": b64(sample("P"))}), 200),
    "BMP": (one({"b64": b64(sample("RGB", "BMP"))}), 200),
    "progressive JPEG": (one({"b64": b64(sample("RGB", "JPEG", progressive=True))}), 200),
    # request shapes
    "both instances and inputs": ({"instances": [{"b64": STANDARD}], "inputs": [{"b64": STANDARD}]}, 400),
    "neither instances nor inputs": ({"signature_name": "serving_default"}, 400),
    "empty instances": ({"instances": []}, 400),
    "instances not a list": ({"instances": {"image_bytes": {"b64": STANDARD}}}, 400),
    "too many instances": ({"instances": [{"b64": "AAAA"}] * 257}, 413),
    "unknown signature": ({"signature_name": "../../x", "instances": [{"b64": STANDARD}]}, 400),
    "unknown input": ({"instances": [{"image_bytes": {"b64": STANDARD}, "extra": 1}]}, 400),
    "key not a string": ({"instances": [{"image_bytes": {"b64": STANDARD}, "key": 7}]}, 400),
    "columnar keys of the wrong length": ({"inputs": {"image_bytes": [{"b64": STANDARD}], "key": ["a", "b"]}}, 400),
    "a JSON array": ([1, 2, 3], 400),
    "pixels of the wrong shape": ({"signature_name": "pixels", "instances": [[[0.0] * 3] * 32]}, 400),
    "ragged pixels": ({"signature_name": "pixels", "instances": [[[[0.0] * 3] * 32] * 31 + [[[0.0] * 2] * 32]]}, 400),
    "uint8 pixels out of range": ({"signature_name": "pixels_uint8", "instances": [[[[300] * 3] * 32] * 32]}, 400),
    "pixels as strings": ({"signature_name": "pixels", "instances": [[[["a"] * 3] * 32] * 32]}, 400),
    "null pixels": ({"signature_name": "pixels", "instances": [[[[None] * 3] * 32] * 32]}, 400),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_predict_bodies(server, name):
    body, status = CASES[name]
    response = httpx.post(f"{server}{PREDICT}", json=body, timeout=30)
    assert response.status_code == status, response.text
    if status == 200:
        probabilities = response.json()["predictions"][0]["probabilities"]
        assert len(probabilities) == 3 and abs(sum(probabilities) - 1) < 1e-4
    else:
        assert response.headers["content-type"] == "application/json" and response.json()["error"]


V2_CASES = {
    "no inputs": ({}, 400),
    "two inputs": ({"inputs": [{"name": "a", "shape": [1], "datatype": "BYTES", "data": [STANDARD]}] * 2}, 400),
    "shape and data disagree": ({"inputs": [{"name": "image_bytes", "shape": [2], "datatype": "BYTES", "data": [STANDARD]}]}, 400),
    "negative shape": ({"inputs": [{"name": "image_bytes", "shape": [-1], "datatype": "BYTES", "data": [STANDARD]}]}, 400),
    "huge shape": ({"inputs": [{"name": "pixels", "shape": [1, 2**30, 2**30, 3], "datatype": "FP32", "data": [0.0]}]}, 400),
    "unsupported datatype": ({"inputs": [{"name": "pixels", "shape": [1], "datatype": "FP16", "data": [0.0]}]}, 400),
    "pixels of the wrong shape": ({"inputs": [{"name": "pixels", "shape": [1, 2, 2, 3], "datatype": "FP32", "data": [0.0] * 12}]}, 400),
    "unknown output": ({"inputs": [{"name": "image_bytes", "shape": [1], "datatype": "BYTES", "data": [STANDARD]}], "outputs": [{"name": "../x"}]}, 400),
    "bad classification": ({"inputs": [{"name": "image_bytes", "shape": [1], "datatype": "BYTES", "data": [STANDARD]}], "outputs": [{"name": "probabilities", "parameters": {"classification": -1}}]}, 400),
    "not an image": ({"inputs": [{"name": "image_bytes", "shape": [1], "datatype": "BYTES", "data": [b64(b"text")]}]}, 400),
    "binary size past the body": ({"inputs": [{"name": "image_bytes", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 99}}]}, 400),
    "bytes as [n, 1]": ({"inputs": [{"name": "image_bytes", "shape": [1, 1], "datatype": "BYTES", "data": [[STANDARD]]}]}, 200),
}


@pytest.mark.parametrize("name", list(V2_CASES))
def test_hostile_infer_bodies(server, name):
    body, status = V2_CASES[name]
    response = httpx.post(f"{server}{INFER}", json=body, timeout=30)
    assert response.status_code == status, response.text
    assert status == 200 or response.json()["error"]


@pytest.mark.parametrize(
    "content, headers",
    [
        (b"{not json", {}),
        (b"", {}),
        (b'{"instances": [{"image_bytes": {"b64": NaN}}]}', {}),
        (b"[" * 100_000 + b"]" * 100_000, {}),
        (b'{"inputs": []}', {"Inference-Header-Content-Length": "999"}),
        (b'{"inputs": []}', {"Inference-Header-Content-Length": "-1"}),
        ("{\"instances\": \"\u00e9\"}".encode("latin-1"), {"content-type": "application/json"}),
    ],
)
def test_unparseable_bodies(server, content, headers):
    for path in (PREDICT, INFER):
        response = httpx.post(f"{server}{path}", content=content, headers=headers, timeout=30)
        assert response.status_code == 400, (path, response.text)


def test_body_over_the_limit_and_a_lying_content_length(server):
    huge = httpx.post(f"{server}{PREDICT}", content=b"x" * (11 * 2**20), timeout=60)
    assert huge.status_code == 413 and "limit" in huge.json()["error"]
    with socket.create_connection(("127.0.0.1", int(server.rsplit(":", 1)[1])), timeout=10) as sock:
        sock.sendall(f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n{{}}".encode())
        assert sock.recv(200).startswith(b"HTTP/1.1 413")


@pytest.mark.parametrize(
    "method, path, status",
    [
        ("GET", "/v1/models/other", 404),
        ("POST", "/v1/models/other:predict", 404),
        ("GET", f"/v1/models/{MODEL}/versions/7", 404),
        ("POST", f"/v1/models/{MODEL}/versions/7:predict", 404),
        ("GET", f"/v1/models/{MODEL}/versions/x", 400),
        ("GET", f"/v1/models/{MODEL}/versions/%C2%B2", 400),
        ("GET", "/v2/models/other/ready", 404),
        ("POST", f"/v2/models/{MODEL}/versions/9/infer", 404),
        ("GET", "/v1/models/..", 404),
        ("GET", "/v1/models/../../etc/passwd", 404),
        ("POST", "/v1/models/..%2F..%2Fetc%2Fpasswd:predict", 404),
        ("GET", "/v1/models/%2e%2e", 404),
        ("GET", "/v1/models/%2e%2e%2f%2e%2e%2fetc", 404),
        ("GET", "/v2/models/%2e%2e/ready", 404),
        ("GET", "/v1/models/a%00b", 400),
        ("GET", "/v1/models/na%20me", 400),
        ("GET", "/static/../app.py", 404),
        ("GET", "/static/%2e%2e/app.py", 404),
        ("DELETE", f"/v1/models/{MODEL}", 405),
        ("GET", "/nowhere", 404),
    ],
)
def test_paths_outside_the_api(server, method, path, status):
    """Sent raw, so no client normalises ../ away; a model name never reaches the file system."""
    with socket.create_connection(("127.0.0.1", int(server.rsplit(":", 1)[1])), timeout=10) as sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == str(status).encode(), answer[:300]
    assert b"application/json" in head and b'"error"' in body


def test_server_still_answers_after_all_that(server):
    assert httpx.get(f"{server}/v2/health/ready").status_code == 200
    response = httpx.post(f"{server}{PREDICT}", json=one({"b64": STANDARD}), timeout=30)
    assert response.status_code == 200
    counts = [line for line in httpx.get(f"{server}/metrics").text.splitlines() if line.startswith("corolla_requests_total")]
    assert not [line for line in counts if 'code="5' in line and "/v2/health/ready" not in line]  # 503 only while loading
