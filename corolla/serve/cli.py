"""`corolla serve` and `corolla bench-serve` as Typer commands; `corolla.cli` registers them.

Example:
    register(app)  # adds `corolla serve` and `corolla bench-serve`
"""

from __future__ import annotations

import pathlib
from typing import List, Optional

import typer


def serve(
    path: pathlib.Path = typer.Argument(..., help="An export folder (RUN_DIR/export), one version of it, or a run folder."),
    host: str = typer.Option("127.0.0.1", help="Address to bind; use 0.0.0.0 only to expose the server on your network."),
    port: int = typer.Option(8501, help="Port (TF Serving's REST port by default)."),
    model_name: Optional[str] = typer.Option(None, help="Name in the URLs /v1/models/NAME and /v2/models/NAME \\[default: the run folder's name]."),
    max_batch_size: int = typer.Option(32, help="Most images run through the model at once (1 turns batching off); less where bigger batches measure slower per image."),
    batch_timeout_ms: float = typer.Option(2.0, help="Longest wait for more requests to fill a batch."),
    workers: int = typer.Option(1, help="Server processes; each loads the model and batches its own requests."),
    runtime: str = typer.Option("auto", help="auto (the faster of the two, measured at start-up), tf (SavedModel) or onnx (model.onnx)."),
    runtime_threads: int = typer.Option(0, help="Threads of the model runtime in each server process; 0: the cores ÷ --workers."),
    max_body_mb: float = typer.Option(10.0, help="Largest request body, in MB."),
    max_instances: int = typer.Option(256, help="Most images in one request."),
    max_pixels: int = typer.Option(25_000_000, help="Largest image, in pixels (width × height, read from its header before decoding)."),
    max_queue: int = typer.Option(256, help="Most images waiting for the model; past it, requests get 503 at once."),
    request_timeout_s: float = typer.Option(30.0, help="Deadline of a request in the queue; past it, 504."),
    poll_seconds: float = typer.Option(2.0, help="How often to look for a new version in the export folder."),
    access_log: bool = typer.Option(True, help="One JSON line per request on stderr."),
    listen_while_loading: bool = typer.Option(
        False, help="Open the port before the model is loaded: /v2/health/live answers at once, readiness and predictions 503 until it is warm "
        "(for an orchestrator whose liveness probe would kill a slow start). By default the port opens only once the model is warm."
    ),
):
    """Serve the newest exported version: TF Serving REST + KServe V2 APIs, a web page at /, /metrics."""
    from corolla.serve.app import serve as run_serve

    run_serve(
        path, host=host, port=port, workers=workers, model_name=model_name, runtime=runtime, max_batch_size=max_batch_size,
        batch_timeout_ms=batch_timeout_ms, max_body_bytes=int(max_body_mb * 2**20), max_instances=max_instances, max_pixels=max_pixels,
        max_queue=max_queue, request_timeout_s=request_timeout_s, poll_seconds=poll_seconds, access_log=access_log, runtime_threads=runtime_threads,
        listen_while_loading=listen_while_loading,
    )


def bench_serve(
    url: str = typer.Option("http://127.0.0.1:8501", help="A running `corolla serve`."),
    concurrency: int = typer.Option(16, help="Clients sending requests at the same time."),
    requests: int = typer.Option(2000, help="Requests in all."),
    image: Optional[List[pathlib.Path]] = typer.Option(None, help="Image file(s) to send \\[default: small generated JPEGs]."),
    images_per_request: int = typer.Option(1, help="Images in each request."),
    protocol: str = typer.Option("v1", help="v1 (TF Serving REST :predict) or v2 (KServe /infer)."),
    model_name: Optional[str] = typer.Option(None, help="Model on the server \\[default: the one it serves]."),
    max_seconds: float = typer.Option(600.0, help="Stop sending after this long, whatever is left."),
):
    """Load-test a server with a bounded number of requests; prints throughput and p50/p95/p99 latency."""
    from rich.console import Console

    from corolla.serve.bench import bench_serve as run_bench

    summary = run_bench(
        url, concurrency=concurrency, requests=requests, images=image, images_per_request=images_per_request,
        protocol=protocol, model_name=model_name, max_seconds=max_seconds,
    )
    errors = ", ".join(f"{count} × {kind}" for kind, count in summary["errors"].items()) or "none"
    Console().print(
        f"{summary['ok']:,}/{summary['requests']:,} requests answered in {summary['seconds']:.1f} s at concurrency {concurrency}: "
        f"[bold]{summary['requests_per_second']:,.1f} req/s[/], p50 {summary['p50_ms']:.1f} ms, p95 {summary['p95_ms']:.1f} ms, "
        f"p99 {summary['p99_ms']:.1f} ms; errors: {errors}"
    )
    if summary["errors"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the serving commands to the `corolla` app."""
    app.command()(serve)
    app.command("bench-serve")(bench_serve)
