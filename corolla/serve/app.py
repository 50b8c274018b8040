"""`corolla serve`: TF Serving's REST API in front of an exported model (FastAPI + uvicorn).

    GET  /v1/models                  corolla extension: the served model's name and version
    GET  /v1/models/{name}           model status, as TF Serving answers it
    POST /v1/models/{name}:predict   {"instances": [{"image_bytes": {"b64": "…"}, "key": "…"}]}
                                     → {"predictions": [{"probabilities": […], "classes": 3, "labels": "Dress", "key": "…"}]}

Errors are `{"error": "…"}` with a 4xx code for anything the client sent wrong.

Example:
    app = create_app(ExportedModel.load("runs/fm/export"), model_name="fm")
"""

from __future__ import annotations

import base64
import binascii
import json
import re

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from corolla.data.images import DEFAULT_MAX_PIXELS, InvalidImage, inspect_image
from corolla.errors import CorollaError
from corolla.serve.runtime import ExportedModel

MAX_BODY_BYTES = 10 * 2**20
MAX_INSTANCES = 256


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def create_app(
    model: ExportedModel,
    *,
    model_name: str,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_instances: int = MAX_INSTANCES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> FastAPI:
    app = FastAPI(title="corolla", description=f"Serving model '{model_name}' (TF Serving REST API).")

    @app.exception_handler(ApiError)
    async def api_error(request, error: ApiError):
        return JSONResponse({"error": error.message}, status_code=error.status)

    @app.exception_handler(HTTPException)
    async def http_error(request, error: HTTPException):
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, error: RequestValidationError):
        return JSONResponse({"error": str(error.errors())}, status_code=400)

    def check_name(name: str) -> None:
        if name != model_name:
            raise ApiError(404, f"Servable not found for request: Latest({name}). This server serves '{model_name}'.")

    def status() -> dict:
        return {"model_version_status": [{"version": str(model.version), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}

    @app.get("/v1/models")
    def list_models():
        return {"models": [{"name": model_name, "version": str(model.version), "labels": model.labels}]}

    @app.get("/v1/models/{name}")
    def model_status(name: str):
        check_name(name)
        return status()

    @app.post("/v1/models/{name}:predict")
    async def predict(name: str, request: Request):
        check_name(name)
        body = await _read_body(request, max_body_bytes)
        images, keys = _parse_instances(body, max_instances=max_instances, max_pixels=max_pixels)
        try:
            outputs = await run_in_threadpool(model.predict, images, keys)
        except ValueError as error:
            raise ApiError(400, str(error)) from None
        return {"predictions": _rows(outputs)}

    return app


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"Request body of {int(declared):,} bytes exceeds the limit of {limit:,} bytes.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"Request body exceeds the limit of {limit:,} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_instances(body: bytes, *, max_instances: int, max_pixels: int) -> tuple[list[bytes], list[str]]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "Request body is not valid JSON.") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("instances"), list):
        raise ApiError(400, 'Expected a JSON object with an "instances" list: {"instances": [{"image_bytes": {"b64": "…"}}]}')
    instances = payload["instances"]
    if not instances:
        raise ApiError(400, '"instances" is empty.')
    if len(instances) > max_instances:
        raise ApiError(413, f"{len(instances)} instances exceed the limit of {max_instances} per request.")
    images, keys = [], []
    for index, instance in enumerate(instances):
        if not isinstance(instance, dict) or "image_bytes" not in instance:
            raise ApiError(400, f'instances[{index}]: expected an object with "image_bytes": {{"b64": "…"}}.')
        encoded = instance["image_bytes"]
        encoded = encoded.get("b64") if isinstance(encoded, dict) else None
        if not isinstance(encoded, str):
            raise ApiError(400, f'instances[{index}].image_bytes: expected {{"b64": "<base64 string>"}}.')
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(400, f"instances[{index}].image_bytes: not valid base64.") from None
        try:
            inspect_image(data, max_pixels=max_pixels)
        except InvalidImage as error:
            raise ApiError(400, f"instances[{index}].image_bytes: {error}.") from None
        key = instance.get("key", "")
        if not isinstance(key, str):
            raise ApiError(400, f"instances[{index}].key: expected a string.")
        images.append(data)
        keys.append(key)
    return images, keys


def _rows(outputs: dict) -> list[dict]:
    rows = []
    for i in range(len(outputs["classes"])):
        rows.append(
            {
                "probabilities": [float(p) for p in outputs["probabilities"][i]],
                "classes": int(outputs["classes"][i]),
                "labels": outputs["labels"][i].decode("utf-8"),
                "key": outputs["key"][i].decode("utf-8"),
            }
        )
    return rows


def serve(path, *, host: str = "127.0.0.1", port: int = 8501, model_name: str | None = None, log_level: str = "info") -> None:
    """Serve the newest version under `path` (an export folder or a run folder) until interrupted."""
    import uvicorn

    from corolla.serve.runtime import find_version

    version_dir = find_version(path)
    model_name = model_name or _default_name(version_dir)
    if not re.fullmatch(r"[A-Za-z0-9._-]+", model_name):
        raise CorollaError(f"Model names may use only letters, digits, '.', '_' and '-'. Received: model_name={model_name!r}")
    model = ExportedModel(version_dir)
    print(f"Serving '{model_name}' version {model.version} from {version_dir} at http://{host}:{port}/v1/models/{model_name}")
    uvicorn.run(create_app(model, model_name=model_name), host=host, port=port, log_level=log_level)


def _default_name(version_dir) -> str:
    """The run folder's name: RUN_DIR/export/<n> → RUN_DIR's name."""
    export_base = version_dir.parent
    run_dir = export_base.parent if export_base.name == "export" else export_base
    return run_dir.resolve().name
