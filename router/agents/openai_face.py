"""The OpenAI face: `POST /v1/chat/completions` with `model: "agent:<id>"` (or `"agent"` for `main`), or
the `x-agent-id` header (then a `model` that is not an agent name is the agent's model for this
request, as AgentOS does).

Non-stream and stream are exactly OpenAI's `chat.completion` / `chat.completion.chunk` formats;
`model` echoes what the client sent. The text of every step is the content (steps separated by a
blank line). Server-side tool calls never appear; client tools (`tools` in the request) come back as
`tool_calls` with `finish_reason: "tool_calls"`. `extra_fields` (request_type `agent`) carries the
last step's routing plus `agent`, `session_id`, `stop_reason` and `steps` (each step's trace);
`billed_usage` and `usage` are summed over the steps. Optional members: `session_id`, `max_steps`.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from aiohttp import web

from .. import extra_fields
from ..edge import DONE, SSE_HEADERS, json_response, open_sse, sse_data
from ..edge import PING as PING_EVENT
from ..errors import ApiError, error_response
from ..pipeline import ProxyRequest
from ..validation import validate_chat
from .events import ReasoningDelta, StepStart, TextDelta
from .registry import DEFAULT_AGENT, clamp_steps
from .runtime import RunSpec
from .service import PING, AgentService, Launch, failure, heartbeat, run_cache_status, service, stream_failure
from .sessions import SESSION_HEADER, resolve

AGENT_HEADER = "x-agent-id"
PREFIX = "agent:"


def agent_target(request: web.Request, body: dict[str, Any]) -> tuple[str, str | None] | None:
    """(agent id, model override) when this chat request runs an agent, else None (plain routing)."""
    model = body.get("model")
    header = request.headers.get(AGENT_HEADER)
    if isinstance(model, str) and model.startswith(PREFIX):
        return model[len(PREFIX):], None
    if model == "agent":
        return header or DEFAULT_AGENT, None
    if header is not None:
        return header.strip(), model if isinstance(model, str) and model.strip() else None
    return None


async def agent_chat(request: web.Request, req: ProxyRequest, body: dict[str, Any],
                     target: tuple[str, str | None]) -> web.StreamResponse:
    svc = service(request)
    svc.enabled("openai")
    agent_id, override = target
    agent = svc.registry.get(agent_id, "model" if override is None else AGENT_HEADER)
    requested = body.get("model") if isinstance(body.get("model"), str) else agent.label
    _, fallbacks = validate_chat({**body, "model": requested})
    if body.get("n") not in (None, 1):
        raise ApiError(400, "'n' must be 1 for an agent", param="n", code="invalid_value")
    session = resolve(request.headers.get(SESSION_HEADER), body.get("session_id"), "session_id", body.get("user"),
                      req.tenant, agent.id)
    tools = [t for t in body.get("tools") or () if isinstance(t, dict) and t.get("type", "function") == "function"]
    stream = body.get("stream") is True
    spec = RunSpec(agent=agent, model=override or agent.model or "", conversation=[], params=body,
                   client_tools=tools, max_steps=clamp_steps(agent, body.get("max_steps"), "max_steps"),
                   output=agent.output, fallbacks=fallbacks, model_named=override is not None or agent.inline)
    launch = await svc.launch(request, req, spec, body["messages"], stream=stream, requested=requested,
                              session=session)
    if stream:
        return await _stream(request, svc, launch, body)
    try:
        async with asyncio.timeout(svc.settings.non_stream_timeout_s):
            async for _ in launch.run.events():
                pass
    except Exception as exc:  # TimeoutError included: the non-stream limit
        await svc.finish(launch)
        return _error(svc, launch, exc)
    await svc.finish(launch)
    run = launch.run
    message: dict[str, Any] = {"role": "assistant", "content": run.content or (None if run.client_calls else ""),
                               "refusal": None}
    if run.client_calls:
        message["tool_calls"] = run.client_calls
    out = {"id": _id(), "object": "chat.completion", "created": int(time.time()), "model": requested,
           "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": run.finish_reason}],
           "usage": run.usage}
    if svc.pipeline.extra_fields:
        out["extra_fields"] = agent_extra(launch)
    return json_response(out, svc.headers(launch))


def _id() -> str:
    return f"chatcmpl-{os.urandom(12).hex()}"


def agent_extra(launch: Launch) -> dict[str, Any]:
    """`extra_fields` of an agent response: the last step's routing, the run's totals and trace."""
    run = launch.run
    last = run.last_outcome
    cache = run_cache_status(run)
    out = extra_fields.full(last) if last is not None else {"provider": None, "model": None, "attempts": []}
    out.update({"model_requested": launch.requested, "request_type": "agent",
                "latency": round((time.perf_counter() - launch.started) * 1000.0, 3), "cache": {"status": cache}})
    out.pop("billed_usage", None)
    if run.billed is not None:
        out["billed_usage"] = run.billed.as_dict()
    out.update({"agent": launch.agent.id, "session_id": launch.session.id if launch.session else None,
                "stop_reason": run.stop_reason, "steps": [s.as_dict() for s in run.steps]})
    return out


def routing_head(launch: Launch) -> dict[str, Any]:
    """`provider` and `model` of the step that is serving (a cached step: the one that served it first)."""
    step = launch.run.steps[-1] if launch.run.steps else None
    return {"provider": step.provider if step else None, "model": step.model if step else None}


def _error(svc: AgentService, launch: Launch, exc: BaseException) -> web.Response:
    status, error, headers = failure(exc)
    extra = agent_extra(launch) if launch.run.steps and svc.pipeline.extra_fields else None
    return error_response(status, error, extra, {**svc.headers(launch), **headers})


async def _stream(request: web.Request, svc: AgentService, launch: Launch, body: dict[str, Any]) -> web.StreamResponse:
    events = heartbeat(launch.run.events(), svc.settings.heartbeat_s)
    try:
        return await _relay(request, svc, launch, body, events)
    finally:
        await events.aclose()  # a client gone mid-run stops the run (and its steps) here


async def _relay(request: web.Request, svc: AgentService, launch: Launch, body: dict[str, Any],
                 events: Any) -> web.StreamResponse:
    run = launch.run
    options = body.get("stream_options")
    wants_usage = isinstance(options, dict) and options.get("include_usage") is True
    with_extra = svc.pipeline.extra_fields
    try:
        first = await anext(events)  # the first step is committed (or failed: a plain HTTP error)
    except (Exception, StopAsyncIteration) as exc:
        await svc.finish(launch)
        if isinstance(exc, StopAsyncIteration):
            raise ApiError(502, "the agent produced nothing", code="empty_run") from None
        return _error(svc, launch, exc)
    base = {"id": _id(), "object": "chat.completion.chunk", "created": int(time.time()), "model": launch.requested}

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return sse_data({**base, "choices": [choice], **extra})

    response = web.StreamResponse(status=200)
    try:
        response = await open_sse(request, svc.headers(launch), SSE_HEADERS)
        head = {"extra_fields": routing_head(launch)} if with_extra else {}
        await response.write(chunk({"role": "assistant", "content": ""}, **head))
        wrote_text = step_text = False
        event: Any = first
        while True:
            if event is PING:
                await response.write(PING_EVENT)
            elif isinstance(event, StepStart):
                step_text = False
            elif isinstance(event, TextDelta):
                text = event.text
                if wrote_text and not step_text:
                    text = "\n\n" + text
                if not wrote_text:
                    launch.req.first_token()
                wrote_text = step_text = True
                await response.write(chunk({"content": text}))
            elif isinstance(event, ReasoningDelta):
                await response.write(chunk({"reasoning_content": event.text}))
            try:
                event = await anext(events)
            except StopAsyncIteration:
                break
    except (ConnectionError, asyncio.CancelledError):
        await svc.finish(launch)
        raise
    except Exception as exc:
        await svc.finish(launch)
        payload: dict[str, Any] = {"error": stream_failure(exc)}
        if with_extra:
            payload["extra_fields"] = agent_extra(launch)
        await response.write(sse_data(payload))
        return response
    await svc.finish(launch)
    tail: list[bytes] = []
    if run.client_calls:
        calls = [{"index": i, **c} for i, c in enumerate(run.client_calls)]
        tail.append(chunk({"tool_calls": calls}))
    last_extra = {"extra_fields": agent_extra(launch)} if with_extra else {}
    if wants_usage:
        tail.append(chunk({}, run.finish_reason))
        tail.append(sse_data({**base, "choices": [], "usage": run.usage, **last_extra}))
    else:
        tail.append(chunk({}, run.finish_reason, **last_extra))
    await response.write(b"".join(tail) + DONE)
    return response
