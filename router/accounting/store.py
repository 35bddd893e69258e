"""Usage aggregation and its two backends: process memory, or Redis shared by every instance.

Hot path: `Accountant.record()` adds a record's deltas into an in-memory aggregate keyed by
(day, key, provider, model). It is synchronous, O(1), does no I/O and never raises.

Without Redis the aggregate IS the store (this process's totals; with `--workers N` each worker
reports its own).

With Redis a background task flushes the aggregate every `accounting.flush_interval_s`:

- The pending dict is swapped for a fresh one and sealed into batches (at most `CHUNK` groups
  each) that go to an outbox. Each batch is ONE Lua script call that HINCRBYs every counter.
- Exactly once: each `Accountant` is a writer with a random id and numbers its batches 1, 2, 3…
  and sends them strictly in order (the outbox is FIFO; a failure stops the flush). The script
  keeps the writer's last applied number in `{usage}:writer:<id>` and applies a batch only if its
  number is higher, atomically with the increments. A batch whose reply was lost (timeout,
  connection cut, redis-py's own resend) is retried with the same number and applied once.
  This is the "batch marker" idea with one key per writer (refreshed TTL, `WRITER_TTL_S`) instead
  of one key per batch: a marker per flush would leave ~86k keys per worker per day in Redis.
- Redis down: the failed batch stays in the outbox (same number) and new records keep merging into
  the pending dict, which is only sealed once the outbox has drained. When Redis comes back
  (`RedisConn.on_change`) the flusher runs at once: outbox first, then pending.
- Bound: aggregation makes memory grow with distinct groups, not requests: a record for a group
  already waiting costs nothing. So `accounting.max_buffered_records` bounds groups (outbox +
  pending). Beyond it records of NEW groups are dropped, counted in `dropped` and logged once per
  episode; records of groups already waiting are still counted.
- `close()` (app shutdown, i.e. SIGTERM) flushes whatever is pending, bounded by a timeout.

Redis layout (all keys share the hash tag `{usage}`, so the multi-key script runs on Redis Cluster;
the write rate is one script call per worker per interval, so the single slot is not a hot spot):

- `<prefix>:{usage}:day:<YYYY-MM-DD>`: a hash per UTC day, field `<key>␟<provider>␟<model>␟<counter>`
  (␟ = \\x1f, replaced by a space inside names), integer values. Kept forever (billing data).
- `<prefix>:{usage}:writer:<id>`: the last batch number applied for that writer.

Totals read from Redis include everything flushed by every instance, so they lag by at most one
flush interval; `/v1/usage` flushes this process first so a caller sees its own requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from ..config.schema import AccountingConfig
from ..redis_conn import REDIS_ERRORS, RedisConn
from ..tasks import stop
from .record import UsageRecord, nanos_to_usd, to_nanos

log = logging.getLogger("switchboard")

# Counter slots of an aggregate row (and Redis field suffixes).
REQUESTS, ERRORS, CACHE_HITS, ESTIMATED, PROMPT, COMPLETION, CACHED, COST_NANOS, UNPRICED = range(9)
COUNTERS = ("requests", "errors", "cache_hits", "estimated", "prompt", "completion", "cached", "cost_nanos",
            "unpriced")
_NCOUNTERS = len(COUNTERS)
_COUNTER_INDEX = {name: i for i, name in enumerate(COUNTERS)}

GROUP_BY = ("day", "key", "provider", "model")  # accepted `group_by` members
SEP = "\x1f"
CHUNK = 1000  # groups per script call (≤ 11 args each)
WRITER_TTL_S = 7 * 86400  # a writer's last batch number outlives any plausible outage
CLOSE_TIMEOUT_S = 5.0

Group = tuple[str, str, str, str]  # (day, key, provider, model)

_APPLY_LUA = """
local seq = tonumber(ARGV[1])
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if last >= seq then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
local names = {__NAMES__}
local n = #names
local i = 3
local argc = #ARGV
while i <= argc do
  local h = KEYS[tonumber(ARGV[i])]
  local prefix = ARGV[i + 1]
  for j = 1, n do
    local v = ARGV[i + 1 + j]
    if v ~= '0' then
      redis.call('HINCRBY', h, prefix .. names[j], v)
    end
  end
  i = i + 2 + n
end
return 1
""".replace("__NAMES__", ", ".join(f"'{name}'" for name in COUNTERS))


@dataclass(slots=True)
class Batch:
    """Sealed deltas with the writer's batch number; resent unchanged until applied."""

    seq: int
    items: list[tuple[Group, list[int]]]


class Accountant:
    def __init__(self, conn: RedisConn | None, config: AccountingConfig | None = None) -> None:
        config = config or AccountingConfig()
        self._conn = conn
        self._interval = config.flush_interval_s
        self._max_groups = config.max_buffered_records if conn is not None else None
        self._pending: dict[Group, list[int]] = {}
        self._outbox: deque[Batch] = deque()
        self._outbox_groups = 0
        self.writer_id = uuid.uuid4().hex
        self._seq = 0
        self.dropped = 0  # records lost to the bound (a metric)
        self._overflowing = False
        self._buffering = False  # a flush failed and nothing has succeeded since
        self._last_error_log = 0.0
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._script = None
        self._script_client = None
        if conn is not None:
            conn.on_change(self._on_redis_change)

    # -- hot path ---------------------------------------------------------------------------------
    def record(self, rec: UsageRecord) -> None:
        """Count one request. Synchronous, O(1), no I/O, never raises."""
        try:
            group = (rec.day, rec.key, rec.provider, rec.model)
            if rec.cache_hit:  # nothing billed upstream: no tokens, no cost
                prompt = completion = cached = nanos = unpriced = 0
            else:  # convert before touching the aggregate, so a malformed record changes nothing
                prompt, completion, cached = int(rec.prompt_tokens), int(rec.completion_tokens), \
                    int(rec.cached_tokens)
                cost = rec.cost_usd
                nanos = to_nanos(cost) if cost is not None else 0
                unpriced = 1 if cost is None and (prompt or completion) else 0
            c = self._pending.get(group)
            if c is None:
                if self._max_groups is not None and len(self._pending) + self._outbox_groups >= self._max_groups:
                    self._overflow()
                    return
                c = self._pending[group] = [0] * _NCOUNTERS
            c[REQUESTS] += 1
            if not rec.ok:
                c[ERRORS] += 1
            if rec.cache_hit:
                c[CACHE_HITS] += 1
                return
            if rec.estimated:
                c[ESTIMATED] += 1
            c[PROMPT] += prompt
            c[COMPLETION] += completion
            c[CACHED] += cached
            c[COST_NANOS] += nanos
            c[UNPRICED] += unpriced
        except Exception:  # a malformed record must never fail the request that made it
            self.dropped += 1
            log.debug("accounting: malformed usage record dropped: %r", rec, exc_info=True)

    def _overflow(self) -> None:
        self.dropped += 1
        if not self._overflowing:
            self._overflowing = True
            log.error("accounting: %d usage groups are waiting for Redis (accounting.max_buffered_records); "
                      "records of new key/provider/model/day groups are dropped until Redis is back",
                      self._max_groups)

    # -- state for metrics and tests ---------------------------------------------------------------
    @property
    def backend(self) -> str:
        return "memory" if self._conn is None else "redis"

    @property
    def buffered(self) -> int:
        """Groups waiting to be written to Redis (0 for the memory backend)."""
        if self._conn is None:
            return 0
        return len(self._pending) + self._outbox_groups

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the background flusher (Redis backend only). Call inside the running loop."""
        if self._conn is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="switchboard-accounting-flush")

    async def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Stop the flusher and write everything still buffered (bounded wait). Call before the
        Redis connection is closed."""
        await stop(self._task)
        self._task = None
        if self._conn is None:
            return
        ok = False
        try:
            async with asyncio.timeout(timeout_s):
                ok = await self.flush()
        except TimeoutError:
            pass
        if not ok and self.buffered:
            log.error("accounting: %d usage groups could not be written to Redis at shutdown and are lost",
                      self.buffered)

    def _on_redis_change(self, up: bool) -> None:
        if up:
            self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            if self._conn is not None and self._conn.up and (self._pending or self._outbox):
                try:
                    await self.flush()
                except Exception:  # keep the flusher alive whatever happens
                    log.exception("accounting: flush failed")

    # -- flushing ----------------------------------------------------------------------------------
    async def flush(self) -> bool:
        """Write everything recorded so far to Redis. True when nothing is left buffered."""
        if self._conn is None:
            return True
        async with self._lock:
            if not await self._drain():
                return False
            self._seal()
            return await self._drain()

    def _seal(self) -> list[Batch]:
        """Move the pending aggregate into numbered batches at the end of the outbox (no await)."""
        if not self._pending:
            return []
        pending, self._pending = self._pending, {}
        items = list(pending.items())
        batches = []
        for start in range(0, len(items), CHUNK):
            self._seq += 1
            batch = Batch(self._seq, items[start:start + CHUNK])
            self._outbox.append(batch)
            self._outbox_groups += len(batch.items)
            batches.append(batch)
        return batches

    async def _drain(self) -> bool:
        sent = 0
        while self._outbox:
            batch = self._outbox[0]
            try:
                await self._apply(batch)
            except ResponseError as exc:  # Redis answered with an error (OOM, CLUSTERDOWN, …): retry later
                self._note_failure(exc)
                return False
            except REDIS_ERRORS as exc:
                self._conn.failed(exc)
                self._note_failure(exc)
                return False
            self._outbox.popleft()
            self._outbox_groups -= len(batch.items)
            sent += len(batch.items)
        if self._buffering:
            self._buffering = False
            log.warning("accounting: redis is back; %d buffered usage groups written", sent)
        if self._overflowing and self.buffered < self._max_groups:
            self._overflowing = False
        return True

    def _note_failure(self, exc: BaseException) -> None:
        now = time.monotonic()
        if not self._buffering or now - self._last_error_log > 60:
            self._last_error_log = now
            log.warning("accounting: cannot write usage to redis (%s: %s); buffering %d groups in memory",
                        type(exc).__name__, exc, self.buffered)
        self._buffering = True

    async def _apply(self, batch: Batch) -> int:
        """Send one batch; 1 = applied, 0 = it had been applied before (a retry after a lost reply)."""
        conn = self._conn
        client = conn.client
        if client is None:
            raise ConnectionError("redis client is not started")
        if self._script is None or self._script_client is not client:
            self._script = client.register_script(_APPLY_LUA)
            self._script_client = client
        keys = [conn.key("usage", "writer", self.writer_id)]
        key_index: dict[str, int] = {}
        args: list[Any] = [batch.seq, WRITER_TTL_S]
        for (day, key, provider, model), counters in batch.items:
            idx = key_index.get(day)
            if idx is None:
                keys.append(conn.key("usage", "day", day))
                idx = key_index[day] = len(keys)
            args.append(idx)
            args.append(SEP.join((_clean(key), _clean(provider), _clean(model), "")))
            args.extend(counters)
        return int(await self._script(keys=keys, args=args, client=client))

    # -- reading -----------------------------------------------------------------------------------
    async def totals(self, from_day: str | dt.date, to_day: str | dt.date, key: str | None = None,
                     group_by: Sequence[str] = (), *, provider: str | None = None,
                     model: str | None = None) -> list[dict[str, Any]]:
        """Aggregated usage for the UTC days `from_day`..`to_day` (inclusive), optionally for one
        virtual key / provider / model, grouped by any of day|key|provider|model (none = one row).

        Redis backend: what every instance has flushed (this process's unflushed records are not
        included; call `flush()` first). Raises one of `REDIS_ERRORS` when Redis is unreachable.
        """
        for g in group_by:
            if g not in GROUP_BY:
                raise ValueError(f"unknown group_by {g!r}")
        first, last = _as_date(from_day), _as_date(to_day)
        days = [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
        if self._conn is None:
            wanted = set(days)
            source: Iterable[tuple[Group, list[int]]] = (
                (g, c) for g, c in self._pending.items() if g[0] in wanted)
        else:
            source = await self._read_redis(days)
        dims = [GROUP_BY.index(g) for g in group_by]
        out: dict[tuple[str, ...], list[int]] = {}
        for group, counters in source:
            if ((key is not None and group[1] != key) or (provider is not None and group[2] != provider)
                    or (model is not None and group[3] != model)):
                continue
            gkey = tuple(group[i] for i in dims)
            acc = out.get(gkey)
            if acc is None:
                acc = out[gkey] = [0] * _NCOUNTERS
            for i, v in enumerate(counters):
                acc[i] += v
        rows = []
        for gkey in sorted(out):
            row: dict[str, Any] = dict(zip(group_by, gkey, strict=True))
            row.update(counters_to_row(out[gkey]))
            rows.append(row)
        return rows

    async def _read_redis(self, days: list[str]) -> list[tuple[Group, list[int]]]:
        conn = self._conn
        client = conn.client
        if client is None:
            raise ConnectionError("redis client is not started")
        try:
            pipe = client.pipeline(transaction=False)
            for day in days:
                pipe.hgetall(conn.key("usage", "day", day))
            hashes = await pipe.execute()
        except ResponseError:
            raise
        except REDIS_ERRORS as exc:
            conn.failed(exc)
            raise
        groups: dict[Group, list[int]] = {}
        for day, fields in zip(days, hashes, strict=True):
            for name, value in fields.items():
                parts = name.decode("utf-8", "replace").split(SEP)
                if len(parts) != 4 or parts[3] not in _COUNTER_INDEX:
                    continue
                group = (day, parts[0], parts[1], parts[2])
                c = groups.get(group)
                if c is None:
                    c = groups[group] = [0] * _NCOUNTERS
                c[_COUNTER_INDEX[parts[3]]] += int(value)
        return list(groups.items())

    def memory_snapshot(self) -> dict[Group, list[int]]:
        """A copy of the not-yet-flushed (Redis) or whole (memory) aggregate; for tests."""
        out = {g: list(c) for g, c in self._pending.items()}
        for batch in self._outbox:
            for g, c in batch.items:
                acc = out.setdefault(g, [0] * _NCOUNTERS)
                for i, v in enumerate(c):
                    acc[i] += v
        return out


ROW_COUNTERS = ("requests", "errors", "cache_hits", "prompt_tokens", "completion_tokens", "cached_tokens",
                "total_tokens", "cost_usd", "cost_nanos", "estimated_requests", "unpriced_requests")


def counters_to_row(c: Sequence[int]) -> dict[str, Any]:
    return {
        "requests": c[REQUESTS], "errors": c[ERRORS], "cache_hits": c[CACHE_HITS],
        "prompt_tokens": c[PROMPT], "completion_tokens": c[COMPLETION], "cached_tokens": c[CACHED],
        "total_tokens": c[PROMPT] + c[COMPLETION],
        "cost_usd": nanos_to_usd(c[COST_NANOS]), "cost_nanos": c[COST_NANOS],
        "estimated_requests": c[ESTIMATED], "unpriced_requests": c[UNPRICED],
    }


def sum_rows(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Grand totals of `totals()` rows (cost summed in nanos, so exact)."""
    acc = dict.fromkeys(ROW_COUNTERS, 0)
    for row in rows:
        for name in ROW_COUNTERS:
            if name != "cost_usd":
                acc[name] += row[name]
    acc["cost_usd"] = nanos_to_usd(acc["cost_nanos"])
    return acc


def _clean(part: str) -> str:
    return part.replace(SEP, " ") if SEP in part else part


def _as_date(value: str | dt.date) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)
