"""The training decode and resize without TensorFlow: what the ONNX Runtime server decodes with.

`corolla.data.pipeline.decode_and_resize` is the one decode training, evaluation and export
share. A server that runs model.onnx need not hold TensorFlow (~550 MB) only for that, so this
module gives the very same pixels from libraries a tenth the size:
- JPEG through libjpeg-turbo (simplejpeg) with the fast integer IDCT and plain chroma
  upsampling, TensorFlow's own settings: the same bytes, bit for bit;
- PNG, GIF and BMP through Pillow, with libpng's RGB→gray weights where a colour image meets a
  grayscale model; GIF and BMP only for RGB models, as TensorFlow has it;
- bilinear resizing with half-pixel centres, and the triangle-kernel antialiased resize when
  shrinking more than 2×, as `tf.image.resize` computes them (float32; the antialiased one
  within 0.01 of 255 of TensorFlow's, its sums taken in another order).
tests/test_pixels_without_tf.py holds the two decoders to each other over every format and size.

One input TensorFlow decodes and this does not: a 16-bit colour PNG for a grayscale model
(Pillow reads 16-bit colour as 8 bits, and libpng converts to gray before dropping the low
byte). It is refused with its reason (NeedsTensorFlow), or handed to a `fallback` decoder.

Example:
    decode = PixelDecoder(image_size=28, channels=1)
    pixels = decode(open("shoe.png", "rb").read())     # float32 [28, 28, 1] in 0..255
"""

from __future__ import annotations

import functools
import io

import numpy as np

# libpng's png_set_rgb_to_gray(…, 0.299, 0.587) as TensorFlow calls it: 15-bit fixed-point weights, truncated.
_GRAY_WEIGHTS = (9797, 19234, 32768 - 9797 - 19234)


class NeedsTensorFlow(ValueError):
    """The one input only TensorFlow's own decoder gives the training pixels for."""


class PixelDecoder:
    """Encoded image → float32 [size, size, channels] in 0..255, equal to `decode_and_resize`; ValueError says why not.

    `fallback` (TensorFlow's decoder, where it is loaded anyway) decodes what only it can.
    """

    def __init__(self, *, image_size: int, channels: int, fallback=None):
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3. Received: channels={channels}")
        self.fallback = fallback
        self.image_size, self.channels = int(image_size), int(channels)

    def __call__(self, data: bytes, *, opened=None) -> np.ndarray:
        """`opened`: `data` as a PIL image whose header a caller already read, saving a second parse."""
        try:
            return resize(decode(data, channels=self.channels, opened=opened), image_size=self.image_size)
        except NeedsTensorFlow:
            if self.fallback is None:
                raise
            return self.fallback(data)


def decode(data: bytes, *, channels: int, opened=None) -> np.ndarray:
    """JPEG/PNG/GIF (first frame)/BMP bytes → uint8 [h, w, channels], as `corolla.data.pipeline.decode`."""
    if data[:3] == b"\xff\xd8\xff":
        return _jpeg(data, channels)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return _pillow(data, channels, "PNG", opened)
    if data[:4] == b"GIF8" or data[:2] == b"BM":
        fmt = "GIF" if data[:3] == b"GIF" else "BMP"
        if channels != 3:
            raise ValueError(f"channels must be 0 or 3 for {fmt}, got {channels}")
        return _pillow(data, channels, fmt, opened)
    raise ValueError("Unknown image file format. One of JPEG, PNG, GIF, BMP required.")


def _jpeg(data: bytes, channels: int) -> np.ndarray:
    import simplejpeg

    try:
        cmyk = simplejpeg.decode_jpeg_header(data)[2] == "CMYK"
        if cmyk and channels == 1:
            raise ValueError("Unsupported color conversion request")
        colorspace = "CMYK" if cmyk else "RGB" if channels == 3 else "GRAY"
        image = simplejpeg.decode_jpeg(data, colorspace=colorspace, fastdct=True, fastupsample=True, strict=True)
    except ValueError as error:
        raise ValueError(f"Invalid JPEG data or crop window ({error})") from None
    if cmyk:  # Adobe's inverted CMYK, converted as TensorFlow does: R = C·K / 255, …
        image = (image[..., :3].astype(np.uint16) * image[..., 3:] // 255).astype(np.uint8)
    return image.reshape(*image.shape[:2], channels)


def _pillow(data: bytes, channels: int, fmt: str, opened=None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        reuse = opened is not None and opened.format == fmt
        with opened if reuse else Image.open(io.BytesIO(data), formats=[fmt]) as image:
            image.load()  # the first frame
            mode, bits = image.mode, _png_bit_depth(data) if fmt == "PNG" else 8
            if mode.startswith("I"):  # 16-bit gray: its high byte, as libpng strips the low one
                gray = (np.asarray(image).astype(np.uint32) >> 8).astype(np.uint8)
                return np.repeat(gray[..., None], channels, axis=-1)
            if mode in ("1", "L", "LA", "La"):
                gray = np.asarray(image if mode == "L" else image.convert("L"))[..., None]
                return gray if channels == 1 else np.repeat(gray, channels, axis=-1)
            rgb = np.asarray(image.convert("RGB"))  # alpha dropped, not blended, as libpng's strip_alpha
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
        raise ValueError(f"cannot decode this {fmt} ({error})") from None
    if channels == 3:
        return rgb
    if bits == 16:
        raise NeedsTensorFlow("a 16-bit colour PNG cannot be decoded for a grayscale model without TensorFlow; save it as 8-bit or serve with --runtime tf")
    return _to_gray(rgb)[..., None]


def _to_gray(rgb: np.ndarray) -> np.ndarray:
    """libpng's rgb_to_gray for 8 bits: (rc·R + gc·G + bc·B) >> 15 where the pixel has colour, the value itself where it is gray."""
    r, g, b = (rgb[..., index].astype(np.uint32) for index in range(3))
    weighted = (_GRAY_WEIGHTS[0] * r + _GRAY_WEIGHTS[1] * g + _GRAY_WEIGHTS[2] * b) >> 15
    return np.where((r == g) & (g == b), r, weighted).astype(np.uint8)


def _png_bit_depth(data: bytes) -> int:
    return data[24] if len(data) > 24 else 8  # IHDR: signature 8, length 4, type 4, width 4, height 4, then the depth


def resize(image: np.ndarray, *, image_size: int) -> np.ndarray:
    """uint8 [h, w, c] → float32 [size, size, c] exactly as `corolla.data.pipeline.resize`."""
    height, width = image.shape[:2]
    if height == width == image_size:
        return image.astype(np.float32)
    if max(height, width) > 2 * image_size:
        return _antialiased(image.astype(np.float32), image_size)
    return _bilinear(image.astype(np.float32), image_size)


def _bilinear(image: np.ndarray, size: int) -> np.ndarray:
    """tf.image.resize(method="bilinear"): half-pixel centres, edges clamped, the lerps in TensorFlow's order."""
    top_row, bottom_row, y_lerp = _bilinear_taps(image.shape[0], size)
    left, right, x_lerp = _bilinear_taps(image.shape[1], size)
    x_lerp = x_lerp[None, :, None]
    top, bottom = image[top_row], image[bottom_row]
    top = top[:, left] + (top[:, right] - top[:, left]) * x_lerp
    bottom = bottom[:, left] + (bottom[:, right] - bottom[:, left]) * x_lerp
    return top + (bottom - top) * y_lerp[:, None, None]


@functools.lru_cache(maxsize=64)
def _bilinear_taps(in_size: int, out_size: int):
    scale = np.float32(in_size / out_size)
    position = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(position)
    lower = np.maximum(floor, 0).astype(np.intp)
    upper = np.minimum(np.ceil(position), in_size - 1).astype(np.intp)
    return lower, upper, (position - floor).astype(np.float32)


def _antialiased(image: np.ndarray, size: int) -> np.ndarray:
    """tf.image.resize(antialias=True): TensorFlow's scale_and_translate with a triangle kernel, columns then rows."""
    starts, weights = _triangle_taps(image.shape[1], size)
    columns = np.einsum("hokc,ok->hoc", image[:, starts], weights, optimize=True)
    starts, weights = _triangle_taps(image.shape[0], size)
    return np.einsum("okwc,ok->owc", columns[starts], weights, optimize=True)


@functools.lru_cache(maxsize=64)
def _triangle_taps(in_size: int, out_size: int):
    """(input index [out, taps], weight [out, taps]) of each output sample; zero weights pad short spans."""
    inverse_scale = in_size / out_size
    kernel_scale = max(inverse_scale, 1.0)
    radius = kernel_scale  # the triangle kernel's radius is 1
    centres = (np.arange(out_size) + 0.5) * inverse_scale
    first = np.maximum(np.ceil(centres - radius - 0.5).astype(np.intp), 0)
    last = np.minimum(np.floor(centres + radius - 0.5).astype(np.intp) + 1, in_size)
    taps = int((last - first).max())
    index = first[:, None] + np.arange(taps)
    weights = np.maximum(0.0, 1.0 - np.abs((index + 0.5 - centres[:, None]) / kernel_scale)).astype(np.float32)
    weights[index >= last[:, None]] = 0
    total = weights.sum(axis=1, keepdims=True)
    weights = np.where(np.abs(total) >= 1000 * np.finfo(np.float32).eps, weights / total, weights).astype(np.float32)
    return np.minimum(index, in_size - 1), weights
