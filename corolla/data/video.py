"""Turn a video, or a folder of numbered frames, into the frames a clip model sees.

The one decoder for clips: `prepare`, `predict` and the server all call `read_clip` on the bytes
they hold, so all three see the same pixels. Frames are picked by time over the clip's real
duration (never from header frame counts), turned upright by the rotation metadata, resized as
images are (`corolla.data.images.prepare_image`) and stored as JPEG.

Example:
    clip = read_clip(open("wave.mp4", "rb").read(), frames=16, image_size=224)
    len(clip.frames), clip.info.duration_s      # (16, 3.2)
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import io
import math
import numbers
import os
import re
import statistics
import time
from fractions import Fraction

import av
import numpy as np
from PIL import Image

from corolla.data.images import DEFAULT_MAX_PIXELS, InvalidImage, _convert

PAD_VALUE = -1.0  # pixel value of the padding frames that follow a short clip in a clip tensor
DEFAULT_FRAMES = 16
DEFAULT_MAX_SECONDS = 120.0
VIDEO_SUFFIXES = (".mp4", ".m4v", ".webm", ".mkv", ".avi", ".mov", ".gif")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")  # disjoint from VIDEO_SUFFIXES
MAX_FRAME_RATE = 240  # frames allowed per second of `max_seconds`, and the highest `fps=`
JPEG_QUALITY = 90

_AUDIO_BRANDS = (b"M4A ", b"M4B ", b"M4P ", b"F4A ")
_IMAGE_BRANDS = (b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis")
_FORMAT_NAMES = {"mov": "MP4/MOV", "matroska": "MKV/WebM", "avi": "AVI", "gif": "GIF"}
_NUMBER = re.compile(r"(\d+)\D*$")  # the last number in a file name


class InvalidClip(InvalidImage):
    """The bytes are not a clip corolla can use; the message is the reason."""


class ClipTooLarge(InvalidClip):
    """Too long, or too many pixels a frame: found from the container before any frame is decoded."""


@dataclasses.dataclass(frozen=True)
class ClipInfo:
    width: int  # display size, after the rotation is applied
    height: int
    duration_s: float  # first frame's start to last frame's end, from the packet timestamps
    fps: float  # frames / duration_s
    rotation: int  # clockwise degrees that turn stored frames upright (the old "rotate" tag's sense)
    codec: str
    variable_frame_rate: bool  # frame intervals differ by more than 10%


@dataclasses.dataclass(frozen=True)
class Clip:
    frames: list[bytes]  # JPEG, upright, in time order
    timestamps: list[float]  # seconds from the clip's first frame
    info: ClipInfo
    width: int  # size of the stored frames
    height: int


@dataclasses.dataclass(frozen=True)
class _Scan:  # what the headers and packet timestamps say; no frame decoded
    width: int  # stored size, before rotation
    height: int
    codec: str
    start: Fraction  # seconds
    duration: Fraction
    packets: int
    variable: bool


def is_video(data: bytes) -> bool:
    """Whether the content is a container `read_clip` reads: a cheap sniff of its first bytes.

    An MP4 whose index lists no video track is not a video, nor is a still GIF; an audio-only
    MKV/WebM passes here and `read_clip` then refuses it ("no video stream").

    Example:
        is_video(open("wave.mp4", "rb").read())    # True, whatever the file is called
    """
    kind = _sniff(data)
    if kind == "mov":  # audio-only when the index lists no video track ('vide' handler)
        moov = _moov(data)
        return data[8:12] not in _AUDIO_BRANDS and (moov is None or re.search(rb"hdlr.{8}vide", moov, re.S) is not None)
    if kind == "gif":
        try:
            return bool(getattr(Image.open(io.BytesIO(data)), "is_animated", False))
        except Exception:
            return False
    return kind is not None


def sample_times(duration_s: float, *, frames: int | None = DEFAULT_FRAMES, fps: float | None = None) -> list[float]:
    """Sample times in seconds from the clip's start; pass exactly one of `frames` or `fps`.

    `frames=N`: the centres of N equal intervals, t_i = (i + 1/2) · duration_s / N for i = 0 … N−1.
    `fps=F`: every 1/F s, t_i = i / F for i = 0 … ⌈duration_s · F⌉ − 1 (always at least one).
    `read_clip` keeps, for each t_i, the frame on screen at that time (the last with pts ≤ t_i).

    Example:
        sample_times(2.0, frames=4)              # [0.25, 0.75, 1.25, 1.75]
        sample_times(1.0, frames=None, fps=4)    # [0.0, 0.25, 0.5, 0.75]
    """
    _check_arguments(frames, fps)
    if not (isinstance(duration_s, numbers.Real) and 0 <= duration_s < math.inf):
        raise ValueError(f"`duration_s` must be a finite number of seconds >= 0. Received: duration_s={duration_s!r}")
    return [float(t) for t in _times(Fraction(duration_s), frames, fps)]


def probe_clip(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_seconds: float = DEFAULT_MAX_SECONDS) -> ClipInfo:
    """Size, duration, frame rate and rotation from the headers and packet timestamps.

    No pixel is converted; the first frame is decoded only because PyAV reads the display
    matrix (rotation) from decoded frames, and only once the size and length limits have passed.

    Example:
        probe_clip(phone_video_bytes)    # ClipInfo(width=1080, height=1920, duration_s=3.2, rotation=90, ...)
    """
    with _opened(data, max_pixels) as (container, stream):
        scan = _scan(container, stream, max_pixels=max_pixels, max_seconds=max_seconds, deadline=math.inf, timeout_s=math.inf)
    with _opened(data, max_pixels) as (container, stream):
        turns = next((_quarter_turns(frame) for frame in _frames(container, stream)), 0)
    return _info(scan, turns)


def read_clip(
    data: bytes,
    *,
    frames: int | None = DEFAULT_FRAMES,
    fps: float | None = None,
    image_size: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    timeout_s: float = 30.0,
) -> Clip:
    """Decode the frames at `sample_times` over the clip's real duration, upright, as JPEG.

    A clip with no more frames than sample times gives each of its frames once, in order (so
    `len(clip.frames)` is min(asked, frames in the clip) and the model masks the rest). Limits
    are checked from the container before decoding (ClipTooLarge); decoding stops after
    `timeout_s` or max_seconds × 240 frames (InvalidClip). The same bytes give the same frames.

    Example:
        clip = read_clip(data, frames=16, image_size=224)    # clip.frames: 16 JPEGs, 224×224
    """
    _check_arguments(frames, fps, image_size)
    deadline = time.monotonic() + timeout_s
    with _opened(data, max_pixels) as (container, stream):
        scan = _scan(container, stream, max_pixels=max_pixels, max_seconds=max_seconds, deadline=deadline, timeout_s=timeout_s)
    targets = [scan.start + t for t in _times(scan.duration, frames, fps)]
    limits = dict(image_size=image_size, max_pixels=max_pixels, max_frames=int(max_seconds * MAX_FRAME_RATE))
    limits.update(deadline=deadline, timeout_s=timeout_s)
    keep_all = scan.packets <= len(targets)
    kept, count, turns = _decode(data, targets, keep_all=keep_all, **limits)
    if (count <= len(targets)) != keep_all:  # frames and packets differ in number (packed or broken frames)
        keep_all = not keep_all
        kept, count, turns = _decode(data, targets, keep_all=keep_all, **limits)
    (_, width, height) = kept[0][1]
    return Clip([frame for _, (frame, _, _) in kept], [float(t - scan.start) for t, _ in kept], _info(scan, turns), width, height)


def read_frame_folder(
    folder: str | os.PathLike,
    *,
    frames: int | None = DEFAULT_FRAMES,
    fps: float | None = None,
    image_size: int | None = None,
    assumed_fps: float = 25.0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Clip:
    """A clip from numbered frame images (frame_0001.png, 2.jpg, …), in numeric order.

    Frame k is taken to be on screen from k / assumed_fps to (k + 1) / assumed_fps, then sampled
    as `read_clip` samples a video.

    Example:
        read_frame_folder("jumps/0007", frames=16, image_size=112)
    """
    _check_arguments(frames, fps, image_size)
    if not (isinstance(assumed_fps, numbers.Real) and 0 < assumed_fps < math.inf):
        raise ValueError(f"`assumed_fps` must be a positive number of frames a second. Received: assumed_fps={assumed_fps!r}")
    paths, rate = _numbered_frames(folder), Fraction(assumed_fps)
    times = _times(len(paths) / rate, frames, fps)
    indices = range(len(paths)) if len(paths) <= len(times) else [min(len(paths) - 1, math.floor(t * rate)) for t in times]
    read = {index: _read_frame(paths[index], image_size, max_pixels) for index in dict.fromkeys(indices)}
    first = next(iter(read.values()))
    for index, frame in read.items():
        if frame[1:3] != first[1:3]:
            name = os.path.basename(paths[index])
            raise InvalidClip(f"frames differ in size: {name} is {frame[1]}x{frame[2]}, the first kept {first[1]}x{first[2]}")
    (width, height), codec = first[3], first[4]
    info = ClipInfo(width, height, float(len(paths) / rate), float(rate), 0, codec, False)
    return Clip([read[i][0] for i in indices], [float(i / rate) for i in indices], info, first[1], first[2])


def encode_frame(rgb: np.ndarray, *, image_size: int | None) -> tuple[bytes, int, int]:
    """The one resize + encode of a clip frame: RGB, squashed to image_size² if larger, JPEG q90.

    Frames with more than image_size² pixels become exactly image_size × image_size (PIL
    BILINEAR, reducing_gap=2.0, as `prepare_image` resizes images); smaller ones are never enlarged.

    Example:
        jpeg, width, height = encode_frame(np.zeros((480, 640, 3), np.uint8), image_size=224)   # 224, 224
    """
    _check_image_size(image_size)
    array = np.asarray(rgb)
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ValueError(
            "Expected a uint8 array shaped (H, W), (H, W, 1), (H, W, 3) or (H, W, 4). "
            f"Received: shape={array.shape}, dtype={array.dtype}"
        )
    image = Image.fromarray(np.ascontiguousarray(array[:, :, 0] if array.ndim == 3 and array.shape[2] == 1 else array))
    if image.mode != "RGB":
        image = _convert(image, "RGB")
    if image_size and image.width * image.height > image_size * image_size:
        image = image.resize((image_size, image_size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue(), image.width, image.height


def _sniff(data: bytes) -> str | None:
    """FFmpeg's demuxer for the container the bytes start with; only these are ever opened."""
    if data[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
        return None if data[8:12] in _IMAGE_BRANDS else "mov"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return "avi"
    return "gif" if data[:6] in (b"GIF87a", b"GIF89a") else None


def _moov(data: bytes) -> bytes | None:
    """The MP4/MOV index box, found by walking the top-level boxes; None when the file has none."""
    offset = 0
    while offset + 8 <= len(data):
        size, kind = int.from_bytes(data[offset : offset + 4], "big"), data[offset + 4 : offset + 8]
        if size == 1:
            size = int.from_bytes(data[offset + 8 : offset + 16], "big")
        if kind == b"moov":
            return data[offset : offset + size] if size >= 8 else data[offset:]
        if size < 8:  # 0 means "to the end of the file"
            return None
        offset += size
    return None


@contextlib.contextmanager
def _opened(data: bytes, max_pixels: int):
    """The open container (closed on exit: containers leak otherwise) and its video stream."""
    if not data:
        raise InvalidClip("empty file")
    kind = _sniff(data)
    if kind is None:
        raise InvalidClip("not a video (unrecognised content)")
    if kind == "mov" and _moov(data) is None:
        raise InvalidClip("truncated MP4/MOV: it has no 'moov' index (the file was cut short, or is still being written)")
    try:
        container = av.open(io.BytesIO(data), format=kind)
    except av.error.FFmpegError as error:
        raise InvalidClip(f"corrupt or truncated {_FORMAT_NAMES[kind]} ({_reason(error)})") from None
    with container:
        streams = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
        if not streams:
            raise InvalidClip("no video stream (audio only)" if container.streams.audio else "no video stream")
        stream = streams[0]
        # One decoder thread: FFmpeg's frame and slice thread pools can deadlock in forked
        # (Beam, multiprocessing) workers and when decoding stops early; we parallelise across clips.
        stream.codec_context.thread_count = 1
        # FFmpeg then refuses frames over the limit even where the bitstream disagrees with the header.
        stream.codec_context.options = {"max_pixels": str(max_pixels)}
        try:
            yield container, stream
        except av.error.FFmpegError as error:
            raise InvalidClip(f"corrupt or truncated video ({_reason(error)})") from None


def _scan(container, stream, *, max_pixels, max_seconds, deadline, timeout_s) -> _Scan:
    width, height, base = stream.codec_context.width, stream.codec_context.height, stream.time_base
    if not (width and height and base):
        raise InvalidClip("the video stream declares no frame size or time base")
    if width * height > max_pixels:
        raise ClipTooLarge(f"frame too large: {width}x{height} pixels exceeds the limit of {max_pixels:,}")
    declared = stream.duration * base if stream.duration else Fraction(container.duration or 0, 1_000_000)
    if declared > max_seconds:
        raise ClipTooLarge(f"clip too long: {float(declared):.1f} s exceeds the limit of {max_seconds:g} s")
    stamps, max_frames = [], int(max_seconds * MAX_FRAME_RATE)
    for packet in container.demux(stream):  # packets only: nothing is decoded here
        stamp = packet.pts if packet.pts is not None else packet.dts
        if packet.size == 0 or packet.is_discard or stamp is None:
            continue
        _check_clock(deadline, timeout_s)
        if packet.is_corrupt:  # what the demuxer says of a frame cut off by the end of the file
            raise InvalidClip(f"corrupt or truncated video (the frame at {float(stamp * base):.2f} s is incomplete)")
        stamps.append((stamp, packet.duration or 0))
        if len(stamps) > max_frames:
            limit = f"{MAX_FRAME_RATE} a second of the {max_seconds:g} s limit"
            raise ClipTooLarge(f"too many frames: more than {max_frames:,} ({limit})")
        if (stamp - stamps[0][0]) * base > max_seconds:
            raise ClipTooLarge(f"clip too long: more than the limit of {max_seconds:g} s")
    if not stamps:
        raise InvalidClip("the video stream has no frames")
    starts = sorted(stamp for stamp, _ in stamps)
    steps = [b - a for a, b in zip(starts, starts[1:]) if b > a]
    typical = statistics.median_low(steps) if steps else 0
    end = max(stamp + (length or typical) for stamp, length in stamps)
    duration = (end - starts[0]) * base
    if duration > max_seconds:
        raise ClipTooLarge(f"clip too long: {float(duration):.1f} s exceeds the limit of {max_seconds:g} s")
    # One tick of slack: a time base that cannot hold the frame rate exactly rounds intervals unevenly.
    variable = bool(steps) and max(steps) - min(steps) > max(min(steps) / 10, 1)
    return _Scan(width, height, stream.codec_context.name, starts[0] * base, duration, len(stamps), variable)


def _frames(container, stream):
    return container.decode(stream)  # one place, so tests can prove that limits fire before decoding


def _decode(data, targets, *, keep_all, image_size, max_pixels, max_frames, deadline, timeout_s):
    """Decode in order, keeping the frame on screen at each target (or, with keep_all, every frame).

    Returns ([(time, (jpeg, width, height))], frames decoded, quarter turns); with keep_all it
    stops at the first frame past len(targets), as the clip must then be sampled by time.
    """
    kept, count, turns, previous, pending = [], 0, 0, None, 0
    with _opened(data, max_pixels) as (container, stream):
        size, base = (stream.codec_context.width, stream.codec_context.height), stream.time_base
        for frame in _frames(container, stream):
            count += 1
            _check_clock(deadline, timeout_s)
            if count > max_frames:
                raise InvalidClip(f"too many frames: more than {max_frames:,} decoded")
            if count == 1:
                turns = _quarter_turns(frame)  # one rotation for all, so every frame has one size
            stamp = frame.pts if frame.pts is not None else frame.dts
            at = stamp * base if stamp is not None else Fraction(0)
            at = max(at, previous[1]) if previous else at  # broken files: never back in time
            if keep_all:
                if count > len(targets):
                    break
                kept.append((at, _encode(frame, size, turns, image_size)))
            elif previous is not None and (passed := bisect.bisect_left(targets, at, pending) - pending):
                kept.extend([(previous[1], _encode(previous[0], size, turns, image_size))] * passed)
                pending += passed
            previous = (frame, at)
            if not keep_all and pending == len(targets) and count > len(targets):
                break
        if not keep_all and previous is not None and pending < len(targets):
            kept.extend([(previous[1], _encode(previous[0], size, turns, image_size))] * (len(targets) - pending))
    if count == 0:
        raise InvalidClip("no frame of the video stream could be decoded")
    return kept, count, turns


def _encode(frame, size, turns, image_size):
    # Frames whose size changes mid-stream are scaled to the header's size, so a clip has one size.
    scale = {} if (frame.width, frame.height) == size else {"width": size[0], "height": size[1]}
    return encode_frame(np.rot90(frame.to_ndarray(format="rgb24", **scale), turns), image_size=image_size)


def _quarter_turns(frame) -> int:
    """Counter-clockwise quarter turns that show the frame upright: PyAV's `frame.rotation` is the
    display matrix's angle, counter-clockwise in degrees (MP4/MOV tkhd matrix, MKV projection)."""
    return round((frame.rotation or 0) / 90) % 4


def _info(scan: _Scan, turns: int) -> ClipInfo:
    width, height = (scan.height, scan.width) if turns % 2 else (scan.width, scan.height)
    fps = float(scan.packets / scan.duration) if scan.duration else 0.0
    return ClipInfo(width, height, float(scan.duration), fps, (-90 * turns) % 360, scan.codec, scan.variable)


def _times(duration: Fraction, frames: int | None, fps: float | None) -> list[Fraction]:
    # Exact fractions: a target on a frame boundary then picks the same frame on every machine.
    if frames is not None:
        return [duration * (2 * i + 1) / (2 * frames) for i in range(frames)]
    rate = Fraction(fps)
    return [i / rate for i in range(max(1, math.ceil(duration * rate)))]


def _numbered_frames(folder) -> list[str]:
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise InvalidClip(f"not a folder of frames: {folder}")
    numbered = {}
    for entry in os.scandir(folder):
        stem, suffix = os.path.splitext(entry.name)
        if entry.name.startswith(".") or suffix.lower() not in FRAME_SUFFIXES or not entry.is_file():
            continue
        match = _NUMBER.search(stem)
        if match is None:
            hint = "name frames like frame_0001.png so their order is known"
            raise InvalidClip(f"frame {entry.name!r} has no number in its name; {hint}")
        number = int(match.group(1))
        if number in numbered:
            pair = f"{numbered[number]!r} and {entry.name!r}"
            raise InvalidClip(f"frames {pair} have the same number {number}, so their order is unknown")
        numbered[number] = entry.name
    if not numbered:
        raise InvalidClip(f"no frame images ({', '.join(FRAME_SUFFIXES)}) in {folder}")
    return [os.path.join(folder, numbered[number]) for number in sorted(numbered)]


def _read_frame(path: str, image_size, max_pixels):
    """(jpeg, width, height, (source width, source height), format) of one frame image."""
    name = os.path.basename(path)
    try:
        with Image.open(path) as image:
            if image.width * image.height > max_pixels:
                size = f"{image.width}x{image.height}"
                raise ClipTooLarge(f"frame too large: {name} is {size} pixels, over the limit of {max_pixels:,}")
            image.load()
            source, kind = image.size, (image.format or "image").lower()
            rgb = np.asarray(image if image.mode == "RGB" else _convert(image, "RGB"))
    except InvalidClip:
        raise
    except Image.DecompressionBombError:
        raise ClipTooLarge(f"frame too large: {name} is over PIL's decompression-bomb limit") from None
    except Exception as error:
        raise InvalidClip(f"frame {name} is not a readable image ({error})") from None
    return (*encode_frame(rgb, image_size=image_size), source, kind)


def _check_arguments(frames, fps, image_size=None) -> None:
    _check_image_size(image_size)
    if (frames is None) == (fps is None):
        raise ValueError(
            "Pass exactly one of `frames` (a count spread over the clip) or `fps` (a rate; then pass frames=None). "
            f"Received: frames={frames!r}, fps={fps!r}"
        )
    if frames is not None and (isinstance(frames, bool) or not isinstance(frames, numbers.Integral) or frames < 1):
        raise ValueError(f"`frames` must be a positive integer. Received: frames={frames!r}")
    if fps is not None and not (isinstance(fps, numbers.Real) and 0 < fps <= MAX_FRAME_RATE):
        raise ValueError(f"`fps` must be above 0 and at most {MAX_FRAME_RATE}. Received: fps={fps!r}")


def _check_image_size(image_size) -> None:
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, numbers.Integral) or image_size < 1):
        raise ValueError(f"`image_size` must be a positive integer or None (keep the size). Received: image_size={image_size!r}")


def _check_clock(deadline: float, timeout_s: float) -> None:
    if time.monotonic() > deadline:
        raise InvalidClip(f"decoding took longer than {timeout_s:g} s (timeout_s); pass a larger timeout_s for slow clips")


def _reason(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error)
