"""KServe V2 / Open Inference Protocol (REST), with Triton's binary tensor data extension.

    GET  /v2                                          server metadata
    GET  /v2/health/live, /v2/health/ready            liveness, readiness (503 until a version is warm)
    GET  /v2/models/{name}[/versions/{v}]             model metadata: inputs, outputs
    GET  /v2/models/{name}[/versions/{v}]/ready
    POST /v2/models/{name}[/versions/{v}]/infer

One input per request: a BYTES tensor [n] of encoded images (base64 strings in JSON, raw
bytes with the binary extension) or an FP32/UINT8 tensor [n, size, size, channels] of pixels.
Outputs: probabilities FP32 [n, classes], classes INT64 [n], labels BYTES [n]; the
`classification` parameter gives Triton's "score:index:label" top-k strings instead.

Example (tritonclient, unchanged):
    client = tritonclient.http.InferenceServerClient("127.0.0.1:8501")
    image = tritonclient.http.InferInput("image_bytes", [1], "BYTES")
    image.set_data_from_numpy(np.array([open("shoe.png", "rb").read()], dtype=object))
    client.infer("fm", [image]).as_numpy("probabilities")
"""

from __future__ import annotations

import math
import struct

import numpy as np
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

import corolla
from corolla.serve import schemas
from corolla.serve.clip_requests import kserve_clips
from corolla.serve.jsonio import JSONBody, dumps, parse_json
from corolla.serve.limits import ApiError, decode_base64
from corolla.serve.servable import deadline_after
from corolla.serve.tfserving import to_pixels
from corolla.serve.versions import servable_and_body

router = APIRouter(tags=["KServe V2 / Open Inference Protocol"])
OUTPUTS = {"probabilities": "FP32", "classes": "INT64", "labels": "BYTES"}
HEADER_LENGTH = "inference-header-content-length"


@router.get("/v2", responses=schemas.ERRORS)
def server_metadata():
    return {"name": "corolla", "version": corolla.__version__, "extensions": ["binary_tensor_data", "classification"]}


@router.get("/v2/health/live", responses=schemas.ERRORS)
def live():
    return {"live": True}


@router.get("/v2/health/ready", responses=schemas.ERRORS)
def ready(request: Request):
    is_ready = request.app.state.manager.ready and not request.app.state.draining
    return JSONResponse({"ready": is_ready}, status_code=200 if is_ready else 503)


@router.get("/v2/models/{name}", responses=schemas.ERRORS)
@router.get("/v2/models/{name}/versions/{version}", responses=schemas.ERRORS)
def model_metadata(request: Request, name: str, version: str | None = None):
    servable = request.app.state.manager.lookup(name, version)
    pixels = [-1, *servable.pixel_shape]
    if servable.kind == "clips":
        inputs = [
            {"name": "video_bytes", "datatype": "BYTES", "shape": [-1], "parameters": {"content": "a video file (MP4, WebM, MKV, AVI, MOV, GIF); or send frames"}},
            {"name": "frames", "datatype": "BYTES", "shape": [-1, -1], "parameters": {"content": "each clip's encoded frames (JPEG/PNG), in time order"}},
        ]
        if servable.task == "qa":
            inputs.append({"name": "question", "datatype": "BYTES", "shape": [-1], "parameters": {"content": "the question about each clip, in words"}})
        return {
            "name": name, "versions": [str(servable.version)],
            "platform": "onnxruntime_onnx" if servable.runtime_name == "onnx" else "tensorflow_savedmodel",
            "inputs": inputs,
            "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, len(servable.labels)]}, {"name": "classes", "datatype": "INT64", "shape": [-1]},
                        {"name": "labels", "datatype": "BYTES", "shape": [-1]}],
            "parameters": {"labels": servable.labels, "runtime": servable.runtime_name, "kind": "clips", "frames": servable.frames, "task": servable.task},
        }  # fmt: skip
    return {
        "name": name,
        "versions": [str(servable.version)],
        "platform": "onnxruntime_onnx" if servable.runtime_name == "onnx" else "tensorflow_savedmodel",
        "inputs": [
            {"name": "image_bytes", "datatype": "BYTES", "shape": [-1], "parameters": {"content": "JPEG, PNG, GIF or BMP; base64 in JSON"}},
            {"name": "pixels", "datatype": "FP32", "shape": pixels, "parameters": {"range": "0..255; UINT8 accepted too; send one input"}},
        ],
        "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(servable.labels)]},
            {"name": "classes", "datatype": "INT64", "shape": [-1]},
            {"name": "labels", "datatype": "BYTES", "shape": [-1]},
        ],
        "parameters": {"labels": servable.labels, "runtime": servable.runtime_name},
    }


@router.get("/v2/models/{name}/ready", responses=schemas.ERRORS)
@router.get("/v2/models/{name}/versions/{version}/ready", responses=schemas.ERRORS)
def model_ready(request: Request, name: str, version: str | None = None):
    request.app.state.manager.lookup(name, version)
    return {"name": name, "ready": True}


@router.post("/v2/models/{name}/infer", responses=schemas.ERRORS, openapi_extra=schemas.body(schemas.INFER))
@router.post("/v2/models/{name}/versions/{version}/infer", responses=schemas.ERRORS, openapi_extra=schemas.body(schemas.INFER))
async def infer(request: Request, name: str, version: str | None = None):
    servable, body = await servable_and_body(request, name, version)
    settings = request.app.state.settings
    header, binary = _split(body, request.headers.get(HEADER_LENGTH))
    payload = parse_json(header)
    inputs = payload.get("inputs") if isinstance(payload, dict) else None
    if servable.kind == "clips" and isinstance(inputs, list) and all(isinstance(t, dict) for t in inputs) and inputs and inputs[0].get("datatype") == "BYTES":
        tensors = _clip_tensors(inputs, binary, settings)
        clips, questions = kserve_clips(tensors)
        names = [name for name in ("video_bytes", "frames") if name in tensors]
        where = lambda index: f"inputs.{names[0]}[{index}]"  # noqa: E731
        probabilities = await servable.predict_clips(clips, questions, deadline=deadline_after(settings.request_timeout_s), where=where)
        return _response(payload, name, servable, probabilities)
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise ApiError(400, 'Expected {"inputs": [one tensor]}: a BYTES "image_bytes" [n] or an FP32/UINT8 "pixels" [n, size, size, channels].')
    tensor, where = inputs[0], "inputs[0]"
    datatype, shape = tensor.get("datatype"), tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**31 for d in shape):
        raise ApiError(400, f"{where}.shape: expected a list of non-negative integers. Received: {str(shape)[:60]}")
    count = shape[0] if shape else 0
    settings.limits.check_count(count, "images in inputs[0]")
    elements = math.prod(shape)
    values, is_binary = _tensor_values(tensor, binary, where, elements, datatype)
    deadline = deadline_after(settings.request_timeout_s)
    if datatype == "BYTES":
        if elements != count:
            raise ApiError(400, f"{where}: a BYTES input holds one encoded image per row: shape [n] or [n, 1]. Received: shape {shape}")
        images = values if is_binary else [decode_base64(value, where=f"{where}.data[{i}]") for i, value in enumerate(values)]
        probabilities = await servable.predict_images(images, deadline=deadline, where=lambda index: f"{where}.data[{index}]")
    elif datatype in ("FP32", "UINT8"):
        if tuple(shape[1:]) != servable.pixel_shape:
            raise ApiError(400, f"{where}: expected pixels of shape [n, {', '.join(map(str, servable.pixel_shape))}]. Received: shape {shape}")
        pixels = values.reshape(shape).astype(np.float32) if is_binary else to_pixels(
            np.reshape(np.asarray(values, dtype=object), shape), servable.pixel_shape, uint8=datatype == "UINT8", where=f"{where}.data"
        )
        probabilities = await servable.predict_pixels(pixels, deadline=deadline)
    else:
        raise ApiError(400, f"{where}.datatype: expected BYTES (encoded images), FP32 or UINT8 (pixels). Received: {str(datatype)[:40]}")
    return _response(payload, name, servable, probabilities)


def _clip_tensors(inputs: list[dict], binary: bytes, settings) -> dict:
    """{name: (flat values, shape, binary?)} of a clip request's BYTES tensors; binary data is consumed in input order."""
    tensors, offset = {}, 0
    for index, tensor in enumerate(inputs):
        where, shape = f"inputs[{index}]", tensor.get("shape")
        if tensor.get("datatype") != "BYTES" or not isinstance(tensor.get("name"), str):
            raise ApiError(400, f'{where}: a clip model takes named BYTES tensors ("video_bytes" or "frames", and "question").')
        if not isinstance(shape, list) or not shape or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**31 for d in shape):
            raise ApiError(400, f"{where}.shape: expected a list of non-negative integers. Received: {str(shape)[:60]}")
        settings.limits.check_count(shape[0], f"clips in {where}")
        values, is_binary = _tensor_values(tensor, binary[offset:], where, math.prod(shape), "BYTES")
        if is_binary:
            offset += tensor["parameters"]["binary_data_size"]
        tensors[tensor["name"]] = (values, shape, is_binary)
    return tensors


def _split(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    if not header_length.isdigit() or int(header_length) > len(body):
        raise ApiError(400, f"Inference-Header-Content-Length must be the byte length of the JSON header (≤ {len(body)}). Received: {header_length[:20]!r}")
    return body[: int(header_length)], body[int(header_length) :]


def _tensor_values(tensor: dict, binary: bytes, where: str, elements: int, datatype) -> tuple:
    """(values, is_binary): binary data (the extension) as a bytes list or ndarray, else the JSON data flattened."""
    parameters = tensor.get("parameters")
    size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
    if size is None:
        if "data" not in tensor:
            raise ApiError(400, f'{where}: expected "data" (or binary data with parameters.binary_data_size).')
        flat = _flatten(tensor["data"])
        if len(flat) != elements:
            raise ApiError(400, f"{where}: shape holds {elements} elements but data has {len(flat)}.")
        return flat, False
    if not isinstance(size, int) or isinstance(size, bool) or size < 0 or size > len(binary):
        raise ApiError(400, f"{where}.parameters.binary_data_size: expected at most the {len(binary)} bytes after the JSON header. Received: {size!r}")
    chunk = binary[:size]
    if datatype == "BYTES":
        images, offset = [], 0
        while offset < len(chunk):
            if offset + 4 > len(chunk):
                raise ApiError(400, f"{where}: binary BYTES data ends inside a length prefix.")
            (length,) = struct.unpack_from("<I", chunk, offset)
            images.append(chunk[offset + 4 : offset + 4 + length])
            offset += 4 + length
        if offset != len(chunk) or len(images) != elements:
            raise ApiError(400, f"{where}: binary BYTES data holds {len(images)} complete elements; shape says {elements}.")
        return images, True
    dtype = {"FP32": "<f4", "UINT8": "u1"}.get(datatype)
    if dtype is None or len(chunk) != elements * np.dtype(dtype).itemsize:
        raise ApiError(400, f"{where}: binary data of {len(chunk)} bytes does not match {datatype} with shape of {elements} elements.")
    array = np.frombuffer(chunk, dtype=dtype)
    if not np.isfinite(array).all():
        raise ApiError(400, f"{where}: pixel values must be finite numbers.")
    return array, True


def _flatten(data) -> list:
    if not isinstance(data, list):
        return [data]
    flat, stack = [], [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def _response(payload: dict, name: str, servable, probabilities: np.ndarray):
    requested = payload.get("outputs")
    parameters = payload.get("parameters") if isinstance(payload.get("parameters"), dict) else {}
    if requested is None:
        requested = [{"name": output} for output in OUTPUTS]
    if not isinstance(requested, list) or not all(isinstance(o, dict) and o.get("name") in OUTPUTS for o in requested):
        raise ApiError(400, f"outputs: expected a list of {{\"name\": …}} with names from {', '.join(OUTPUTS)}.")
    answer = servable.answer(probabilities)
    tensors, blobs = [], []
    for output in requested:
        options = output.get("parameters") if isinstance(output.get("parameters"), dict) else {}
        values, datatype = answer[output["name"]], OUTPUTS[output["name"]]
        top_k = options.get("classification")
        if top_k is not None:
            if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
                raise ApiError(400, f"outputs: parameters.classification must be a positive integer. Received: {top_k!r}")
            order = np.argsort(-probabilities, axis=-1)[:, :top_k]
            values = np.array([[f"{row[i]:f}:{i}:{servable.labels[i]}" for i in indices] for row, indices in zip(probabilities, order)], dtype=object)
            datatype = "BYTES"
        tensor = {"name": output["name"], "datatype": datatype, "shape": list(values.shape)}
        if options.get("binary_data", parameters.get("binary_data_output", False)) is True:
            blob = _to_binary(values, datatype)
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            tensor["data"] = values.reshape(-1).tolist()
        tensors.append(tensor)
    result = {"model_name": name, "model_version": str(servable.version), "outputs": tensors}
    if isinstance(payload.get("id"), str):
        result["id"] = payload["id"]
    if not blobs:
        return JSONBody(result)
    header = dumps(result)
    return Response(header + b"".join(blobs), media_type="application/octet-stream", headers={"Inference-Header-Content-Length": str(len(header))})


def _to_binary(values: np.ndarray, datatype: str) -> bytes:
    if datatype == "BYTES":
        encoded = [str(value).encode() for value in values.reshape(-1)]
        return b"".join(struct.pack("<I", len(item)) + item for item in encoded)
    return np.ascontiguousarray(values, dtype={"FP32": "<f4", "INT64": "<i8"}[datatype]).tobytes()
