"""The TensorFlow-free decoder the ONNX server uses gives the pixels training decodes, format by format and size by size."""

from __future__ import annotations

import contextlib
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from corolla.data.images import InvalidImage, open_image
from corolla.runtime.pixels import PixelDecoder


def photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth colour photo-like image with noise (what JPEG is made for), uint8 RGB."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    base = np.stack([np.sin(6 * x + 1) * 90 + 128, np.cos(5 * y) * 90 + 128, (x + y) * 100 + 20], axis=-1)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png16(pixels: np.ndarray, colour_type: int) -> bytes:
    """A 16-bit PNG written by hand (Pillow writes 16-bit gray only): colour type 0 (gray) or 2 (RGB)."""
    height, width = pixels.shape[:2]
    raw = b"".join(b"\x00" + pixels[row].astype(">u2").tobytes() for row in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def encodings(height: int, width: int) -> dict[str, bytes]:
    rgb = photo(height, width)
    image, gray = Image.fromarray(rgb), Image.fromarray(rgb.mean(axis=-1).astype(np.uint8))
    alpha = np.random.default_rng(1).integers(0, 256, (height, width), dtype=np.uint8)
    with_transparency = image.quantize(32)
    with_transparency.info["transparency"] = 3
    frames = [image.quantize(64), Image.fromarray(255 - rgb).quantize(64)]
    animated = io.BytesIO()
    frames[0].save(animated, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    return {
        "jpeg 4:2:0": save(image, "JPEG", quality=90),
        "jpeg 4:4:4": save(image, "JPEG", quality=95, subsampling=0),
        "jpeg 4:2:2 progressive": save(image, "JPEG", subsampling=1, progressive=True),
        "jpeg gray": save(gray, "JPEG"),
        "jpeg cmyk": save(image.convert("CMYK"), "JPEG"),
        "png rgb": save(image, "PNG"),
        "png rgba": save(Image.fromarray(np.dstack([rgb, alpha])), "PNG"),
        "png gray": save(gray, "PNG"),
        "png gray+alpha": save(gray.convert("LA"), "PNG"),
        "png 1-bit": save(gray.convert("1"), "PNG"),
        "png palette": save(image.quantize(64), "PNG"),
        "png palette+tRNS": save(with_transparency, "PNG"),
        "png 16-bit gray": png16((rgb.mean(axis=-1) * 257).astype(np.uint16), 0),
        "png 16-bit rgb": png16(rgb.astype(np.uint16) * 257 + 100, 2),
        "gif": save(image.quantize(64), "GIF"),
        "gif animated": animated.getvalue(),
        "bmp": save(image, "BMP"),
        "bmp gray": save(gray, "BMP"),
    }


SHAPES = {"same size": (32, 32), "upscaled": (20, 27), "shrunk under 2x": (50, 41), "shrunk 3x, antialiased": (96, 130), "large photo": (375, 500)}


def tensorflow_decode(data: bytes, size: int, channels: int):
    from corolla.runtime.exported import Decoder

    try:
        return Decoder(image_size=size, channels=channels)(data)
    except ValueError as error:
        return error


def corolla_decode(data: bytes, size: int, channels: int):
    """The decoder's pixels, after checking that going on from the server's header check gives the same."""
    decoder = PixelDecoder(image_size=size, channels=channels)
    try:
        pixels = decoder(data)
    except ValueError as error:
        return error
    with contextlib.suppress(InvalidImage):  # what the server's check refuses never reaches the decoder
        assert np.array_equal(decoder(data, opened=open_image(data)), pixels)
    return pixels


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("channels", [3, 1])
def test_every_format_decodes_to_the_pixels_tensorflow_gives(shape, channels):
    size = 32
    refused_by_both, different = [], {}
    for name, data in encodings(*shape).items():
        expected, got = tensorflow_decode(data, size, channels), corolla_decode(data, size, channels)
        if isinstance(expected, Exception):
            assert isinstance(got, Exception), f"{name}: TensorFlow refuses it ({expected}), the decoder gave pixels"
            refused_by_both.append(name)
            continue
        if name == "png 16-bit rgb" and channels == 1:  # the documented exception: refused with its reason
            assert isinstance(got, ValueError) and "--runtime tf" in str(got)
            continue
        assert not isinstance(got, Exception), f"{name}: {got}"
        assert got.shape == expected.shape == (size, size, channels) and got.dtype == np.float32
        error = float(np.abs(got - expected).max())
        if error > (0.01 if max(shape) > 2 * size else 0):  # the antialiased sums run in another order; all else is exact
            different[name] = error
    assert not different, different
    assert set(refused_by_both) <= {"jpeg cmyk", "gif", "gif animated", "bmp", "bmp gray"}
    if channels == 1:
        assert {"gif", "bmp"} <= set(refused_by_both)  # as TensorFlow: GIF and BMP decode to RGB only


def test_broken_and_unknown_bytes_are_refused_like_tensorflow():
    good = encodings(32, 32)
    cases = {
        "truncated jpeg": good["jpeg 4:2:0"][: len(good["jpeg 4:2:0"]) // 2],
        "truncated png": good["png rgb"][: len(good["png rgb"]) // 2],
        "not an image": b"hello, world" * 10,
        "webp-like": b"RIFF\x00\x00\x00\x00WEBPVP8 ",
        "jpeg header only": b"\xff\xd8\xff\xe0" + b"\x00" * 40,
    }
    for name, data in cases.items():
        assert isinstance(tensorflow_decode(data, 32, 3), Exception), name
        assert isinstance(corolla_decode(data, 32, 3), ValueError), name


def test_a_fallback_decodes_what_only_tensorflow_can():
    """Where TensorFlow is loaded anyway (`serve --runtime tf`), it decodes the one input the decoder refuses."""
    from corolla.runtime.exported import Decoder

    data = encodings(32, 32)["png 16-bit rgb"]
    decode = PixelDecoder(image_size=32, channels=1, fallback=Decoder(image_size=32, channels=1))
    np.testing.assert_array_equal(decode(data), tensorflow_decode(data, 32, 1))
    np.testing.assert_array_equal(decode(encodings(32, 32)["png rgb"]), tensorflow_decode(encodings(32, 32)["png rgb"], 32, 1))
