"""The studio's run routes: train (live progress as Server-Sent Events), review, try it, ship it.

A run is an ordinary `corolla train` folder under PROJECT/runs/; the studio adds only its job
record. Progress comes from RUN/progress.jsonl (written by the trainer), one SSE event per line
with that line's id, so a page that reconnects with Last-Event-ID continues where it was.

Example:
    add_run_routes(app)   # app from corolla.studio.app.create_app
"""

from __future__ import annotations

import asyncio
import csv
import json
import pathlib
import subprocess
import sys
import threading
from typing import Optional

from fastapi import File, FastAPI, Request, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from corolla.studio import projects as project_store
from corolla.studio.jobs import ACTIVE, Job, command_line, recover
from corolla.studio.security import Refused

FEW_PER_CLASS = 200  # below this many pictures per class, a pretrained backbone is the better start
PRETRAINED_CHOICE = "efficientnet_lite0"
SCRATCH_CHOICE = "convnet"
EVENT_POLL_SECONDS = 0.25


class TrainRequest(BaseModel):
    model: str = Field("auto", description="A model from the registry (GET /api/projects/{name}/models), or auto.")
    epochs: int = Field(10, ge=1, le=1000)
    batch_size: Optional[int] = Field(None, ge=1, le=4096)
    learning_rate: Optional[float] = Field(None, gt=0, le=10)
    image_size: int = Field(96, ge=16, le=512, description="Side the pictures are stored at by prepare.")
    augment: Optional[str] = Field(None, description="none, light or standard.")
    fine_tune: bool = False


class OverrideRequest(BaseModel):
    key: str
    label: Optional[str] = Field(None, description="The class to relabel to; null excludes the picture.")


class ServeRequest(BaseModel):
    run: str
    port: int = Field(8501, ge=1024, le=65535)


def add_run_routes(app: FastAPI) -> None:
    workdir = app.state.workdir
    app.state.servers, app.state.predictors = {}, {}
    app.state.predictor_lock = threading.Lock()

    def run_folder(project, run: str) -> pathlib.Path:
        folder = project.runs_dir / run
        if not project_store.NAME_PATTERN.match(run) or not folder.is_dir():
            raise Refused(f"There is no run {run!r} in project {project.name}. Runs: {', '.join(f.name for f in project.runs()) or 'none yet'}.", status=404)
        return folder

    @app.get("/api/projects/{name}/models")
    def models(name: str):
        from corolla.models import list_models

        project = project_store.open_project(workdir, name)
        counts = [count for count in _class_counts(project).values()]
        few = min(counts, default=0) < FEW_PER_CLASS
        choice = PRETRAINED_CHOICE if few else SCRATCH_CHOICE
        why = (f"{min(counts, default=0)} pictures in the smallest class: a backbone pretrained on ImageNet learns from few pictures"
               if few else "enough pictures per class to train a small network from scratch, quickly")
        return {
            "recommended": choice, "why": why,
            "models": [{"name": spec.name, "pretrained": spec.pretrained, "input_size": spec.input_size, "description": spec.description} for spec in list_models("images")],
        }

    @app.post("/api/projects/{name}/runs", status_code=202)
    def start_run(name: str, body: TrainRequest):
        project = project_store.open_project(workdir, name)
        project.write_prepare_inputs()
        run_dir = project.next_run_dir()
        train = ["train", str(project.data_dir), "--out", str(run_dir), "--model", body.model, "--epochs", str(body.epochs)]
        for flag, value in (("--batch-size", body.batch_size), ("--learning-rate", body.learning_rate), ("--augment", body.augment)):
            if value is not None:
                train += [flag, str(value)]
        if body.fine_tune:
            train.append("--fine-tune")
        steps = [project.prepare_arguments(image_size=body.image_size), train, ["evaluate", str(run_dir)]]
        job = app.state.jobs.submit(project, run_dir, "train", steps)
        return {"run": run_dir.name, "job": job.read(), "command": "\n".join(job.read()["commands"])}

    @app.get("/api/projects/{name}/runs")
    def runs(name: str):
        project = project_store.open_project(workdir, name)
        return {"runs": [run_summary(folder) for folder in project.runs()]}

    @app.get("/api/projects/{name}/runs/{run}")
    def run_view(name: str, run: str):
        folder = run_folder(project_store.open_project(workdir, name), run)
        history = folder / "history.json"
        return {**run_summary(folder), "history": json.loads(history.read_text(encoding="utf-8")) if history.is_file() else {}, "log": Job(folder, "train").log_tail()}

    @app.get("/api/projects/{name}/runs/{run}/events")
    async def events(name: str, run: str, request: Request):
        """Server-Sent Events: `progress` (id = the line's id in progress.jsonl) and `state` (the job's state)."""
        folder = run_folder(project_store.open_project(workdir, name), run)
        header = request.headers.get("last-event-id") or request.query_params.get("last_event_id") or "-1"
        after = int(header) if header.lstrip("-").isdigit() else -1
        return StreamingResponse(_event_stream(folder, after, request), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @app.post("/api/projects/{name}/runs/{run}/stop")
    def stop(name: str, run: str):
        job = Job(run_folder(project_store.open_project(workdir, name), run), "train")
        return {"job": app.state.jobs.stop(job)}

    @app.post("/api/projects/{name}/runs/{run}/resume", status_code=202)
    def resume(name: str, run: str):
        project = project_store.open_project(workdir, name)
        folder = run_folder(project, run)
        if not (folder / "checkpoints" / "last.keras").is_file():
            raise Refused(f"Run {run} has no checkpoint to resume from (it stopped before its first epoch ended); start a new run instead.", status=409)
        job = app.state.jobs.submit(project, folder, "train", [["train", "--out", str(folder), "--resume"], ["evaluate", str(folder)]])
        return {"job": job.read(), "command": "\n".join(job.read()["commands"])}

    @app.get("/api/projects/{name}/runs/{run}/report")
    def report(name: str, run: str):
        """metrics.json and every evaluated picture (predictions.csv, worst first) of the run's last evaluate."""
        folder = run_folder(project_store.open_project(workdir, name), run)
        metrics_file, predictions_file = folder / "report" / "metrics.json", folder / "report" / "predictions.csv"
        if not metrics_file.is_file():
            raise Refused(f"Run {run} has no report yet: it is written when training ends (or run `corolla evaluate {folder}`).", status=404)
        rows = []
        if predictions_file.is_file():
            with open(predictions_file, newline="", encoding="utf-8") as file:
                rows = [{**row, "confidence": float(row["confidence"]), "loss": float(row["loss"])} for row in csv.DictReader(file)]
        metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
        # The confusion matrix's row/column order (a JSON object's keys are no order a page can trust: "10" sorts before "9").
        classes = _run_classes(folder) or list(metrics.get("per_class", {}))
        return {"metrics": metrics, "classes": classes, "predictions": rows, "command": f"corolla evaluate {folder}"}

    @app.post("/api/projects/{name}/overrides")
    def override(name: str, body: OverrideRequest):
        project = project_store.open_project(workdir, name)
        if body.key not in {path for path, _ in project.items()}:
            raise Refused(f"{body.key!r} is not a picture of project {name}.", status=404)
        project.set_override(body.key, body.label)
        project.write_prepare_inputs()
        return {"overrides": len(project.state["overrides"]), "command": f"applied by: {command_line(project.prepare_arguments())}"}

    @app.post("/api/projects/{name}/overrides/undo")
    def undo(name: str):
        project = project_store.open_project(workdir, name)
        undone = project.undo_override()
        project.write_prepare_inputs()
        return {"undone": undone, "overrides": len(project.state["overrides"])}

    @app.post("/api/projects/{name}/runs/{run}/predict")
    async def try_it(name: str, run: str, file: UploadFile = File(...)):
        from corolla.studio.app import MAX_UPLOAD_BYTES, upload_problem

        folder = run_folder(project_store.open_project(workdir, name), run)
        data = await file.read(MAX_UPLOAD_BYTES + 1)
        reason = upload_problem(data)
        if reason:
            raise Refused(f"Cannot read this picture: {reason}.")
        predict, labels = await asyncio.to_thread(_predictor, app, folder)
        probabilities = await asyncio.to_thread(predict, [data])
        row = probabilities[0]
        order = sorted(range(len(labels)), key=lambda index: -row[index])[:5]
        return {"top": [{"label": labels[i], "probability": float(row[i])} for i in order], "command": f"corolla predict PICTURE --model {folder}"}

    @app.post("/api/projects/{name}/runs/{run}/export", status_code=202)
    def export(name: str, run: str):
        project = project_store.open_project(workdir, name)
        folder = run_folder(project, run)
        job = app.state.jobs.submit(project, folder, "export", [["export", str(folder)]])
        return {"job": job.read(), "command": job.read()["commands"][0]}

    @app.get("/api/projects/{name}/runs/{run}/export")
    def export_view(name: str, run: str):
        from corolla.export.card import export_summary

        folder = run_folder(project_store.open_project(workdir, name), run)
        job = Job(folder, "export")
        versions = sorted((int(v.name) for v in (folder / "export").iterdir() if v.name.isdigit() and (v / "model_card.json").is_file()), reverse=True) if (folder / "export").is_dir() else []
        summary = export_summary(folder / "export" / str(versions[0])) if versions else None
        return {"job": {**job.read(), "log": job.log_tail()}, "version": versions[0] if versions else None, "parity": summary}

    @app.post("/api/projects/{name}/serve", status_code=202)
    def serve(name: str, body: ServeRequest):
        project = project_store.open_project(workdir, name)
        folder = run_folder(project, body.run)
        _stop_server(app, name)
        arguments = ["serve", str(folder / "export"), "--port", str(body.port)]
        log = open(folder / "studio_serve.log", "wb")
        process = subprocess.Popen([sys.executable, "-m", "corolla.cli", *arguments], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        app.state.servers[name] = (process, body.port, folder)
        return {**_server_view(app, name), "command": command_line(arguments)}

    @app.get("/api/projects/{name}/serve")
    def serve_view(name: str):
        return _server_view(app, name)

    @app.delete("/api/projects/{name}/serve")
    def serve_stop(name: str):
        _stop_server(app, name)
        return _server_view(app, name)


def recover_jobs(workdir) -> None:
    """At start-up: jobs a stopped studio left "running" become "interrupted" (a run can then be resumed)."""
    for project in project_store.list_projects(workdir):
        for folder in [project.folder, *project.runs()]:
            for name in ("prepare", "train", "export"):
                recover(Job(folder, name))


def stop_servers(app) -> None:
    for project in list(app.state.servers):
        _stop_server(app, project)


def run_summary(folder: pathlib.Path) -> dict:
    """State, settings, metrics and time of one run folder (a CLI run has no job record: its files tell)."""
    import yaml

    job = Job(folder, "train").read()
    config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8")) if (folder / "config.yaml").is_file() else {}
    metrics_file = folder / "report" / "metrics.json"
    metrics = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.is_file() else None
    state = job.get("state") or ("finished" if (folder / "checkpoints" / "best.keras").is_file() else "unknown")
    history = folder / "history.json"
    seconds = sum(value or 0 for value in json.loads(history.read_text(encoding="utf-8")).get("epoch_seconds", [])) if history.is_file() else None
    return {
        "run": folder.name, "folder": str(folder), "state": state, "error": job.get("error"), "commands": job.get("commands", []),
        "settings": {key: config.get(key) for key in SETTINGS} if config else _requested(job.get("steps", [])),
        "accuracy": metrics["accuracy"] if metrics else None,
        "macro_f1": metrics["macro_avg"]["f1"] if metrics else None,
        "f1": {name: row.get("f1") for name, row in metrics.get("per_class", {}).items()} if metrics else {},
        "train_seconds": seconds,
        "log": Job(folder, "train").log_tail() if state in ("failed", "interrupted") else [],
    }


async def _event_stream(folder: pathlib.Path, after: int, request: Request):
    """Tail progress.jsonl from the line after id `after`; a `state` event whenever the job's state changes."""
    progress, job, offset, last_state = folder / "progress.jsonl", Job(folder, "train"), 0, None
    yield "retry: 1000\n\n"
    while not await request.is_disconnected():
        state = job.read().get("state")  # before the progress: every line written before the job ended is sent before it ends
        if progress.is_file():
            with open(progress, "rb") as file:
                file.seek(offset)
                chunk = file.read()
            complete = chunk[: chunk.rfind(b"\n") + 1]
            offset += len(complete)
            for line in complete.decode("utf-8").splitlines():
                event = json.loads(line)
                if event.get("id", -1) > after:
                    yield f"id: {event['id']}\nevent: progress\ndata: {json.dumps(event)}\n\n"
        if state != last_state:
            last_state = state
            yield f"event: state\ndata: {json.dumps({'state': state, 'error': job.read().get('error'), 'log': job.log_tail() if state == 'failed' else []})}\n\n"
        if state not in ACTIVE and state is not None:
            return
        await asyncio.sleep(EVENT_POLL_SECONDS)


def _predictor(app, folder: pathlib.Path):
    """(predict(list of encoded pictures) → probabilities, labels) for the run, loaded once per checkpoint."""
    from corolla.predict import local_predictor

    checkpoint = folder / "checkpoints" / "best.keras"
    if not checkpoint.is_file():
        raise Refused(f"Run {folder.name} has no trained model yet.", status=409)
    stamp = checkpoint.stat().st_mtime_ns
    with app.state.predictor_lock:
        cached = app.state.predictors.get(folder)
        if cached is None or cached[0] != stamp:
            predict, labels, _, _ = local_predictor(folder, None)
            app.state.predictors[folder] = cached = (stamp, predict, labels)
    return cached[1], cached[2]


SETTINGS = ("model", "epochs", "batch_size", "learning_rate", "image_size", "augment", "fine_tune")


def _requested(steps: list[list[str]]) -> dict:
    """A queued run's settings (no config.yaml yet), from the prepare and train commands of its job."""
    flags = {}
    for step in steps:
        for index, argument in enumerate(step):
            if argument.startswith("--") and index + 1 < len(step) and not step[index + 1].startswith("--"):
                flags[argument[2:].replace("-", "_")] = step[index + 1]
    numbers = {"epochs": int, "batch_size": int, "image_size": int, "learning_rate": float}
    settings = {key: numbers.get(key, str)(flags[key]) if key in flags else None for key in SETTINGS}
    settings["fine_tune"] = any("--fine-tune" in step for step in steps)
    return settings


def _run_classes(folder: pathlib.Path) -> list[str]:
    import yaml

    config = folder / "config.yaml"
    return list(yaml.safe_load(config.read_text(encoding="utf-8")).get("classes") or []) if config.is_file() else []


def _class_counts(project) -> dict[str, int]:
    counts = {name: 0 for name in project.classes()}
    overrides = project.state["overrides"]
    for path, label in project.items():
        label = overrides.get(path, label)
        if label in counts:
            counts[label] += 1
    return counts


def _server_view(app, name: str) -> dict:
    entry = app.state.servers.get(name)
    if entry is None:
        return {"running": False}
    process, port, folder = entry
    running = process.poll() is None
    url = f"http://127.0.0.1:{port}"
    model = folder.name
    return {
        "running": running, "url": url, "run": folder.name, "returncode": process.returncode,
        "curl": f"curl -s {url}/v1/models/{model}:predict -d '{{\"instances\": [{{\"image_bytes\": {{\"b64\": \"'$(base64 -w0 picture.jpg)'\"}}}}]}}'",
        "python": (f"import base64, httpx\nbody = {{'instances': [{{'image_bytes': {{'b64': base64.b64encode(open('picture.jpg', 'rb').read()).decode()}}}}]}}\n"
                   f"print(httpx.post('{url}/v1/models/{model}:predict', json=body).json())"),
    }


def _stop_server(app, name: str) -> None:
    entry = app.state.servers.pop(name, None)
    if entry is not None and entry[0].poll() is None:
        entry[0].terminate()
        try:
            entry[0].wait(timeout=15)
        except subprocess.TimeoutExpired:
            entry[0].kill()
