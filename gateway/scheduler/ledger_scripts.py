"""The ledger's operations in Lua, one script each (see ledger.py for the records they keep).

Redis runs a script atomically: a reservation is checked against the device's budget and taken
in one step however many gateways ask at once.
"""

from __future__ import annotations

# Every script starts here: read the device's records, forget lapsed leases (and records that no
# live gateway holds any more), and total what the live ones reserve.
PRELUDE = """
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

SCRIPTS = {
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
