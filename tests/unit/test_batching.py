"""The kit's dynamic batcher: bounded batch sizes and waits, order kept, failures reach every caller."""

from __future__ import annotations

import asyncio
import time

import pytest

from shared.kit.batching import DynamicBatcher, QueueFull


class Recorder:
    """A batch function that doubles its inputs and remembers every batch it saw."""

    def __init__(self, delay_s: float = 0.0, fail_on: object = None) -> None:
        self.batches: list[list[int]] = []
        self.delay_s = delay_s
        self.fail_on = fail_on

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        await asyncio.sleep(self.delay_s)
        if self.fail_on in items:
            raise ValueError(f"cannot handle {self.fail_on}")
        return [2 * item for item in items]


async def test_batches_never_exceed_max_size_and_keep_order() -> None:
    recorder = Recorder(delay_s=0.01)
    sizes: list[int] = []
    batcher = DynamicBatcher(recorder, max_batch_size=4, max_wait_s=0.05, on_batch=sizes.append)
    results = await batcher.submit_many(list(range(10)))
    assert results == [2 * i for i in range(10)]
    assert recorder.batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert sizes == [4, 4, 2]
    await batcher.close()


async def test_concurrent_callers_each_get_their_own_answer() -> None:
    recorder = Recorder()
    batcher = DynamicBatcher(recorder, max_batch_size=8, max_wait_s=0.05)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(20)))
    assert results == [2 * i for i in range(20)]
    assert [item for batch in recorder.batches for item in batch] == list(range(20))
    assert max(len(batch) for batch in recorder.batches) == 8
    await batcher.close()


async def test_a_lone_request_waits_at_most_max_wait() -> None:
    recorder = Recorder()
    batcher = DynamicBatcher(recorder, max_batch_size=16, max_wait_s=0.05)
    started = time.perf_counter()
    assert await batcher.submit(3) == 6
    elapsed = time.perf_counter() - started
    assert 0.04 <= elapsed < 0.5
    await batcher.close()


async def test_requests_within_the_wait_share_a_batch() -> None:
    recorder = Recorder()
    batcher = DynamicBatcher(recorder, max_batch_size=16, max_wait_s=0.3)
    first = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(batcher.submit(2))
    assert await asyncio.gather(first, second) == [2, 4]
    assert recorder.batches == [[1, 2]]
    await batcher.close()


async def test_batch_size_one_turns_batching_off() -> None:
    recorder = Recorder()
    batcher = DynamicBatcher(recorder, max_batch_size=1, max_wait_s=1.0)
    started = time.perf_counter()
    assert await batcher.submit_many([1, 2, 3]) == [2, 4, 6]
    assert recorder.batches == [[1], [2], [3]]
    assert time.perf_counter() - started < 0.5  # a full batch of one does not wait
    await batcher.close()


async def test_a_failing_batch_fails_every_request_in_it_and_the_next_batch_works() -> None:
    recorder = Recorder(fail_on=2)
    batcher = DynamicBatcher(recorder, max_batch_size=3, max_wait_s=0.05)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(4)), return_exceptions=True)
    assert [type(r) for r in results[:3]] == [ValueError] * 3
    assert "cannot handle 2" in str(results[0])
    assert results[3] == 6
    assert await batcher.submit(5) == 10
    await batcher.close()


async def test_wrong_number_of_results_is_an_error() -> None:
    async def drops_one(items: list[int]) -> list[int]:
        return items[:-1]

    batcher = DynamicBatcher(drops_one, max_batch_size=4, max_wait_s=0.01)
    with pytest.raises(RuntimeError, match="batch of 2 items returned 1 results"):
        await batcher.submit_many([1, 2])
    await batcher.close()


async def test_cancelled_requests_are_not_run() -> None:
    recorder = Recorder()
    batcher = DynamicBatcher(recorder, max_batch_size=8, max_wait_s=0.2)
    kept = asyncio.create_task(batcher.submit(1))
    dropped = asyncio.create_task(batcher.submit(2))
    await asyncio.sleep(0.05)
    dropped.cancel()
    assert await kept == 2
    assert recorder.batches == [[1]]
    await batcher.close()


@pytest.mark.parametrize(("size", "wait", "phrase"), [(0, 0.01, "max_batch_size"), (4, -1, "max_wait_s")])
def test_bad_arguments_are_refused_with_a_reason(size: int, wait: float, phrase: str) -> None:
    with pytest.raises(ValueError, match=phrase):
        DynamicBatcher(Recorder(), max_batch_size=size, max_wait_s=wait)


async def test_a_full_queue_refuses_with_503_and_retry_after() -> None:
    gate = asyncio.Event()

    async def blocked(items: list[int]) -> list[int]:
        await gate.wait()
        return items

    batcher = DynamicBatcher(blocked, max_batch_size=1, max_wait_s=0, max_queue=2)
    running = asyncio.create_task(batcher.submit(0))
    await asyncio.sleep(0.01)  # the worker took item 0: it is running, no longer waiting
    queued = asyncio.create_task(batcher.submit_many([1, 2]))
    await asyncio.sleep(0.01)
    assert batcher.waiting == 2
    with pytest.raises(QueueFull) as refused:
        await batcher.submit(3)
    assert refused.value.status_code == 503 and refused.value.headers == {"Retry-After": "1"}
    assert "at most 2" in refused.value.detail
    gate.set()
    assert await running == 0 and await queued == [1, 2]
    assert await batcher.submit(4) == 4  # room again
    await batcher.close()


async def test_an_eager_batch_runs_at_once_when_nothing_else_is_coming() -> None:
    recorder = Recorder()
    batcher = DynamicBatcher(recorder, max_batch_size=16, max_wait_s=60, eager=True)
    assert await asyncio.wait_for(batcher.submit(3), 10) == 6  # not 60 s of waiting for strangers
    await batcher.close()


async def test_an_eager_batch_waits_for_announced_requests_and_not_for_withdrawn_ones() -> None:
    recorder = Recorder()
    batcher = DynamicBatcher(recorder, max_batch_size=16, max_wait_s=60, eager=True)
    with batcher.expect() as decoding, batcher.expect():  # two requests still decoding
        first = asyncio.create_task(batcher.submit(1))
        await asyncio.sleep(0.05)
        assert recorder.batches == []  # held for the announced requests
        second = asyncio.create_task(batcher.submit_many([2], decoding))
        await asyncio.sleep(0.05)
        assert recorder.batches == []  # the other one is still on its way
    # leaving the block withdrew the one whose decoding "failed": the batch runs without it
    assert await asyncio.wait_for(asyncio.gather(first, second), 10) == [2, [4]]
    assert recorder.batches == [[1, 2]]
    await batcher.close()
