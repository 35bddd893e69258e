"""`switchboard serve --workers 2` on a shared Redis: SIGTERM flushes the usage a worker has buffered.

The workers flush accounting only every 30 s, so during the test every record stays in the workers'
memory (checked: Redis holds nothing while they run). One worker is SIGTERMed directly while
requests are in flight, the other through the parent at the end; a fresh in-process router reading
the same Redis then shows every request the fake vendor billed, to the token and the nano-dollar.
Every wait is bounded and every process started here is killed in `finally`.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
from collections import Counter, defaultdict
from pathlib import Path

import aiohttp
import orjson
import pytest
from fakes.openai_upstream import Reply
from support.redis_server import free_port
from support.serve_process import alive, children, clean_env, kill_all, listening_inodes, socket_inodes, start_serve

START_S = 30  # bound on the workers being ready
STOP_S = 15  # bound on a clean shutdown
ADMIN = "admin-s3cret"
KEYS = [{"name": "team-a", "key": "sk-team-a"}, {"name": "team-b", "key": "sk-team-b", "rpm": 10_000}]
PRICING = {"alpha/m-large": {"input_per_mtok": 2.5, "output_per_mtok": 10.0, "cache_read_per_mtok": 1.25},
           "beta/m-small": {"input_per_mtok": 0.15, "output_per_mtok": 0.6, "cache_read_per_mtok": 0.075}}
NANOS = {m: (round(p["input_per_mtok"] * 1000), round(p["cache_read_per_mtok"] * 1000),
             round(p["output_per_mtok"] * 1000)) for m, p in PRICING.items()}
MODELS = tuple(PRICING)
NUMBER = re.compile(r"request (\d+)")
FIELDS = ("requests", "errors", "prompt_tokens", "completion_tokens", "cached_tokens", "cost_nanos")


def usage_of(i: int) -> dict:
    prompt = 20 + (i * 37) % 211
    completion = 1 + (i * 53) % 97
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": (i % 4) * (prompt // 5), "audio_tokens": 0}}


class Metered:
    """The fake's reply: usage from the request's number; `billed[i]` = (model, usage) it reported."""

    def __init__(self) -> None:
        self.billed: dict[int, tuple[str, dict]] = {}

    async def __call__(self, fake, request, received):
        body = received.body
        i = int(NUMBER.search(body["messages"][-1]["content"]).group(1))
        assert i not in self.billed, f"request {i} reached the vendor twice"
        self.billed[i] = (body["model"], usage := usage_of(i))
        return await Reply(text=f"answer {i}", usage=usage, delay_s=0.05)(fake, request, received)


def expected(meter: Metered, key_of) -> dict[tuple, dict]:
    out: dict[tuple, Counter] = defaultdict(Counter)
    providers = {"m-large": "alpha/m-large", "m-small": "beta/m-small"}
    for i, (vendor_model, usage) in meter.billed.items():
        model = providers[vendor_model]
        c = out[(key_of(i), model)]
        cached = usage["prompt_tokens_details"]["cached_tokens"]
        inp, read, outp = NANOS[model]
        c.update(requests=1, prompt_tokens=usage["prompt_tokens"], completion_tokens=usage["completion_tokens"],
                 cached_tokens=cached, cost_nanos=(usage["prompt_tokens"] - cached) * inp + cached * read
                 + usage["completion_tokens"] * outp)
    return {k: {f: c[f] for f in FIELDS} for k, c in out.items()}


# -- processes (the helpers are in support/serve_process.py) -----------------------------------------------
def _workers_ready(parent: int, port: int) -> set[int] | None:
    """The two workers, once each holds a listening socket on `port` (aiohttp listens after start-up)."""
    workers = children(parent)
    listening = listening_inodes(port)
    return workers if len(workers) == 2 and all(socket_inodes(pid) & listening for pid in workers) else None


async def _wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out after {timeout_s:g}s waiting for {what}"
        await asyncio.sleep(0.05)
    return value


# -- the test ---------------------------------------------------------------------------------------------
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
async def test_sigterm_flushes_buffered_usage(fake_openai, make_router, redis_url, raw, tmp_path) -> None:
    meter = Metered()
    fake_openai.default = lambda received: meter
    config = {"providers": {"alpha": fake_openai.provider("alpha"), "beta": fake_openai.provider("beta")},
              "redis": {"url": redis_url}, "pricing": PRICING, "accounting": {"flush_interval_s": 30},
              "auth": {"admin_token": ADMIN, "keys": KEYS}}
    path = tmp_path / "workers.yaml"
    path.write_bytes(orjson.dumps(config))  # JSON is YAML
    port = free_port()
    reader = await make_router(config)  # in-process, same Redis: reads what the workers flushed

    async def totals(query: str = "group_by=key,model") -> dict:
        resp = await raw.request("GET", f"{reader}/v1/usage?{query}", headers={"authorization": f"Bearer {ADMIN}"})
        assert resp.status == 200, resp.body
        return resp.json()

    stderr = tmp_path / "stderr.txt"
    with stderr.open("wb") as err:
        proc = start_serve(path, port, clean_env(), subprocess.DEVNULL, err)
    seen: set[int] = set()
    outcomes: dict[int, int | str] = {}  # request number -> HTTP status, or the connection error
    try:
        workers = await _wait_for(lambda: _workers_ready(proc.pid, port), START_S, "two listening workers")
        seen |= workers

        # A new connection per request, so the kernel spreads them over both workers' sockets.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True),
                                         timeout=aiohttp.ClientTimeout(total=10)) as session:
            slots = asyncio.Semaphore(8)

            async def one(i: int) -> None:
                body = {"model": MODELS[(i // 2) % 2], "messages": [{"role": "user", "content": f"request {i}"}]}
                if i % 3 == 0:
                    body["stream"] = True
                headers = {"authorization": f"Bearer {KEYS[i % 2]['key']}"}
                async with slots:
                    try:
                        async with session.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body,
                                                headers=headers) as resp:
                            data = await resp.read()
                            outcomes[i] = resp.status
                            if body.get("stream") and resp.status == 200:
                                assert data.endswith(b"data: [DONE]\n\n") and b'data: {"error"' not in data, data[-300:]
                    except aiohttp.ClientConnectionError as exc:  # raced a worker closing its socket
                        outcomes[i] = type(exc).__name__

            first = [asyncio.create_task(one(i)) for i in range(40)]
            await _wait_for(lambda: len(outcomes) >= 20, 20, "the first requests")
            assert (await totals())["totals"]["requests"] == 0  # all of it is buffered in the workers

            victim = min(workers)
            os.kill(victim, signal.SIGTERM)  # mid-load: up to 8 requests in flight
            await asyncio.gather(*first)
            await _wait_for(lambda: not alive(victim), STOP_S, "the SIGTERMed worker to exit")
            flushed = (await totals())["totals"]
            # Only the victim has written anything: what it served, flushed on its way out.
            assert 0 < flushed["requests"] < len(meter.billed), (flushed, len(meter.billed))
            victim_share = flushed["requests"]

            await asyncio.sleep(0.2)  # the kernel drops the dead listener from the SO_REUSEPORT group
            await asyncio.gather(*(one(i) for i in range(40, 60)))

        proc.send_signal(signal.SIGTERM)  # the parent SIGTERMs its remaining worker
        assert await asyncio.to_thread(proc.wait, STOP_S) == 0
        await _wait_for(lambda: not any(alive(pid) for pid in workers), STOP_S, "every worker to exit")
    finally:
        await asyncio.to_thread(kill_all, proc, seen, STOP_S)

    # Every request the vendor billed was answered, and every request that was not billed failed
    # before reaching a worker (a connection refused or reset by the closing worker), never after.
    assert {i for i, s in outcomes.items() if s == 200} == set(meter.billed), outcomes
    assert len(meter.billed) >= 50, outcomes
    body = await totals()
    table = {(row["key"], row["model"]): {f: row[f] for f in FIELDS} for row in body["data"]}
    assert table == expected(meter, lambda i: KEYS[i % 2]["name"])
    assert body["totals"]["requests"] == len(meter.billed) and body["totals"]["errors"] == 0
    log = stderr.read_text()
    assert "Traceback" not in log and "could not be written" not in log, log
    print(f"workers: {len(meter.billed)} billed, {victim_share} flushed by the SIGTERMed worker, "
          f"outcomes {Counter(outcomes.values())}")
