"""Many long, slowly paced streams held open at once: the load generator of scenario 7 (its own process).

    python -m benchmarks.open_streams --url http://127.0.0.1:PORT/v1/chat/completions --model M \
        --streams 1000 --ramp-s 5 --interval-ms 500 --out result.json [--key sk-...]

What a gateway mostly does in production is hold streams open: an answer lasts seconds to minutes,
a chunk every few tens to hundreds of milliseconds. Each stream here is one HTTP/1.1 connection on
a raw asyncio protocol (uvloop when installed): it sends one streaming chat request and notes the
arrival time of every SSE event, nothing more, so that thousands of streams cost the generator
little. The streams are opened evenly over `--ramp-s`. A ticker measures the generator's own event
loop lag: when it is high, the numbers are the generator's, not the gateway's.

The JSON written to `--out`: how many streams finished (`data: [DONE]`), errors, time to the first
content event, the gaps between consecutive content events (their excess over `--interval-ms`), the lag, the window
in which every stream was open at once, and the generator's own CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from array import array
from typing import Any
from urllib.parse import urlsplit

import orjson

BUCKET_S = 0.5
EVENT = b"data: {"
DONE = b"data: [DONE]"


class _Stream(asyncio.Protocol):
    __slots__ = ("arrivals", "closed", "done", "error", "opened", "request", "status_ok", "tail", "transport")

    def __init__(self, request: bytes, closed: asyncio.Future) -> None:
        self.request = request
        self.closed = closed
        self.arrivals = array("d")
        self.tail = b""
        self.done = False
        self.status_ok: bool | None = None
        self.error: str | None = None
        self.opened = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.opened = time.perf_counter()
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if self.status_ok is None:
            self.status_ok = data.startswith(b"HTTP/1.1 200")
        window = self.tail + data
        for _ in range(window.count(EVENT) - self.tail.count(EVENT)):
            self.arrivals.append(now)
        if DONE in window:
            self.done = True
            self.transport.close()
        self.tail = window[-16:]

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self.error is None:
            self.error = type(exc).__name__
        if not self.closed.done():
            self.closed.set_result(None)


def _request(url: str, model: str, key: str | None) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    body = orjson.dumps({"model": model, "stream": True, "messages": [{"role": "user", "content": "Tell me."}]})
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    head = (f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{auth}Connection: close\r\n\r\n")
    return parts.hostname or "127.0.0.1", parts.port or 80, head.encode() + body


def _percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    values = sorted(values)
    pick = lambda p: values[min(len(values) - 1, int(p / 100.0 * len(values)))]  # noqa: E731
    return {"p50": round(pick(50) * 1000, 3), "p90": round(pick(90) * 1000, 3), "p99": round(pick(99) * 1000, 3),
            "max": round(values[-1] * 1000, 3)}


async def run(url: str, model: str, streams: int, ramp_s: float, interval_s: float, key: str | None,
              timeout_s: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    host, port, request = _request(url, model, key)
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:  # the generator's own lag, every 10 ms
        step = 0.01
        due = time.perf_counter() + step
        while not stop.is_set():
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            lags.append(max(0.0, time.perf_counter() - due))
            due += step

    async def one(delay: float) -> _Stream | None:
        await asyncio.sleep(delay)
        closed = loop.create_future()
        try:
            _, proto = await loop.create_connection(lambda: _Stream(request, closed), host, port)
        except OSError as exc:
            failed = _Stream(request, closed)
            failed.error = type(exc).__name__
            return failed
        try:
            async with asyncio.timeout(timeout_s):
                await closed
        except TimeoutError:
            proto.error = "timeout"
            proto.transport.close()
        return proto

    tick = asyncio.create_task(ticker())
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    results = await asyncio.gather(*(one(ramp_s * i / streams) for i in range(streams)))
    ended = time.perf_counter()
    stop.set()
    await tick
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    done = [s for s in results if s is not None and s.done and s.status_ok]
    errors: dict[str, int] = {}
    for s in results:
        if s is None or not (s.done and s.status_ok):
            reason = (s.error if s is not None and s.error else "http_error" if s is not None and s.status_ok is False
                      else "incomplete")
            errors[reason] = errors.get(reason, 0) + 1
    # Events: the role chunk, the content chunks, the finish chunk. A gateway may hold the role chunk until
    # the first content (it can still fall back) and the finish chunk until the upstream ends (to add the
    # final usage), so time to first token and the gaps are taken over the content chunks only.
    ttft = [s.arrivals[1] - s.opened for s in done if len(s.arrivals) > 2]
    gaps: list[float] = []
    for s in done:
        a = s.arrivals
        gaps.extend(a[i] - a[i - 1] for i in range(2, len(a) - 1))
    excess = [max(0.0, g - interval_s) for g in gaps]
    opened_last = max((s.opened for s in done), default=started)
    first_end = min((s.arrivals[-1] for s in done if s.arrivals), default=ended)
    # Events per BUCKET_S of absolute time (perf_counter is CLOCK_MONOTONIC, shared by every process), so
    # the runner can divide the gateway's CPU time over a window by the events relayed in it.
    counts = [0] * (int((ended - started) / BUCKET_S) + 1)
    for s in done:
        for t in s.arrivals:
            counts[min(len(counts) - 1, int((t - started) / BUCKET_S))] += 1
    return {
        "streams": streams, "completed": len(done), "errors": errors,
        "events": sum(len(s.arrivals) for s in done),
        "duration_s": round(ended - started, 3),
        "all_open_window_s": [round(opened_last - started, 3), round(first_end - started, 3)],
        "started_at": started, "all_open_at": [opened_last, first_end],
        "event_buckets": {"start": started, "width_s": BUCKET_S, "counts": counts},
        "ttft_ms": _percentiles(ttft), "gap_ms": _percentiles(gaps), "gap_excess_ms": _percentiles(excess),
        "generator_lag_ms": _percentiles(lags),
        "generator_cpu_s": round((cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime), 3),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--ramp-s", type=float, default=5.0)
    ap.add_argument("--interval-ms", type=float, default=500.0)
    ap.add_argument("--timeout-s", type=float, default=120.0)
    ap.add_argument("--key")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(run(args.url, args.model, args.streams, args.ramp_s, args.interval_ms / 1000.0, args.key,
                             args.timeout_s))
    with open(args.out, "wb") as f:
        f.write(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return 0 if result["completed"] == result["streams"] else 1


if __name__ == "__main__":
    sys.exit(main())
