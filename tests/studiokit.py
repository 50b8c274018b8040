"""A real `corolla studio` process on a free loopback port, and a browser-like client for it.

Shared by tests/test_studio_security.py and tests/test_studio_api.py. The client does what the
page does: GET / sets the session cookie, the page's <meta name="csrf-token"> gives the token,
which every POST/PATCH/DELETE then carries as X-CSRF-Token.

Example:
    with Studio(tmp_path / "work", "--root", tmp_path) as studio:
        client = studio.client()
        client.post("/api/projects", json={"name": "flowers"})
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

import httpx
import numpy as np

from tests.conftest import encode, noisy_colour

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
RED, BLUE = (210, 40, 40), (40, 60, 210)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, *, timeout: float, what: str, every: float = 0.2):
    """predicate()'s first truthy value, polled; fails with `what` (a string or a callable giving one)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what() if callable(what) else what}")
        time.sleep(every)


def pictures(colour, count: int, *, seed: int, size: int = 24) -> list[bytes]:
    """`count` distinct noisy PNGs of one colour."""
    rng = np.random.default_rng(seed)
    return [encode(noisy_colour(rng, colour, size, size)) for _ in range(count)]


class Studio:
    """`corolla studio WORKDIR --port PORT ARGS` in a subprocess (its output in a file, never a pipe that could fill)."""

    def __init__(self, workdir, *args: str, port: int | None = None):
        self.workdir, self.args = pathlib.Path(workdir), [str(arg) for arg in args]
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None
        self._log = tempfile.TemporaryFile("a+")

    def start(self, *, timeout: float = 60) -> "Studio":
        self._log.seek(0)
        self._log.truncate()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "corolla.cli", "studio", str(self.workdir), "--port", str(self.port), *self.args],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"},
        )

        def answers():
            if self.process.poll() is not None:
                raise AssertionError(f"corolla studio exited early ({self.process.returncode}):\n{self.output()}")
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{self.url}/api/projects", timeout=2).status_code < 500  # up (a refusal is an answer too)
            return False

        wait_for(answers, timeout=timeout, what=lambda: f"the studio at {self.url}:\n{self.output()}", every=0.1)
        return self

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read()

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs (a crash, the OOM killer, a closed laptop lid gone wrong)."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def __enter__(self) -> "Studio":
        try:
            return self.start()
        except BaseException:
            self.stop()  # never leave a studio behind that did not come up in time
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
        self._log.close()

    def client(self, **options) -> "StudioClient":
        return StudioClient(self, **options)


class StudioClient(httpx.Client):
    """An httpx client that opened the page: it has a session cookie and sends its CSRF token."""

    def __init__(self, studio: Studio, *, page: str = "/", **options):
        super().__init__(base_url=studio.url, timeout=options.pop("timeout", 60), **options)
        self.studio = studio
        response = self.get(page)
        assert response.status_code == 200, response.text
        self.csrf = CSRF_META.search(response.text).group(1)
        self.headers["X-CSRF-Token"] = self.csrf

    def __enter__(self) -> "StudioClient":  # already open: __init__ fetched the page
        return self

    # --- what the tests do often ----------------------------------------------------------------
    def ok(self, method: str, url: str, status: int | None = None, **options) -> dict:
        response = self.request(method, url, **options)
        expected = status or (200 if method in ("GET", "PATCH", "DELETE") else None)
        if expected is not None:
            assert response.status_code == expected, f"{method} {url}: {response.status_code} {response.text}"
        else:
            assert 200 <= response.status_code < 300, f"{method} {url}: {response.status_code} {response.text}"
        return response.json()

    def project(self, name: str, classes: dict[str, list[bytes]] | None = None) -> dict:
        """Create project `name` with these classes and uploads; returns GET /api/projects/NAME."""
        self.ok("POST", "/api/projects", 201, json={"name": name})
        for class_name, datas in (classes or {}).items():
            self.ok("POST", f"/api/projects/{name}/classes", 201, json={"name": class_name})
            if datas:
                self.upload(name, class_name, datas)
        return self.ok("GET", f"/api/projects/{name}")

    def upload(self, project: str, class_name: str, datas: list[bytes], names: list[str] | None = None) -> httpx.Response:
        names = names or [f"{index}.png" for index in range(len(datas))]
        files = [("files", (filename, data, "image/png")) for filename, data in zip(names, datas)]
        return self.post(f"/api/projects/{project}/classes/{class_name}/pictures", files=files)

    def counts(self, project: str) -> dict[str, int]:
        return {row["name"]: row["count"] for row in self.ok("GET", f"/api/projects/{project}")["classes"]}

    def run(self, project: str, run: str) -> dict:
        return self.ok("GET", f"/api/projects/{project}/runs/{run}")

    def wait_state(self, project: str, run: str, states, *, timeout: float = 240) -> dict:
        states = {states} if isinstance(states, str) else set(states)
        last = {}

        def reached():
            last.update(self.run(project, run))
            return last if last["state"] in states else None

        return wait_for(reached, timeout=timeout, what=lambda: f"run {project}/{run} to be {states}; it is {last.get('state')}: {last.get('error')} {last.get('log')}")


def job_record(run_dir: pathlib.Path, name: str = "train") -> dict:
    try:
        return json.loads((run_dir / f"studio_{name}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def progress_events(run_dir: pathlib.Path) -> list[dict]:
    """RUN/progress.jsonl's whole lines."""
    path = run_dir / "progress.jsonl"
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines()]


def sse_events(response: httpx.Response):
    """The events of a text/event-stream response, each {"id", "event", "data"} (data parsed as JSON)."""
    event: dict = {}
    for line in response.iter_lines():
        if not line:
            if "data" in event:
                event["data"] = json.loads(event["data"])
                yield event
            event = {}
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field in ("id", "event"):
            event[field] = value
        elif field == "data":
            event["data"] = event["data"] + "\n" + value if "data" in event else value


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    with contextlib.suppress(OSError, IndexError):
        with open(f"/proc/{pid}/stat", "rb") as file:
            return file.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    return True
