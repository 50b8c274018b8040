"""Jobs: the CLI commands the studio runs for a page, one project at a time, each in its own process.

A job is a list of `corolla …` commands (prepare, train, evaluate; or export) run one after the
other as child processes — the very commands the page shows — so the CLI can redo anything the
studio did, and a crash in training never takes the studio down. They start through
`corolla.studio.child`, so none outlives the studio, even one killed with SIGKILL. A job's
record, FOLDER/studio_NAME.json, and its log, FOLDER/studio_NAME.log, live next to what it
makes (for a run: the run folder).

States: queued → running → finished | failed (with the log's last lines) | stopped | interrupted
(the studio stopped while it ran: a training run then resumes from its last checkpoint).
One worker per project, so two trainings in a project queue; they never interleave.

Example:
    jobs = JobRunner()
    job = jobs.submit(project, run_dir, "train", [["train", "data", "--out", str(run_dir)]])
    job.read()["state"]   # "queued", "running", …
"""

from __future__ import annotations

import json
import os
import pathlib
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time

from corolla.data.storage import write_text

ACTIVE = ("queued", "running")
LOG_TAIL = 20
RECOVER_WAIT_SECONDS = 120  # at start-up, how long a job's leftover process may take to end


def command_line(arguments: list[str]) -> str:
    """What a user types for these arguments."""
    return shlex.join(["corolla", *arguments])


class Job:
    def __init__(self, folder: pathlib.Path, name: str):
        self.folder, self.name = pathlib.Path(folder), name
        self.record = self.folder / f"studio_{name}.json"
        self.log = self.folder / f"studio_{name}.log"

    def read(self) -> dict:
        try:
            return json.loads(self.record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def update(self, **fields) -> dict:
        state = {**self.read(), **fields}
        write_text(self.record, json.dumps(state, indent=2) + "\n")
        return state

    def log_tail(self, lines: int = LOG_TAIL) -> list[str]:
        try:
            with open(self.log, "rb") as file:
                file.seek(max(0, os.path.getsize(self.log) - 16384))
                text = file.read().decode("utf-8", "replace")
        except OSError:
            return []
        return [line for line in text.replace("\r", "\n").splitlines() if line.strip()][-lines:]


class JobRunner:
    """A worker thread per project; `stop` ends a job's process group (the command and its children)."""

    def __init__(self):
        self._queues: dict[str, queue.Queue] = {}
        self._processes: dict[pathlib.Path, subprocess.Popen] = {}
        self._stopped: set[pathlib.Path] = set()
        self._closing = False  # set by shutdown: what it stops is "interrupted", not "stopped"
        self._lock = threading.Lock()

    def submit(self, project, folder: pathlib.Path, name: str, steps: list[list[str]]) -> Job:
        job = Job(folder, name)
        if job.read().get("state") in ACTIVE:
            from corolla.studio.security import Refused

            raise Refused(f"{folder.name} already has a {name} job {job.read()['state']}; stop it first.", status=409)
        folder.mkdir(parents=True, exist_ok=True)
        job.update(state="queued", steps=steps, commands=[command_line(step) for step in steps], step=0, queued=time.time(), error=None, pid=None)
        job.log.write_text("", encoding="utf-8")
        with self._lock:
            self._stopped.discard(job.record)
            if project.name not in self._queues:
                self._queues[project.name] = queue.Queue()
                threading.Thread(target=self._work, args=(self._queues[project.name],), daemon=True, name=f"studio-{project.name}").start()
        self._queues[project.name].put(job)
        return job

    def stop(self, job: Job) -> dict:
        with self._lock:
            self._stopped.add(job.record)
            process = self._processes.get(job.record)
        if process is not None:
            _terminate(process)
        elif job.read().get("state") == "queued":
            job.update(state="stopped", ended=time.time())
        return job.read()

    def shutdown(self) -> None:
        """Studio exit: running jobs become 'interrupted' (resumable), their processes ended."""
        with self._lock:
            self._closing = True
            processes = list(self._processes.items())
            self._stopped.update(record for record, _ in processes)
        for record, process in processes:
            _terminate(process)
            Job(record.parent, record.stem.removeprefix("studio_")).update(state="interrupted", ended=time.time())

    def _work(self, jobs: queue.Queue) -> None:
        while True:
            job = jobs.get()
            if job.read().get("state") != "queued":  # stopped while waiting
                continue
            try:
                self._run(job)
            except Exception as error:  # the worker must outlive a job it could not even start
                job.update(state="failed", ended=time.time(), error=f"The studio could not run this job: {type(error).__name__}: {error}")

    def _run(self, job: Job) -> None:
        steps = job.read()["steps"]
        job.update(state="running", started=time.time())
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "COLUMNS": "120"}
        for index, step in enumerate(steps):
            with self._lock:  # a stop that came before this step (or between two) ends the job here
                if job.record in self._stopped or self._closing:
                    process = None
                else:
                    with open(job.log, "ab") as log:
                        log.write(f"$ {command_line(step)}\n".encode())
                        log.flush()
                        # corolla.studio.child is `corolla ARGS` that ends when the studio does (stdin: a pipe held open here).
                        process = subprocess.Popen(
                            [sys.executable, "-m", "corolla.studio.child", *step], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.PIPE,
                            env=environment, start_new_session=True,
                        )
                    self._processes[job.record] = process
            if process is None:
                job.update(state="interrupted" if self._closing else "stopped", ended=time.time())
                return
            job.update(step=index, pid=process.pid)
            code = process.wait()
            process.stdin.close()
            with self._lock:
                self._processes.pop(job.record, None)
                stopped, closing = job.record in self._stopped, self._closing
            if stopped:
                job.update(state="interrupted" if closing else "stopped", ended=time.time(), returncode=code)
                return
            if code != 0:
                tail = job.log_tail()
                errors = [line for line in tail if line.startswith("Error:")]
                reason = errors[-1] if errors else (tail[-1] if tail else f"exit status {code}")
                job.update(state="failed", ended=time.time(), returncode=code, error=f"`{command_line(step)}` failed: {reason}")
                return
        job.update(state="finished", ended=time.time(), returncode=0)


def recover(job: Job, *, wait: float = RECOVER_WAIT_SECONDS) -> threading.Thread | None:
    """At studio start: a job recorded as queued/running whose process is gone was interrupted.

    A process still there is most often one its killed studio left ending (it gets SIGTERM when
    its studio goes, see corolla.studio.child, and may take a few seconds to write its last
    lines): a thread then marks the job once the process is gone, and returns; after `wait`
    seconds it leaves the record alone (another studio on the same folder may own the job).
    """
    state = job.read()
    if state.get("state") not in ACTIVE:
        return None
    if not _alive(state.get("pid")):
        job.update(state="interrupted", ended=time.time())
        return None

    def watch():
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            time.sleep(0.2)
            if not _alive(state.get("pid")):
                if job.read().get("pid") == state.get("pid") and job.read().get("state") in ACTIVE:
                    job.update(state="interrupted", ended=time.time())
                return

    thread = threading.Thread(target=watch, daemon=True, name=f"recover-{job.record}")
    thread.start()
    return thread


def _alive(pid: int | None) -> bool:
    """Whether process `pid` runs (a zombie, dead but not yet reaped by its new parent, does not)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:  # Linux: "PID (NAME) STATE …"
            return file.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def _terminate(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
