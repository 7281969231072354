"""Budget ledgers for tests: the real one (`gateway.scheduler.ledger`), on the test Redis, each in a namespace
of its own so that tests running side by side never see each other's reservations."""

from __future__ import annotations

import json
import uuid

import redis

from gateway.scheduler.ledger import RedisLedger
from tests.support.storage_env import shared_redis_url


def fresh_namespace() -> str:
    return f"test:{uuid.uuid4().hex[:10]}:ledger"


def fresh_ledger(namespace: str | None = None, *, owner: str | None = None, lease_ttl_s: float = 30.0,
                 url: str | None = None) -> RedisLedger:
    """A ledger on `url` (default the test Redis), in `namespace` (default a new one)."""
    return RedisLedger(namespace or fresh_namespace(), owner=owner, lease_ttl_s=lease_ttl_s,
                       url=url or shared_redis_url())


def ledger_totals(url: str, namespace: str) -> dict[str, int]:
    """Device → bytes reserved by reservations with a live lease, read straight from Redis (not through the
    ledger's scripts): what tests sample to check that no device ever passes its budget."""
    client = redis.Redis.from_url(url)
    try:
        seconds, micros = client.time()
        now_ms = seconds * 1000 + micros // 1000
        totals: dict[str, int] = {}
        prefix = f"{namespace}:{{"
        for key in client.scan_iter(match=f"{namespace}:*"):
            device = key.decode()[len(prefix):-1]
            records = (json.loads(raw) for field, raw in client.hgetall(key).items() if field != b"#order")
            totals[device] = sum(r["b"] for r in records if any(e > now_ms for e in (r["h"] or {}).values()))
        return totals
    finally:
        client.close()


def holders(url: str, namespace: str) -> set[str]:
    """Every gateway that holds a live lease on some reservation."""
    client = redis.Redis.from_url(url)
    try:
        seconds, micros = client.time()
        now_ms = seconds * 1000 + micros // 1000
        found: set[str] = set()
        for key in client.scan_iter(match=f"{namespace}:*"):
            for field, raw in client.hgetall(key).items():
                if field != b"#order":
                    found |= {h for h, e in (json.loads(raw)["h"] or {}).items() if e > now_ms}
        return found
    finally:
        client.close()
