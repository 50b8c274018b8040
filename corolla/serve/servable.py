"""One loaded model version, ready to answer: decoder, runtime and batcher together.

Images are checked (format, pixel count) and decoded on a small thread pool, one thread per
core, which also bounds the memory big images can take; their pixels then go through the
version's batcher.

Example:
    servable = Servable(pathlib.Path("runs/fm/export/2"), runtime="auto")
    probabilities = await servable.predict_images([jpeg_bytes], deadline=time.monotonic() + 30)
    servable.answer(probabilities)["labels"]     # ["Sneaker"]
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import os
import pathlib
import time

import numpy as np

from corolla.serve.batching import Batcher
from corolla.serve.limits import DEFAULT_MAX_PIXELS, ApiError, check_image
from corolla.runtime.exported import Decoder, read_info
from corolla.runtime.runners import load_runtime
from corolla.runtime.versions import version_of

_DECODE_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="corolla-decode")


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
        metrics=None,
    ):
        self.path = pathlib.Path(version_dir)
        self.version = version_of(self.path)
        info = read_info(self.path)
        self.labels: list[str] = info["labels"]
        self.image_size, self.channels = info["image_size"], info["channels"]
        self.max_pixels = max_pixels
        # Its timing is also the runtime's warm-up: each power-of-two batch size runs before the first client.
        self.runtime, self.batch_size, self.ms_per_image = load_runtime(self.path, runtime, max_batch_size=max_batch_size)
        self.decoder = Decoder(image_size=self.image_size, channels=self.channels)
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
    def pixel_shape(self) -> tuple[int, int, int]:
        return (self.image_size, self.image_size, self.channels)

    def _warm_up(self) -> None:
        """The decoder's first calls trace and allocate; make them before the first client waits for them."""
        from PIL import Image

        buffer = io.BytesIO()
        Image.new("RGB", (self.image_size * 3, self.image_size * 3), (120, 60, 30)).save(buffer, format="PNG")
        self.decoder(buffer.getvalue())  # also the antialiased (large image) branch

    async def predict_images(self, images: list[bytes], *, deadline: float, where=lambda index: f"image {index}") -> np.ndarray:
        """Probabilities [n, classes] for encoded images; ApiError 4xx names the first bad one."""
        for index, data in enumerate(images):
            check_image(data, where=where(index), max_pixels=self.max_pixels)
        with self.batcher.reserve(len(images)) as ticket:
            loop = asyncio.get_running_loop()
            results = await asyncio.gather(*(loop.run_in_executor(_DECODE_POOL, _decode, self.decoder, data) for data in images))
            for index, result in enumerate(results):
                if isinstance(result, str):
                    raise ApiError(400, f"{where(index)}: cannot be decoded ({result}).")
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


def _decode(decoder: Decoder, data: bytes):
    try:
        return decoder(data)
    except ValueError as error:
        return str(error)


def deadline_after(seconds: float) -> float:
    return time.monotonic() + seconds
