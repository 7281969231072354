"""Images of concurrently running jobs sent to a service together, so its batcher fills.

Each job's thread hands its image to `CrossJobBatcher.submit` and waits; one sender thread collects what
arrives within `wait_s` of the first image (up to `max_batch`) and makes one call for all of them. A
batch the service refuses (4xx: one bad image) is sent again image by image, so one job's bad input
never fails another's stage.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

from shared.client import GatewayError
from worker.model_client import StageFailed

Item = TypeVar("Item")
Answer = TypeVar("Answer")


class CrossJobBatcher(Generic[Item, Answer]):
    def __init__(self, call: Callable[[list[Item]], Sequence[Answer]], *, max_batch: int, wait_s: float,
                 name: str) -> None:
        self.call, self.max_batch, self.wait_s = call, max_batch, wait_s
        self.pending: queue.SimpleQueue[tuple[Item, Future[Answer]] | None] = queue.SimpleQueue()
        self.sizes: list[int] = []  # each call's batch size (recent ones), for metrics and tests
        self.thread = threading.Thread(target=self._run, name=f"batcher-{name}", daemon=True)
        self.thread.start()

    def submit(self, item: Item) -> Answer:
        """This item's answer, from a call made together with other jobs' items; raises what the call raised."""
        future: Future[Answer] = Future()
        self.pending.put((item, future))
        return future.result()

    def close(self) -> None:
        self.pending.put(None)
        self.thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            first = self.pending.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.wait_s
            while len(batch) < self.max_batch:
                try:
                    entry = self.pending.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if entry is None:
                    self._send(batch)
                    return
                batch.append(entry)
            self._send(batch)

    def _send(self, batch: list[tuple[Item, Future[Answer]]]) -> None:
        self.sizes = [*self.sizes[-999:], len(batch)]
        try:
            answers = self.call([item for item, _ in batch])
        except StageFailed as exc:
            if len(batch) > 1 and _refused_input(exc):  # one image was refused: find whose
                for entry in batch:
                    self._send([entry])
                return
            for _, future in batch:
                future.set_exception(exc)
            return
        except BaseException as exc:  # the gateway unreachable, a bug: every waiting job sees it
            for _, future in batch:
                future.set_exception(exc)
            return
        if len(answers) != len(batch):
            error = StageFailed("batch", f"{len(answers)} answers for {len(batch)} inputs")
            for _, future in batch:
                future.set_exception(error)
            return
        for (_, future), answer in zip(batch, answers, strict=True):
            future.set_result(answer)


def _refused_input(exc: StageFailed) -> bool:
    cause = exc.__cause__
    return isinstance(cause, GatewayError) and 400 <= cause.status_code < 500
