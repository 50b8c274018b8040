"""What the server accepts: body size, instance count, base64, image format and pixel count.

Every check raises `ApiError` with a 4xx status and a message that names the field, so a bad
request never reaches TensorFlow and never becomes a 5xx. Image format and size come from the
header alone (`corolla.data.images.open_image`, the check `prepare` uses), before anything
is decoded; `open_checked` hands that opened header on to the decoder of a small image.

Example:
    limits = Limits(max_body_bytes=5 * 2**20)
    data = decode_base64("iVBORw0KGgo…", where="instances[0].image_bytes")
    check_image(data, where="instances[0].image_bytes", max_pixels=limits.max_pixels)
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re

from corolla.data.images import SUPPORTED_FORMATS, ImageTooLarge, InvalidImage, open_image

MODEL_NAME = re.compile(r"[A-Za-z0-9._-]+")
DEFAULT_MAX_BODY_BYTES = 10 * 2**20
DEFAULT_MAX_INSTANCES = 256
DEFAULT_MAX_PIXELS = 25_000_000  # a 6000x4000 camera photo; decoded, ~75 MB of RGB


class ApiError(Exception):
    """A request the server cannot answer: HTTP `status` and a one-line `message` for {"error": …}."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclasses.dataclass(frozen=True)
class Limits:
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_instances: int = DEFAULT_MAX_INSTANCES
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{field.name} must be a positive integer. Received: {field.name}={value!r}")

    def check_count(self, count: int, what: str = "instances") -> None:
        if count == 0:
            raise ApiError(400, f'"{what}" is empty: send at least one image.')
        if count > self.max_instances:
            raise ApiError(413, f"{count} {what} exceed the limit of {self.max_instances} per request; split them into several requests.")


async def read_body(request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it (or its Content-Length) passes `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"Request body of {int(declared):,} bytes exceeds the limit of {limit:,} bytes (--max-body-mb).")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"Request body exceeds the limit of {limit:,} bytes (--max-body-mb).")
        chunks.append(chunk)
    return b"".join(chunks)


def decode_base64(value: object, *, where: str) -> bytes:
    """Standard or URL-safe base64, padding optional, line breaks ignored (as `base64` wraps them)."""
    if isinstance(value, dict) and set(value) == {"b64"}:
        value = value["b64"]
    if not isinstance(value, str):
        raise ApiError(400, f'{where}: expected {{"b64": "<base64 string>"}}. Received: {_short(value)}')
    try:
        return base64.b64decode(value, validate=True)  # the common case, fast
    except (binascii.Error, ValueError):
        pass
    text = re.sub(r"\s+", "", value).translate(_URL_SAFE).rstrip("=")
    if len(text) % 4 == 1:
        raise ApiError(400, f"{where}: not valid base64 (its length {len(text)} cannot be decoded).")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"{where}: not valid base64 (characters outside A-Z a-z 0-9 + / - _ =).") from None


_URL_SAFE = str.maketrans("-_", "+/")


def check_image(data: bytes, *, where: str, max_pixels: int) -> tuple[str, int, int]:
    """(format, width, height) from the header alone (corolla.data.images); 400 for anything else, 413 if too large."""
    image = open_checked(data, where=where, max_pixels=max_pixels)
    return SUPPORTED_FORMATS[image.format], image.width, image.height


def open_checked(data: bytes, *, where: str, max_pixels: int):
    """The PIL image with its header read and checked as `check_image` does; a decoder may go on from it."""
    try:
        return open_image(data, max_pixels=max_pixels)
    except ImageTooLarge as error:
        raise ApiError(413, f"{where}: {error} (--max-pixels).") from None
    except InvalidImage as error:
        raise ApiError(400, f"{where}: {error} (expected JPEG, PNG, GIF or BMP bytes).") from None


def check_model_name(name: str) -> None:
    if not MODEL_NAME.fullmatch(name):
        raise ApiError(400, f"Invalid model name: names use only letters, digits, '.', '_' and '-'. Received: {_short(name)}")


def parse_version(version: str) -> int:
    if not re.fullmatch(r"[0-9]{1,18}", version):
        raise ApiError(400, f"Invalid model version: expected a positive integer such as 1. Received: {_short(version)}")
    return int(version)


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
