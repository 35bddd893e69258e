"""The Lua scripts of the limiter and a small EVALSHA-with-EVAL-fallback runner.

Every script touches only keys passed in KEYS, and all of them carry the same hash tag
(`{vk:<name>}`), so they run in one Cluster slot (no CROSSSLOT). Numbers are integers: tokens,
request counts and nano-dollars. Lua compares them as doubles, exact below 2**53.

Counters of a key (prefix `P:{vk:<name>}`):
- `P:{vk:<name>}:rpm:<minute>`   requests admitted in that epoch minute
- `P:{vk:<name>}:tpm:<minute>`   tokens charged in that minute: estimates of requests in flight,
                                 replaced by the real count when they settle
- `P:{vk:<name>}:budget:<n>`     hash for budget period n (epoch seconds // period): `spent` (settled
                                 nano-dollars) and `r:<minute>` (estimated cost of requests in flight
                                 admitted in that minute; a field older than the reservation TTL is
                                 dropped, so a worker that died mid-request cannot hold budget forever)
"""

from __future__ import annotations

import hashlib
from typing import Any

from redis.exceptions import NoScriptError


class LuaScript:
    """EVALSHA, and EVAL on NOSCRIPT (which also caches the script on that node: on Cluster, on the
    node that owns the keys' slot, because EVAL is routed by its first key)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(self, client: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *args)


# KEYS: rpm counter, tpm counter, budget hash (all of the admission minute / period)
# ARGV: rpm, tpm, est_tokens, budget_nanos, est_cost_nanos (-1 = limit absent),
#       minute_ttl_s, budget_ttl_s, reservation field, oldest live reservation minute
# Returns {status, requests this minute, tokens this minute, spent, reserved};
# status 0 admitted, 1 rpm, 2 tpm, 3 request larger than tpm, 4 budget.
# Checks everything first, then writes: a rejected request consumes nothing.
ADMIT = LuaScript("""
local rpm, tpm, est = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local budget, cost = tonumber(ARGV[4]), tonumber(ARGV[5])
local count, used, spent, reserved = 0, 0, 0, 0
if budget >= 0 then
  local h = redis.call('HGETALL', KEYS[3])
  local oldest = tonumber(ARGV[9])
  for i = 1, #h, 2 do
    local f = h[i]
    if f == 'spent' then
      spent = tonumber(h[i + 1])
    elseif string.sub(f, 1, 2) == 'r:' then
      if tonumber(string.sub(f, 3)) < oldest then
        redis.call('HDEL', KEYS[3], f)
      else
        reserved = reserved + tonumber(h[i + 1])
      end
    end
  end
  if cost > 0 and spent + reserved + cost > budget then
    return {4, count, used, spent, reserved}
  end
end
if rpm >= 0 then
  count = tonumber(redis.call('GET', KEYS[1]) or '0')
  if count + 1 > rpm then return {1, count, used, spent, reserved} end
end
if tpm >= 0 then
  used = tonumber(redis.call('GET', KEYS[2]) or '0')
  if est > tpm then return {3, count, used, spent, reserved} end
  if used + est > tpm then return {2, count, used, spent, reserved} end
end
if rpm >= 0 then
  count = redis.call('INCR', KEYS[1])
  redis.call('EXPIRE', KEYS[1], ARGV[6])
end
if tpm >= 0 and est > 0 then
  used = redis.call('INCRBY', KEYS[2], est)
  redis.call('EXPIRE', KEYS[2], ARGV[6])
end
if budget >= 0 and cost > 0 then
  redis.call('HINCRBY', KEYS[3], ARGV[8], cost)
  redis.call('EXPIRE', KEYS[3], ARGV[7])
  reserved = reserved + cost
end
return {0, count, used, spent, reserved}
""")

# KEYS: tpm counter of the admission minute, budget hash of the admission period
# ARGV: token delta (actual - estimate; '' = no tpm limit), actual cost (-1 = no budget),
#       reservation field, reserved cost, budget_ttl_s
# A counter whose window is already gone is not recreated; the reservation is released only if its
# field is still there (else it already expired).
SETTLE = LuaScript("""
if ARGV[1] ~= '' and ARGV[1] ~= '0' and redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('INCRBY', KEYS[1], ARGV[1])
end
local actual = tonumber(ARGV[2])
if actual >= 0 then
  local r = tonumber(ARGV[4])
  if r > 0 and redis.call('HEXISTS', KEYS[2], ARGV[3]) == 1 then
    if redis.call('HINCRBY', KEYS[2], ARGV[3], -r) <= 0 then redis.call('HDEL', KEYS[2], ARGV[3]) end
  end
  if actual > 0 then
    redis.call('HINCRBY', KEYS[2], 'spent', actual)
    redis.call('EXPIRE', KEYS[2], ARGV[5])
  end
end
return 1
""")

# KEYS: rpm counter, tpm counter, budget hash (current minute / period); ARGV: oldest live minute
# Returns {requests this minute, tokens this minute, spent, reserved}. Read-only.
PEEK = LuaScript("""
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
local used = tonumber(redis.call('GET', KEYS[2]) or '0')
local spent, reserved = 0, 0
local oldest = tonumber(ARGV[1])
local h = redis.call('HGETALL', KEYS[3])
for i = 1, #h, 2 do
  local f = h[i]
  if f == 'spent' then
    spent = tonumber(h[i + 1])
  elseif string.sub(f, 1, 2) == 'r:' and tonumber(string.sub(f, 3)) >= oldest then
    reserved = reserved + tonumber(h[i + 1])
  end
end
return {count, used, spent, reserved}
""")
