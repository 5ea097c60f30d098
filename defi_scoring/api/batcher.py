"""Dynamic batching for POST /score, as model servers do: requests arriving within a short window
are scored together in one vectorised call, off the event loop, and each caller gets its own result.

A single consumer task takes the first waiting request, waits for company (up to `max_size`
requests), and hands the window to one scoring thread. While that thread works, new requests queue up
and form the next window, so under load batches grow by themselves. The wait is a tenth of what a
scoring call has recently cost, capped at `max_wait_ms`: a call has a large fixed cost, so closing a
window early to save a few milliseconds would cost a whole extra call for the stragglers. A request
that arrives more than a scoring call after the one before it (a lone caller) does not wait at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class DynamicBatcher:
    def __init__(self, work: Callable[[list[Any]], list[Any]], max_size: int = 64, max_wait_ms: float = 20.0) -> None:
        self.work = work
        self.max_size = max(1, max_size)
        self.max_wait = max(0.0, max_wait_ms) / 1000
        self.call_seconds = 0.0  # moving average of one scoring call
        self.last_submit = float("-inf")
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scoring")
        self.queue: asyncio.Queue[tuple[Any, asyncio.Future, float]] | None = None
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        self.queue = asyncio.Queue()
        self.task = asyncio.create_task(self._run(), name="dynamic-batcher")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, item: Any) -> Any:
        """The result of `work` for this item, computed together with whatever else is waiting."""
        if self.queue is None:
            await self.start()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        now = loop.time()
        gap, self.last_submit = now - self.last_submit, now  # time since the previous request arrived
        await self.queue.put((item, future, gap))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            window = [await self.queue.get()]
            # A lone caller (no request arrived within a scoring call's time before it) is not kept
            # waiting for company that is not coming; under load, requests arrive closer than that.
            alone = self.queue.empty() and window[0][2] > self.call_seconds
            deadline = loop.time() + (0.0 if alone else min(self.max_wait, 0.1 * self.call_seconds))
            while len(window) < self.max_size:
                if not self.queue.empty():
                    window.append(self.queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    window.append(await asyncio.wait_for(self.queue.get(), remaining))
                except TimeoutError:
                    break
            items = [item for item, _, _ in window]
            started = loop.time()
            try:
                results = await loop.run_in_executor(self.executor, self.work, items)
                self.call_seconds = 0.8 * self.call_seconds + 0.2 * (loop.time() - started)
            except Exception as exc:
                for _, future, _ in window:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future, _), result in zip(window, results):
                if not future.done():  # the caller may have gone away
                    future.set_result(result)
