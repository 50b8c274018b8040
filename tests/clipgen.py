"""Small real video files for tests, written with PyAV: fast enough to make hundreds.

A clip is a coloured square on a noisy grey background that moves right, left, grows or shrinks.
Its positions over a clip are the same set for "right" and "left" (and for "grow" and "shrink"),
only in opposite order, so no single frame tells the class: only the order does.

Measured on 2 shared CPU cores (load ~3), 100 clips of 64×48, 16 frames at 8 fps take: H.264/MP4
0.7–0.8 s, VP8/WebM 0.6–0.7 s, VP9/WebM 1.5–1.8 s, MPEG-4/AVI 0.3–0.5 s, MJPEG/AVI 0.6 s,
GIF 0.8–1.0 s.

Example:
    data = make_clip("left.mp4", direction="left", colour=(210, 40, 40), seed=3)
"""

from __future__ import annotations

import io
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

DIRECTIONS = ("right", "left", "grow", "shrink")
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".webm": "webm", ".mkv": "matroska", ".avi": "avi", ".gif": "gif"}
CODEC_CONTAINERS = {"libx264": "mp4", "libvpx": "webm", "libvpx-vp9": "webm", "mpeg4": "avi", "mjpeg": "avi", "gif": "gif"}
AUDIO_CONTAINERS = {"aac": "mp4", "libopus": "webm", "libmp3lame": "mp3", "pcm_s16le": "wav"}
# Fast settings: test clips need to be valid files, not good-looking ones.
_VPX_FAST = {"deadline": "realtime", "cpu-used": "8"}
_CODEC_OPTIONS = {"libx264": {"preset": "veryfast"}, "libvpx": _VPX_FAST, "libvpx-vp9": _VPX_FAST}  # veryfast keeps B-frames
_PIXEL_FORMATS = {"mjpeg": "yuvj420p", "gif": "pal8"}
COUNTER_LOW, COUNTER_HIGH = 16, 240  # grey levels of the first and last frame of a counter clip


def square_boxes(*, direction: str = "right", frames: int = 16, size=(64, 48), seed: int = 0) -> list[tuple[int, int, int]]:
    """(x, y, side) of the square in each frame; "left" is "right" reversed, "shrink" is "grow" reversed."""
    if direction not in DIRECTIONS:
        raise ValueError(f"Unknown direction {direction!r}. Available: {', '.join(DIRECTIONS)}")
    width, height = size
    rng = np.random.default_rng(seed)
    small = min(width, height)
    if direction in ("right", "left"):
        side = max(3, small // 4)
        y = (height - side) // 2 + int(rng.integers(-(height - side) // 4, (height - side) // 4 + 1))
        xs = np.linspace(0, width - side, frames).round().astype(int)
        boxes = [(int(x), y, side) for x in xs]
    else:
        sides = np.linspace(max(2, small // 8), small * 3 // 4, frames).round().astype(int)
        dx, dy = (int(v) for v in rng.integers(-small // 8, small // 8 + 1, size=2))
        boxes = [(max(0, (width - s) // 2 + dx), max(0, (height - s) // 2 + dy), int(s)) for s in sides]
    return boxes[::-1] if direction in ("left", "shrink") else boxes


def draw_frames(*, direction: str = "right", colour=(210, 40, 40), frames: int = 16, size=(64, 48), seed: int = 0) -> list[np.ndarray]:
    """The upright pictures of a clip, H×W×3 uint8: fresh background noise in every frame."""
    width, height = size
    rng = np.random.default_rng(seed + 1_000_003)
    grey = rng.normal(128, 18, (frames, height, width)).clip(0, 255).astype(np.uint8)
    pictures = np.repeat(grey[..., None], 3, axis=3)
    for picture, (x, y, side) in zip(pictures, square_boxes(direction=direction, frames=frames, size=size, seed=seed)):
        picture[y : y + side, x : x + side] = colour
    return list(pictures)


def counter_pictures(frames: int, *, size=(64, 48)) -> list[np.ndarray]:
    """Flat grey frames whose brightness encodes their index (read it back with `counter_index`)."""
    width, height = size
    return [np.full((height, width, 3), _level(index, frames), np.uint8) for index in range(frames)]


def counter_index(frame: bytes | np.ndarray, frames: int) -> int:
    """The index a counter frame (JPEG bytes or an array) encodes, robust to lossy codecs."""
    pixels = np.asarray(Image.open(io.BytesIO(frame)).convert("L") if isinstance(frame, bytes) else frame, np.float64)
    return int(np.argmin([abs(pixels.mean() - _level(index, frames)) for index in range(frames)]))


def write_video(path, pictures, *, fps: float = 8, codec: str = "libx264", container: str | None = None,
                rotation: int = 0, times=None, options: dict[str, str] | None = None) -> bytes:
    """Encode upright H×W×3 pictures; `times` (seconds, rising) gives each frame's timestamp.

    `options` go to the muxer, e.g. {"live": "1"} for a WebM with no duration in its header.

    `rotation` is the clockwise turn a player applies (a phone's "rotate" tag): frames are stored
    turned the other way and the display matrix says how to turn them back.
    """
    container = container or (CONTAINERS[Path(path).suffix.lower()] if path else CODEC_CONTAINERS[codec])
    if rotation % 90:
        raise ValueError(f"rotation must be a multiple of 90. Received: rotation={rotation}")
    stored = [np.ascontiguousarray(np.rot90(p, rotation // 90 % 4)) for p in pictures]
    height, width = stored[0].shape[:2]
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container, options=options) as output:
        stream = output.add_stream(codec, rate=Fraction(fps).limit_denominator(1000), options=_CODEC_OPTIONS.get(codec, {}))
        stream.width, stream.height = width, height
        stream.pix_fmt = _PIXEL_FORMATS.get(codec, "yuv420p")
        stream.codec_context.thread_count = 1
        if times is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation % 360:
            stream.set_display_rotation(-rotation)  # PyAV counts counter-clockwise
        for index, picture in enumerate(stored):
            frame = _gif_frame(picture) if codec == "gif" else av.VideoFrame.from_ndarray(picture, format="rgb24")
            if times is not None:
                frame.pts, frame.time_base = round(times[index] * 1000), Fraction(1, 1000)
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return _save(path, buffer.getvalue())


def make_clip(path=None, *, direction: str = "right", colour=(210, 40, 40), frames: int = 16, size=(64, 48), fps: float = 8,
              codec: str = "libx264", container: str | None = None, rotation: int = 0, variable_frame_rate: bool = False,
              seed: int = 0) -> bytes:
    """A moving-square clip (see the module docstring); writes `path` when given and returns the bytes.

    With variable_frame_rate, frame intervals vary between 0.4 and 1.6 × 1/fps (seeded).
    `container` defaults from the suffix of `path`, else from the codec.
    """
    pictures = draw_frames(direction=direction, colour=colour, frames=frames, size=size, seed=seed)
    times = vfr_times(frames, fps=fps, seed=seed) if variable_frame_rate else None
    return write_video(path, pictures, fps=fps, codec=codec, container=container, rotation=rotation, times=times)


def make_counter_clip(path=None, *, frames: int = 10, size=(64, 48), fps: float = 8, codec: str = "libx264",
                      container: str | None = None, rotation: int = 0, times=None) -> bytes:
    """A clip of flat frames whose brightness is their index (`counter_index` reads it back)."""
    pictures = counter_pictures(frames, size=size)
    return write_video(path, pictures, fps=fps, codec=codec, container=container, rotation=rotation, times=times)


def vfr_times(frames: int, *, fps: float = 8, seed: int = 0) -> list[float]:
    """Rising timestamps (whole milliseconds) with intervals between 0.4 and 1.6 × 1/fps."""
    intervals = np.random.default_rng(seed).uniform(0.4, 1.6, frames - 1) / fps
    return [round(float(t), 3) for t in np.concatenate([[0.0], np.cumsum(intervals)])]


def make_audio_only(path=None, *, seconds: float = 0.5, codec: str = "aac", container: str | None = None) -> bytes:
    """A file with one audio stream (a 440 Hz tone) and no video: AAC/MP4 by default."""
    container = container or (CONTAINERS.get(Path(path).suffix.lower()) if path else None) or AUDIO_CONTAINERS[codec]
    rate = 48_000 if codec == "libopus" else 16_000
    tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as output:
        stream = output.add_stream(codec, rate=rate)
        for start in range(0, len(tone), 1024):
            frame = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return _save(path, buffer.getvalue())


def make_empty_video(path=None, *, container: str = "matroska") -> bytes:
    """A video stream with no frames (beside a short audio stream, so the muxer writes the file)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as output:
        codec = "libvpx" if container == "webm" else "mjpeg"
        video = output.add_stream(codec, rate=8)
        video.width, video.height, video.pix_fmt = 64, 48, _PIXEL_FORMATS.get(codec, "yuv420p")
        audio = output.add_stream("libopus" if container == "webm" else "aac", rate=48_000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 960), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 48_000, 0
        for packet in [*audio.encode(frame), *audio.encode(), *video.encode()]:
            output.mux(packet)
    return _save(path, buffer.getvalue())


def make_frame_folder(folder, *, pattern: str = "frame_{:04d}", suffix: str = ".png", start: int = 1, pictures=None,
                      **drawing) -> list[Path]:
    """Write a clip's frames as numbered images (`pattern` names them); `drawing` as in make_clip."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pictures = draw_frames(**drawing) if pictures is None else pictures
    paths = []
    for index, picture in enumerate(pictures, start=start):
        path = folder / (pattern.format(index) + suffix)
        Image.fromarray(picture).save(path, quality=95) if suffix.lower() in (".jpg", ".jpeg") else Image.fromarray(picture).save(path)
        paths.append(path)
    return paths


def _level(index: int, frames: int) -> float:
    return COUNTER_LOW + (COUNTER_HIGH - COUNTER_LOW) * index / max(1, frames - 1)


def _gif_frame(picture: np.ndarray) -> av.VideoFrame:
    # The frame's own colours as its palette when they fit (they do here), so the GIF is lossless.
    packed = (picture[..., 0].astype(np.int32) << 16) | (picture[..., 1].astype(np.int32) << 8) | picture[..., 2]
    values, indices = np.unique(packed, return_inverse=True)
    if len(values) > 256:
        indexed = Image.fromarray(picture).quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        values, indices = np.array(indexed.getpalette()[: 256 * 3], np.int32).reshape(-1, 3) @ [1 << 16, 1 << 8, 1], np.asarray(indexed)
    palette = np.zeros((256, 4), np.uint8)
    palette[:, 0] = 255
    palette[: len(values), 1:] = np.stack([values >> 16, values >> 8 & 255, values & 255], axis=1)
    return av.VideoFrame.from_ndarray((indices.reshape(picture.shape[:2]).astype(np.uint8), palette), format="pal8")


def _save(path, data: bytes) -> bytes:
    if path is not None:
        os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
        Path(path).write_bytes(data)
    return data
