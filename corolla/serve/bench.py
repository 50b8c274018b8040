"""A bounded load test of a running server: N concurrent clients, M requests in all, over loopback or a network.

Each client sends requests one after another on its own keep-alive connection (raw HTTP/1.1,
so the client takes little CPU from a server on the same machine), so `concurrency` is the
number of requests in flight. The summary gives throughput and latency percentiles of the answered
requests, and counts every non-200 answer or transport error by kind.

Example:
    summary = bench_serve("http://127.0.0.1:8501", concurrency=16, requests=2000)
    summary["requests_per_second"], summary["p99_ms"], summary["errors"]
"""

from __future__ import annotations

import asyncio
import base64
import collections
import io
import json
import pathlib
import time

import numpy as np

from corolla.errors import CorollaError


def bench_serve(
    url: str,
    *,
    concurrency: int = 16,
    requests: int = 2000,
    images: list[str | pathlib.Path] | None = None,
    images_per_request: int = 1,
    protocol: str = "v1",
    model_name: str | None = None,
    timeout: float = 60.0,
    max_seconds: float = 600.0,
) -> dict:
    """Drive `requests` requests through `concurrency` clients (stopping after `max_seconds`); returns the summary."""
    import httpx

    if concurrency < 1 or requests < 1 or images_per_request < 1:
        raise CorollaError(f"concurrency, requests and images_per_request must be ≥ 1. Received: {concurrency}, {requests}, {images_per_request}")
    if protocol not in ("v1", "v2"):
        raise CorollaError(f"Unknown protocol '{protocol}'. Expected v1 (TF Serving REST) or v2 (KServe). Received: protocol={protocol!r}")
    url = url.rstrip("/")
    if not url.startswith("http://"):
        raise CorollaError(f"bench-serve speaks plain HTTP to a server on this machine or network. Received: url={url!r}")
    served = _ready_model(url, timeout)  # also waits for a server still loading its model
    name = model_name or served["name"]
    payloads = [_payload(data, images_per_request, protocol) for data in _images(images)]
    endpoint = f"{url}/v1/models/{name}:predict" if protocol == "v1" else f"{url}/v2/models/{name}/infer"
    return asyncio.run(_run(endpoint, payloads, concurrency, requests, timeout, max_seconds)) | {"url": url, "model": name, "protocol": protocol}


def _ready_model(url: str, timeout: float) -> dict:
    """The first model a server at `url` serves, once it is ready (a server still loading answers 503: wait for it)."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            response = httpx.get(f"{url}/v1/models", timeout=timeout)
        except httpx.HTTPError as error:
            raise CorollaError(f"Cannot reach a corolla server at {url} ({error}). Start one with `corolla serve RUN_DIR`.") from None
        if response.status_code != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    try:
        return response.raise_for_status().json()["models"][0]
    except (httpx.HTTPError, ValueError, KeyError, IndexError):
        raise CorollaError(f"{url} is not a ready corolla server: GET /v1/models answered {response.status_code} {response.text[:200]}") from None


async def _exchange(reader, writer, message: bytes) -> int:
    """Send one request, read the whole response; returns its status (raises ValueError if it is not HTTP)."""
    writer.write(message)
    await writer.drain()
    status = int((await reader.readline()).split(b" ", 2)[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


def _close(connection) -> None:
    if connection is not None:
        connection[1].close()


def _images(paths) -> list[bytes]:
    if paths:
        return [pathlib.Path(path).read_bytes() for path in paths]
    from PIL import Image

    rng = np.random.default_rng(0)
    encoded = []
    for _ in range(8):  # small photos of noise: cheap to send, real to decode
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(buffer, format="JPEG", quality=85)
        encoded.append(buffer.getvalue())
    return encoded


def _payload(data: bytes, count: int, protocol: str) -> dict:
    b64 = base64.b64encode(data).decode()
    if protocol == "v1":
        return {"instances": [{"image_bytes": {"b64": b64}} for _ in range(count)]}
    return {"inputs": [{"name": "image_bytes", "datatype": "BYTES", "shape": [count], "data": [b64] * count}], "outputs": [{"name": "labels"}]}


async def _run(endpoint, payloads, concurrency, requests, timeout, max_seconds) -> dict:
    """Each client holds one keep-alive connection and sends raw HTTP/1.1: a lean client leaves the CPU to the server."""
    from urllib.parse import urlsplit

    parts = urlsplit(endpoint)
    messages = []
    for payload in payloads:
        body = json.dumps(payload).encode()
        head = f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        messages.append(head.encode() + body)
    latencies, errors = [], collections.Counter()
    remaining = iter(range(requests))
    stop_at = time.monotonic() + max_seconds

    async def client(worker: int):
        connection = None
        for index in remaining:
            if time.monotonic() > stop_at:
                errors["stopped: max_seconds reached"] += 1
                continue
            started = time.perf_counter()
            try:
                connection = connection or await asyncio.wait_for(asyncio.open_connection(parts.hostname, parts.port or 80), timeout)
                status = await asyncio.wait_for(_exchange(*connection, messages[(index + worker) % len(messages)]), timeout)
                if status == 200:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors[f"HTTP {status}"] += 1
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as error:
                errors[f"{type(error).__name__}: {error}"[:100]] += 1
                connection = _close(connection)
        _close(connection)

    started = time.perf_counter()
    await asyncio.gather(*(client(worker) for worker in range(concurrency)))
    seconds = time.perf_counter() - started
    milliseconds = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    return {
        "concurrency": concurrency,
        "requests": requests,
        "ok": len(latencies),
        "errors": dict(errors),
        "seconds": round(seconds, 3),
        "requests_per_second": round(len(latencies) / seconds, 1),
        **{f"p{q}_ms": round(float(np.percentile(milliseconds, q)), 2) for q in (50, 95, 99)},
    }
