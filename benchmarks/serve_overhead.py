"""The server's own cost per request, measured against what the work and the HTTP stack alone cost.

    .venv/bin/python benchmarks/serve_overhead.py [--baseline REV] [--step LABEL=REV[:PKG,…]]… [--seconds 6] [--models demo,224] [--workers 1,2]
        [--server-env NAME=VALUE]…

In one run, on the same payloads (one image per request: the demo's 28×28 grayscale PNG, a
500×375 JPEG for the 224-px SqueezeNet):
1. limit: decode + model in this process, in the batches the server builds, on a thread per
   core (images/s), timed right before and right after each server row (the VM's speed moves
   within minutes; each row's "× limit" is against the mean of its two);
2. floor: a bare ASGI app (benchmarks/asgi_floor.py) under the server's uvicorn settings that
   parses the same JSON and answers a fixed body (req/s);
3. `corolla serve` (batching on: --max-batch-size 32 --batch-timeout-ms 2), TF Serving JSON and
   KServe V2 JSON, at concurrency 1, 16 and 64: req/s, p50/p99, and the server process's CPU
   seconds per request (utime + stime from /proc/PID/stat, summed over its worker processes),
   for each runtime and each --workers count; and its RSS (all processes) at rest and after
   each of four 32-client bursts.
With --baseline REV the same server rows are taken for that commit too (`git archive` into a
temporary folder, run with this venv but without the packages its pyproject.toml does not list:
uvloop, httptools, orjson, simplejpeg), side by side. Each --step adds a commit measured at
concurrency 16 only (both protocols), hiding the packages after its colon, so one run shows
what each change bought: e.g. --step uvloop+httptools=REV: is the baseline's code with uvicorn's
fast loop and parser, which uvicorn picks by itself once they are installed.

The load comes from `wrk` (C, one thread; Debian package, scripts/install-system-deps.sh), whose
own CPU share of the machine is reported. Models are built once into benchmarks/out/serve/.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import pathlib
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import tomllib
import time

import numpy as np

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import report  # noqa: E402
from serve_load import WORK, _fashion_like_png, demo_model, photo_model  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
SERVE_OPTIONS = ["--max-batch-size", "32", "--batch-timeout-ms", "2", "--no-access-log"]
NEW_PACKAGES = ("uvloop", "httptools", "orjson", "simplejpeg")  # hidden from a baseline whose pyproject.toml does not list them
TICKS = os.sysconf("SC_CLK_TCK")


def payloads(image: bytes) -> dict[str, tuple[str, bytes]]:
    """protocol → (path after the model name, JSON body) for one image."""
    b64 = base64.b64encode(image).decode()
    return {
        "tfserving": (":predict", json.dumps({"instances": [{"image_bytes": {"b64": b64}}]}).encode()),
        "kserve": ("/infer", json.dumps({"inputs": [{"name": "image_bytes", "datatype": "BYTES", "shape": [1], "data": [b64]}]}).encode()),
    }


class Limit:
    """The server's decoder + runtime loaded in this process, timed as often as asked.

    This VM's speed moves within minutes (the same server gave 2,000 and 3,400 req/s a few
    seconds apart on 2026-12-07), so each server row is compared with the limit timed just before
    and just after it, while the server sits idle, rather than with one timing at the start.
    """

    def __init__(self, export_base: pathlib.Path, runtime: str, image: bytes):
        from corolla.runtime.exported import find_version
        from corolla.serve.servable import Servable

        self.servable = Servable(find_version(export_base), runtime=runtime, max_batch_size=32)
        self.image, self.batch_size, self.timings = image, self.servable.batch_size, []

    def _batch(self, _) -> int:
        self.servable.runtime(np.stack([self.servable.decoder(self.image) for _ in range(self.batch_size)]))
        return self.batch_size

    def measure(self, seconds: float) -> float:
        """Images/s: decode + model in batches of the server's batch size, one thread per core."""
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
            list(pool.map(self._batch, range(4)))  # warm
            done, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                done += sum(pool.map(self._batch, range(2 * (os.cpu_count() or 1))))
            elapsed = time.perf_counter() - started
        self.timings.append(done / elapsed)
        return self.timings[-1]

    def summary(self) -> dict:
        return {"images_per_s": sum(self.timings) / len(self.timings), "timings": [round(value) for value in self.timings],
                "batch_size": self.batch_size, "runtime": self.servable.runtime_name}

    def close(self) -> None:
        self.servable.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def process(command: list[str], *, ready_url: str, env: dict, log: pathlib.Path, cwd: pathlib.Path = ROOT):
    """A server started in `cwd` (`python -c` puts the working folder first on sys.path) until it is ready; yields its pid."""
    with open(log, "a") as output:
        child = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, cwd=cwd, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env})
        try:
            import httpx

            deadline = time.monotonic() + 240
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(ready_url, timeout=2).status_code == 200:
                        break
                if child.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{command[:4]} did not come up; see {log}")
                time.sleep(0.3)
            yield child.pid
        finally:
            child.terminate()
            child.wait(timeout=60)


def serve_command(export_base: pathlib.Path, runtime: str, port: int, *, hide: tuple[str, ...] = (), workers: int = 1) -> list[str]:
    script = (f"import sys\nfor name in {hide!r}: sys.modules[name] = None\n"
              "import corolla\nprint('corolla from', corolla.__file__, flush=True)\n"
              "from corolla.cli import main\nsys.argv = ['corolla'] + sys.argv[1:]\nmain()")
    return [sys.executable, "-c", script, "serve", str(export_base), "--port", str(port), "--runtime", runtime, "--workers", str(workers), *SERVE_OPTIONS]


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command name (field 3, the state, first)."""
    return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def server_pids(pid: int) -> list[int]:
    """`pid` and its live descendants: with --workers N, uvicorn's supervisor and its N worker processes."""
    parents = {}
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                parents[int(entry.name)] = int(_stat(int(entry.name))[1])
    tree = [pid]
    for candidate in tree:
        tree += [child for child, parent in parents.items() if parent == candidate]
    return tree


def cpu_seconds(pid: int) -> float:
    """utime + stime of the server's whole process tree."""
    total = 0
    for member in server_pids(pid):
        with contextlib.suppress(OSError):
            fields = _stat(member)
            total += int(fields[11]) + int(fields[12])
    return total / TICKS


def rss_mb(pid: int) -> float:
    """Resident memory of the server's process tree (MB)."""
    total = 0
    for member in server_pids(pid):
        with contextlib.suppress(OSError):
            total += int(re.search(r"VmRSS:\s+(\d+)", pathlib.Path(f"/proc/{member}/status").read_text()).group(1))
    return total / 1024


def wait_until_idle(pid: int, *, timeout: float = 240) -> None:
    """Wait for every worker to finish loading: the tree's CPU use falls below 5% of a core for a second."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(1)
        if cpu_seconds(pid) - before < 0.05:
            return


def wrk(url: str, body: bytes, *, concurrency: int, seconds: float, pid: int) -> dict:
    """One wrk run: req/s, p50/p99 ms, errors, server CPU ms per request and wrk's share of the machine's CPU."""
    script = WORK / "post.lua"
    (WORK / "body.json").write_bytes(body)
    script.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                      f'wrk.body = io.open("{WORK / "body.json"}", "rb"):read("*a")\n')
    before, started, children = cpu_seconds(pid), time.perf_counter(), _children_cpu()
    child = subprocess.Popen(["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--latency", "-s", str(script), url],
                             stdout=subprocess.PIPE, text=True)
    output = child.communicate()[0]
    wall, server = time.perf_counter() - started, cpu_seconds(pid) - before
    client_cpu = _children_cpu() - children  # only wrk ended meanwhile
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    return {
        "req_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50_ms": _ms(re.search(r"50%\s+([\d.]+\w+)", output).group(1)),
        "p99_ms": _ms(re.search(r"99%\s+([\d.]+\w+)", output).group(1)),
        "errors": (int(errors.group(1)) if errors else 0) + (1 if socket_errors else 0),
        "server_cpu_ms_per_req": 1000 * server / max(requests, 1),
        "client_cpu_share": client_cpu / (wall * (os.cpu_count() or 1)),
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def bursts(url: str, body: bytes, pid: int, *, requests_per_client: int) -> list[float]:
    """RSS (MB) at rest, then after each of four bursts of 32 clients × `requests_per_client`."""
    import asyncio

    import httpx

    async def burst():
        async with httpx.AsyncClient(timeout=120) as client:
            async def one():
                for _ in range(requests_per_client):
                    (await client.post(url, content=body, headers={"content-type": "application/json"})).raise_for_status()

            await asyncio.gather(*(one() for _ in range(32)))

    sizes = [rss_mb(pid)]
    for _ in range(4):
        asyncio.run(burst())
        sizes.append(rss_mb(pid))
    return sizes


def source_tree(revision: str) -> pathlib.Path:
    """`revision` of this repository, unpacked into a temporary folder."""
    folder = pathlib.Path(tempfile.mkdtemp(prefix="corolla-baseline-"))
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", help="A commit to measure side by side (e.g. the last one before the change).")
    parser.add_argument("--step", action="append", default=[], help="LABEL=REV[:PKG,…]: a commit measured at concurrency 16, without those packages.")
    parser.add_argument("--seconds", type=int, default=6, help="Length of each wrk run.")
    parser.add_argument("--models", default="demo,224")
    parser.add_argument("--runtimes", default="tf,onnx")
    parser.add_argument("--workers", default="1", help="Comma-separated `corolla serve --workers` counts to measure this tree with, e.g. 1,2.")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                        help="Also measure this tree with that environment variable set in the server, e.g. MALLOC_ARENA_MAX=2.")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: run `bash scripts/install-system-deps.sh` (Debian package wrk).")
    WORK.mkdir(parents=True, exist_ok=True)
    models = {}
    if "demo" in args.models:
        models["demo convnet 28×28×1"] = (demo_model(), _fashion_like_png(WORK / "sample.png").read_bytes(), 40)
    if "224" in args.models:
        export_base = photo_model()
        models["squeezenet 224×224×3"] = (export_base, sorted((WORK / "photos").rglob("*.jpg"))[0].read_bytes(), 10)
    codes = {}  # label → (source tree, packages hidden, full matrix?, worker processes)
    if args.baseline:
        tree = source_tree(args.baseline)
        listed = {re.match(r"[A-Za-z0-9_.-]+", dependency)[0].lower() for dependency in tomllib.loads((tree / "pyproject.toml").read_text())["project"]["dependencies"]}
        codes[f"baseline {args.baseline}"] = (tree, tuple(name for name in NEW_PACKAGES if name not in listed), True, 1)
    for step in args.step:
        label, _, spec = step.partition("=")
        revision, _, hidden = spec.partition(":")
        codes[label] = (source_tree(revision), tuple(name for name in hidden.split(",") if name), False, 1)
    for workers in (int(count) for count in args.workers.split(",")):  # worker processes spawn afresh: no hidden packages there
        codes["this tree" if workers == 1 else f"this tree, --workers {workers}"] = (ROOT, (), True, workers)
    environments = {code: {} for code in codes}
    for setting in args.server_env:
        codes[f"this tree, {setting}"] = (ROOT, (), True, 1)
        environments[f"this tree, {setting}"] = dict([setting.split("=", 1)])
    rows, memory, limits, floors = [], [], {}, {}
    log = WORK / "serve_overhead.log"

    for model, (export_base, image, per_client) in models.items():
        bodies = payloads(image)
        port = free_port()
        with process([sys.executable, "-m", "uvicorn", "asgi_floor:app", "--port", str(port), "--no-access-log", "--log-level", "warning"],
                     ready_url=f"http://127.0.0.1:{port}/", env={"PYTHONPATH": str(ROOT / "benchmarks")}, log=log) as pid:
            for protocol, (_, body) in bodies.items():
                floors[(model, protocol)] = wrk(f"http://127.0.0.1:{port}/", body, concurrency=16, seconds=args.seconds, pid=pid)
                print("floor", model, protocol, floors[(model, protocol)], flush=True)
        for runtime in args.runtimes.split(","):
            limit = Limit(export_base, runtime, image)
            print("limit", model, runtime, round(limit.measure(args.seconds)), flush=True)
            for code, (tree, hide, full, workers) in codes.items():
                port = free_port()
                command = serve_command(export_base, runtime, port, hide=hide, workers=workers)
                with process(command, ready_url=f"http://127.0.0.1:{port}/v2/health/ready", env={"PYTHONPATH": str(tree), **environments[code]}, log=log, cwd=tree) as pid:
                    wait_until_idle(pid)
                    name = json.loads(subprocess.run(["curl", "-s", f"http://127.0.0.1:{port}/v1/models"], capture_output=True, text=True).stdout)["models"][0]["name"]
                    for protocol, (suffix, body) in bodies.items():
                        url = f"http://127.0.0.1:{port}/{'v1' if protocol == 'tfserving' else 'v2'}/models/{name}{suffix}"
                        if protocol == "tfserving" and full:
                            memory.append({"model": model, "runtime": runtime, "code": code, "workers": workers,
                                           "rss_mb": [round(value) for value in bursts(url, body, pid, requests_per_client=per_client)]})
                            print(memory[-1], flush=True)
                        for concurrency in (1, 16, 64) if full else (16,):
                            wait_until_idle(pid)  # the last run's backlog (64 requests of a slow model) must not count against this one
                            before = limit.measure(args.seconds)  # in this process: the server stays idle
                            result = wrk(url, body, concurrency=concurrency, seconds=args.seconds, pid=pid)
                            wait_until_idle(pid)
                            around = (before + limit.measure(args.seconds)) / 2
                            rows.append({"model": model, "runtime": runtime, "code": code, "workers": workers, "protocol": protocol,
                                         "concurrency": concurrency, **result, "limit_images_per_s": around, "vs_limit": result["req_per_s"] / around})
                            print(rows[-1], flush=True)
            limits[(model, runtime)] = limit.summary()
            limit.close()

    for row in rows:
        row["vs_floor"] = row["req_per_s"] / floors[(row["model"], row["protocol"])]["req_per_s"]
    report(
        "serve_overhead", rows,
        limits={f"{m} / {r}": value for (m, r), value in limits.items()},
        floors={f"{m} / {p}": value for (m, p), value in floors.items()},
        memory=memory, seconds=args.seconds, baseline=args.baseline,
    )


if __name__ == "__main__":
    main()
