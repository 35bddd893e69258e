"""One step of an agent run: one model call through the request pipeline, streamed or not.

Each step is a model call of its own: routed and checked against the key (every deployment it can
reach), admitted against the key's limits (only the run's first call counts as a request), walked
through the attempt chain, billed, recorded and settled, like any other call. Steps may use the
response cache (`agent_settings.cache_steps`, when `cache:` is configured and the client's
`Cache-Control` allows it): the key is the step's whole request (so tool results are part of it)
under the endpoint name `agent.step`, stream and non-stream steps share entries (stored as a
completion), and a hit replays the model's answer only - its tool calls run again, live.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from providers import UpstreamError

from ..accounting.billed import Billed
from ..cache import CachedResponse
from ..exchange import Outcome
from ..pipeline import CallFailed, ModelRequest, Pipeline, ProxyRequest, Route
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
    outcome: Outcome | None = None  # the step's model call, once it was made (or failed)


@dataclass(slots=True)
class StepContext:
    pipeline: Pipeline
    req: ProxyRequest  # the run's request: its key, cache headers and observation
    stream: bool
    cache: bool
    requested: str = ""  # `model_requested` of each step's call: the agent (`agent:<id>`)
    call_ids: set[str] = field(default_factory=set)  # tool-call ids of this run (kept unique for the UI)

    def unique_id(self, call_id: Any) -> str:
        """The vendor's tool-call id, or a fresh one when it is missing or already used in this run
        (some vendors number calls per turn; a UI message needs each id once)."""
        if not isinstance(call_id, str) or not call_id or call_id in self.call_ids:
            call_id = f"call_{os.urandom(12).hex()}"
        self.call_ids.add(call_id)
        return call_id

    def request(self, model: str, body: dict[str, Any], fallbacks: list[str] | None,
                model_named: bool) -> ModelRequest:
        """A step's model call; a streamed step asks the vendor for its usage."""
        if self.stream:
            body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        return ModelRequest("chat", model, body, REQUEST_TYPE, fallbacks, self.stream,
                            STEP_ENDPOINT if self.cache else None, self.requested or None, model_named)


def _completion(result: StepResult, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": result.text or None}
    if result.tool_calls:
        message["tool_calls"] = result.tool_calls
    if result.reasoning:
        message["reasoning_content"] = result.reasoning
    return {"id": f"chatcmpl-{os.urandom(8).hex()}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "message": message, "finish_reason": result.finish_reason}]}


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


def _trace(trace: StepTrace, outcome: Outcome) -> None:
    head = outcome.call.target
    if outcome.cache == "hit":
        trace.provider, trace.model = outcome.provider or None, outcome.model or None
    else:
        trace.provider, trace.model = (head.runtime.name, head.label) if head else (None, None)
    trace.billed = outcome.billed.as_dict() if outcome.billed is not None and outcome.cache != "hit" else None
    trace.cache = outcome.cache
    trace.attempts = [a.as_dict() for a in outcome.call.attempts]
    trace.latency_ms = round((time.perf_counter() - outcome.call.started) * 1000.0, 3)


async def run_step(ctx: StepContext, mreq: ModelRequest, route: Route, trace: StepTrace,
                   out: StepResult) -> AsyncIterator[Event]:
    """Call the model once; yields `StepStart` (once committed) and the streamed deltas; fills `out`."""
    pipeline, req = ctx.pipeline, ctx.req
    started = time.perf_counter()
    key = pipeline.cache_key(req, mreq, streamed=False)
    entry = await pipeline.lookup(req, key)
    held = await pipeline.admit(req, route, mreq, cached=entry is not None and entry.body is not None)
    if entry is not None and entry.body is not None:
        out.outcome = pipeline.hit(req, mreq, entry, held, started)
        _read_completion(ctx, entry.body, out)
        _trace(trace, out.outcome)
        yield StepStart(trace.index)
        for event in _whole(out):
            yield event
        return
    cache = pipeline.cache_status(req, key)
    if not ctx.stream:
        try:
            answer = await pipeline.complete(req, mreq, route, cache, held, started)
        except CallFailed as failed:
            out.outcome = failed.outcome
            _trace(trace, failed.outcome)  # the failed step's attempt trail
            raise
        out.outcome = answer.outcome
        _read_completion(ctx, answer.body, out)
        _trace(trace, answer.outcome)
        yield StepStart(trace.index)
        for event in _whole(out):
            yield event
        await _store(pipeline, req, key, answer.body, answer.outcome)
        return
    async for event in _stream(ctx, mreq, route, trace, out, cache, held, started):
        yield event
    if key is not None and out.outcome is not None and out.outcome.ok:
        target = out.outcome.call.target
        await _store(pipeline, req, key, _completion(out, target.model if target else ""), out.outcome)


def _whole(out: StepResult) -> list[Event]:
    events: list[Event] = []
    if out.reasoning:
        events.append(ReasoningDelta(out.reasoning))
    if out.text:
        events.append(TextDelta(out.text))
    return events


async def _store(pipeline: Pipeline, req: ProxyRequest, key: str | None, result: dict[str, Any],
                 outcome: Outcome) -> None:
    if key is None:
        return
    billed: Billed | None = outcome.billed
    await pipeline.store(req, key, CachedResponse.from_body(result, provider=outcome.provider, model=outcome.model,
                                                            billed_usage=billed.as_dict() if billed else None))


async def _stream(ctx: StepContext, mreq: ModelRequest, route: Route, trace: StepTrace, out: StepResult, cache: str,
                  held: Any, started: float) -> AsyncIterator[Event]:
    pipeline, req = ctx.pipeline, ctx.req
    try:
        stream = await pipeline.open_stream(req, mreq, route, cache, held, started=started)
    except CallFailed as failed:
        out.outcome = failed.outcome
        _trace(trace, failed.outcome)
        raise
    out.outcome = stream.outcome
    target = stream.outcome.call.target
    if target is not None:  # committed: who serves is known before the first event goes out
        trace.provider, trace.model = target.runtime.name, target.label
    text: list[str] = []
    reasoning: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    batches = stream.batches()
    try:
        yield StepStart(trace.index)
        async for batch in batches:
            for chunk in batch:
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
    except UpstreamError as err:
        raise StepFailed(err) from None
    finally:
        await batches.aclose()  # accounts the step however it ended
        out.text, out.reasoning = "".join(text), "".join(reasoning)
        out.tool_calls = [{"id": c["id"], "type": "function",
                           "function": {"name": c["name"], "arguments": "".join(c["args"])}}
                          for _, c in sorted(calls.items())]
        _trace(trace, stream.outcome)


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
