"""Validate and normalise encoded images by their content, never by their file extension.

Used by `prepare` (to skip bad files with a reason) and by the server (to answer 4xx
before TensorFlow ever sees the bytes).

Example:
    info = inspect_image(open("rose.jpg", "rb").read())   # ImageInfo(format="jpeg", width=500, height=375)
"""

from __future__ import annotations

import dataclasses
import io

from PIL import Image

from corolla.errors import CorollaError

# Decoders TensorFlow's tf.io.decode_image understands, so training and serving agree.
SUPPORTED_FORMATS = {"JPEG": "jpeg", "PNG": "png", "GIF": "gif", "BMP": "bmp"}
# `prepare` also reads these and stores them re-encoded as PNG.
CONVERTED_FORMATS = {"WEBP": "webp", "TIFF": "tiff"}
DEFAULT_MAX_PIXELS = 40_000_000  # ~ a 50-megapixel photo; far beyond any sane training image


class InvalidImage(CorollaError):
    """The bytes are not an image corolla can use; the message is the reason."""


class ImageTooLarge(InvalidImage):
    """The header declares more pixels than allowed (checked before anything is decoded)."""


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int


@dataclasses.dataclass(frozen=True)
class PreparedImage:
    encoded: bytes
    format: str
    width: int
    height: int


def open_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, formats: dict[str, str] = SUPPORTED_FORMATS) -> Image.Image:
    """The PIL image with only its header read (nothing decoded yet); InvalidImage or ImageTooLarge says why not."""
    if not data:
        raise InvalidImage("empty file")
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only
    except Image.DecompressionBombError as error:  # PIL's own limit (~179 M pixels) fires before ours
        raise ImageTooLarge(f"image too large: {error}".rstrip(".") + f"; corolla's limit is {max_pixels:,} pixels") from None
    except Exception:  # PIL raises several types for "not an image"
        raise InvalidImage("not an image (unrecognised content)") from None
    if image.format not in formats:
        raise InvalidImage(f"unsupported image format {image.format}; expected one of {', '.join(formats)}")
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLarge(f"image too large: {width}x{height} pixels exceeds the limit of {max_pixels:,}")
    return image


def inspect_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Format and size from the header alone: cheap, and safe against decompression bombs."""
    image = open_image(data, max_pixels=max_pixels)
    return ImageInfo(SUPPORTED_FORMATS[image.format], image.width, image.height)


def prepare_image(
    data: bytes,
    *,
    channels: int = 3,
    image_size: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> PreparedImage:
    """Decode fully (catching truncation), convert to `channels`, resize, re-encode only if needed.

    An image with more pixels than `image_size`² is resized to exactly image_size × image_size,
    the whole picture squashed as the model sees it (the same squash `corolla.data.load`, the
    server and `keras.utils.image_dataset_from_directory` apply), so loading it later is a bare
    decode. Smaller images are never enlarged. JPEG and PNG files that need no change are kept
    byte for byte.

    Example:
        prepare_image(photo_bytes, image_size=224).encoded    # 224×224 JPEG bytes
    """
    formats = SUPPORTED_FORMATS | CONVERTED_FORMATS
    image = open_image(data, max_pixels=max_pixels, formats=formats)
    source_format = formats[image.format]
    mode = "L" if channels == 1 else "RGB"
    shrink = bool(image_size) and image.width * image.height > image_size * image_size
    if shrink and source_format == "jpeg":
        image.draft(image.mode, (image_size, image_size))  # libjpeg's DCT scaling, never below the target
    try:
        image.load()
    except Exception as error:
        raise InvalidImage(f"corrupt or truncated {source_format.upper()} ({error})") from None
    changed = shrink or image.mode != mode or source_format not in ("jpeg", "png")
    if image.mode != mode:
        image = _convert(image, mode)
    if shrink:
        image = image.resize((image_size, image_size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    if not changed:
        return PreparedImage(data, source_format, image.width, image.height)
    out_format = "jpeg" if source_format == "jpeg" else "png"
    buffer = io.BytesIO()
    if out_format == "jpeg":
        image.save(buffer, format="JPEG", quality=90)
    else:
        image.save(buffer, format="PNG", optimize=False)
    return PreparedImage(buffer.getvalue(), out_format, image.width, image.height)


def _convert(image: Image.Image, mode: str) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: scale to 8 bits instead of letting PIL clip at 255.
        image = image.point(lambda value: value / 256).convert("L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return image.convert(mode)
