"""One step of an agent run: one model call through the routing core, streamed or not.

The call goes through `router.core.complete_chat` / `open_chat_stream` with a fresh `Call`, so each
step has its own attempt chain (fallbacks, retries, breaker, deadline) and is accounted on its own
(`recorder.record`). Steps may use the response cache (`agent_settings.cache_steps`, when `cache:`
is configured and the client's `Cache-Control` allows it): the key is the step's whole request (so
tool results are part of it) under the endpoint name `agent.step`, stream and non-stream steps
share entries (stored as a completion), and a hit replays the model's answer only - its tool calls
run again, live.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from providers import UpstreamError

from ..cache import CachedResponse
from ..core import Recorder, complete_chat, open_chat_stream
from ..gateway import Gateway
from ..handlers.scope import Scope
from ..routing.chain import Call, ChainFailed
from ..routing.table import Plan
from ..usage import billed_usage, estimate_usage
from .events import Event, ReasoningDelta, StepStart, StepTrace, TextDelta, ToolInputDelta, ToolInputStart

STEP_ENDPOINT = "agent.step"
REQUEST_TYPE = "agent"


class StepFailed(Exception):
    """The committed stream of a step broke after its first content: the run cannot go on."""

    def __init__(self, error: UpstreamError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass(slots=True)
class StepResult:
    text: str = ""
    reasoning: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # OpenAI shape, arguments as strings
    finish_reason: str | None = None
    call: Call | None = None


@dataclass(slots=True)
class StepContext:
    gw: Gateway
    scope: Scope  # the request's: cache lookups and stores
    recorder: Recorder  # accounts each step (a child scope that does not settle the reservation)
    stream: bool
    cache: bool
    requested: str = ""  # `model_requested` of each step's `Call`: the agent (`agent:<id>`)
    call_ids: set[str] = field(default_factory=set)  # tool-call ids of this run (kept unique for the UI)

    def unique_id(self, call_id: Any) -> str:
        """The vendor's tool-call id, or a fresh one when it is missing or already used in this run
        (some vendors number calls per turn; a UI message needs each id once)."""
        if not isinstance(call_id, str) or not call_id or call_id in self.call_ids:
            call_id = f"call_{os.urandom(12).hex()}"
        self.call_ids.add(call_id)
        return call_id


def _completion(result: StepResult, model: str, usage: dict[str, Any] | None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": result.text or None}
    if result.tool_calls:
        message["tool_calls"] = result.tool_calls
    if result.reasoning:
        message["reasoning_content"] = result.reasoning
    out = {"id": f"chatcmpl-{os.urandom(8).hex()}", "object": "chat.completion", "created": int(time.time()),
           "model": model, "choices": [{"index": 0, "message": message, "finish_reason": result.finish_reason}]}
    if usage:
        out["usage"] = usage
    return out


def _read_completion(ctx: StepContext, body: dict[str, Any], out: StepResult) -> None:
    choice = (body.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content = message.get("content")
    if isinstance(content, list):  # text parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    out.text = content or ""
    out.reasoning = message.get("reasoning_content") or message.get("reasoning") or ""
    out.tool_calls = [{**c, "id": ctx.unique_id(c.get("id"))} for c in message.get("tool_calls") or ()
                      if isinstance(c, dict)]
    out.finish_reason = choice.get("finish_reason")


def _trace_call(trace: StepTrace, call: Call, billed: dict[str, Any] | None, cache: str,
                served: tuple[str | None, str | None] | None = None) -> None:
    target = call.target
    trace.provider, trace.model = served or ((target.runtime.name, target.label) if target else (None, None))
    trace.billed = billed
    trace.cache = cache
    trace.attempts = [a.as_dict() for a in call.attempts]
    trace.latency_ms = round((time.perf_counter() - call.started) * 1000.0, 3)


async def run_step(ctx: StepContext, plan: Plan, body: dict[str, Any], trace: StepTrace,
                   out: StepResult) -> AsyncIterator[Event]:
    """Call the model once; yields `StepStart` (once committed) and the streamed deltas; fills `out`."""
    call = Call(ctx.requested or trace.model_requested, REQUEST_TYPE, time.perf_counter())
    out.call = call
    scope = ctx.scope
    key = scope.cache_key(STEP_ENDPOINT, trace.model_requested, body, False) if ctx.cache else None
    entry = await scope.lookup(key) if key is not None else None
    if entry is not None and entry.body is not None:
        ctx.recorder.record(call, None, None, ok=True, cache_hit=True, served_by=(entry.provider or "",
                                                                                  entry.model or ""))
        _read_completion(ctx, entry.body, out)
        _trace_call(trace, call, None, "hit", (entry.provider, entry.model))
        yield StepStart(trace.index)
        for event in _whole(out):
            yield event
        return
    cache_status = "miss" if key is not None else "off"
    if not ctx.stream:
        try:
            result, billed, _raw = await complete_chat(ctx.gw, ctx.recorder, call, plan, body)
        except ChainFailed:
            _trace_call(trace, call, None, cache_status)  # the failed step's attempt trail
            raise
        _read_completion(ctx, result, out)
        _trace_call(trace, call, billed, cache_status)
        yield StepStart(trace.index)
        for event in _whole(out):
            yield event
        await _store(scope, key, call, result, billed)
        return
    async for event in _stream(ctx, plan, body, trace, out, call, cache_status):
        yield event
    if key is not None:
        target = call.target
        await _store(scope, key, call, _completion(out, target.model if target else "", None), trace.billed)


def _whole(out: StepResult) -> list[Event]:
    events: list[Event] = []
    if out.reasoning:
        events.append(ReasoningDelta(out.reasoning))
    if out.text:
        events.append(TextDelta(out.text))
    return events


async def _store(scope: Scope, key: str | None, call: Call, result: dict[str, Any],
                 billed: dict[str, Any] | None) -> None:
    target = call.target
    if key is None or target is None or scope.directive is None or not scope.directive.store:
        return
    await scope.store(key, CachedResponse.from_body(result, provider=target.runtime.name, model=target.label,
                                                    billed_usage=billed))


async def _stream(ctx: StepContext, plan: Plan, body: dict[str, Any], trace: StepTrace, out: StepResult,
                  call: Call, cache_status: str) -> AsyncIterator[Event]:
    send = {**body, "stream": True, "stream_options": {"include_usage": True}}
    try:
        opened = await open_chat_stream(ctx.gw, ctx.recorder, call, plan, send)
    except ChainFailed:
        _trace_call(trace, call, None, cache_status)
        raise
    if call.target is not None:  # committed: who serves is known before the first event goes out
        trace.provider, trace.model = call.target.runtime.name, call.target.label
    usage: dict[str, Any] | None = None
    text: list[str] = []
    reasoning: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    completed = False
    try:
        yield StepStart(trace.index)
        async for batch in opened.batches():
            for chunk in batch:
                if chunk.get("usage"):
                    usage = chunk["usage"]
                for choice in chunk.get("choices") or ():
                    if choice.get("index", 0) != 0:
                        continue
                    delta = choice.get("delta") or {}
                    if delta.get("reasoning_content"):
                        reasoning.append(delta["reasoning_content"])
                        yield ReasoningDelta(delta["reasoning_content"])
                    if delta.get("content"):
                        text.append(delta["content"])
                        yield TextDelta(delta["content"])
                    for piece in delta.get("tool_calls") or ():
                        for event in _tool_piece(ctx, piece, calls):
                            yield event
                    if choice.get("finish_reason"):
                        out.finish_reason = choice["finish_reason"]
        completed = True
    except UpstreamError as err:
        raise StepFailed(err) from None
    finally:
        opened.close()
        out.text, out.reasoning = "".join(text), "".join(reasoning)
        out.tool_calls = [{"id": c["id"], "type": "function",
                           "function": {"name": c["name"], "arguments": "".join(c["args"])}}
                          for _, c in sorted(calls.items())]
        target = call.target
        estimated = usage is None
        if estimated and target is not None:
            generated = out.text + "".join(c["function"]["arguments"] for c in out.tool_calls)
            usage = estimate_usage(body.get("messages"), target.model, generated, body.get("tools"))
        billed = billed_usage(ctx.gw.pricer, target, usage, estimated) if target is not None else None
        ctx.recorder.record(call, target, billed, ok=completed)
        _trace_call(trace, call, billed, cache_status)


def _tool_piece(ctx: StepContext, piece: dict[str, Any], calls: dict[int, dict[str, Any]]) -> list[Event]:
    index = piece.get("index", len(calls))
    fn = piece.get("function") or {}
    current = calls.get(index)
    events: list[Event] = []
    if current is None:
        current = calls[index] = {"id": ctx.unique_id(piece.get("id")),
                                  "name": fn.get("name") or "", "args": []}
        events.append(ToolInputStart(current["id"], current["name"]))
    elif fn.get("name") and not current["name"]:
        current["name"] = fn["name"]
    if fn.get("arguments"):
        current["args"].append(fn["arguments"])
        events.append(ToolInputDelta(current["id"], fn["arguments"]))
    return events
