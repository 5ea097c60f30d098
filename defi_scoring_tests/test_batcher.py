"""The dynamic batcher: a lone caller is not kept waiting; concurrent callers share one call."""

import asyncio
import time

from defi_scoring.api.batcher import DynamicBatcher


def test_a_lone_caller_does_not_wait_and_concurrent_callers_share_a_window():
    sizes: list[int] = []
    starts: list[float] = []

    def work(items):
        starts.append(time.perf_counter())
        sizes.append(len(items))
        time.sleep(0.2)  # a scoring call of 200 ms: waiting a tenth of it for company would be 20 ms
        return [item * 2 for item in items]

    async def scenario():
        batcher = DynamicBatcher(work, max_size=64, max_wait_ms=100)
        await batcher.start()
        assert await batcher.submit(1) == 2
        batcher.call_seconds = 0.2  # as learnt over a few calls (a moving average from 0)
        await asyncio.sleep(0.3)
        submitted = time.perf_counter()
        assert await batcher.submit(2) == 4  # alone
        lone_wait = starts[-1] - submitted
        await asyncio.sleep(0.3)
        results = await asyncio.gather(*(batcher.submit(i) for i in range(10)))
        await batcher.stop()
        return lone_wait, results

    lone_wait, results = asyncio.run(scenario())
    assert lone_wait < 0.01, lone_wait  # straight to work, not the 20 ms the old rule waited
    assert results == [2 * i for i in range(10)]  # each caller its own result, in order
    assert sizes[:2] == [1, 1] and sum(sizes[2:]) == 10 and len(sizes[2:]) <= 2  # the ten shared
