"""What the server accepts: body size, instance count, base64, image format and pixel count.

Every check raises `ApiError` with a 4xx status and a message that names the field, so a bad
request never reaches TensorFlow and never becomes a 5xx. Image format and size come from the
first bytes alone (magic number and header), before anything is decoded.

Example:
    limits = Limits(max_body_bytes=5 * 2**20)
    data = decode_base64("iVBORw0KGgo…", where="instances[0].image_bytes")
    check_image(data, where="instances[0].image_bytes", max_pixels=limits.max_pixels)
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
import struct

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


def parse_json(body: bytes | str) -> object:
    """JSON without NaN/Infinity (they cannot be answered in JSON) and without unbounded nesting."""

    def reject(constant):
        raise ValueError(f"{constant} is not allowed")

    try:
        return json.loads(body, parse_constant=reject)
    except RecursionError:
        raise ApiError(400, "Request body is nested too deeply to be a prediction request.") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise ApiError(400, f"Request body is not valid JSON ({error}).") from None


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
    """(format, width, height) from the magic number and header; 400 for anything else, 413 if too large."""
    if not data:
        raise ApiError(400, f"{where}: empty image.")
    image_format = sniff_format(data)
    if image_format is None:
        raise ApiError(400, f"{where}: not an image (expected JPEG, PNG, GIF or BMP bytes; the first bytes are {data[:8].hex(' ')}).")
    try:
        width, height = _HEADERS[image_format](data)
    except (struct.error, IndexError, ValueError):
        raise ApiError(400, f"{where}: corrupt or truncated {image_format.upper()} header.") from None
    if width < 1 or height < 1:
        raise ApiError(400, f"{where}: the {image_format.upper()} header declares an empty {width}x{height} image.")
    if width * height > max_pixels:
        raise ApiError(413, f"{where}: image too large: {width}x{height} pixels exceeds the limit of {max_pixels:,} (--max-pixels).")
    return image_format, width, height


def sniff_format(data: bytes) -> str | None:
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data.startswith(b"BM") and len(data) >= 26:
        return "bmp"
    return None


def _png_size(data: bytes) -> tuple[int, int]:
    if data[12:16] != b"IHDR":
        raise ValueError("no IHDR")
    return struct.unpack(">II", data[16:24])


def _gif_size(data: bytes) -> tuple[int, int]:
    return struct.unpack("<HH", data[6:10])


def _bmp_size(data: bytes) -> tuple[int, int]:
    header_size = struct.unpack("<I", data[14:18])[0]
    if header_size == 12:
        return struct.unpack("<HH", data[18:22])
    width, height = struct.unpack("<ii", data[18:26])
    return width, abs(height)  # a negative height means rows stored top-down


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """Walk the markers to the first start-of-frame, which holds the size."""
    offset = 2
    while True:
        while data[offset] == 0xFF and data[offset + 1] == 0xFF:
            offset += 1  # fill bytes
        if data[offset] != 0xFF:
            raise ValueError("not a marker")
        marker = data[offset + 1]
        if marker in (0x01, *range(0xD0, 0xD8)):
            offset += 2
            continue
        length = struct.unpack(">H", data[offset + 2 : offset + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[offset + 5 : offset + 9])
            return width, height
        if marker == 0xDA or length < 2:
            raise ValueError("no frame header")
        offset += 2 + length


_HEADERS = {"jpeg": _jpeg_size, "png": _png_size, "gif": _gif_size, "bmp": _bmp_size}


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
