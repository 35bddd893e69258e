"""The Vercel AI SDK face: `POST /agent/v1/chat/completions` (shared/seeds/001_*, wire_formats.md §1, §6.2).

Request: `agentId` or an inline `agent` (neither: the default agent `main`), `messages` as
UIMessages, `stream`, `maxSteps` (1-20), `output` ({type: object|array|enum, schema?, enum?}),
optional `tools` (OpenAI function tools the client runs, e.g. with useChat's `onToolCall`),
`sessionId`/`session_id` (else useChat's chat `id`), `imageResponseFormat` (accepted; no agent here
generates images). Unknown members are ignored (useChat adds `id`, `trigger`, `messageId`).

Streaming: `stream: true`; when `stream` is absent, a body with `trigger` (what useChat's
`DefaultChatTransport` sends) or `Accept: text/event-stream` streams too. The stream is the UI
message stream v1 (ui_stream.py). Non-stream: the assistant UIMessage `{id, role, parts, metadata}`
plus `messages: [{id, role, content}]`, `output` (when asked for), `usage`, `finishReason`,
`sessionId`. Errors are OpenAI-shaped (400 for bad parameters, never 422) with a top-level
`message` mirror for clients written against the Odeus examples.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import orjson
from aiohttp import web

from ..edge import PING as PING_EVENT
from ..edge import json_response, open_sse, read_json
from ..errors import ApiError, error_body
from ..exchange import note_error
from ..pipeline import ProxyRequest
from . import ui_messages
from .events import TextDelta
from .output import OutputSpec
from .registry import DEFAULT_AGENT, Agent, clamp_steps
from .runtime import RunSpec
from .service import PING, AgentService, Launch, failure, heartbeat, service, stream_failure
from .sessions import SESSION_HEADER, SessionRef, resolve
from .ui_stream import DONE, HEADERS, UIEncoder, UIMessageBuilder, sse


def _error(status: int, error: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    body = orjson.loads(error_body(error))
    body["message"] = error["message"]
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json", headers=headers)


def _agent(svc: AgentService, body: dict[str, Any]) -> Agent:
    agent_id, inline = body.get("agentId"), body.get("agent")
    if agent_id is not None and inline is not None:
        raise ApiError(400, "send either 'agentId' or 'agent', not both", param="agentId", code="invalid_value")
    if inline is not None:
        return svc.registry.inline(inline, "agent")
    if agent_id is None:
        return svc.registry.get(DEFAULT_AGENT)
    if not isinstance(agent_id, str) or agent_id not in svc.registry.agents:
        raise ApiError(400, f"agent {orjson.dumps(agent_id).decode()} does not exist", param="agentId",
                       code="agent_not_found")
    return svc.registry.agents[agent_id]


def _client_tools(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    ok = isinstance(value, list) and all(
        isinstance(t, dict) and isinstance(t.get("function"), dict) and isinstance(t["function"].get("name"), str)
        for t in value)
    if not ok:
        raise ApiError(400, "'tools' must be an array of {type: function, function: {name, description?, "
                            "parameters?}}", param="tools", code="invalid_value")
    return [{"type": "function", "function": t["function"]} for t in value]


def _session(request: web.Request, body: dict[str, Any], req: ProxyRequest, agent: Agent) -> SessionRef | None:
    """The header, else `sessionId`/`session_id`/`id` (the first given; all must be well-formed)."""
    given = [k for k in ("sessionId", "session_id", "id") if body.get(k) is not None]
    for key in given:
        resolve(None, body[key], key, None, "", agent.id)  # 400 on a malformed one
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise ApiError(400, "'user' must be a string", param="user", code="invalid_type")
    param = given[0] if given else "sessionId"
    return resolve(request.headers.get(SESSION_HEADER), body.get(param), param, user, req.tenant, agent.id)


def wants_stream(request: web.Request, body: dict[str, Any]) -> bool:
    stream = body.get("stream")
    if stream is not None:
        if not isinstance(stream, bool):
            raise ApiError(400, "'stream' must be a boolean", param="stream", code="invalid_type")
        return stream
    return "trigger" in body or "text/event-stream" in request.headers.get("accept", "")


async def ui_chat(request: web.Request) -> web.StreamResponse:
    svc = service(request)
    req: ProxyRequest | None = None
    try:
        svc.enabled("ui")
        req = await svc.pipeline.open(request)
        return await _serve(request, svc, req)
    except ApiError as exc:
        note_error(request, exc.code)
        return _error(exc.status, exc.to_openai(), exc.headers)
    finally:
        if req is not None:
            svc.pipeline.close(req)
        await svc.release(request)


async def _serve(request: web.Request, svc: AgentService, req: ProxyRequest) -> web.StreamResponse:
    body = await read_json(request, svc.pipeline.max_body_bytes, svc.pipeline.body_timeout_s)
    agent = _agent(svc, body)
    messages = ui_messages.to_openai(ui_messages.validate(body.get("messages")))
    stream = wants_stream(request, body)
    output = OutputSpec.parse(body["output"]) if body.get("output") is not None else None
    image_format = body.get("imageResponseFormat")
    if image_format is not None and image_format not in ("url", "b64_json"):
        raise ApiError(400, "'imageResponseFormat' must be 'url' or 'b64_json'", param="imageResponseFormat",
                       code="invalid_value")
    session = _session(request, body, req, agent)
    spec = RunSpec(agent=agent, model=agent.model or "", conversation=[],
                   client_tools=_client_tools(body.get("tools")),
                   max_steps=clamp_steps(agent, body.get("maxSteps"), "maxSteps"), output=output or agent.output,
                   model_named=agent.inline)
    launch = await svc.launch(request, req, spec, messages, stream=stream, requested=agent.label, session=session)
    encoder = UIEncoder(f"msg-{os.urandom(12).hex()}", _meta(launch), svc.settings.ui_finish_reason)
    if stream:
        return await _stream(request, svc, launch, encoder)
    builder = UIMessageBuilder()
    builder.add(encoder.start())
    try:
        async with asyncio.timeout(svc.settings.non_stream_timeout_s):
            async for event in launch.run.events():
                builder.add(encoder.event(event))
    except Exception as exc:  # TimeoutError included: the non-stream limit
        await svc.finish(launch)
        status, error, headers = failure(exc)
        return _error(status, error, {**svc.headers(launch), **headers})
    await svc.finish(launch)
    run = launch.run
    has_output = run.spec.output is not None
    builder.add(encoder.finish(run.finish_reason, _final_meta(launch), run.output, has_output))
    out: dict[str, Any] = {"id": builder.id, "role": "assistant", "parts": builder.parts, "metadata": builder.metadata,
                           "messages": [{"id": builder.id, "role": "assistant", "content": run.content}],
                           "usage": run.usage, "finishReason": builder.finish_reason}
    if has_output:
        out["output"] = run.output
    if launch.session is not None:
        out["sessionId"] = launch.session.id
    return json_response(out, svc.headers(launch))


def _meta(launch: Launch) -> dict[str, Any]:
    return {"agentId": launch.agent.id, "sessionId": launch.session.id if launch.session else None}


def _final_meta(launch: Launch) -> dict[str, Any]:
    run = launch.run
    meta = {**_meta(launch), "stopReason": run.stop_reason, "steps": len(run.steps), "usage": run.usage}
    if run.billed is not None:
        meta["costUsd"] = run.billed.cost_usd
    if run.spec.output is not None:
        meta["output"] = run.output
    return meta


async def _stream(request: web.Request, svc: AgentService, launch: Launch, encoder: UIEncoder) -> web.StreamResponse:
    events = heartbeat(launch.run.events(), svc.settings.heartbeat_s)
    try:
        return await _relay(request, svc, launch, encoder, events)
    finally:
        await events.aclose()  # a client gone mid-run stops the run (and its steps) here


async def _relay(request: web.Request, svc: AgentService, launch: Launch, encoder: UIEncoder,
                 events: Any) -> web.StreamResponse:
    run = launch.run
    try:
        first = await anext(events)  # the first step is committed (or failed: a plain HTTP error)
    except (Exception, StopAsyncIteration) as exc:
        await svc.finish(launch)
        if isinstance(exc, StopAsyncIteration):
            return _error(502, {"message": "the agent produced nothing", "type": "upstream_error", "param": None,
                                "code": "empty_run"})
        status, error, headers = failure(exc)
        return _error(status, error, {**svc.headers(launch), **headers})
    response = web.StreamResponse(status=200)
    try:
        response = await open_sse(request, svc.headers(launch), HEADERS)
        await response.write(sse(encoder.start()))
        event: Any = first
        started_text = False
        while True:
            if not started_text and isinstance(event, TextDelta):
                started_text = True
                launch.req.first_token()
            await response.write(PING_EVENT if event is PING else sse(encoder.event(event)))
            try:
                event = await anext(events)
            except StopAsyncIteration:
                break
    except (ConnectionError, asyncio.CancelledError):
        await svc.finish(launch)
        raise
    except Exception as exc:
        await svc.finish(launch)
        await response.write(sse(encoder.error(stream_failure(exc)["message"], _final_meta(launch))) + DONE)
        return response
    await svc.finish(launch)
    chunks = encoder.finish(run.finish_reason, _final_meta(launch), run.output, run.spec.output is not None)
    await response.write(sse(chunks) + DONE)
    return response
