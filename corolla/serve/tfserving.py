"""TF Serving's REST API (also what Cloud ML Engine and Vertex AI clients send).

    GET  /v1/models/{name}[/versions/{v}]            model status
    GET  /v1/models/{name}[/versions/{v}]/metadata   signature defs
    POST /v1/models/{name}[/versions/{v}]:predict    row {"instances": […]} or columnar {"inputs": …}
    POST /v1/models/{name}[/versions/{v}]:classify   {"examples": [{"image_bytes": {"b64": …}}]}
    GET  /v1/models                                  corolla extension: name, version and labels

Signatures: serving_default (image_bytes + optional key, echoed back), pixels (float32
[size, size, channels] in 0..255 per instance) and pixels_uint8.

Example:
    curl -d '{"instances": [{"image_bytes": {"b64": "'$(base64 -w0 shoe.png)'"}}]}' \\
        http://127.0.0.1:8501/v1/models/fm:predict
"""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter, Request

from corolla.serve import schemas
from corolla.serve.clip_requests import tfserving_clips
from corolla.serve.jsonio import JSONBody, parse_json
from corolla.serve.limits import ApiError, check_model_name, decode_base64, parse_version
from corolla.serve.servable import deadline_after
from corolla.serve.versions import servable_and_body

router = APIRouter(tags=["TF Serving REST API"])
SIGNATURES = ("serving_default", "pixels", "pixels_uint8")


@router.get("/v1/models", responses=schemas.ERRORS)
def list_models(request: Request):
    manager = request.app.state.manager
    servable = manager.get()
    entry = {"name": manager.model_name, "version": str(servable.version), "labels": servable.labels, "kind": servable.kind}
    if servable.kind == "clips":
        entry.update(frames=servable.frames, task=servable.task)
    return {"models": [entry]}


@router.get("/v1/models/{name}", responses=schemas.ERRORS)
@router.get("/v1/models/{name}/versions/{version}", responses=schemas.ERRORS)
def model_status(request: Request, name: str, version: str | None = None):
    check_model_name(name)
    manager = request.app.state.manager
    if name != manager.model_name:
        raise ApiError(404, f"Could not find any versions of model {name}. This server serves '{manager.model_name}'.")
    rows = manager.status()
    if version is not None:
        rows = [row for row in rows if row["version"] == str(parse_version(version))]
        if not rows:
            raise ApiError(404, f"Could not find version {version} of model {name}. Versions: {', '.join(r['version'] for r in manager.status()) or 'none yet'}.")
    return {"model_version_status": rows}


@router.get("/v1/models/{name}/metadata", responses=schemas.ERRORS)
@router.get("/v1/models/{name}/versions/{version}/metadata", responses=schemas.ERRORS)
def model_metadata(request: Request, name: str, version: str | None = None):
    servable = request.app.state.manager.lookup(name, version)
    return {
        "model_spec": {"name": name, "signature_name": "", "version": str(servable.version)},
        "metadata": {"signature_def": {"signature_def": signature_defs(servable)}},
    }


@router.post("/v1/models/{name}:predict", responses=schemas.ERRORS, openapi_extra=schemas.body(schemas.PREDICT))
@router.post("/v1/models/{name}/versions/{version}:predict", responses=schemas.ERRORS, openapi_extra=schemas.body(schemas.PREDICT))
async def predict(request: Request, name: str, version: str | None = None):
    servable, settings, payload = await _read_request(request, name, version)
    if not isinstance(payload, dict):
        raise ApiError(400, 'Expected a JSON object: {"instances": [{"image_bytes": {"b64": "…"}}]} (rows) or {"inputs": {"image_bytes": […]}} (columns).')
    signature = payload.get("signature_name") or "serving_default"
    if signature not in SIGNATURES:
        raise ApiError(400, f"Serving signature name: {signature!r} not found in signature def. Available: {', '.join(SIGNATURES)}.")
    if ("instances" in payload) == ("inputs" in payload):
        raise ApiError(400, 'Send exactly one of "instances" (row format) or "inputs" (columnar format). Received: '
                       + ("both" if "instances" in payload else f"keys {sorted(payload)}"))
    rows = "instances" in payload
    deadline = deadline_after(settings.request_timeout_s)
    if signature == "serving_default" and servable.kind == "clips":
        clips, questions, keys, where = tfserving_clips(payload, rows=rows)
        settings.limits.check_count(len(clips), "instances" if rows else "inputs")
        probabilities = await servable.predict_clips(clips, questions, deadline=deadline, where=where)
    elif signature == "serving_default":
        images, keys, where = _image_inputs(payload, rows)
        settings.limits.check_count(len(images), "instances" if rows else "inputs")
        data = [decode_base64(value, where=where(index)) for index, value in enumerate(images)]
        probabilities = await servable.predict_images(data, deadline=deadline, where=where)
    else:
        if servable.kind == "clips" and (signature == "pixels_uint8" or servable.task == "qa"):
            raise ApiError(400, f"A {'question-answering ' if servable.task == 'qa' else ''}clip model takes serving_default (video_bytes or frames)"
                           f"{'' if servable.task == 'qa' else ' or pixels (float32, -1 after the last frame)'}. Received: signature_name={signature!r}")
        pixels = _pixel_inputs(payload, rows, servable.pixel_shape, signature == "pixels_uint8", settings.limits)
        probabilities = await servable.predict_pixels(pixels, deadline=deadline)
        keys = None
    outputs = {name: value.tolist() for name, value in servable.answer(probabilities).items()}
    if keys is not None:
        outputs["key"] = keys
    if not rows:
        return JSONBody({"outputs": outputs})
    return JSONBody({"predictions": [{name: values[index] for name, values in outputs.items()} for index in range(len(probabilities))]})


@router.post("/v1/models/{name}:classify", responses=schemas.ERRORS, openapi_extra=schemas.body(schemas.CLASSIFY))
@router.post("/v1/models/{name}/versions/{version}:classify", responses=schemas.ERRORS, openapi_extra=schemas.body(schemas.CLASSIFY))
async def classify(request: Request, name: str, version: str | None = None):
    servable, settings, payload = await _read_request(request, name, version)
    examples = payload.get("examples") if isinstance(payload, dict) else None
    if not isinstance(examples, list):
        raise ApiError(400, 'Expected a JSON object with an "examples" list: {"examples": [{"image_bytes": {"b64": "…"}}]}.')
    context = payload.get("context", {})
    if not isinstance(context, dict):
        raise ApiError(400, '"context" must be an object of features shared by every example.')
    settings.limits.check_count(len(examples), "examples")
    data = []
    for index, example in enumerate(examples):
        example = {**context, **example} if isinstance(example, dict) else example
        if not isinstance(example, dict) or "image_bytes" not in example:
            raise ApiError(400, f'examples[{index}]: expected an object with "image_bytes": {{"b64": "…"}}.')
        data.append(decode_base64(example["image_bytes"], where=f"examples[{index}].image_bytes"))
    probabilities = await servable.predict_images(
        data, deadline=deadline_after(settings.request_timeout_s), where=lambda index: f"examples[{index}].image_bytes"
    )
    return JSONBody({"results": [[[label, p] for label, p in zip(servable.labels, row)] for row in probabilities.tolist()]})


def _image_inputs(payload: dict, rows: bool):
    """(base64 values, keys, where(index)) from either format of the serving_default signature."""
    if rows:
        instances = payload["instances"]
        if not isinstance(instances, list):
            raise ApiError(400, '"instances" must be a list: [{"image_bytes": {"b64": "…"}, "key": "…"}].')
        images, keys = [], []
        for index, instance in enumerate(instances):
            if isinstance(instance, dict) and "image_bytes" in instance:
                unknown = set(instance) - {"image_bytes", "key"}
                if unknown:
                    raise ApiError(400, f"instances[{index}]: unknown input(s) {sorted(unknown)}; serving_default takes image_bytes and key.")
                images.append(instance["image_bytes"])
                keys.append(instance.get("key", ""))
            elif isinstance(instance, str) or (isinstance(instance, dict) and set(instance) == {"b64"}):
                images.append(instance)  # a bare {"b64": …}: the one image input
                keys.append("")
            else:
                raise ApiError(400, f'instances[{index}]: expected an object with "image_bytes": {{"b64": "…"}}.')
        where = lambda index: f"instances[{index}].image_bytes"  # noqa: E731
    else:
        inputs = payload["inputs"]
        if isinstance(inputs, dict) and "image_bytes" in inputs:
            unknown = set(inputs) - {"image_bytes", "key"}
            if unknown:
                raise ApiError(400, f"inputs: unknown input(s) {sorted(unknown)}; serving_default takes image_bytes and key.")
            images, keys = inputs["image_bytes"], inputs.get("key")
        else:
            images, keys = inputs, None  # the image input alone
        images = images if isinstance(images, list) else [images]
        keys = keys if keys is not None else [""] * len(images)
        if not isinstance(keys, list) or len(keys) != len(images):
            raise ApiError(400, f'inputs.key: expected a list of {len(images)} strings, one per image.')
        where = lambda index: f"inputs.image_bytes[{index}]"  # noqa: E731
    for index, key in enumerate(keys):
        if not isinstance(key, str):
            raise ApiError(400, f"{f'instances[{index}].key' if rows else f'inputs.key[{index}]'}: expected a string.")
    return images, keys, where


def _pixel_inputs(payload: dict, rows: bool, shape: tuple, uint8: bool, limits) -> np.ndarray:
    values = payload["instances" if rows else "inputs"]
    if isinstance(values, dict):
        if set(values) != {"pixels"}:
            raise ApiError(400, f'The pixels signatures take one input, "pixels". Received: {sorted(values)}')
        values = values["pixels"]
    if rows and isinstance(values, list):
        values = [value["pixels"] if isinstance(value, dict) and set(value) == {"pixels"} else value for value in values]
    if not isinstance(values, list):
        raise ApiError(400, f"Expected a list of images of shape {list(shape)}.")
    limits.check_count(len(values), "instances" if rows else "inputs")
    return to_pixels(values, shape, uint8=uint8, where="instances" if rows else "inputs.pixels")


def to_pixels(values, shape: tuple, *, uint8: bool, where: str) -> np.ndarray:
    """A nested list (or flat buffer) → float32 [n, *shape]; 400 if ragged, mis-shaped, non-finite or outside 0..255 for uint8."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (ValueError, TypeError):
        raise ApiError(400, f"{where}: expected numbers in a regular array of shape [n, {', '.join(map(str, shape))}].") from None
    if array.ndim == 0 or array.shape[1:] != tuple(shape):
        raise ApiError(400, f"{where}: expected shape [n, {', '.join(map(str, shape))}]. Received: shape {list(array.shape)}")
    if not np.isfinite(array).all():
        raise ApiError(400, f"{where}: pixel values must be finite numbers (no NaN, Infinity or null).")
    if uint8 and ((array < 0).any() or (array > 255).any() or (array != np.round(array)).any()):
        raise ApiError(400, f"{where}: uint8 pixels must be whole numbers from 0 to 255.")
    return array.astype(np.float32)


def signature_defs(servable) -> dict:
    """The SavedModel's three signatures, in TF Serving's metadata layout."""
    size, channels, classes = servable.image_size, servable.channels, len(servable.labels)

    def tensor(dtype, dims, name):
        return {"dtype": dtype, "tensor_shape": {"dim": [{"size": str(d), "name": ""} for d in dims], "unknown_rank": False}, "name": name}

    def outputs(prefix):
        return {
            "probabilities": tensor("DT_FLOAT", [-1, classes], f"{prefix}:0"),
            "classes": tensor("DT_INT64", [-1], f"{prefix}:1"),
            "labels": tensor("DT_STRING", [-1], f"{prefix}:2"),
        }

    pixels = [-1, size, size, channels]
    method = "tensorflow/serving/predict"
    if servable.kind == "clips":
        inputs = {"frames": tensor("DT_STRING", [-1, -1], "serving_default_frames:0"), "key": tensor("DT_STRING", [-1], "serving_default_key:0")}
        if servable.task == "qa":
            inputs["question"] = tensor("DT_STRING", [-1], "serving_default_question:0")
        return {
            "serving_default": {"inputs": inputs, "outputs": {**outputs("StatefulPartitionedCall"), "key": tensor("DT_STRING", [-1], "StatefulPartitionedCall:3")},
                                "method_name": method},
            "pixels": {"inputs": {"pixels": tensor("DT_FLOAT", [-1, *servable.pixel_shape], "pixels_pixels:0")}, "outputs": outputs("StatefulPartitionedCall_1"),
                       "method_name": method},
        }
    return {
        "serving_default": {
            "inputs": {"image_bytes": tensor("DT_STRING", [-1], "serving_default_image_bytes:0"), "key": tensor("DT_STRING", [-1], "serving_default_key:0")},
            "outputs": {**outputs("StatefulPartitionedCall"), "key": tensor("DT_STRING", [-1], "StatefulPartitionedCall:3")},
            "method_name": method,
        },
        "pixels": {"inputs": {"pixels": tensor("DT_FLOAT", pixels, "pixels_pixels:0")}, "outputs": outputs("StatefulPartitionedCall_1"), "method_name": method},
        "pixels_uint8": {"inputs": {"pixels": tensor("DT_UINT8", pixels, "pixels_uint8_pixels:0")}, "outputs": outputs("StatefulPartitionedCall_2"), "method_name": method},
    }


async def _read_request(request: Request, name: str, version: str | None):
    """(servable, settings, JSON payload) of a POST (see `servable_and_body`)."""
    servable, body = await servable_and_body(request, name, version)
    return servable, request.app.state.settings, parse_json(body)
