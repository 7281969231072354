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

from shared.http.errors import ServiceError

# Every script starts here: read the device's records, forget lapsed leases (and records that no
# live gateway holds any more), and total what the live ones reserve.
_PRELUDE = """
local key, owner, ttl = KEYS[1], ARGV[1], tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local records, total = {}, 0
local raw = redis.call('HGETALL', key)
for i = 1, #raw, 2 do
  if raw[i] ~= '#order' then  -- the device's use counter, not a model
    local rec = cjson.decode(raw[i + 1])
    local lapsed, alive = {}, false
    for holder, expiry in pairs(rec.h) do
      if expiry > now then alive = true else lapsed[#lapsed + 1] = holder end
    end
    rec.u = rec.u or {}
    for _, holder in ipairs(lapsed) do rec.h[holder] = nil; rec.f[holder] = nil; rec.u[holder] = nil end
    if alive then records[raw[i]] = rec; total = total + rec.b else redis.call('HDEL', key, raw[i]) end
  end
end
local function hold(rec) rec.h[owner] = now + ttl end
local function save(model, rec) redis.call('HSET', key, model, cjson.encode(rec)) end
local function forget(model)
  total = total - records[model].b
  records[model] = nil
  redis.call('HDEL', key, model)
end
-- last use: a counter of the device (milliseconds tie within a burst of requests), and per gateway its clock
local function used(rec) rec.t = redis.call('HINCRBY', key, '#order', 1); rec.u[owner] = now end
local function in_flight(rec)
  local n = 0
  for _, count in pairs(rec.f) do n = n + count end
  return n
end
local function finish()  -- the hash outlives its longest lease by a second, then Redis drops it
  local latest = 0
  for _, rec in pairs(records) do
    for _, expiry in pairs(rec.h) do if expiry > latest then latest = expiry end end
  end
  if latest > 0 then redis.call('PEXPIREAT', key, latest + 1000) else redis.call('DEL', key) end
end
local model = ARGV[3]
local rec = records[model]
"""

_SCRIPTS = {
    # ARGV[4..7]: bytes, budget, priority, pinned. Joining a model another gateway loads costs nothing.
    "reserve": """
local need = tonumber(ARGV[4])
if rec and rec.s == 'unloading' then return {'busy', total, rec.b} end
if rec and rec.s ~= 'resident' then
  hold(rec); save(model, rec); finish()
  return {'joined', total, rec.b}
end
local already = rec and rec.b or 0  -- a process's CUDA context, held while not loaded, is part of `need`
if total - already + need > tonumber(ARGV[5]) then return {'full', total, 0} end
rec = {b = need, s = 'loading', t = 0, p = tonumber(ARGV[6]), pin = tonumber(ARGV[7]), h = {}, f = {}, u = {}}
used(rec); hold(rec); records[model] = rec; total = total - already + need; save(model, rec); finish()
return {'granted', total, need}
""",
    # ARGV[4..5]: bytes, budget. Shrinking always fits; growing only within the budget.
    "resize": """
if not rec then return {'missing', total, 0} end
local need = tonumber(ARGV[4])
if need > rec.b and total - rec.b + need > tonumber(ARGV[5]) then return {'full', total, rec.b} end
total = total - rec.b + need; rec.b = need; hold(rec); save(model, rec); finish()
return {'ok', total, need}
""",
    "loaded": """
if not rec then return {'missing', total, 0} end
if rec.s == 'loading' then rec.s = 'loaded' end
hold(rec); save(model, rec); finish()
return {rec.s == 'loaded' and 'ok' or rec.s, total, rec.b}
""",
    "begin_use": """
if not rec then return {'missing', total, 0} end
if rec.s ~= 'loaded' then return {rec.s, total, rec.b} end
hold(rec); rec.f[owner] = (rec.f[owner] or 0) + 1; used(rec); save(model, rec); finish()
return {'ok', total, rec.b}
""",
    "end_use": """
if not rec then return {'missing', total, 0} end
local left = (rec.f[owner] or 0) - 1
if left > 0 then rec.f[owner] = left else rec.f[owner] = nil end
used(rec); hold(rec); save(model, rec); finish()
return {'ok', total, rec.b}
""",
    # ARGV[4]: how long (ms) it must have been idle through every other gateway (this one judges its own).
    # A model nobody has reserved gets a placeholder, so no gateway starts using it while it is unloaded.
    "begin_unload": """
if not rec then
  rec = {b = 0, s = 'unloading', t = 0, p = 0, pin = 0, h = {}, f = {}, u = {}}
  hold(rec); records[model] = rec; save(model, rec); finish()
  return {'ok', total, 0}
end
if rec.s ~= 'loaded' then return {rec.s, total, rec.b} end
if in_flight(rec) > 0 then return {'busy', total, rec.b} end
for holder, at in pairs(rec.u) do
  if holder ~= owner and now - at < tonumber(ARGV[4]) then return {'recent', total, rec.b} end
end
rec.s = 'unloading'; hold(rec); save(model, rec); finish()
return {'ok', total, rec.b}
""",
    "abort_unload": """
if not rec then return {'missing', total, 0} end
if rec.s == 'unloading' then rec.s = 'loaded' end
hold(rec); save(model, rec); finish()
return {'ok', total, rec.b}
""",
    # ARGV[4]: the model is no longer loaded (unloaded, or its load failed); its process still holds
    # that many bytes (its CUDA context), 0 when it holds none: the rest returns to the device
    "unloaded": """
local left = tonumber(ARGV[4])
if left <= 0 then
  if rec then forget(model) end
  return {'ok', total, 0}
end
if not rec then rec = {t = 0, p = 0, pin = 0, h = {}, u = {}}; records[model] = rec else total = total - rec.b end
rec.b, rec.s, rec.f = left, 'resident', {}
total = total + left; hold(rec); save(model, rec); finish()
return {'ok', total, left}
""",
    # ARGV[4]: what the process of a model that is not loaded holds (its CUDA context, as measured)
    "resident": """
local held = tonumber(ARGV[4])
if rec and rec.s ~= 'resident' then return {rec.s, total, rec.b} end
if held <= 0 then
  if rec then forget(model) end
  return {'ok', total, 0}
end
if not rec then rec = {s = 'resident', t = 0, p = 0, pin = 0, h = {}, f = {}, u = {}, b = 0}; records[model] = rec end
total = total - rec.b + held; rec.b = held; hold(rec); save(model, rec); finish()
return {'ok', total, held}
""",
    # this gateway no longer holds the model; the reservation stays while another gateway does
    "leave": """
if not rec then return {'missing', total, 0} end
rec.h[owner] = nil; rec.f[owner] = nil
if next(rec.h) == nil then forget(model) else save(model, rec); finish() end
return {'ok', total, 0}
""",
    # ARGV[3..]: the models this gateway holds on the device; answers those the ledger no longer has
    "renew": """
local missing = {'ok', total, 0}
for i = 3, #ARGV do
  local held = records[ARGV[i]]
  if held then hold(held); save(ARGV[i], held) else missing[#missing + 1] = ARGV[i] end
end
finish()
return missing
""",
    "view": """
return cjson.encode({total = total, records = records, now = now})
""",
}

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
        self._scripts = {name: self._client.register_script(_PRELUDE + body) for name, body in _SCRIPTS.items()}

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
