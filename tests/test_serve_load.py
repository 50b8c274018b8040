"""The server against its own OpenAPI document (schemathesis) and under a bounded concurrent load on loopback."""

import http.server
import json
import pathlib
import subprocess
import sys
import threading
import time

import httpx
import pytest

from corolla.serve.bench import bench_serve
from tests.test_serve_e2e import cli_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(exported):
    with cli_server(exported.parent, "--no-access-log") as (url, process):
        yield url, process


def resident_mb(pid: int) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_schemathesis_finds_no_server_error(server, tmp_path):
    url, _ = server
    config = tmp_path / "schemathesis.toml"
    config.write_text('[parameters]\n"path.name" = "shapes-run"\n')  # fuzz the served model, not only 404s
    command = [
        str(pathlib.Path(sys.executable).parent / "schemathesis"), "--config-file", str(config), "run", f"{url}/openapi.json",
        "--checks", "not_a_server_error", "--max-examples", "40", "--phases", "examples,coverage,fuzzing",
        # One worker: several trip a thread-safety bug of ast.parse (in hypothesis) on Python 3.11.
        "--workers", "1", "--request-timeout", "30", "--seed", "7", "--generation-database", "none",
        "--suppress-health-check", "all", "--no-color", "--report", "json", "--report-json-path", str(tmp_path / "report.json"),
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=420)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert "/v1/models/{name}:predict" in json.dumps(report)  # the fuzzed operations included predict
    assert httpx.get(f"{url}/v2/health/ready").status_code == 200


def test_bounded_load_no_errors_and_flat_memory(server):
    url, process = server
    bench_serve(url, concurrency=32, requests=300)  # warm-up: buffers, thread pools, allocator
    before = resident_mb(process.pid)
    summary = bench_serve(url, concurrency=32, requests=2000, max_seconds=300)
    growth = resident_mb(process.pid) - before
    assert summary["ok"] == 2000 and summary["errors"] == {}, summary
    assert growth < 50, f"resident memory grew {growth:.1f} MB over 2,000 requests"
    metrics = httpx.get(f"{url}/metrics").text
    batched = [line for line in metrics.splitlines() if line.startswith("corolla_batch_size_bucket") and 'le="1"' in line]
    count = [line for line in metrics.splitlines() if line.startswith("corolla_batch_size_count")]
    assert int(batched[0].split()[-1]) < int(count[0].split()[-1])  # some batches held more than one image


def test_bench_serve_waits_for_a_server_still_loading_and_names_a_dead_one(exported):
    from corolla.errors import CorollaError
    from tests.test_serve_e2e import free_port

    with pytest.raises(CorollaError, match="Cannot reach a corolla server"):
        bench_serve(f"http://127.0.0.1:{free_port()}", requests=1)
    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)  # answers 501 to GET
    threading.Thread(target=other.serve_forever, daemon=True).start()
    with pytest.raises(CorollaError, match="is not a ready corolla server: GET /v1/models answered 501"):
        bench_serve(f"http://127.0.0.1:{other.server_address[1]}", requests=1)
    other.shutdown()
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "corolla.cli", "serve", str(exported.parent), "--port", str(port), "--no-access-log"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        while True:  # the port opens before the model is loaded; start the load then
            assert process.poll() is None, "corolla serve exited early"
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2).status_code
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        summary = bench_serve(f"http://127.0.0.1:{port}", concurrency=2, requests=20)
        assert summary["ok"] == 20, (status, summary)
    finally:
        process.terminate()
        process.wait(timeout=30)
