"""How fast the studio's own requests are, and whether it stays flat, on a big project.

Builds a project of N pictures (uploaded-picture layout, PROJECT/pictures/CLASS/), starts a real
`corolla studio` on loopback, and times what a user waits for: the page (HTML + its JS and CSS),
the project's class view (counts, samples, prepare findings), the sample thumbnails, the run list.
Then it repeats the class view many times and reports the studio's resident memory before and after.

    python benchmarks/studio_latency.py --pictures 5000
    python benchmarks/studio_latency.py --pictures 10000 --repeats 200

Goal (issue 14): page load and class view under 300 ms for a 5,000-picture project on 2 cores.
"""

from __future__ import annotations

import argparse
import io
import pathlib
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import httpx
import numpy as np
from PIL import Image

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from common import report  # noqa: E402


def make_project(workdir: pathlib.Path, pictures: int, classes: int = 10) -> None:
    project = workdir / "big"
    rng = np.random.default_rng(0)
    for index in range(pictures):
        folder = project / "pictures" / f"class_{index % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(buffer, "PNG")
        (folder / f"{index:06d}.png").write_bytes(buffer.getvalue())
    (project / "project.json").write_text('{"name": "big", "created": 0, "sources": [], "class_order": [], "class_map": {}, "overrides": {}, "undo": []}\n')


def rss_mb(pid: int) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed(client: httpx.Client, path: str, repeats: int, **options) -> dict:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        response = client.get(path, **options)
        response.raise_for_status()
        seconds.append(time.perf_counter() - started)
    seconds.sort()
    return {"median_ms": round(1000 * statistics.median(seconds), 1), "p95_ms": round(1000 * seconds[int(0.95 * (len(seconds) - 1))], 1), "bytes": len(response.content)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pictures", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--burst", type=int, default=200, help="class views in a row for the memory figure")
    args = parser.parse_args()
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="studio-bench-"))
    make_project(workdir, args.pictures)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    studio = subprocess.Popen([sys.executable, "-m", "corolla.cli", "studio", str(workdir), "--port", str(port)], stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        client = httpx.Client(base_url=base, timeout=60)
        for _ in range(300):
            try:
                client.get("/api/projects")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        page = client.get("/").text
        assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)
        view = client.get("/api/projects/big").json()
        samples = [sample for entry in view["classes"] for sample in entry["samples"]]
        rows = [{"request": "page (HTML)", **timed(client, "/", args.repeats)}]
        rows += [{"request": f"page asset {asset}", **timed(client, asset, args.repeats)} for asset in assets]
        rows.append({"request": f"class view ({args.pictures:,} pictures)", **timed(client, "/api/projects/big", args.repeats)})
        rows.append({"request": "one thumbnail", **timed(client, "/api/projects/big/thumbnail", args.repeats, params={"key": samples[0]})})
        rows.append({"request": "run list", **timed(client, "/api/projects/big/runs", args.repeats)})
        page_total = sum(row["median_ms"] for row in rows if row["request"].startswith("page"))
        rows.append({"request": "page load (HTML + assets, sequential)", "median_ms": round(page_total, 1), "p95_ms": None, "bytes": None})
        before = rss_mb(studio.pid)
        for _ in range(args.burst):
            client.get("/api/projects/big")
        after = rss_mb(studio.pid)
        for _ in range(args.burst):
            client.get("/api/projects/big")
        again = rss_mb(studio.pid)
        report(
            "studio_latency", rows, pictures=args.pictures,
            rss_mb={"after_first_views": round(before, 1), f"after_{args.burst}_more": round(after, 1), f"after_{2 * args.burst}_more": round(again, 1)},
        )
        print(f"studio RSS: {before:.0f} MB → {after:.0f} MB after {args.burst} class views → {again:.0f} MB after {2 * args.burst}")
    finally:
        studio.terminate()
        studio.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
