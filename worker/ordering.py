"""Which queued job runs next: those whose models are loaded already, before one that would evict them.

The worker claims up to `lookahead` jobs from the queue (they stay pending under its name and heart-beat
while they wait, so a killed worker loses none) and, each time a thread is free, runs the oldest of those
that needs the fewest models the gateway has not loaded (`GET /v1/models`). Under a budget that holds only
one large model (BLIP-2 or the llm), a mixed queue of images and JSON documents then loads each once per
run of its kind instead of once per switch. No job waits forever: one passed over `max_deferrals` times
runs next.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from storage.queue import Delivery, JobQueue

IMAGE_MODELS = frozenset({"cnn", "clip"})
# what each kind of job calls (services by their catalog names); an unknown kind needs nothing
MODELS_BY_KIND = {
    "image": IMAGE_MODELS | {"blip2"},
    "video": IMAGE_MODELS | {"blip2", "whisper"},
    "audio": frozenset({"whisper"}),
    "json": frozenset({"llm"}),
    "cluster": frozenset({"blip2", "llm"}),
    "reembed": frozenset({"clip"}),
}


def models_for(kind: str, image_analysis: bool = True) -> frozenset[str]:
    models = MODELS_BY_KIND.get(kind, frozenset())
    return models if image_analysis else models - {"blip2"}


@dataclass
class Waiting:
    delivery: Delivery
    needs: frozenset[str]
    passed_over: int = 0


def choose(waiting: list[Waiting], resident: set[str] | None, max_deferrals: int) -> int:
    """The index (oldest first) of the job to run next: one passed over `max_deferrals` times; else the oldest
    of those needing the fewest models not `resident`; with nothing known about what is loaded, the oldest."""
    if resident is None:
        return 0
    for index, entry in enumerate(waiting):
        if entry.passed_over >= max_deferrals:
            return index
    return min(range(len(waiting)), key=lambda i: (len(waiting[i].needs - resident), i))


class JobPicker:
    """The worker's claimed-but-not-started jobs, shared by its threads."""

    def __init__(self, queue: JobQueue, consumer: str, *, needs: Callable[[list[str]], dict[str, frozenset[str]]],
                 loaded: Callable[[], set[str] | None], lookahead: int, max_deferrals: int,
                 visibility_ms: int, refresh_s: float = 1.0, touch: Callable[..., None] = lambda *ids: None) -> None:
        self.queue, self.consumer, self.needs, self.loaded, self.touch = queue, consumer, needs, loaded, touch
        self.lookahead, self.max_deferrals, self.visibility_ms = lookahead, max_deferrals, visibility_ms
        self.refresh_s = refresh_s
        self.lock = threading.Lock()
        self.waiting: list[Waiting] = []
        self.running: dict[str, frozenset[str]] = {}  # message id → the models its job needs
        self._resident: set[str] | None = None
        self._resident_at = float("-inf")

    def next(self, block_ms: int) -> Delivery | None:
        """The job this thread runs next (it must call `done` after acknowledging it), or None."""
        with self.lock:
            self._fill(block_ms)
            if not self.waiting:
                return None
            index = choose(self.waiting, self._resident_models(), self.max_deferrals)
            for entry in self.waiting[:index]:
                entry.passed_over += 1
            chosen = self.waiting.pop(index)
            self.running[chosen.delivery.message_id] = chosen.needs
            return chosen.delivery

    def done(self, delivery: Delivery) -> None:
        with self.lock:
            needs = self.running.pop(delivery.message_id, frozenset())
            if self._resident is not None:  # what it used is loaded now, whatever the last report said
                self._resident |= needs

    def release(self) -> int:
        """On a clean stop: put the waiting jobs back on the queue for any worker (queued again before the old
        entry is acknowledged, so a crash in between only delivers one twice). Returns how many."""
        with self.lock:
            waiting, self.waiting = self.waiting, []
        for entry in waiting:
            self.queue.enqueue(entry.delivery.job_id)
            self.queue.ack(entry.delivery.message_id)
        return len(waiting)

    def heartbeat(self) -> None:
        """Keep the waiting jobs from looking abandoned, in Redis (their messages) and in Postgres (`touch`,
        what stale-job recovery looks at); the running ones beat on their own."""
        with self.lock:
            deliveries = [entry.delivery for entry in self.waiting]
        self.queue.heartbeat(self.consumer, *(delivery.message_id for delivery in deliveries))
        self.touch(*(delivery.job_id for delivery in deliveries))

    def _fill(self, block_ms: int) -> None:
        room = self.lookahead - len(self.waiting)
        if room <= 0:
            return
        known = {entry.delivery.message_id for entry in self.waiting} | set(self.running)
        claimed = self.queue.claim_many(self.consumer, room, visibility_ms=self.visibility_ms,
                                        block_ms=0 if self.waiting else block_ms)
        fresh = [delivery for delivery in claimed if delivery.message_id not in known]  # known: reclaimed
        needs = self.needs([delivery.job_id for delivery in fresh]) if fresh else {}  # after a missed beat
        self.waiting += [Waiting(delivery, needs.get(delivery.job_id, frozenset())) for delivery in fresh]

    def _resident_models(self) -> set[str] | None:
        """Loaded per the gateway (asked at most every `refresh_s`), plus what running jobs are using."""
        now = time.monotonic()
        if now - self._resident_at >= self.refresh_s:
            self._resident, self._resident_at = self.loaded(), now
        if self._resident is None:
            return None
        return self._resident.union(*self.running.values())
