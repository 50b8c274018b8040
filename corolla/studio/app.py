"""The studio's web app: the page, projects, classes, pictures (runs and shipping: `corolla.studio.runs`).

Every answer that acts also carries `command`: the CLI line that does the same thing.

Example:
    app = create_app("studio-work", root="~/Pictures")
    uvicorn.run(app, host="127.0.0.1", port=8600)
"""

from __future__ import annotations

import contextlib
import html
import io
import pathlib
import secrets

from fastapi import FastAPI, File, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel

from corolla.errors import CorollaError
from corolla.studio import projects as project_store
from corolla.studio.jobs import JobRunner, command_line
from corolla.studio.security import SESSION_COOKIE, TOKEN_COOKIE, Guard, Refused, Sessions, allowed_hosts_for, confine

STATIC = pathlib.Path(__file__).parent / "static"
MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # one picture
MAX_UPLOAD_FILES = 500  # one request
MAX_UPLOAD_PIXELS = 40_000_000  # checked from the header, before decoding
THUMBNAIL = 160
SAMPLES_PER_CLASS = 8


class Name(BaseModel):
    name: str


class FolderChoice(BaseModel):
    path: str


def create_app(workdir, *, root=None, host: str = "127.0.0.1", port: int = 8600, token: str | None = None) -> FastAPI:
    workdir = pathlib.Path(workdir).expanduser().resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    root = pathlib.Path(root).expanduser().resolve() if root else None
    @contextlib.asynccontextmanager
    async def lifespan(app):
        from corolla.studio.runs import recover_jobs, stop_servers

        recover_jobs(workdir)
        yield
        app.state.jobs.shutdown()
        stop_servers(app)

    app = FastAPI(lifespan=lifespan, title="corolla studio", version="1", description="The studio's own API: projects, pictures, runs, review, try and ship.")
    app.state.workdir, app.state.root, app.state.jobs, app.state.sessions = workdir, root, JobRunner(), Sessions()
    app.add_middleware(Guard, allowed_hosts=allowed_hosts_for(host, port), sessions=app.state.sessions, token=token)

    @app.exception_handler(CorollaError)
    async def refused(request, error: CorollaError):
        return JSONResponse({"error": str(error)}, status_code=getattr(error, "status", 400))

    @app.middleware("http")
    async def no_sniffing(request, call_next):
        response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page(request: Request):
        session = request.cookies.get(SESSION_COOKIE) or Sessions.new_session()
        text = (STATIC / "index.html").read_text(encoding="utf-8").replace("{{csrf}}", html.escape(app.state.sessions.csrf_token(session)))
        response = HTMLResponse(text, headers={"Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: mediastream:; frame-ancestors 'none'"})
        response.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="strict")
        if token and secrets.compare_digest(request.query_params.get("token", ""), token):
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str):
        types = {".js": "text/javascript", ".css": "text/css"}
        path = STATIC / name
        if pathlib.Path(name).name != name or path.suffix not in types or not path.is_file():
            return JSONResponse({"error": f"No static file {name!r}."}, status_code=404)
        return Response(path.read_bytes(), media_type=types[path.suffix])

    @app.get("/api/projects")
    def projects():
        return {"workdir": str(workdir), "root": str(root) if root else None, "projects": [{"name": p.name, "classes": len(p.classes()), "runs": len(p.runs())} for p in project_store.list_projects(workdir)]}

    @app.post("/api/projects", status_code=201)
    def create_project(body: Name):
        project = project_store.Project.create(workdir, body.name)
        return {"name": project.name, "folder": str(project.folder)}

    @app.get("/api/projects/{name}")
    def project_view(name: str):
        return describe(project_store.open_project(workdir, name))

    @app.post("/api/projects/{name}/classes", status_code=201)
    def add_class(name: str, body: Name):
        project = project_store.open_project(workdir, name)
        added = project.add_class(body.name)
        project.write_prepare_inputs()  # items.csv/overrides.csv follow every class change: the CLI line shown stays true
        return {"class": added, "command": f"mkdir -p {project.pictures / added}"}

    @app.patch("/api/projects/{name}/classes/{class_name}")
    def rename_class(name: str, class_name: str, body: Name):
        project = project_store.open_project(workdir, name)
        renamed = project.rename_class(class_name, body.name)
        project.write_prepare_inputs()
        return {"class": renamed, "command": "recorded in project.json; applied by the next prepare"}

    @app.delete("/api/projects/{name}/classes/{class_name}")
    def remove_class(name: str, class_name: str):
        project = project_store.open_project(workdir, name)
        project.remove_class(class_name)
        project.write_prepare_inputs()
        return {"removed": class_name, "note": "No file was deleted: add a class of that name again to bring it back."}

    @app.post("/api/projects/{name}/classes/{class_name}/pictures")
    async def upload(name: str, class_name: str, files: list[UploadFile] = File(...)):
        project = project_store.open_project(workdir, name)
        if len(files) > MAX_UPLOAD_FILES:
            raise Refused(f"At most {MAX_UPLOAD_FILES} files per upload; send them in parts. Received: {len(files)} files.", status=413)
        added, refused = [], []
        for upload in files:
            data = await upload.read(MAX_UPLOAD_BYTES + 1)
            reason = upload_problem(data)
            if reason:
                refused.append({"file": upload.filename, "reason": reason})
            else:
                added.append(str(project.save_upload(class_name, upload.filename or "picture", data)))
        return {"added": added, "refused": refused, "command": f"cp FILES {project.pictures / class_name}/"}

    @app.post("/api/projects/{name}/sources", status_code=201)
    def link_source(name: str, body: FolderChoice):
        project = project_store.open_project(workdir, name)
        folder = confine(app.state.root, body.path)
        project.link_source(folder)
        return {"source": str(folder), "classes": project.classes()}

    @app.get("/api/projects/{name}/thumbnail")
    def thumbnail(name: str, key: str):
        """A picture of the project as a small JPEG (re-encoded, so what is served is always an image)."""
        project = project_store.open_project(workdir, name)
        path = known_picture(project, key)
        from PIL import Image

        try:
            with Image.open(path) as image:
                if image.width * image.height > MAX_UPLOAD_PIXELS:  # a linked folder's decompression bomb: never decoded
                    raise Refused(f"{key!r} is too large to show ({image.width}x{image.height} pixels).", status=422)
                image.draft("RGB", (THUMBNAIL, THUMBNAIL))  # JPEG: decode at a fraction of the size
                image.thumbnail((THUMBNAIL, THUMBNAIL))
                buffer = io.BytesIO()
                image.convert("RGB").save(buffer, "JPEG", quality=85)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:  # a linked file that is no (whole) picture
            raise Refused(f"Cannot show {key!r}: not a readable picture ({error}).", status=422) from None
        return Response(buffer.getvalue(), media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})

    @app.post("/api/projects/{name}/prepare")
    def prepare(name: str):
        project = project_store.open_project(workdir, name)
        project.write_prepare_inputs()
        steps = [project.prepare_arguments()]
        job = app.state.jobs.submit(project, project.folder, "prepare", steps)
        return {"job": job.read(), "command": command_line(steps[0])}

    @app.get("/api/projects/{name}/prepare")
    def prepare_state(name: str):
        from corolla.studio.jobs import Job

        job = Job(project_store.open_project(workdir, name).folder, "prepare")
        return {**job.read(), "log": job.log_tail()}

    from corolla.studio.runs import add_run_routes

    add_run_routes(app)
    return app


def upload_problem(data: bytes) -> str | None:
    """Why these bytes cannot be a training picture, from their content (never the name), or None."""
    from corolla.data.images import InvalidImage, inspect_image

    if len(data) > MAX_UPLOAD_BYTES:
        return f"larger than {MAX_UPLOAD_BYTES // 2**20} MB"
    try:
        inspect_image(data, max_pixels=MAX_UPLOAD_PIXELS)
    except InvalidImage as error:
        return str(error)
    return None


def known_picture(project, key: str) -> pathlib.Path:
    """`key` if it is one of the project's pictures (never any other file on the machine)."""
    paths = {path for path, _ in project.items()}
    if key not in paths:
        raise Refused(f"{key!r} is not a picture of project {project.name}.", status=404)
    return pathlib.Path(key)


def describe(project) -> dict:
    """Classes with counts and samples, and what the last prepare found (skipped files, duplicates, leaks)."""
    import json

    overrides = project.state["overrides"]
    counts = {name: 0 for name in project.classes()}
    samples: dict[str, list[str]] = {name: [] for name in counts}
    for path, label in project.items():
        label = overrides.get(path, label)  # "" = excluded
        if label in counts:
            counts[label] += 1
            if len(samples[label]) < SAMPLES_PER_CLASS:
                samples[label].append(path)
    manifest = {}
    if (project.data_dir / "manifest.json").is_file():
        manifest = json.loads((project.data_dir / "manifest.json").read_text(encoding="utf-8"))
    duplicates = manifest.get("duplicates", [])
    return {
        "name": project.name,
        "classes": [{"name": name, "count": count, "samples": samples[name]} for name, count in counts.items()],
        "pictures": sum(counts.values()),
        "sources": project.state["sources"],
        "overrides": [{"key": key, "label": label or None} for key, label in overrides.items()],
        "can_undo": bool(project.state["undo"]),
        "prepared": bool(manifest),
        "skipped": manifest.get("skipped", []),
        "duplicates": duplicates,
        "leaks": [group for group in duplicates if group.get("across_splits")],
        "splits": manifest.get("splits", {}),
        "command": command_line(project.prepare_arguments()) + f"\ncorolla data inspect {project.data_dir}",
    }


def new_token() -> str:
    return secrets.token_urlsafe(24)
