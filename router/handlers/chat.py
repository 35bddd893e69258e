"""`POST /v1/chat/completions`: OpenAI Chat Completions (non-stream here; streams in chat_stream.py)."""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from providers.tokens import count_messages

from .. import extra_fields
from ..agents.openai_face import agent_chat, agent_target
from ..cache import CHAT, CachedResponse
from ..core import complete_chat
from ..gateway import GATEWAY, Gateway
from ..routing.chain import Call, ChainFailed
from ..routing.fanout import needs_fanout, without_n
from ..routing.table import Plan
from ..validation import parse_json_object, validate_chat
from .chat_stream import stream_chat
from .common import chain_failed, plan, read_body, upstream_body, wants_raw
from .scope import Scope


async def chat_completions(request: web.Request) -> web.StreamResponse:
    started = time.perf_counter()
    gw = request.app[GATEWAY]
    scope = await Scope.open(gw, request)
    body = parse_json_object(await read_body(request, gw.max_body_bytes))
    if (agent := agent_target(request, body)) is not None:  # `agent:<id>` / x-agent-id: router/agents/
        return await agent_chat(request, scope, body, agent, started)
    model, fallbacks = validate_chat(body)
    scope.authorize(model)
    targets = plan(gw.table, model, fallbacks)
    stream = body.get("stream") is True
    call = Call(model, "chat.completion.chunk" if stream else "chat.completion", started, wants_raw(gw, request))
    vendor_body = upstream_body(body)
    fan = needs_fanout(targets, vendor_body)  # n > 1 where some vendor cannot: n parallel calls
    send_body = without_n(vendor_body) if fan else vendor_body
    if call.raw_requested:
        scope.skip_lookup()  # a cached entry has no raw vendor body
    key = scope.cache_key(CHAT, model, vendor_body, streamed=stream)
    entry = await scope.lookup(key)
    await scope.admit(targets, body, lambda: count_messages(body["messages"], model, body.get("tools")),
                      cached=entry is not None)
    try:
        if stream:
            return await stream_chat(request, scope, call, targets, vendor_body, send_body, fan, key, entry)
        return await _respond(gw, scope, call, targets, send_body, fan, key, entry)
    finally:
        scope.release()


async def _respond(gw: Gateway, scope: Scope, call: Call, targets: Plan, send_body: dict[str, Any], fan: int,
                   key: str | None, entry: CachedResponse | None) -> web.Response:
    """Non-stream: a cache hit, a coalesced answer, or the chain's."""
    if entry is None and key is not None and gw.flight is not None and scope.directive.lookup:
        async with gw.flight.slot(key) as slot:
            if slot.shared:
                entry = slot.value
                scope.cache_status = "hit"
            else:
                response, fresh = await _upstream(gw, scope, call, targets, send_body, fan)
                if fresh is not None:
                    slot.publish(fresh)
                    await scope.store(key, fresh)
                return response
    if entry is not None:
        return _serve_cached(gw, scope, call, entry)
    response, fresh = await _upstream(gw, scope, call, targets, send_body, fan)
    await scope.store(key, fresh)
    return response


async def _upstream(gw: Gateway, scope: Scope, call: Call, targets: Plan, send_body: dict[str, Any],
                    fan: int) -> tuple[web.Response, CachedResponse | None]:
    """Walk the chain; return the response and, when it may be cached, its cache entry."""
    try:
        result, billed, raw = await complete_chat(gw, scope, call, targets, send_body, fan)
    except ChainFailed as failed:
        return chain_failed(gw, call, failed, scope.headers(), scope.cache_status), None
    target = call.target
    fresh = None
    if scope.directive is not None and scope.directive.store:
        fresh = CachedResponse.from_body(result, provider=target.runtime.name, model=target.label,
                                         billed_usage=billed)
    if gw.extra_fields_enabled:
        result = {**result, "extra_fields": extra_fields.full(
            call, billed=billed, raw=orjson.loads(raw) if call.wants_raw else None, cache=scope.cache_status)}
    return web.Response(body=orjson.dumps(result), content_type="application/json", headers=scope.headers()), fresh


def _serve_cached(gw: Gateway, scope: Scope, call: Call, entry: CachedResponse) -> web.Response:
    """A cache hit: no upstream call; billed nothing (recorded as a hit, at zero cost)."""
    scope.record(call, None, None, ok=True, cache_hit=True, served_by=(entry.provider or "", entry.model or ""))
    extra = extra_fields.cached(call, entry) if gw.extra_fields_enabled else None
    return web.Response(body=orjson.dumps(entry.response_body(extra)), content_type="application/json",
                        headers=scope.headers())
