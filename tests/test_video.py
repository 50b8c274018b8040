"""corolla.data.video on real files PyAV writes: every container and codec, sampling by time,
rotation, frame folders, and every kind of bad input."""

from __future__ import annotations

import bisect
import concurrent.futures
import io
import multiprocessing
import time

import av
import numpy as np
import pytest
from PIL import Image

from corolla.data import video
from corolla.data.images import InvalidImage
from corolla.data.video import ClipInfo, ClipTooLarge, InvalidClip, probe_clip, read_clip, read_frame_folder, sample_times
from tests import clipgen
from tests.conftest import encode
from tests.clipgen import counter_index, make_clip, make_counter_clip

FORMATS = [  # (codec, container): everything corolla reads
    ("libx264", "mp4"),
    ("libx264", "mov"),
    ("libx264", "matroska"),
    ("libvpx", "webm"),
    ("libvpx-vp9", "webm"),
    ("libvpx-vp9", "matroska"),
    ("mpeg4", "avi"),
    ("mjpeg", "avi"),
    ("gif", "gif"),
]


def pixels(frame: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(frame)).convert("RGB"), np.float64)


def indices(clip, count):
    return [counter_index(frame, count) for frame in clip.frames]


@pytest.mark.parametrize("codec, container", FORMATS)
def test_every_format_samples_uniformly_over_the_real_duration(codec, container):
    data = make_counter_clip(frames=24, fps=8, codec=codec, container=container)
    clip = read_clip(data, frames=8)
    # 3 s clip, 8 targets at the centres of 8 equal intervals: (i + 1/2) · 3/8 s, frames 1, 4, 7, …
    assert indices(clip, 24) == [1, 4, 7, 10, 13, 16, 19, 22]
    assert clip.timestamps == pytest.approx([k / 8 for k in (1, 4, 7, 10, 13, 16, 19, 22)], abs=0.006)
    assert (clip.width, clip.height, clip.info.width, clip.info.height) == (64, 48, 64, 48)
    assert clip.info.duration_s == pytest.approx(3.0, abs=0.02)
    assert clip.info.fps == pytest.approx(8.0, rel=0.01)
    assert (clip.info.rotation, clip.info.variable_frame_rate) == (0, False)
    assert clip.info.codec == {"libx264": "h264", "libvpx": "vp8", "libvpx-vp9": "vp9"}.get(codec, codec)
    assert all(frame[:2] == b"\xff\xd8" for frame in clip.frames)  # JPEG
    assert probe_clip(data) == clip.info
    assert video.is_video(data)


def test_sampling_picks_the_frame_on_screen_at_each_centre():
    clip = read_clip(make_counter_clip(frames=40), frames=16)
    assert indices(clip, 40) == [int((i + 0.5) * 40 / 16) for i in range(16)]


def test_variable_frame_rate_uses_real_timestamps():
    times = clipgen.vfr_times(12, fps=8, seed=1)
    for codec, container in [("libx264", "mp4"), ("libvpx-vp9", "webm")]:
        clip = read_clip(make_counter_clip(frames=12, times=times, codec=codec, container=container), frames=8)
        duration = clip.info.duration_s
        assert times[-1] < duration <= times[-1] + 0.2
        targets = [(i + 0.5) * duration / 8 for i in range(8)]
        expected = [bisect.bisect_right(times, t) - 1 for t in targets]
        assert indices(clip, 12) == expected, container
        assert clip.timestamps == pytest.approx([times[k] for k in expected], abs=0.002)
        assert clip.info.variable_frame_rate
    assert not probe_clip(make_counter_clip(frames=12)).variable_frame_rate


def test_duration_comes_from_the_timestamps_when_the_header_is_wrong():
    # x264 with B-frames and uneven timestamps: the MP4 header says 1.497 s, the frames run to 1.623 s.
    times = clipgen.vfr_times(12, fps=8, seed=0)
    data = make_counter_clip(frames=12, times=times)
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        header = float(stream.duration * stream.time_base)
    info = probe_clip(data)
    assert info.duration_s == pytest.approx(times[-1] + 1 / 8, abs=0.002)
    assert abs(header - info.duration_s) > 0.1


def test_duration_is_found_from_the_frames_when_the_header_has_none():
    data = clipgen.write_video(None, clipgen.counter_pictures(24), codec="libvpx", options={"live": "1"})
    with av.open(io.BytesIO(data)) as container:
        assert container.duration is None and container.streams.video[0].duration is None
    clip = read_clip(data, frames=8)
    assert clip.info.duration_s == pytest.approx(3.0)
    assert indices(clip, 24) == [1, 4, 7, 10, 13, 16, 19, 22]


def test_fps_mode_takes_a_frame_every_1_over_fps_seconds():
    clip = read_clip(make_counter_clip(frames=24, fps=8), frames=None, fps=2)
    assert indices(clip, 24) == [0, 4, 8, 12, 16, 20]
    assert clip.timestamps == pytest.approx([0, 0.5, 1, 1.5, 2, 2.5], abs=0.001)


def test_a_short_clip_gives_each_frame_once():
    for codec in ("libx264", "gif"):
        clip = read_clip(make_counter_clip(frames=10, codec=codec), frames=16)
        assert indices(clip, 10) == list(range(10))
        assert clip.timestamps == sorted(clip.timestamps)
    one = read_clip(make_counter_clip(frames=1, codec="mjpeg"), frames=16)
    assert len(one.frames) == 1 and one.timestamps == [0.0]


def test_sample_times_formula_and_arguments():
    assert sample_times(2.0, frames=4) == [0.25, 0.75, 1.25, 1.75]
    assert sample_times(1.0, frames=None, fps=4) == [0.0, 0.25, 0.5, 0.75]
    assert len(sample_times(1.1, frames=None, fps=4)) == 5
    assert sample_times(0.0, frames=None, fps=4) == [0.0]
    with pytest.raises(ValueError, match="exactly one of"):
        sample_times(1.0, fps=4)  # frames keeps its default of 16
    with pytest.raises(ValueError, match="Received: frames=None, fps=None"):
        sample_times(1.0, frames=None)
    with pytest.raises(ValueError, match="frames=0"):
        sample_times(1.0, frames=0)
    with pytest.raises(ValueError, match="duration_s"):
        sample_times(-1.0)


@pytest.mark.parametrize("container", ["mp4", "mov", "matroska"])
@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_clips_come_out_upright(rotation, container):
    data = make_clip(rotation=rotation, container=container, seed=5)
    with av.open(io.BytesIO(data)) as opened:  # the file really is stored turned, with a display matrix
        frame = next(opened.decode(video=0))
        assert (-frame.rotation) % 360 == rotation
        assert (frame.width, frame.height) == ((48, 64) if rotation % 180 else (64, 48))
    upright = read_clip(make_clip(container=container, seed=5), frames=4)
    clip = read_clip(data, frames=4)
    assert clip.info == probe_clip(data)
    assert (clip.info.rotation, clip.info.width, clip.info.height, clip.width, clip.height) == (rotation, 64, 48, 64, 48)
    for turned, reference in zip(clip.frames, upright.frames):
        assert np.abs(pixels(turned) - pixels(reference)).mean() < 6
        assert np.abs(pixels(turned)[::-1, ::-1] - pixels(reference)).mean() > 10  # a wrong turn would show


@pytest.mark.parametrize("codec, container", [("mjpeg", "avi"), ("libvpx-vp9", "webm"), ("gif", "gif")])
def test_odd_frame_sizes(codec, container):
    data = make_clip(size=(161, 97), frames=6, codec=codec, container=container)
    assert (read_clip(data).width, read_clip(data).height) == (161, 97)
    assert (read_clip(data, image_size=32).width, read_clip(data, image_size=32).height) == (32, 32)
    assert read_clip(data, image_size=200).width == 161  # 161×97 < 200²: never enlarged


def test_encode_frame_resizes_as_images_are():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (97, 161, 3), dtype=np.uint8)
    reference = io.BytesIO()
    Image.fromarray(rgb).resize((32, 32), Image.Resampling.BILINEAR, reducing_gap=2.0).save(reference, format="JPEG", quality=90)
    assert video.encode_frame(rgb, image_size=32) == (reference.getvalue(), 32, 32)
    assert video.encode_frame(rgb, image_size=None)[1:] == (161, 97)
    grey = video.encode_frame(rgb[:, :, 0], image_size=None)[0]
    assert Image.open(io.BytesIO(grey)).mode == "RGB"
    with pytest.raises(ValueError, match="Received: shape=\\(4, 4\\), dtype=float64"):
        video.encode_frame(np.zeros((4, 4)), image_size=None)


def _read(data):
    return read_clip(data, frames=8, image_size=32).frames


def test_same_bytes_same_frames_in_threads_and_processes():
    data = make_clip(frames=24, seed=2)
    reference = _read(data)
    assert _read(data) == reference
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        assert all(frames == reference for frames in pool.map(_read, [data] * 8))
    # Spawned, not forked: a fork of this multi-threaded process (TensorFlow's, servers' and Beam's threads
    # from earlier tests in the same worker) can deadlock in the child, and then the whole suite waits.
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        assert all(frames == reference for frames in pool.map(_read, [data] * 4))


def _half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _garbled(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes() + data[middle + 3000 :]


def _faststart_cut(tmp_path) -> bytes:
    """An MP4 with its index first (as phones and web servers write them), cut in the middle of its frames."""
    path = tmp_path / "faststart.mp4"
    with av.open(str(path), "w", options={"movflags": "faststart"}) as output:
        stream = output.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for picture in clipgen.draw_frames(frames=40):
            output.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        output.mux(stream.encode())
    assert path.read_bytes()[36:40] == b"moov"
    return _half(path.read_bytes())


BAD = {  # name: (make(tmp_path) -> bytes, the reason's pattern)
    "empty": (lambda _: b"", "empty file"),
    "text named .mp4": (lambda tmp: _write(tmp / "notes.mp4", b"just some notes, not a video\n" * 20), "not a video"),
    "png image": (lambda _: encode(np.zeros((8, 8, 3), np.uint8)), "not a video"),
    "mp3 audio": (lambda _: clipgen.make_audio_only(codec="libmp3lame"), "not a video"),
    "truncated mp4": (lambda _: _half(make_clip(frames=40)), "truncated MP4/MOV: it has no 'moov'"),
    "truncated faststart mp4": (_faststart_cut, "corrupt or truncated video"),
    "garbled mp4": (lambda _: _garbled(make_clip(frames=40)), "corrupt or truncated video"),
    "zero frames": (lambda _: clipgen.make_empty_video(), "the video stream has no frames"),
    "aac audio only": (lambda _: clipgen.make_audio_only(codec="aac"), "no video stream \\(audio only\\)"),
    "opus audio only": (lambda _: clipgen.make_audio_only(codec="libopus"), "no video stream \\(audio only\\)"),
}


def _write(path, data: bytes) -> bytes:
    path.write_bytes(data)
    return path.read_bytes()


@pytest.mark.parametrize("name", BAD)
def test_bad_input_is_an_invalid_clip_with_a_reason(name, tmp_path):
    make, reason = BAD[name]
    data = make(tmp_path)
    with pytest.raises(InvalidClip, match=reason) as raised:
        read_clip(data)
    assert isinstance(raised.value, InvalidImage)  # `prepare` skips it like a bad image
    if name != "garbled mp4":  # found only by decoding it all
        with pytest.raises(InvalidClip, match=reason):
            probe_clip(data)
    if name in ("empty", "text named .mp4", "png image", "mp3 audio", "aac audio only"):
        assert not video.is_video(data)


@pytest.fixture
def no_decoding(monkeypatch):
    def refuse(*args):
        raise AssertionError("a frame was decoded before the limits were checked")

    monkeypatch.setattr(video, "_frames", refuse)


@pytest.mark.parametrize("codec, container", [("libx264", "mp4"), ("libvpx", "webm"), ("gif", "gif")])
def test_too_long_or_too_large_is_refused_before_decoding(no_decoding, codec, container):
    data = make_clip(frames=4, fps=1, codec=codec, container=container)  # 4 s
    with pytest.raises(ClipTooLarge, match="clip too long: 4.0 s exceeds the limit of 2 s"):
        read_clip(data, max_seconds=2)
    with pytest.raises(ClipTooLarge, match="frame too large: 64x48 pixels exceeds the limit of 1,000"):
        probe_clip(data, max_pixels=1000)
    with pytest.raises(ClipTooLarge, match="too many frames: more than 24"):  # 40 frames in 0.08 s
        read_clip(make_clip(frames=40, fps=500, codec="mjpeg"), max_seconds=0.1)


def test_decoding_is_bounded_in_time(monkeypatch):
    with pytest.raises(InvalidClip, match="decoding took longer than 0 s"):
        read_clip(make_clip(), timeout_s=0)
    decode = video._frames

    def slowly(container, stream):  # a clip that decodes at 20 frames a second
        for frame in decode(container, stream):
            time.sleep(0.05)
            yield frame

    monkeypatch.setattr(video, "_frames", slowly)
    started = time.monotonic()
    with pytest.raises(InvalidClip, match="decoding took longer than 0.2 s"):
        read_clip(make_clip(frames=40), timeout_s=0.2)
    assert time.monotonic() - started < 0.5


def test_is_video_sniffs_content():
    assert video.is_video(make_clip(codec="gif"))
    assert not video.is_video(encode(np.zeros((8, 8, 3), np.uint8), "GIF"))  # a still GIF is an image
    assert not video.is_video(clipgen.make_audio_only(codec="aac"))  # M4A brand
    assert not video.is_video(b"") and not video.is_video(b"RIFF\0\0\0\0WAVEfmt ")


def test_frame_folder_is_sorted_numerically(tmp_path):
    pictures = clipgen.counter_pictures(12)
    clipgen.make_frame_folder(tmp_path, pattern="{}", pictures=pictures[:6])  # 1.png … 6.png
    clipgen.make_frame_folder(tmp_path, pattern="{}", suffix=".jpg", start=7, pictures=pictures[6:])  # 7.jpg … 12.jpg
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / ".DS_Store").write_bytes(b"\0junk")
    everything = read_frame_folder(tmp_path, frames=None, fps=25)  # 10.jpg after 9.jpg, not after 1.png
    assert indices(everything, 12) == list(range(12))
    clip = read_frame_folder(tmp_path, frames=4, image_size=16)
    assert indices(clip, 12) == [1, 4, 7, 10]
    assert clip.timestamps == pytest.approx([0.04, 0.16, 0.28, 0.40])
    assert clip.info == ClipInfo(64, 48, 0.48, 25.0, 0, "png", False)
    assert (clip.width, clip.height) == (16, 16)
    assert len(read_frame_folder(tmp_path, frames=16, assumed_fps=8).frames) == 12


def test_frame_folder_errors(tmp_path):
    clipgen.make_frame_folder(tmp_path / "ok", frames=3)
    assert len(read_frame_folder(tmp_path / "ok").frames) == 3  # frame_0001.png …
    with pytest.raises(ClipTooLarge, match="frame_0001.png is 64x48 pixels"):
        read_frame_folder(tmp_path / "ok", max_pixels=1000)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidClip, match="no frame images"):
        read_frame_folder(tmp_path / "empty")
    clipgen.make_frame_folder(tmp_path / "twice", frames=2)
    clipgen.make_frame_folder(tmp_path / "twice", pattern="{:02d}", frames=1)
    with pytest.raises(InvalidClip, match="have the same number 1"):
        read_frame_folder(tmp_path / "twice")
    clipgen.make_frame_folder(tmp_path / "unnamed", frames=2)
    (tmp_path / "unnamed" / "cover.png").write_bytes((tmp_path / "ok" / "frame_0001.png").read_bytes())
    with pytest.raises(InvalidClip, match="'cover.png' has no number"):
        read_frame_folder(tmp_path / "unnamed")
    clipgen.make_frame_folder(tmp_path / "broken", frames=2)
    (tmp_path / "broken" / "frame_0003.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(InvalidClip, match="frame_0003.png is not a readable image"):
        read_frame_folder(tmp_path / "broken", frames=None, fps=25)
    clipgen.make_frame_folder(tmp_path / "mixed", frames=2)
    clipgen.make_frame_folder(tmp_path / "mixed", start=3, frames=1, size=(32, 32))
    with pytest.raises(InvalidClip, match="frames differ in size"):
        read_frame_folder(tmp_path / "mixed")


def test_clipgen_only_the_order_tells_the_class():
    for forward, backward in [("right", "left"), ("grow", "shrink")]:
        boxes = clipgen.square_boxes(direction=forward, frames=9, seed=4)
        assert clipgen.square_boxes(direction=backward, frames=9, seed=4) == boxes[::-1]
        assert len(set(boxes)) == 9
    frames = clipgen.draw_frames(direction="right", colour=(10, 200, 30), frames=5, seed=1)
    x, y, side = clipgen.square_boxes(direction="right", frames=5, seed=1)[2]
    assert (frames[2][y : y + side, x : x + side] == (10, 200, 30)).all()
    left = clipgen.draw_frames(direction="left", colour=(10, 200, 30), frames=5, seed=1)
    assert abs(np.mean(frames) - np.mean(left)) < 0.5  # same pixels on average, square and noise alike
