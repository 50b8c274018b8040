"""Dynamic batching: requests from many clients run through the model together.

A request first reserves room for its images in a bounded queue (a full queue answers 503 at
once, before any decoding), then hands in its pixels. One loop per model groups queued
requests into a batch of up to `max_batch_size` images and runs it on one inference thread
while the next batch fills. Before running a batch that is not full, it waits up to
`batch_timeout_ms` for the requests already admitted and still decoding, and only for them:
a lone request never waits, and a busy server fills its batches.
A request that waited past its deadline gets 504 and is not run.

Example:
    batcher = Batcher(model_fn, max_batch_size=32, batch_timeout_ms=2)
    with batcher.reserve(len(images)) as ticket:          # Overloaded if the queue is full
        probabilities = await ticket.run(pixels, deadline=time.monotonic() + 30)
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import time

import numpy as np

from corolla.runtime.runners import count, run, take


class Overloaded(Exception):
    """The queue is full: the client should retry later (503)."""


class DeadlineExceeded(Exception):
    """The request waited longer than its deadline (504)."""


@dataclasses.dataclass
class _Item:
    pixels: np.ndarray
    future: asyncio.Future
    deadline: float
    ticket: "Ticket"


class Ticket:
    """Room for `count` images in the queue, held until the batcher takes them (or the request ends)."""

    def __init__(self, batcher: "Batcher", count: int):
        self._batcher, self._held = batcher, count

    def __enter__(self) -> "Ticket":
        return self

    def __exit__(self, *exc) -> None:
        self._release(self._held)

    def _release(self, count: int) -> None:
        count = min(count, self._held)
        self._held -= count
        self._batcher.queued -= count
        if count and self._batcher._wakeup is not None:
            self._batcher._wakeup.set()  # the loop may be waiting for these images, or to finish

    async def run(self, pixels: np.ndarray, *, deadline: float) -> np.ndarray:
        """Probabilities for `pixels` [n, h, w, c] (n may exceed max_batch_size: it is split)."""
        return await self._batcher._run(self, pixels, deadline)


class Batcher:
    def __init__(
        self,
        model_fn,
        *,
        max_batch_size: int = 32,
        batch_timeout_ms: float = 2.0,
        max_queue: int = 256,
        on_batch=None,
    ):
        if max_batch_size < 1 or batch_timeout_ms < 0 or max_queue < 1:
            raise ValueError(
                f"Expected max_batch_size ≥ 1, batch_timeout_ms ≥ 0 and max_queue ≥ 1. "
                f"Received: max_batch_size={max_batch_size}, batch_timeout_ms={batch_timeout_ms}, max_queue={max_queue}"
            )
        self.model_fn = model_fn
        self.max_batch_size = max_batch_size
        self.batch_timeout = batch_timeout_ms / 1000
        self.max_queue = max(max_queue, max_batch_size)
        self.queued = 0  # images reserved: being decoded or waiting for a batch
        self._on_batch = on_batch or (lambda size, seconds: None)
        self._pending: collections.deque[_Item] = collections.deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="corolla-infer")
        self._closed = False

    def reserve(self, count: int) -> Ticket:
        if self._closed:
            raise Overloaded("This model version is being unloaded; retry the request.")
        if self.queued + count > self.max_queue:
            raise Overloaded(f"The server is overloaded: {self.queued} images are queued (limit {self.max_queue}, --max-queue). Retry shortly.")
        self.queued += count
        return Ticket(self, count)

    async def _run(self, ticket: Ticket, pixels: np.ndarray, deadline: float) -> np.ndarray:
        loop = asyncio.get_running_loop()
        if self._task is None:
            self._wakeup = asyncio.Event()
            self._task = loop.create_task(self._loop())
        items = []
        for start in range(0, count(pixels), self.max_batch_size):
            items.append(_Item(take(pixels, start, start + self.max_batch_size), loop.create_future(), deadline, ticket))
            self._pending.append(items[-1])
        self._wakeup.set()
        # One timer per request rather than wait_for(gather(…)), which builds two more futures
        # and their callbacks for every request on the event loop (a small model's bottleneck).
        futures = [item.future for item in items]
        timer = loop.call_later(max(0.0, deadline - time.monotonic()), _expire, futures)
        try:
            results = [await future for future in futures]
        finally:
            timer.cancel()
            for future in futures:  # after an error or a cancellation: the batch loop skips these
                if not future.cancel() and not future.cancelled():
                    future.exception()  # retrieved, so asyncio logs no "never retrieved" for the rest
        return results[0] if len(results) == 1 else np.concatenate(results)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not (self._closed and not self._pending and self.queued == 0):
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self.batch_timeout > 0:
                await self._wait_for_more(loop, time.monotonic() + self.batch_timeout)
            batch = self._take()
            if not batch:
                continue
            pixels = batch[0].pixels if len(batch) == 1 else _concatenate([item.pixels for item in batch])
            started = time.perf_counter()
            try:
                probabilities = await loop.run_in_executor(self._executor, run, self.model_fn, pixels)
                probabilities = np.asarray(probabilities)
            except Exception as error:  # the model failed on this batch: each request gets the error
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(error)
                continue
            self._on_batch(count(pixels), time.perf_counter() - started)
            offset = 0
            for item in batch:
                if not item.future.done():
                    item.future.set_result(probabilities[offset : offset + count(item.pixels)])
                offset += count(item.pixels)

    async def _wait_for_more(self, loop, until: float) -> None:
        """Wait while the batch is not full and other admitted requests are still decoding: they come next."""
        while True:
            pending = sum(count(item.pixels) for item in self._pending)
            remaining = until - time.monotonic()
            if pending >= self.max_batch_size or self.queued <= pending or remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except asyncio.TimeoutError:
                return

    def _take(self) -> list[_Item]:
        batch, size, now = [], 0, time.monotonic()
        while self._pending and size + count(self._pending[0].pixels) <= self.max_batch_size:
            item = self._pending.popleft()
            item.ticket._release(count(item.pixels))
            if item.future.done() or item.deadline <= now:  # its request already gave up (504)
                continue
            batch.append(item)
            size += count(item.pixels)
        return batch

    def close(self) -> None:
        """Take no new requests; finish the ones already admitted, then stop (call in the event loop)."""
        self._closed = True
        if self._wakeup is not None:
            self._wakeup.set()
            self._task.add_done_callback(lambda _: self._executor.shutdown(wait=False))
        else:
            self._executor.shutdown(wait=False)


def _expire(futures: list[asyncio.Future]) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(DeadlineExceeded())


def _concatenate(parts: list):
    """One batch of pixels, or of (pixels, question ids) for a clip QA model."""
    if isinstance(parts[0], tuple):
        return tuple(np.concatenate(column) for column in zip(*parts))
    return np.concatenate(parts)
