"""`corolla serve` under load: requests/s and p50/p99 latency at concurrency 1, 16 and 64, batching
on vs off, TensorFlow vs ONNX Runtime, on the demo model (Fashion-MNIST convnet, 28×28×1) and on a
224×224 SqueezeNet (the seeds' fire modules, and the lightest 224 model in the zoo, which keeps the run short).

    .venv/bin/python benchmarks/serve_load.py [--quick]

Each configuration is a fresh `corolla serve` process on loopback; the client (`corolla.serve.bench`: asyncio,
one process, raw HTTP/1.1 on keep-alive connections) runs on the same machine, so on a small box it takes CPU from the server: the
figures are what one machine does serving itself. Models are built once into
benchmarks/out/serve/ (1 training epoch: the weights do not change the speed) and reused.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import socket
import subprocess
import sys
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import OUT, make_photo_folder, report  # noqa: E402

WORK = OUT / "serve"
BATCHING = {"on": ["--max-batch-size", "32", "--batch-timeout-ms", "5"], "off": ["--max-batch-size", "1", "--batch-timeout-ms", "0"]}


def _exported(name: str, source, *, model: str, image_size: int | None = None, batch_size: int = 128, parity_images: int = 200) -> pathlib.Path:
    """benchmarks/out/serve/<name>/export: `source` prepared, `model` trained one epoch, exported (reused when there)."""
    from corolla.data.manifest import MANIFEST
    from corolla.data.prepare import prepare
    from corolla.export import export
    from corolla.train import train

    run = WORK / name
    if not list((run / "export").glob("[0-9]*")):
        data = WORK / f"{name}-data"
        if not (data / MANIFEST).is_file():
            prepare(str(source), out=data, image_size=image_size, overwrite=True, verbose=False)
        train(data, model=model, out=run, epochs=1, batch_size=batch_size, overwrite=True, verbose=False)
        export(run, parity_images=parity_images, verbose=False)
    return run / "export"


def demo_model() -> pathlib.Path:
    """The demo's Fashion-MNIST convnet, one epoch (from the offline dataset `corolla datasets fetch` gives)."""
    return _exported("fashion-mnist", "fashion-mnist", model="convnet")


def photo_model() -> pathlib.Path:
    """SqueezeNet (the seeds' fire modules) on 224×224 synthetic photos (5 classes × 40), one epoch."""
    photos = make_photo_folder(WORK / "photos", classes=5, per_class=40)
    return _exported("photos-224", photos, model="squeezenet", image_size=224, batch_size=32, parity_images=50)


@contextlib.contextmanager
def server(export_base: pathlib.Path, runtime: str, batching: str):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "corolla.cli", "serve", str(export_base), "--port", str(port), "--runtime", runtime, "--no-access-log", *BATCHING[batching]]
    log = open(WORK / "server.log", "a")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    url = f"http://127.0.0.1:{port}"
    try:
        import httpx

        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                    break
            if process.poll() is not None:
                raise RuntimeError(f"corolla serve exited; see {WORK / 'server.log'}")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=60)
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="A quarter of the requests (a smoke run).")
    args = parser.parse_args()

    from corolla.serve.bench import bench_serve

    WORK.mkdir(parents=True, exist_ok=True)
    photo_export = photo_model()  # also makes the photos, one of which is the request image
    models = {
        "demo convnet 28×28×1": (demo_model(), [_fashion_like_png(WORK / "sample.png")], {1: 300, 16: 1600, 64: 2000}),
        "squeezenet 224×224×3": (photo_export, sorted((WORK / "photos").rglob("*.jpg"))[:1], {1: 40, 16: 240, 64: 320}),
    }
    rows = []
    for model, (export_base, sample, counts) in models.items():
        for runtime in ("tf", "onnx"):
            for batching in ("off", "on"):
                with server(export_base, runtime, batching) as url:
                    bench_serve(url, concurrency=8, requests=40, images=sample)  # warm-up
                    for concurrency, requests in counts.items():
                        requests = max(concurrency * 2, requests // (4 if args.quick else 1))
                        summary = bench_serve(url, concurrency=concurrency, requests=requests, images=sample, max_seconds=120)
                        rows.append({
                            "model": model, "runtime": runtime, "batching": batching, "concurrency": concurrency,
                            "requests": summary["ok"], "errors": sum(summary["errors"].values()),
                            "req_per_s": summary["requests_per_second"], "p50_ms": summary["p50_ms"], "p99_ms": summary["p99_ms"],
                        })
                        print(rows[-1], flush=True)
    speedups = {}
    for row in rows:
        if row["batching"] == "on":
            off = next(r for r in rows if r["batching"] == "off" and all(r[k] == row[k] for k in ("model", "runtime", "concurrency")))
            speedups[f"{row['model']} / {row['runtime']} / c={row['concurrency']}"] = round(row["req_per_s"] / off["req_per_s"], 2)
    report("serve_load", rows, batching_speedup=speedups, quick=args.quick, note="client and server share the machine's cores")


def _fashion_like_png(path: pathlib.Path) -> pathlib.Path:
    """A 28×28 grayscale PNG, the demo's input."""
    import numpy as np
    from PIL import Image

    if not path.exists():
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (28, 28), dtype=np.uint8)).save(path)
    return path


if __name__ == "__main__":
    main()
