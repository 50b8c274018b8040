"""Which version to serve: the highest complete one under the export base, swapped in once warm.

A version folder is complete when its model_card.json lists every file with the size (and,
checked once before loading, the SHA-256) found on disk: a folder still being copied never
matches its card, so it is never loaded. A background thread polls the base folder; a new
version is loaded and warmed beside the old one, which keeps answering until the swap.

Example:
    manager = ModelManager("runs/fm/export", model_name="fm", runtime="auto")
    manager.start(asyncio.get_running_loop())
    servable = manager.get()            # the newest warm version (ApiError 503 while none is)
"""

from __future__ import annotations

import gc
import logging
import pathlib
import threading
import time

from corolla.errors import CorollaError
from corolla.runtime.versions import complete_versions, is_complete, version_of
from corolla.serve.limits import ApiError, check_model_name, parse_version, read_body

logger = logging.getLogger("corolla.serve")


class ModelManager:
    def __init__(self, path, *, model_name: str, poll_seconds: float = 2.0, metrics=None, **servable_options):
        path = pathlib.Path(path)
        self.fixed = (path / "saved_model.pb").is_file()  # one version given: serve it, never look for others
        self.base = path.parent if self.fixed else path
        self.model_name = model_name
        self.poll_seconds = poll_seconds
        self.metrics = metrics
        self.servable_options = {"metrics": metrics, **servable_options}
        self.current = None
        self.loading: int | None = None
        self.failed: dict[int, str] = {}  # version → why it could not be loaded (not retried)
        self._unverified: dict[int, tuple] = {}  # version → its files' stamp when their hashes last failed
        self._path = path
        self._loop = None
        self._stop = threading.Event()
        self.first_attempt = threading.Event()  # set once the first poll has loaded a version, or failed to
        self.on_load = None  # called with each servable once it is the one served
        self._thread: threading.Thread | None = None

    def load_first(self) -> None:
        """Load and warm the newest version now, in this thread, before the server opens its port.

        Raises CorollaError saying why when it cannot be served, so `corolla serve` stops with
        that reason instead of answering 503 to every request.
        """
        candidate = self._newest()
        if candidate is None:
            raise CorollaError(f"{self.base} holds no complete exported model to serve. Run `corolla export RUN_DIR` first.")
        self._load(candidate)
        if self.current is None:
            version = version_of(candidate)
            reason = self.failed.get(version, "its files do not match the SHA-256 sums in model_card.json (still being copied?)")
            raise CorollaError(f"Could not load version {version} from {candidate}: {reason}. Re-export the run, or serve another version.")

    def start(self, loop) -> None:
        """Load the newest version, then keep polling for newer ones, in a daemon thread."""
        self._loop = loop
        self._thread = threading.Thread(target=self._poll, name="corolla-versions", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    @property
    def ready(self) -> bool:
        return self.current is not None

    def get(self, name: str | None = None, version: int | None = None):
        """The servable that answers `name` (and `version`, if given); ApiError 404 or 503 otherwise."""
        if name is not None and name != self.model_name:
            raise ApiError(404, f"Servable not found for request: Latest({name}). This server serves the model '{self.model_name}'.")
        current = self.current
        if current is None:
            raise ApiError(503, f"Model '{self.model_name}' is not ready yet: version {self.loading or '?'} is loading. Retry shortly.")
        if version is not None and version != current.version:
            raise ApiError(404, f"Servable not found for request: Specific({self.model_name}, {version}). Version {current.version} is served.")
        return current

    def lookup(self, name: str, version: str | None = None):
        """`get` for a name and version as a URL spells them (a bad name or version is a 400)."""
        check_model_name(name)
        return self.get(name, parse_version(version) if version is not None else None)

    def status(self) -> list[dict]:
        """TF Serving's model_version_status: the served version, and one being loaded or that failed."""
        rows = []
        if self.loading is not None:
            rows.append(_status(self.loading, "LOADING"))
        if self.current is not None:
            rows.append(_status(self.current.version, "AVAILABLE"))
        for version, reason in sorted(self.failed.items(), reverse=True)[:1]:
            if self.current is None or version > self.current.version:
                rows.append(_status(version, "END", "UNKNOWN", reason))
        return rows

    def _poll(self) -> None:
        while not self._stop.is_set():
            candidate = self._newest()
            if candidate is not None and (self.current is None or int(candidate.name) > self.current.version):
                self._load(candidate)
            self.first_attempt.set()
            if self.fixed and self.current is not None:
                return
            self._stop.wait(self.poll_seconds)

    def _newest(self) -> pathlib.Path | None:
        if self.fixed:
            return None if version_of(self._path) in self.failed else self._path
        versions = [path for path in complete_versions(self.base) if int(path.name) not in self.failed]
        return versions[-1] if versions else None

    def _load(self, version_dir: pathlib.Path) -> None:
        from corolla.serve.servable import Servable

        version = version_of(version_dir)
        stamp = _stamp(version_dir)
        if stamp and self._unverified.get(version) == stamp:
            return  # its hashes failed and nothing was written since: do not hash it again
        self.loading = version
        started = time.perf_counter()
        try:
            if not self.fixed and not is_complete(version_dir, verify_hashes=True):
                self._unverified[version] = stamp  # still being written (sizes matched, contents not yet)
                return
            servable = Servable(version_dir, **self.servable_options)
        except Exception as error:  # any failure leaves the served version in place
            self.failed[version] = f"{type(error).__name__}: {error}"
            logger.error("Could not load version %s from %s: %s", version, version_dir, error)
            self._count("failed")
            return
        finally:
            self.loading = None
        previous, self.current = self.current, servable
        _freeze_long_lived_objects()
        self._count("loaded")
        if self.on_load is not None:
            self.on_load(servable)
        timings = "; ".join(
            f"{name} " + ", ".join(f"{size}: {ms:.3g}" for size, ms in per_size.items()) for name, per_size in servable.ms_per_image.items()
        )
        logger.info(
            "Serving '%s' version %s from %s with the %s runtime in batches of up to %d (ms per image by batch size: %s; %.1f s to load and warm up)",
            self.model_name, version, version_dir, servable.runtime_name, servable.batch_size, timings, time.perf_counter() - started,
        )  # fmt: skip
        if previous is not None:
            self._loop.call_soon_threadsafe(previous.close)  # finishes what it admitted, then stops

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.model_loads[outcome] += 1


def _freeze_long_lived_objects() -> None:
    """Move everything alive now (modules, the model, the app) out of the cyclic collector's reach.

    Otherwise each full collection walks those start-up objects while requests wait: it was the
    serving tail (p99 38 ms against 15 ms after freezing, demo model at 16 connections; see
    benchmarks/RESULTS.md). Unfreezing first lets a replaced version's cycles be collected.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _stamp(version_dir: pathlib.Path) -> tuple:
    """(path, size, mtime) of every file: changes whenever a copy writes more."""
    stamp = []
    try:
        for path in sorted(version_dir.rglob("*")):
            if path.is_file():
                stat = path.stat()
                stamp.append((str(path), stat.st_size, stat.st_mtime_ns))
    except OSError:
        return ()  # changing under us: compares unequal to any real stamp, so it is checked again
    return tuple(stamp)


def _status(version: int, state: str, code: str = "OK", message: str = "") -> dict:
    return {"version": str(version), "state": state, "status": {"error_code": code, "error_message": message}}



async def servable_and_body(request, name: str, version: str | None) -> tuple:
    """(servable, body bytes) of an inference POST.

    The model is checked before the body is read (a 404 costs no upload), and looked up again
    once it has arrived: from there to the request's place in that servable's batch queue
    nothing awaits, so a version replaced during a slow upload is never the one used (a replaced
    version stops taking new requests at once, and finishes those it admitted).
    """
    manager = request.app.state.manager
    manager.lookup(name, version)
    body = await read_body(request, request.app.state.settings.limits.max_body_bytes)
    return manager.lookup(name, version), body
