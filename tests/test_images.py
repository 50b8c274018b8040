"""Content-based image validation: every bad file gets a reason, good ones come out normalised."""

import io

import numpy as np
import pytest
from PIL import Image

from corolla.data.images import InvalidImage, inspect_image, prepare_image
from tests.conftest import encode


def decode(prepared):
    return np.asarray(Image.open(io.BytesIO(prepared.encoded)))


def test_format_comes_from_content_not_extension():
    pixels = np.full((10, 12, 3), 100, np.uint8)
    assert inspect_image(encode(pixels, "PNG")).format == "png"
    assert inspect_image(encode(pixels, "JPEG")).format == "jpeg"
    assert inspect_image(encode(pixels, "BMP")).format == "bmp"
    info = inspect_image(encode(pixels, "GIF"))
    assert (info.format, info.width, info.height) == ("gif", 12, 10)


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty"),
        (b"hello, world", "not an image"),
        (b"\xff\xd8\xff\xe0 broken", "not an image"),
    ],
)
def test_non_images_are_rejected_with_a_reason(data, reason):
    with pytest.raises(InvalidImage, match=reason):
        prepare_image(data)


def test_truncated_jpeg_is_rejected():
    data = encode(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8), "JPEG")
    with pytest.raises(InvalidImage, match="corrupt or truncated JPEG"):
        prepare_image(data[: len(data) // 2])


def test_pixel_limit_is_checked_from_the_header():
    data = encode(np.zeros((100, 100), np.uint8))
    with pytest.raises(InvalidImage, match="too large"):
        inspect_image(data, max_pixels=5_000)


def test_unchanged_png_is_kept_byte_for_byte():
    data = encode(np.full((8, 8, 3), 7, np.uint8))
    assert prepare_image(data, channels=3).encoded == data


def test_conversions_to_rgb_and_grey():
    rgba = np.zeros((4, 4, 4), np.uint8)  # fully transparent → composited on white
    assert decode(prepare_image(encode(rgba), channels=3)).tolist() == np.full((4, 4, 3), 255).tolist()
    grey = np.full((4, 4), 90, np.uint8)
    assert decode(prepare_image(encode(grey), channels=3)).shape == (4, 4, 3)
    colour = np.full((4, 4, 3), (200, 10, 10), np.uint8)
    assert decode(prepare_image(encode(colour), channels=1)).shape == (4, 4)
    sixteen = Image.fromarray(np.full((4, 4), 65535, np.uint16))
    buffer = io.BytesIO()
    sixteen.save(buffer, format="PNG")
    assert decode(prepare_image(buffer.getvalue(), channels=1)).min() == 255  # scaled, not clipped to garbage


def test_large_images_are_stored_at_the_model_size_small_ones_kept():
    prepared = prepare_image(encode(np.zeros((300, 400, 3), np.uint8), "JPEG"), image_size=150)
    assert (prepared.width, prepared.height, prepared.format) == (150, 150, "jpeg")
    assert decode(prepared).shape == (150, 150, 3)
    wide = prepare_image(encode(np.zeros((100, 1000, 3), np.uint8)), image_size=150)  # more pixels than 150²
    assert (wide.width, wide.height, wide.format) == (150, 150, "png")
    small_bytes = encode(np.zeros((30, 40, 3), np.uint8))
    small = prepare_image(small_bytes, image_size=150)
    assert (small.width, small.height, small.encoded) == (40, 30, small_bytes)  # never enlarged, kept byte for byte


def test_draft_decoding_of_big_jpegs_matches_a_full_decode():
    """libjpeg's DCT-scaled decode (PIL draft) must give the same picture as decoding fully."""
    gradient = np.linspace(0, 255, 1200, dtype=np.float32)
    photo = np.stack([np.add.outer(gradient[:900] / 2, gradient / 2)] * 3, axis=-1).astype(np.uint8)
    prepared = decode(prepare_image(encode(photo, "JPEG"), image_size=100))
    reference = np.asarray(Image.fromarray(photo).resize((100, 100), Image.Resampling.BILINEAR), np.float32)
    assert prepared.shape == (100, 100, 3)
    assert np.abs(prepared.astype(np.float32) - reference).mean() < 3


@pytest.mark.parametrize("fmt, mode", [("WEBP", "RGB"), ("TIFF", "RGB"), ("JPEG", "CMYK")])
def test_other_formats_and_modes_become_rgb_png_or_jpeg(fmt, mode):
    image = Image.new(mode, (12, 10), (10, 120, 200, 0)[: len(mode)])
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    prepared = prepare_image(buffer.getvalue(), channels=3)
    assert prepared.format in ("png", "jpeg") and decode(prepared).shape == (10, 12, 3)


@pytest.mark.parametrize("fmt", ["WEBP", "TIFF"])
def test_the_server_check_refuses_formats_tensorflow_cannot_decode(fmt):
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format=fmt)
    with pytest.raises(InvalidImage, match=f"unsupported image format {fmt}"):
        inspect_image(buffer.getvalue())
