"""Bounded load generators: `wrk` (when installed) and an asyncio/aiohttp generator.

    python -m benchmarks.loadgen --url http://127.0.0.1:8099/v1/chat/completions --model gpt-4o-mini \
        (--rate 500 | --concurrency 16) [--duration 5] [--requests N] [--stream] [--generator auto]

Prints one JSON object (see `summarise`) on stdout. Every run is bounded twice: by `--duration`
(seconds of offered load, plus a drain bounded by `--timeout`) and by `--requests` (a count).

* Open loop (`--rate R`): request i is due at start + i/R whatever happened to earlier requests
  (no coordinated omission from the generator's side); latency is timed from the moment the request
  is actually sent, and how late the generator sent it is reported separately as `lag_ms`, so a
  generator that falls behind is visible instead of silently lowering the offered load. Debian's
  wrk has no fixed-rate mode (that is wrk2, not packaged), so open loop always uses asyncio.
* Closed loop (`--concurrency C`): C connections, each sending its next request when the previous
  answer is complete. `wrk` (C code, one thread) is used when present because it costs far less CPU
  per request than any Python client on the same 2 cores; `--generator asyncio` forces Python.
* Streams (`--stream`): asyncio only (wrk cannot see chunk times). `ttft_ms` is the time to the first
  SSE event with non-empty `delta.content`; a stream counts as ok only when it ends with `[DONE]`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

FIRST_CONTENT = re.compile(rb'"content":"[^"]')
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench-not-a-real-key"}
MAX_INFLIGHT = 2048


def request_body(model: str, stream: bool = False, seq: int | None = None) -> bytes:
    """A typical small chat request (~350 bytes): system + user message, a few parameters."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a concise assistant for a load benchmark."},
            {"role": "user", "content": "Summarise in two sentences why an LLM router should add as little "
                                        "latency as possible." + (f" #{seq}" if seq is not None else "")},
        ],
        "temperature": 0.2,
        "max_tokens": 128,
        "user": "bench",
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return orjson.dumps(body)


# -- statistics ---------------------------------------------------------------------------------------------
def percentiles(values: list[float], scale: float = 1000.0) -> dict[str, float] | None:
    """p50/p90/p99/p99.9, mean, min, max of seconds, in milliseconds (nearest rank)."""
    if not values:
        return None
    data = sorted(values)
    n = len(data)

    def rank(p: float) -> float:
        return data[min(n - 1, max(0, round(p / 100.0 * n + 0.5) - 1))] * scale

    return {"p50": round(rank(50), 4), "p90": round(rank(90), 4), "p99": round(rank(99), 4),
            "p999": round(rank(99.9), 4), "mean": round(sum(data) / n * scale, 4),
            "min": round(data[0] * scale, 4), "max": round(data[-1] * scale, 4), "n": n}


class Recorder:
    """Per-request outcomes of one run."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.ttfts: list[float] = []
        self.lags: list[float] = []
        self.status: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.sent = 0
        self.skipped = 0
        self.ok = 0
        self.first_send = 0.0
        self.last_done = 0.0


async def one_request(session, url: str, body: bytes, stream: bool, rec: Recorder) -> None:
    t0 = time.perf_counter()
    rec.sent += 1
    try:
        async with session.post(url, data=body, headers=HEADERS) as resp:
            status = resp.status
            if stream and status == 200:
                ttft = None
                tail = b""
                async for data in resp.content.iter_any():
                    window = tail + data
                    if ttft is None and FIRST_CONTENT.search(window):
                        ttft = time.perf_counter() - t0
                    tail = window[-64:]
                complete = b"[DONE]" in tail
                if ttft is not None:
                    rec.ttfts.append(ttft)
                if not complete:
                    rec.errors["stream_incomplete"] += 1
            else:
                await resp.read()
                complete = True
    except asyncio.CancelledError:
        rec.errors["cancelled"] += 1
        raise
    except Exception as exc:
        rec.errors[type(exc).__name__] += 1
        return
    done = time.perf_counter()
    rec.last_done = max(rec.last_done, done)
    rec.status[str(status)] += 1
    if status == 200 and complete:
        rec.ok += 1
        rec.latencies.append(done - t0)


def _session(limit: int, timeout_s: float):
    import aiohttp

    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit, keepalive_timeout=60,
                                     enable_cleanup_closed=False, ttl_dns_cache=None)
    return aiohttp.ClientSession(connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
                                 timeout=aiohttp.ClientTimeout(total=timeout_s),
                                 skip_auto_headers=("User-Agent", "Accept-Encoding"))


async def open_loop(url: str, bodies: list[bytes], rate: float, duration: float, max_requests: int,
                    stream: bool, timeout_s: float) -> Recorder:
    """Send at a fixed rate for `duration` seconds (or `max_requests`), then drain (bounded)."""
    rec = Recorder()
    n = max(1, min(max_requests, int(rate * duration)))
    interval = 1.0 / rate
    tasks: set[asyncio.Task] = set()
    async with _session(MAX_INFLIGHT, timeout_s) as session:
        start = time.perf_counter() + 0.01
        rec.first_send = start
        i = 0
        while i < n:
            now = time.perf_counter()
            due = start + i * interval
            if due > now:
                await asyncio.sleep(due - now)
                continue
            # Everything due by now goes out in this pass (the event loop's timer has ms granularity).
            while i < n and start + i * interval <= now:
                rec.lags.append(now - (start + i * interval))
                if len(tasks) >= MAX_INFLIGHT:
                    rec.skipped += 1  # the system under test is far behind: count, do not queue
                else:
                    task = asyncio.create_task(one_request(session, url, bodies[i % len(bodies)], stream, rec))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                i += 1
        if tasks:
            _, pending = await asyncio.wait(set(tasks), timeout=timeout_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
    return rec


async def closed_loop(url: str, bodies: list[bytes], concurrency: int, duration: float, max_requests: int,
                      stream: bool, timeout_s: float) -> Recorder:
    """`concurrency` workers, each sending back to back until the deadline or the request budget."""
    rec = Recorder()
    budget = [max_requests]

    async with _session(concurrency, timeout_s) as session:
        rec.first_send = time.perf_counter()
        deadline = rec.first_send + duration

        async def worker(k: int) -> None:
            j = k
            while budget[0] > 0 and time.perf_counter() < deadline:
                budget[0] -= 1
                await one_request(session, url, bodies[j % len(bodies)], stream, rec)
                j += concurrency

        workers = [asyncio.create_task(worker(k)) for k in range(concurrency)]
        _, pending = await asyncio.wait(workers, timeout=duration + timeout_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)
    return rec


def summarise(rec: Recorder, *, mode: str, rate: float | None, concurrency: int | None, stream: bool,
              cpu_s: float, wall_s: float) -> dict[str, Any]:
    elapsed = max(1e-9, (rec.last_done or time.perf_counter()) - rec.first_send)
    return {
        "generator": "asyncio", "mode": mode, "offered_rps": rate, "concurrency": concurrency, "stream": stream,
        "sent": rec.sent, "ok": rec.ok, "skipped": rec.skipped, "errors": dict(rec.errors),
        "status": dict(rec.status), "duration_s": round(elapsed, 3), "rps": round(rec.ok / elapsed, 1),
        "latency_ms": percentiles(rec.latencies), "ttft_ms": percentiles(rec.ttfts) if stream else None,
        "lag_ms": percentiles(rec.lags) if mode == "open" else None,
        "generator_cpu_s": round(cpu_s, 3), "generator_cpu_share": round(cpu_s / max(wall_s, 1e-9), 3),
    }


def run_asyncio(url: str, bodies: list[bytes], *, rate: float | None, concurrency: int | None, duration: float,
                max_requests: int, stream: bool, timeout_s: float) -> dict[str, Any]:
    async def go() -> Recorder:
        if rate:
            return await open_loop(url, bodies, rate, duration, max_requests, stream, timeout_s)
        return await closed_loop(url, bodies, concurrency or 1, duration, max_requests, stream, timeout_s)

    r0 = resource.getrusage(resource.RUSAGE_SELF)
    w0 = time.perf_counter()
    gc_was_enabled = gc.isenabled()
    gc.disable()  # no collector pauses inside the measurement (the run is short and bounded)
    try:
        try:
            import uvloop
        except ImportError:
            rec = asyncio.run(go())
        else:
            rec = uvloop.run(go())
    finally:
        if gc_was_enabled:
            gc.enable()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return summarise(rec, mode="open" if rate else "closed", rate=rate, concurrency=concurrency, stream=stream,
                     cpu_s=cpu, wall_s=time.perf_counter() - w0)


# -- wrk ----------------------------------------------------------------------------------------------------
def wrk_path() -> str | None:
    return shutil.which("wrk")


_LUA = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench-not-a-real-key"
local bodies = { %(bodies)s }
local n = 0
if #bodies == 1 then
  wrk.body = bodies[1]
else
  request = function()
    n = n + 1
    return wrk.format(nil, nil, nil, bodies[(n %% #bodies) + 1])
  end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%%d,"duration_us":%%d,"bytes":%%d,' ..
    '"errors":{"connect":%%d,"read":%%d,"write":%%d,"status":%%d,"timeout":%%d},' ..
    '"latency_us":{"p50":%%d,"p90":%%d,"p99":%%d,"p999":%%d,"mean":%%.3f,"min":%%d,"max":%%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.mean, latency.min, latency.max))
end
"""


def _lua_string(data: bytes) -> str:
    text = data.decode()
    level = "="
    while f"]{level}]" in text:
        level += "="
    return f"[{level}[{text}]{level}]"


def run_wrk(url: str, bodies: list[bytes], *, concurrency: int, duration: float, timeout_s: float,
            threads: int = 1) -> dict[str, Any]:
    """Closed loop through wrk (C); returns the same shape as the asyncio generator."""
    wrk = wrk_path()
    if wrk is None:
        raise RuntimeError("wrk is not installed")
    seconds = max(1, round(duration))
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as tmp:
        script = Path(tmp) / "bench.lua"
        script.write_text(_LUA % {"bodies": ", ".join(_lua_string(b) for b in bodies)})
        cmd = [wrk, f"-t{min(threads, concurrency)}", f"-c{concurrency}", f"-d{seconds}s",
               f"--timeout={max(1, int(timeout_s))}s", "-s", str(script), url]
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + timeout_s + 10, check=False)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed (exit {proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    raw = orjson.loads(line[len("WRKJSON "):])
    duration_s = raw["duration_us"] / 1e6
    errors = {k: v for k, v in raw["errors"].items() if v}
    failed = raw["errors"]["status"]  # non-2xx/3xx responses; socket errors are not counted as requests
    ok = raw["requests"] - failed
    lat = {k: round(v / 1000.0, 4) for k, v in raw["latency_us"].items()}
    lat["n"] = raw["requests"]
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return {"generator": "wrk", "mode": "closed", "offered_rps": None, "concurrency": concurrency, "stream": False,
            "sent": raw["requests"], "ok": ok, "skipped": 0, "errors": errors, "status": {},
            "duration_s": round(duration_s, 3), "rps": round(ok / max(duration_s, 1e-9), 1),
            "latency_ms": lat, "ttft_ms": None, "lag_ms": None, "generator_cpu_s": round(cpu, 3),
            "generator_cpu_share": round(cpu / max(duration_s, 1e-9), 3)}


# -- entry point --------------------------------------------------------------------------------------------
def run(url: str, *, model: str, rate: float | None = None, concurrency: int | None = None, duration: float = 5.0,
        max_requests: int = 1_000_000, stream: bool = False, stream_every: int = 0, generator: str = "auto",
        timeout_s: float = 10.0, unique: int = 1) -> dict[str, Any]:
    """One bounded load run; `generator` is auto (wrk for non-stream closed loop when installed), wrk or asyncio.

    `stream_every=K` (closed loop) makes every K-th request a stream (used by the soak); `unique=N`
    cycles through N distinct bodies.
    """
    if (rate is None) == (concurrency is None):
        raise ValueError("give exactly one of rate (open loop) or concurrency (closed loop)")
    if not url.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]")):
        raise ValueError("the benchmark only sends to loopback addresses")
    mixed = stream_every > 0
    if mixed:
        bodies = [request_body(model)] * (stream_every - 1) + [request_body(model, True)]
    else:
        bodies = [request_body(model, stream, seq=i if unique > 1 else None) for i in range(max(1, unique))]
    use_wrk = (generator == "wrk" or (generator == "auto" and wrk_path() is not None)) and rate is None \
        and (not stream or mixed)
    if generator == "wrk" and not use_wrk:
        raise ValueError("wrk only runs closed-loop, non-stream (or mixed) loads")
    if use_wrk:
        out = run_wrk(url, bodies, concurrency=concurrency or 1, duration=duration, timeout_s=timeout_s)
    else:
        out = run_asyncio(url, bodies, rate=rate, concurrency=concurrency, duration=duration,
                          max_requests=max_requests, stream=stream and not mixed, timeout_s=timeout_s)
    out["mixed_stream_every"] = stream_every or None
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.loadgen", description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True)
    p.add_argument("--model", default="gpt-4o-mini")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--rate", type=float, help="open loop: requests per second")
    group.add_argument("--concurrency", type=int, help="closed loop: connections")
    p.add_argument("--duration", type=float, default=5.0, help="seconds of load (a bound)")
    p.add_argument("--requests", type=int, default=1_000_000, help="at most this many requests (a bound)")
    p.add_argument("--stream", action="store_true")
    p.add_argument("--stream-every", type=int, default=0, help="every K-th request streams (closed loop)")
    p.add_argument("--unique", type=int, default=1, help="cycle through N distinct request bodies")
    p.add_argument("--generator", choices=("auto", "wrk", "asyncio"), default="auto")
    p.add_argument("--timeout", type=float, default=10.0, help="per-request timeout and drain bound, seconds")
    args = p.parse_args(argv)
    if args.duration <= 0 or args.duration > 3600 or args.requests < 1:
        p.error("--duration must be in (0, 3600] and --requests >= 1")
    out = run(args.url, model=args.model, rate=args.rate, concurrency=args.concurrency, duration=args.duration,
              max_requests=args.requests, stream=args.stream, stream_every=args.stream_every,
              generator=args.generator, timeout_s=args.timeout, unique=args.unique)
    out["pid"] = os.getpid()
    sys.stdout.write(orjson.dumps(out).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
