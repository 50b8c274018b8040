"""`corolla serve`: an exported model behind TF Serving's REST API and KServe's V2 protocol.

Routes: /v1/... (corolla.serve.tfserving), /v2/... (corolla.serve.kserve), / (a web page to
try the model), /metrics (Prometheus) and /openapi.json. Errors are {"error": "…"} with
a 4xx status for anything the client sent wrong, 503 when overloaded or not ready, 504 past
the deadline. On SIGTERM the server drains: new requests get 503, in-flight ones finish.

Example:
    app = create_app("runs/fm/export", model_name="fm", max_batch_size=32)   # for any ASGI server
    serve("runs/fm/export", port=8501)                                       # blocks
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import pathlib
import signal
import threading
import time

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from corolla.cores import schedulable_cores
from corolla.errors import CorollaError
from corolla.serve import kserve, tfserving
from corolla.serve.jsonio import JSONBody
from corolla.serve.batching import DeadlineExceeded, Overloaded
from corolla.serve.fast_path import InferenceFastPath
from corolla.serve.limits import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_INSTANCES, DEFAULT_MAX_PIXELS, MODEL_NAME, ApiError, Limits
from corolla.serve.metrics import CONTENT_TYPE, Metrics
from corolla.serve.middleware import Observe
from corolla.serve.startup import AnnouncingServer, ReadyLine, describe
from corolla.serve.versions import ModelManager

STATIC = pathlib.Path(__file__).parent / "static"
SETTINGS_ENV = "COROLLA_SERVE_SETTINGS"  # how `--workers N` hands the options to each worker process
logger = logging.getLogger("corolla.serve")


@dataclasses.dataclass(frozen=True)
class Settings:
    limits: Limits
    request_timeout_s: float
    drain_timeout_s: float


def create_app(
    path: str | os.PathLike,
    *,
    model_name: str | None = None,
    runtime: str = "auto",
    max_batch_size: int = 32,
    batch_timeout_ms: float = 2.0,
    max_queue: int = 256,
    request_timeout_s: float = 30.0,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_instances: int = DEFAULT_MAX_INSTANCES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    runtime_threads: int = 0,
    poll_seconds: float = 2.0,
    drain_timeout_s: float = 30.0,
    access_log: bool = True,
    load_before_serving: bool = True,
) -> FastAPI:
    """The ASGI app serving the newest complete version under `path`.

    With `load_before_serving` (the default), the app's start-up waits until that version is
    loaded and warm, and ASGI servers (uvicorn) open their port only after start-up, so no client
    ever meets a server that would answer 503 "loading" — as TF Serving and Triton behave. With
    False, the port opens at once: /v2/health/live answers 200 while readiness and predictions
    answer 503 until the load is done (`corolla serve --listen-while-loading`).
    `runtime_threads` > 0 caps the model runtime's thread pools (0: one thread per core).
    """
    from corolla.runtime.exported import find_version
    from corolla.runtime.runners import RUNTIMES

    path = _export_base(path)
    version_dir = find_version(path)  # fail now, with a clear message, if there is nothing to serve
    model_name = model_name or default_name(version_dir)
    if not MODEL_NAME.fullmatch(model_name):
        raise CorollaError(f"Model names may use only letters, digits, '.', '_' and '-'. Received: model_name={model_name!r}")
    if runtime not in RUNTIMES:
        raise CorollaError(f"Unknown runtime '{runtime}'. Expected one of: {', '.join(RUNTIMES)}. Received: runtime={runtime!r}")
    if request_timeout_s <= 0 or poll_seconds <= 0:
        raise CorollaError(f"Timeouts must be positive. Received: request_timeout_s={request_timeout_s}, poll_seconds={poll_seconds}")
    if runtime_threads < 0:
        raise CorollaError(f"runtime_threads must be ≥ 0 (0: one thread per core, or the cores ÷ --workers). Received: runtime_threads={runtime_threads}")
    if max_batch_size < 1 or batch_timeout_ms < 0 or max_queue < 1:
        raise CorollaError(
            f"Expected max_batch_size ≥ 1, batch_timeout_ms ≥ 0 and max_queue ≥ 1. "
            f"Received: max_batch_size={max_batch_size}, batch_timeout_ms={batch_timeout_ms}, max_queue={max_queue}"
        )
    try:
        limits = Limits(max_body_bytes=max_body_bytes, max_instances=max_instances, max_pixels=max_pixels)
    except ValueError as error:
        raise CorollaError(str(error)) from None
    metrics = Metrics()
    manager = ModelManager(
        path, model_name=model_name, poll_seconds=poll_seconds, metrics=metrics, runtime=runtime,
        max_batch_size=max_batch_size, batch_timeout_ms=batch_timeout_ms, max_queue=max_queue, max_pixels=max_pixels,
        runtime_threads=runtime_threads,
    )
    metrics.gauges["corolla_queue_depth"] = ("Images admitted and waiting for a batch (decoding or queued).", lambda: _queue(manager))
    metrics.gauges["corolla_model_version"] = ("The version being served (0 while none is ready).", lambda: _version(manager))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        loop = asyncio.get_running_loop()
        manager.start(loop)
        _drain_on_sigterm(app, loop)
        if load_before_serving:
            await loop.run_in_executor(None, manager.first_attempt.wait)
        if app.state.announce_worker and manager.current is not None:
            logger.info("Worker %d ready: %s", os.getpid(), describe(manager))
        yield
        manager.stop()

    app = FastAPI(
        title="corolla",
        version=_version_string(),
        description=f"Serving the image classifier '{model_name}' over TF Serving's REST API and the KServe V2 / Open Inference Protocol.",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI and ReDoc load their assets from a CDN; the server must work offline
        redoc_url=None,
        **_no_builtin_telemetry(),
    )
    app.state.manager, app.state.metrics, app.state.draining, app.state.announce_worker = manager, metrics, False, False
    app.state.settings = Settings(limits=limits, request_timeout_s=request_timeout_s, drain_timeout_s=drain_timeout_s)
    app.add_middleware(InferenceFastPath)
    app.add_middleware(Observe, metrics=metrics, access_log=access_log)  # added last: outermost, so it sees the fast path's requests too
    _add_error_handlers(app)
    app.include_router(tfserving.router)
    app.include_router(kserve.router)

    @app.get("/metrics", include_in_schema=False)
    def prometheus():
        return PlainTextResponse(metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


# The page loads nothing from elsewhere; say so to the browser too.
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self'; script-src 'self'", "X-Content-Type-Options": "nosniff"}


def _add_error_handlers(app: FastAPI) -> None:
    def error(status: int, message: str, **headers) -> JSONBody:
        return JSONBody({"error": message}, status_code=status, headers=headers or None)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return error(exc.status, exc.message)

    @app.exception_handler(Overloaded)
    async def overloaded(request: Request, exc: Overloaded):
        return error(503, str(exc) or "The server is overloaded; retry shortly.", **{"Retry-After": "1"})

    @app.exception_handler(DeadlineExceeded)
    async def deadline(request: Request, exc: DeadlineExceeded):
        timeout = request.app.state.settings.request_timeout_s
        return error(504, f"The request waited longer than its {timeout:g} s deadline (--request-timeout-s); the server is too busy. Retry later.")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        message = f"No such endpoint: {request.method} {request.url.path}. The API is described at /openapi.json." if exc.status_code == 404 else str(exc.detail)
        return error(exc.status_code, message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        return error(400, f"Invalid request: {exc.errors()}")


def _drain_on_sigterm(app: FastAPI, loop) -> None:
    """SIGTERM: answer new requests 503, let in-flight ones finish, then hand over to uvicorn's own shutdown."""
    if threading.current_thread() is not threading.main_thread():
        return  # an embedded server (tests, notebooks): its owner stops it
    previous = signal.getsignal(signal.SIGTERM)
    if not callable(previous):
        return

    async def drain(sig):
        metrics, deadline = app.state.metrics, time.monotonic() + app.state.settings.drain_timeout_s
        while metrics.inflight > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        previous(sig, None)

    def on_sigterm(sig, frame):
        if app.state.draining:
            return previous(sig, frame)
        app.state.draining = True
        logger.info("SIGTERM: draining (new requests get 503; %d in flight finish first)", app.state.metrics.inflight)
        loop.call_soon_threadsafe(lambda: loop.create_task(drain(sig)))

    signal.signal(signal.SIGTERM, on_sigterm)


def _queue(manager) -> dict:
    current = manager.current
    return {(): current.batcher.queued if current else 0}


def _version(manager) -> dict:
    current = manager.current
    return {(("model", manager.model_name), ("runtime", current.runtime_name if current else "")): current.version if current else 0}


def _no_builtin_telemetry() -> dict:
    """FastAPI ≥ 0.165 checks for OpenTelemetry on every request (~8% of a predict's CPU here);
    /metrics already gives Prometheus figures, so turn it off where the option exists."""
    import inspect

    if "telemetry" in inspect.signature(FastAPI).parameters:
        return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    return {}


def _version_string() -> str:
    import corolla

    return corolla.__version__


def _export_base(path) -> pathlib.Path:
    """A run folder → its export folder; anything else as given."""
    from corolla.config import CONFIG

    path = pathlib.Path(path)
    return path / "export" if (path / CONFIG).is_file() and (path / "export").is_dir() else path


def default_name(version_dir: pathlib.Path) -> str:
    """The run folder's name: RUN_DIR/export/<n> → RUN_DIR's name."""
    version_dir = pathlib.Path(version_dir).resolve()
    export_base = version_dir.parent
    run_dir = export_base.parent if export_base.name == "export" else export_base
    name = run_dir.name
    return name if MODEL_NAME.fullmatch(name) else "model"


def serve(
    path: str | os.PathLike,
    *,
    host: str = "127.0.0.1",
    port: int = 8501,
    workers: int = 1,
    log_level: str = "info",
    listen_while_loading: bool = False,
    **options,
) -> None:
    """Serve the newest version under `path` (an export folder, one version of it, or a run folder) until stopped.

    The port opens once that version is loaded and warm, and one line says so ("Ready at URL:
    model, version, runtime, batch size"); a version that cannot be loaded stops the command with
    the reason. `listen_while_loading` opens the port at once instead (liveness answers during a
    long load). `options` are create_app's (model_name, runtime, max_batch_size, batch_timeout_ms, …).
    """
    _configure_logging(log_level)
    if workers < 1:
        raise CorollaError(f"workers must be ≥ 1. Received: workers={workers}")
    # TensorFlow takes almost all GPU memory by default; with --workers the first process would
    # leave the others none. Growing on demand lets them share a GPU (workers inherit this).
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    app = create_app(path, load_before_serving=not listen_while_loading, **options)  # checks everything once, in this process
    manager = app.state.manager
    logger.info("Loading '%s' from %s", manager.model_name, path)
    common = {"host": host, "port": port, "log_level": log_level, "access_log": False, "timeout_graceful_shutdown": 60,
              "timeout_keep_alive": 75}  # longer than load balancers' idle timeouts, so they close first
    if workers == 1:
        ready = ReadyLine(manager)
        if not listen_while_loading:
            manager.load_first()  # here, so a version that cannot load stops the command with its reason
        AnnouncingServer(uvicorn.Config(app, **common), on_bound=ready.bound).run()
        return
    if not options.get("runtime_threads"):
        # Each worker's runtime gets its share of the cores: with a pool per worker sized for all
        # of them, the pools and the event loops overbook the cores (TensorFlow: 1.0 → 0.8 ms of CPU
        # per request with 2 workers on 2 cores, benchmarks/RESULTS.md).
        options["runtime_threads"] = max(1, schedulable_cores() // workers)
    os.environ[SETTINGS_ENV] = json.dumps({"path": str(path), "log_level": log_level, "load_before_serving": not listen_while_loading, **options})
    uvicorn.run("corolla.serve.app:worker_app", factory=True, workers=workers, **common)


def worker_app() -> FastAPI:
    """One `--workers` process's app, from the settings `serve` left in the environment."""
    options = json.loads(os.environ[SETTINGS_ENV])
    _configure_logging(options.pop("log_level"))
    app = create_app(options.pop("path"), **options)
    app.state.announce_worker = True
    return app


def _configure_logging(level: str) -> None:
    for name, fmt in (("corolla.serve", "%(levelname)s:     %(message)s"), ("corolla.access", "%(message)s")):
        log = logging.getLogger(name)
        if not log.handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter(fmt))
            log.addHandler(handler)
        log.setLevel(level.upper())
        log.propagate = False
