"""`n > 1` for vendors that cannot do it natively: n parallel calls whose answers become n choices.

Each call walks the chain on its own (so each may fail over independently); the answers are merged
into one response (choice `i` from call `i`), usage is the sum of what every call was billed, and
the attempts of every call are kept in the trail. Streams are merged the same way, chunk by chunk.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from providers import UpstreamError

from .call import Call
from .chain import BuildRequest, Chain, OpenStream, ParseBody
from .table import Plan


def needs_fanout(plan: Plan, body: dict[str, Any]) -> int:
    """How many calls to make: `n` when some deployment in the chain lacks native `n`, else 0."""
    n = body.get("n")
    if not isinstance(n, int) or n <= 1:
        return 0
    if all(t.runtime.provider.capabilities.n for t in plan.targets):
        return 0
    return n


def without_n(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "n"}


def add_usage(total: dict[str, Any] | None, usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """Sum two OpenAI usage objects, nested token details included."""
    if not usage:
        return total
    if not total:
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in usage.items()}
    for key, value in usage.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            total[key] = (total.get(key) or 0) + value
        elif isinstance(value, dict):
            total[key] = add_usage(total.get(key) or {}, value)
    return total


def _merge_attempts(call: Call, subcalls: list[Call]) -> None:
    for sub in subcalls:
        call.attempts.extend(sub.attempts)
    call.target = next((s.target for s in subcalls if s.target is not None), None)


async def complete_n(chain: Chain, plan: Plan, call: Call, n: int, build: BuildRequest,
                     parse: ParseBody) -> tuple[dict, bytes]:
    subcalls = [call.sub() for _ in range(n)]
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(chain.complete(plan, sub, build, parse)) for sub in subcalls]
    except* Exception as failures:
        _merge_attempts(call, subcalls)
        raise failures.exceptions[0] from None
    _merge_attempts(call, subcalls)
    results = [t.result() for t in tasks]
    merged = results[0][0]
    choices: list[dict] = []
    usage: dict[str, Any] | None = None
    for i, (result, _raw) in enumerate(results):
        for choice in (result.get("choices") or [])[:1]:
            choices.append({**choice, "index": i})
        usage = add_usage(usage, result.get("usage"))
    merged["choices"] = choices
    if usage is not None:
        merged["usage"] = usage
    return merged, results[0][1]


async def open_stream_n(chain: Chain, plan: Plan, call: Call, n: int, build: BuildRequest) -> MergedStream:
    subcalls = [call.sub() for _ in range(n)]
    tasks: list[asyncio.Task] = []
    try:
        async with asyncio.TaskGroup() as group:
            tasks.extend(group.create_task(chain.open_stream(plan, sub, build)) for sub in subcalls)
    except* Exception as failures:
        _merge_attempts(call, subcalls)
        for task in tasks:  # close the streams that did open
            if task.done() and not task.cancelled() and task.exception() is None:
                task.result().close()
        raise failures.exceptions[0] from None
    _merge_attempts(call, subcalls)
    return MergedStream(call, [t.result() for t in tasks])


class MergedStream:
    """n committed streams read concurrently; choice `index` rewritten to the stream's number."""

    def __init__(self, call: Call, streams: list[OpenStream]) -> None:
        self._call = call
        self._streams = streams
        self._tasks: list[asyncio.Task] = []

    async def batches(self) -> AsyncIterator[list[dict]]:
        queue: asyncio.Queue = asyncio.Queue()
        self._tasks = [asyncio.ensure_future(self._pump(i, s, queue)) for i, s in enumerate(self._streams)]
        identity: dict[str, Any] | None = None
        usage: dict[str, Any] | None = None
        open_streams = len(self._streams)
        try:
            while open_streams:
                index, batch = await queue.get()
                if batch is None:
                    open_streams -= 1
                    continue
                if isinstance(batch, UpstreamError):
                    raise batch
                out = []
                for chunk in batch:
                    if identity is None:
                        identity = {"id": chunk.get("id"), "created": chunk.get("created"),
                                    "model": chunk.get("model")}
                    chunk.update(identity)
                    choices = chunk.get("choices")
                    if chunk.get("usage"):
                        usage = add_usage(usage, chunk["usage"])
                        if not choices:
                            continue
                        chunk.pop("usage")
                    for choice in choices or ():
                        choice["index"] = index
                    out.append(chunk)
                if out:
                    yield out
            if usage is not None:
                yield [{**(identity or {}), "object": "chat.completion.chunk", "choices": [], "usage": usage}]
        finally:
            self.close()

    @staticmethod
    async def _pump(index: int, stream: OpenStream, queue: asyncio.Queue) -> None:
        try:
            async for batch in stream.batches():
                await queue.put((index, batch))
        except UpstreamError as err:
            await queue.put((index, err))
        finally:
            await queue.put((index, None))

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for stream in self._streams:
            stream.close()
