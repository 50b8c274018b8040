"""One loaded model version, ready to answer: decoder, runtime and batcher together.

Images are checked (format, pixel count) and decoded on a small thread pool, one thread per
core, which also bounds the memory big images can take; their pixels then go through the
version's batcher. With the ONNX runtime they are decoded without TensorFlow
(`corolla.runtime.pixels`, bit-exact with training's decode), so TensorFlow is never loaded.

Example:
    servable = Servable(pathlib.Path("runs/fm/export/2"), runtime="auto")
    probabilities = await servable.predict_images([jpeg_bytes], deadline=time.monotonic() + 30)
    servable.answer(probabilities)["labels"]     # ["Sneaker"]
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import pathlib
import time

import numpy as np

from corolla.cores import schedulable_cores
from corolla.serve.batching import Batcher
from corolla.serve.limits import DEFAULT_MAX_PIXELS, ApiError, check_image, open_checked
from corolla.runtime.exported import Decoder, read_info
from corolla.runtime.pixels import PixelDecoder
from corolla.runtime.runners import load_runtime
from corolla.runtime.versions import version_of

INLINE_DECODE_PIXELS = 64 * 64  # per request; see predict_images
_DECODE_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=schedulable_cores(), thread_name_prefix="corolla-decode")


class Servable:
    def __init__(
        self,
        version_dir: pathlib.Path,
        *,
        runtime: str = "auto",
        max_batch_size: int = 32,
        batch_timeout_ms: float = 2.0,
        max_queue: int = 256,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        runtime_threads: int = 0,
        metrics=None,
    ):
        self.path = pathlib.Path(version_dir)
        self.version = version_of(self.path)
        info = read_info(self.path)
        self.labels: list[str] = info["labels"]
        self.image_size, self.channels = info["image_size"], info["channels"]
        self.kind, self.frames, self.task = info.get("kind", "images"), info.get("frames", 0), info.get("task", "classify")
        self.vocabulary, self.question_length = info.get("vocabulary", []), info.get("question_length", 0)
        self.max_pixels, self.runtime_threads = max_pixels, runtime_threads
        # Its timing is also the runtime's warm-up: each power-of-two batch size runs before the first client.
        self.runtime, self.batch_size, self.ms_per_image = load_runtime(self.path, runtime, max_batch_size=max_batch_size, threads=runtime_threads)
        if self.kind == "clips":
            from corolla.data.questions import vectorizer
            from corolla.runtime.exported import ClipDecoder

            self.decoder = ClipDecoder(frames=self.frames, image_size=self.image_size, channels=self.channels, max_pixels=max_pixels)
            self.vectorize = vectorizer(self.vocabulary, question_length=self.question_length) if self.task == "qa" else None
        else:  # the training pixels without TensorFlow (corolla.runtime.pixels), ~6× cheaper than its eager decode
            fallback = Decoder(image_size=self.image_size, channels=self.channels) if self.runtime.name == "tf" else None  # loaded anyway
            self.decoder = PixelDecoder(image_size=self.image_size, channels=self.channels, fallback=fallback)
        self._label_array = np.array(self.labels, dtype=object)
        self.batcher = Batcher(
            self.runtime,
            max_batch_size=self.batch_size,
            batch_timeout_ms=batch_timeout_ms,
            max_queue=max_queue,
            on_batch=metrics.observe_batch if metrics else None,
        )
        self._warm_up()

    @property
    def runtime_name(self) -> str:
        return self.runtime.name

    @property
    def pixel_shape(self) -> tuple[int, ...]:
        """One example's pixels: (size, size, channels), or (frames, size, size, channels) for clips."""
        shape = (self.image_size, self.image_size, self.channels)
        return (self.frames, *shape) if self.kind == "clips" else shape

    def _warm_up(self) -> None:
        """The decoder's first calls trace and allocate; make them before the first client waits for them."""
        from PIL import Image

        buffer = io.BytesIO()
        Image.new("RGB", (self.image_size * 3, self.image_size * 3), (120, 60, 30)).save(buffer, format="PNG")
        self.decoder([buffer.getvalue()] if self.kind == "clips" else buffer.getvalue())  # also the antialiased (large image) branch

    async def predict_clips(self, clips: list, questions: list[str] | None, *, deadline: float, where=lambda index: f"clip {index}") -> np.ndarray:
        """Probabilities for clips, each a video file's bytes or a list of encoded frames (and a question each, for QA).

        ApiError names the first bad one: 400 for what cannot be decoded or asked, 413 for a clip over the limits.
        """
        from corolla.data.video import ClipTooLarge, InvalidClip

        if self.kind != "clips":
            raise ApiError(400, "This model classifies images: send image_bytes, not a video or frames.")
        ids = self._question_ids(questions, len(clips), where)
        for index, clip in enumerate(clips):
            if not isinstance(clip, (bytes, bytearray)):
                for frame_index, frame in enumerate(clip):
                    check_image(frame, where=f"{where(index)} frame {frame_index}", max_pixels=self.max_pixels)
        with self.batcher.reserve(len(clips)) as ticket:
            loop = asyncio.get_running_loop()
            results = await asyncio.gather(*(loop.run_in_executor(_DECODE_POOL, _decode_clip, self.decoder, clip) for clip in clips))
            for index, result in enumerate(results):
                if isinstance(result, ClipTooLarge):
                    raise ApiError(413, f"{where(index)}: {result}.")
                if isinstance(result, (InvalidClip, ValueError)):
                    raise ApiError(400, f"{where(index)}: cannot be decoded ({result}).")
            pixels = np.stack(results)
            return await ticket.run((pixels, ids) if ids is not None else pixels, deadline=deadline)

    def _question_ids(self, questions, count: int, where):
        """QA: token ids [n, question_length] of the questions (400 for a missing, empty or all-unknown one); else None."""
        from corolla.data.questions import check_question
        from corolla.errors import CorollaError

        if self.task != "qa":
            if questions is not None and any(questions):
                raise ApiError(400, "This clip model answers no questions (it classifies clips); leave out question.")
            return None
        if questions is None or len(questions) != count:
            raise ApiError(400, f"This model answers a question about each clip: send one question per clip ({count}).")
        for index, question in enumerate(questions):
            if not isinstance(question, str):
                raise ApiError(400, f"{where(index)}: the question must be a string.")
            try:
                check_question(question, self.vocabulary)
            except CorollaError as error:
                raise ApiError(400, f"{where(index)}: {error}") from None
        return np.asarray(self.vectorize(questions))

    async def predict_images(self, images: list[bytes], *, deadline: float, where=lambda index: f"image {index}") -> np.ndarray:
        """Probabilities [n, classes] for encoded images; ApiError 4xx names the first bad one.

        Headers are checked first (format, --max-pixels), so nothing too large is ever decoded.
        A request of small images (INLINE_DECODE_PIXELS in all) is decoded right here: a thumbnail
        decodes in ~40 µs, less than the hop to the decoding pool costs; others go to the pool.
        """
        headers = [open_checked(data, where=where(index), max_pixels=self.max_pixels) for index, data in enumerate(images)]
        with self.batcher.reserve(len(images)) as ticket:
            if self.kind != "clips" and sum(header.width * header.height for header in headers) <= INLINE_DECODE_PIXELS:
                results = [_decode(self.decoder, data, where(index), opened=header) for index, (data, header) in enumerate(zip(images, headers))]
            else:
                loop = asyncio.get_running_loop()
                results = await asyncio.gather(*(loop.run_in_executor(_DECODE_POOL, _decode, self.decoder, data, where(index)) for index, data in enumerate(images)))
            for result in results:
                if isinstance(result, ApiError):
                    raise result
            return await ticket.run(np.stack(results), deadline=deadline)

    async def predict_pixels(self, pixels: np.ndarray, *, deadline: float) -> np.ndarray:
        """Probabilities for float32 pixels [n, size, size, channels] in 0..255 (shape checked by the caller)."""
        with self.batcher.reserve(len(pixels)) as ticket:
            return await ticket.run(pixels, deadline=deadline)

    def answer(self, probabilities: np.ndarray) -> dict[str, np.ndarray]:
        classes = np.argmax(probabilities, axis=-1)
        return {"probabilities": probabilities, "classes": classes, "labels": self._label_array[classes]}

    def close(self) -> None:
        self.batcher.close()


def _decode_clip(decoder, clip):
    """Pixels, or the exception that says why the clip cannot be decoded (returned, as for images)."""
    from corolla.data.video import InvalidClip

    try:
        return decoder(clip)
    except (InvalidClip, ValueError) as error:
        return error


def _decode(decoder, data: bytes, where: str, **options):
    """Pixels, or the 400 ApiError (returned, not raised: this may run on the pool) that says why not."""
    try:
        return decoder(data, **options)
    except ValueError as error:
        return ApiError(400, f"{where}: cannot be decoded ({error}).")


def deadline_after(seconds: float) -> float:
    return time.monotonic() + seconds
