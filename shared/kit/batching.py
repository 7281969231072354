"""Dynamic batching: requests arriving together run as one batch after a short, bounded wait."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from shared.http.errors import Unavailable

T = TypeVar("T")
R = TypeVar("R")

RunBatch = Callable[[list[T]], Awaitable[Sequence[R]]]


class QueueFull(Unavailable):
    """503 + Retry-After: more items wait than `max_queue`; refusing beats queueing without limit."""

    def __init__(self, waiting: int, asked: int, max_queue: int) -> None:
        # a batch takes well under a second on the models served here: come back soon
        super().__init__(f"busy: {waiting} item(s) already wait for a batch (at most {max_queue}), "
                         f"no room for {asked} more; retry shortly", retry_after_s=1)


class DynamicBatcher(Generic[T, R]):
    """Collects items into batches of at most `max_batch_size`, waiting at most `max_wait_s`.

    `run_batch` receives the items in arrival order and must return one result per item.
    A failing batch fails every request in it with the same exception. At most `max_queue` items
    wait (None: no limit); a submit that would pass it is refused whole with `QueueFull`.

    `eager`: callers announce a request before its slow part (`expect()`, e.g. while its images
    are decoded), and a batch waits only while an announced request is still on its way; with none
    on its way it runs at once. A lone request then never pays `max_wait_s`, and under load the
    batch still fills while the previous one runs. Without `eager`, every batch that is not full
    waits the whole `max_wait_s` for requests the batcher cannot know are coming.
    """

    def __init__(
        self,
        run_batch: RunBatch[T, R],
        *,
        max_batch_size: int,
        max_wait_s: float,
        on_batch: Callable[[int], None] | None = None,
        max_queue: int | None = None,
        eager: bool = False,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be zero or more seconds, got {max_wait_s}")
        if max_queue is not None and max_queue < 1:
            raise ValueError(f"max_queue must be at least 1 (or None for no limit), got {max_queue}")
        self.max_queue = max_queue
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.on_batch = on_batch
        self.eager = eager
        self.coming = 0  # announced requests that have not submitted yet
        self.running = False  # a batch is being run
        self._queue: deque[tuple[T, asyncio.Future[R]]] = deque()
        self._changed = asyncio.Event()  # an item arrived, or an announced request submitted or gave up
        self._worker: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        return len(self._queue)

    @property
    def idle(self) -> bool:
        """Nothing queued, announced or running."""
        return not self._queue and self.coming == 0 and not self.running

    @contextmanager
    def expect(self) -> Iterator[Arrival]:
        """Announce one request that will submit soon; pass the arrival to `submit_many`. Leaving the
        block without submitting (its decoding failed) withdraws the announcement."""
        arrival = Arrival(self)
        try:
            yield arrival
        finally:
            arrival.withdraw()

    @asynccontextmanager
    async def alone(self) -> AsyncIterator[None]:
        """A caller runs the batch function itself (it found the batcher idle): it counts as the running
        batch, so what queues meanwhile waits for it, and `max_queue` bounds the waiting as it always does."""
        self.running = True
        try:
            yield
        finally:
            self.running = False
            self._changed.set()

    async def submit(self, item: T) -> R:
        return (await self.submit_many([item]))[0]

    async def submit_many(self, items: Sequence[T], arrival: Arrival | None = None) -> list[R]:
        """Queue all of `items` or none (a request is never half-refused); one result per item."""
        if self.max_queue is not None and self.waiting + len(items) > self.max_queue:
            raise QueueFull(self.waiting, len(items), self.max_queue)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work())
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[R]] = []
        for item in items:
            futures.append(loop.create_future())
            self._queue.append((item, futures[-1]))
        if arrival is not None:
            arrival.withdraw()
        self._changed.set()
        return list(await asyncio.gather(*futures))

    def _full_or_nothing_coming(self) -> bool:
        return len(self._queue) >= self.max_batch_size or (self.eager and self.coming == 0)

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._queue or self.running:  # `running` here: a caller runs a batch `alone()`
                self._changed.clear()
                await self._changed.wait()
            deadline = loop.time() + self.max_wait_s
            while not self._full_or_nothing_coming():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._changed.clear()
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except TimeoutError:
                    break
            size = min(len(self._queue), self.max_batch_size)
            await self._run([self._queue.popleft() for _ in range(size)])

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        live = [(item, fut) for item, fut in batch if not fut.cancelled()]
        if not live:
            return
        if self.on_batch is not None:
            self.on_batch(len(live))
        self.running = True
        try:
            results = await self.run_batch([item for item, _ in live])
            if len(results) != len(live):
                raise RuntimeError(f"batch of {len(live)} items returned {len(results)} results")
        except Exception as exc:
            for _, fut in live:
                if not fut.done():
                    fut.set_exception(exc)
            return
        finally:
            self.running = False
        for (_, fut), result in zip(live, results, strict=True):
            if not fut.done():
                fut.set_result(result)

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None


class Arrival:
    """One request announced to an eager batcher (`DynamicBatcher.expect`), until it submits or gives up."""

    def __init__(self, batcher: DynamicBatcher[Any, Any]) -> None:
        self.batcher, self.pending = batcher, True
        batcher.coming += 1

    def withdraw(self) -> None:
        if self.pending:
            self.pending = False
            self.batcher.coming -= 1
            self.batcher._changed.set()


@dataclass(frozen=True, eq=False)
class Batch(Generic[T, R]):
    """A batched predict hook that tasks share, e.g. clip's image embedding used by two endpoints.

    `fn(model, items)` runs on the inference thread and returns one result per item, in order. A
    result that is an exception fails only the request that sent that item (one bad image in a
    shared batch). The kit gives each app one `DynamicBatcher` per `Batch`, sized by the service's
    `max_batch_size` and `batch_timeout_ms`.
    """

    fn: Callable[[Any, list[T]], Sequence[R | Exception]]
    name: str = "batch"
