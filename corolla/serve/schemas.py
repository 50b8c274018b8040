"""The OpenAPI description of request bodies and error answers (the handlers parse bodies themselves,
to enforce the limits first; these schemas document them and let schemathesis fuzz them).

Example:
    @router.post("/v1/models/{name}:predict", responses=ERRORS, openapi_extra=body(PREDICT))
"""

from __future__ import annotations

ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
ERRORS = {
    status: {"description": description, "content": {"application/json": {"schema": ERROR}}}
    for status, description in {
        400: "Bad request: the message names the field.",
        404: "Unknown model, version or path.",
        405: "Method not allowed.",
        413: "Body, image count or image pixels over the limit.",
        503: "Overloaded, not ready yet, or shutting down: retry.",
        504: "The request waited past its deadline.",
    }.items()
}

_B64 = {"type": "object", "properties": {"b64": {"type": "string"}}, "required": ["b64"]}
PREDICT = {
    "type": "object",
    "properties": {
        "signature_name": {"type": "string", "enum": ["serving_default", "pixels", "pixels_uint8"]},
        "instances": {
            "type": "array",
            "items": {"type": "object", "properties": {"image_bytes": _B64, "key": {"type": "string"}}, "required": ["image_bytes"]},
        },
        "inputs": {
            "type": "object",
            "properties": {"image_bytes": {"type": "array", "items": _B64}, "key": {"type": "array", "items": {"type": "string"}}},
            "required": ["image_bytes"],
        },
    },
    "example": {"instances": [{"image_bytes": {"b64": "<base64 of a JPEG or PNG>"}, "key": "photo-1"}]},
}
CLASSIFY = {
    "type": "object",
    "properties": {"examples": {"type": "array", "items": {"type": "object", "properties": {"image_bytes": _B64}, "required": ["image_bytes"]}}},
    "required": ["examples"],
}
_TENSOR = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}},
        "datatype": {"type": "string", "enum": ["BYTES", "FP32", "UINT8"]},
        "data": {"type": "array"},
        "parameters": {"type": "object"},
    },
    "required": ["name", "shape", "datatype"],
}
INFER = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object"},
        "inputs": {"type": "array", "items": _TENSOR},
        "outputs": {
            "type": "array",
            "items": {"type": "object", "properties": {"name": {"type": "string"}, "parameters": {"type": "object"}}, "required": ["name"]},
        },
    },
    "required": ["inputs"],
    "example": {"inputs": [{"name": "image_bytes", "shape": [1], "datatype": "BYTES", "data": ["<base64 of a JPEG or PNG>"]}]},
}


def body(schema: dict) -> dict:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
