"""The budget ledger: which models hold how many bytes of each device, shared by every gateway through Redis.

One Redis hash per device (`<MEDIAMESH_QUEUE>:ledger:{<device>}`), one field per model holding a
JSON record: its bytes, its state (loading, loaded, unloading, or resident: not loaded, but its
process holds a CUDA context), when it was last used, and the
gateways that hold it — each a lease with an expiry — with their requests in flight. Every
operation is one Lua script, so a reservation is checked against the device's budget and taken
in one atomic step however many gateways ask at once. Leases are renewed by their gateway while
it holds the model; a gateway that dies stops renewing, its leases lapse and, once no live
gateway holds a model, its bytes return to the device. Times are the Redis server's clock, so
gateways on different machines agree on what has expired.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import redis
import redis.asyncio as aioredis

from gateway.scheduler.ledger_scripts import PRELUDE, SCRIPTS
from shared.http.errors import ServiceError

_NOT_REPEATABLE = {"begin_use", "end_use", "begin_unload"}

Status = Literal["granted", "joined", "full", "busy", "ok", "missing", "loading", "loaded", "unloading", "recent",
                 "resident"]


class LedgerUnavailable(ServiceError):
    """503: the ledger's Redis cannot be reached, so no memory can be reserved safely."""

    status_code = 503

    def __init__(self, exc: Exception) -> None:
        super().__init__(f"the memory-budget ledger (Redis) is unreachable ({type(exc).__name__}: {exc}); "
                         "no model can be loaded until it is back — check REDIS_URL", headers={"Retry-After": "5"})


@dataclass(frozen=True)
class Answer:
    status: Status
    reserved: int  # the device's total reservation after the operation
    bytes: int  # the model's reservation after the operation (0 when it has none)


@dataclass(frozen=True)
class Holding:
    """One model's reservation as every gateway sees it."""

    model: str
    bytes: int
    state: str
    last_used: int  # the device's use counter at its last use: larger is more recent
    priority: int
    pinned: bool
    holders: tuple[str, ...]
    in_flight: int


@dataclass(frozen=True)
class DeviceView:
    device: str
    reserved: int
    now_ms: int
    holdings: dict[str, Holding]


def instance_id() -> str:
    """This gateway's name in the ledger: host, process and a random part (a restarted process is new)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class RedisLedger:
    """The ledger's operations, in bytes; `owner` is this gateway, `lease_ttl_s` how long its leases last."""

    def __init__(self, namespace: str, *, owner: str | None = None, lease_ttl_s: float = 30.0,
                 url: str | None = None) -> None:
        if lease_ttl_s <= 0:
            raise ValueError(f"lease_ttl_s must be positive, got {lease_ttl_s}")
        self.namespace = namespace
        self.owner = owner or instance_id()
        self.lease_ttl_s = lease_ttl_s
        self.url: str | None = None
        self._client: aioredis.Redis | None = None
        self._scripts: dict[str, Any] = {}
        if url is not None:
            self.connect(url)

    def connect(self, url: str) -> None:
        """Point at the Redis server (no connection is opened until the first operation)."""
        self.url = url
        # a connection idle for a second is PINGed (and replaced) before use: after a Redis restart the
        # first operation finds a live connection instead of failing on a dead one
        self._client = aioredis.Redis.from_url(url, health_check_interval=1)
        self._scripts = {name: self._client.register_script(PRELUDE + body) for name, body in SCRIPTS.items()}

    @property
    def connected(self) -> bool:
        return self._client is not None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def key(self, device: str) -> str:
        return f"{self.namespace}:{{{device}}}"  # the braces keep one device's hash in one cluster slot

    async def _run(self, op: str, device: str, *args: object) -> Any:
        """Run one script on the device's hash; ARGV is (owner, lease ms, *args), args[0] the model.

        A connection error is retried once, for the operations whose repetition changes nothing (a
        repeated reserve joins the reservation it made); counting ones are not, lest a request count twice."""
        if not self._scripts:
            raise LedgerUnavailable(RuntimeError("the ledger is not connected"))
        ttl_ms = max(int(self.lease_ttl_s * 1000), 1)
        for attempt in (1, 2):
            try:
                return await self._scripts[op](keys=[self.key(device)], args=[self.owner, ttl_ms, *args])
            except redis.ConnectionError as exc:
                if attempt == 2 or op in _NOT_REPEATABLE:
                    raise LedgerUnavailable(exc) from exc
            except redis.RedisError as exc:
                raise LedgerUnavailable(exc) from exc

    async def _answer(self, op: str, device: str, model: str, *args: object) -> Answer:
        status, reserved, nbytes = await self._run(op, device, model, *args)
        return Answer(_text(status), int(reserved), int(nbytes))  # type: ignore[arg-type]

    async def reserve(self, device: str, model: str, nbytes: int, budget: int, *, priority: int = 0,
                      pinned: bool = False) -> Answer:
        """granted (new, state loading), joined (another gateway's), full (no room) or busy (unloading)."""
        return await self._answer("reserve", device, model, nbytes, budget, priority, int(pinned))

    async def resize(self, device: str, model: str, nbytes: int, budget: int) -> Answer:
        """ok, full (growing past the budget) or missing."""
        return await self._answer("resize", device, model, nbytes, budget)

    async def mark_loaded(self, device: str, model: str) -> Answer:
        return await self._answer("loaded", device, model)

    async def begin_use(self, device: str, model: str) -> Answer:
        """ok (one more request of this gateway in flight) unless the model is not loaded in the ledger."""
        return await self._answer("begin_use", device, model)

    async def end_use(self, device: str, model: str) -> Answer:
        return await self._answer("end_use", device, model)

    async def begin_unload(self, device: str, model: str, min_idle_s: float = 0.0) -> Answer:
        """ok (now unloading); busy (in flight somewhere), recent (used within min_idle_s), or its state."""
        return await self._answer("begin_unload", device, model, int(min_idle_s * 1000))

    async def abort_unload(self, device: str, model: str) -> Answer:
        return await self._answer("abort_unload", device, model)

    async def unloaded(self, device: str, model: str, left_bytes: int = 0) -> Answer:
        """Not loaded any more; its process still holds `left_bytes` (a CUDA context), the rest is free."""
        return await self._answer("unloaded", device, model, left_bytes)

    async def resident(self, device: str, model: str, nbytes: int) -> Answer:
        """A model that is not loaded holds `nbytes` (its process's CUDA context); ignored while it is loaded."""
        return await self._answer("resident", device, model, nbytes)

    async def leave(self, device: str, model: str) -> Answer:
        return await self._answer("leave", device, model)

    async def renew(self, device: str, models: Sequence[str]) -> tuple[int, list[str]]:
        """Extend this gateway's leases on `models`; answers the device's total and the models it no longer has."""
        _, reserved, _, *missing = await self._run("renew", device, *models)
        return int(reserved), [_text(m) for m in missing]

    async def view(self, device: str) -> DeviceView:
        raw = json.loads(_text(await self._run("view", device)))
        records = raw["records"] if isinstance(raw["records"], dict) else {}  # cjson writes {} for none
        holdings = {
            name: Holding(model=name, bytes=int(r["b"]), state=r["s"], last_used=int(r["t"]),
                          priority=int(r["p"]), pinned=bool(r["pin"]), holders=tuple(sorted(r["h"])),
                          in_flight=sum(int(n) for n in (r["f"] or {}).values()))
            for name, r in records.items()
        }
        return DeviceView(device=device, reserved=int(raw["total"]), now_ms=int(raw["now"]), holdings=holdings)

    async def devices(self) -> list[str]:
        """The devices that have reservations now (for tests, benchmarks and operators)."""
        assert self._client is not None
        prefix = f"{self.namespace}:{{"
        found = [_text(k) async for k in self._client.scan_iter(match=f"{_glob_escape(prefix)}*")]
        return sorted(k[len(prefix):-1] for k in found)

    async def leave_all(self, held: Iterable[tuple[str, str]]) -> None:
        """On a clean shutdown: give up every (device, model) this gateway holds."""
        for device, model in held:
            await self.leave(device, model)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
