"""`POST /v1/chat/completions`: OpenAI Chat Completions, non-stream and SSE stream."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from providers import UpstreamError

from .. import extra_fields
from ..gateway import GATEWAY, Gateway
from ..routing import Target
from ..routing.chain import Call, ChainFailed, OpenStream
from ..routing.fanout import MergedStream, complete_n, needs_fanout, open_stream_n, without_n
from ..routing.table import Plan
from ..usage import billed_usage, estimate_usage
from ..validation import parse_json_object, validate_chat
from .common import chain_failed, plan, read_body, upstream_body, wants_raw

SSE_HEADERS = {"content-type": "text/event-stream", "cache-control": "no-cache", "x-accel-buffering": "no"}
DONE = b"data: [DONE]\n\n"


async def chat_completions(request: web.Request) -> web.StreamResponse:
    started = time.perf_counter()
    gw = request.app[GATEWAY]
    body = parse_json_object(await read_body(request, gw.max_body_bytes))
    model, fallbacks = validate_chat(body)
    targets = plan(gw.table, model, fallbacks)
    stream = body.get("stream") is True
    call = Call(model, "chat.completion.chunk" if stream else "chat.completion", started, wants_raw(gw, request))
    vendor_body = upstream_body(body)
    fan = needs_fanout(targets, vendor_body)  # n > 1 where some vendor cannot: n parallel calls
    send_body = without_n(vendor_body) if fan else vendor_body
    if stream:
        return await _stream(request, gw, call, targets, vendor_body, send_body, fan)

    def build(target: Target, key: str | None):
        return target.runtime.provider.chat_request(send_body, target.model, key, False)

    def parse(target: Target, raw: bytes, headers: Mapping[str, str]) -> dict:
        return target.runtime.provider.chat_response(raw, target.model)

    try:
        if fan:
            result, raw = await complete_n(gw.chain, targets, call, fan, build, parse)
        else:
            result, raw = await gw.chain.complete(targets, call, build, parse)
    except ChainFailed as failed:
        return chain_failed(gw, call, failed)
    if gw.extra_fields_enabled:
        target = call.target
        usage = result.get("usage")
        estimated = not usage
        if estimated:
            usage = estimate_usage(body["messages"], target.model, _message_text(result), body.get("tools"))
        result["extra_fields"] = extra_fields.full(
            call, billed=billed_usage(gw.pricer, target, usage, estimated),
            raw=orjson.loads(raw) if call.wants_raw else None)
    return web.Response(body=orjson.dumps(result), content_type="application/json")


def _message_text(result: dict) -> str:
    parts = []
    for choice in result.get("choices") or ():
        message = choice.get("message") or {}
        if isinstance(message.get("content"), str):
            parts.append(message["content"])
        for call in message.get("tool_calls") or ():
            parts.append((call.get("function") or {}).get("arguments") or "")
    return "".join(parts)


async def _stream(request: web.Request, gw: Gateway, call: Call, targets: Plan, vendor_body: dict[str, Any],
                  send_body: dict[str, Any], fan: int) -> web.StreamResponse:
    def build(target: Target, key: str | None):
        return target.runtime.provider.chat_request(send_body, target.model, key, True)

    try:
        if fan:
            opened = await open_stream_n(gw.chain, targets, call, fan, build)
        else:
            opened = await gw.chain.open_stream(targets, call, build)
    except ChainFailed as failed:
        return chain_failed(gw, call, failed)  # nothing was sent yet: a plain HTTP error
    response = web.StreamResponse(status=200, headers=SSE_HEADERS)
    try:
        await response.prepare(request)
        await _relay(response, gw, call, opened, vendor_body)
    except ConnectionError:
        pass  # the client went away: the upstream request is dropped with it (below)
    finally:
        opened.close()
    return response


async def _relay(response: web.StreamResponse, gw: Gateway, call: Call, opened: OpenStream | MergedStream,
                 vendor_body: dict[str, Any]) -> None:
    """Write canonical chunks as SSE; the final chunk before `[DONE]` carries `extra_fields`.

    Chunks with a finish reason (and the usage chunk) are held back until the upstream ends so the
    full `extra_fields`, which needs the final usage, rides on the last chunk the client reads.
    """
    options = vendor_body.get("stream_options")
    client_wants_usage = isinstance(options, dict) and options.get("include_usage") is True
    with_extra = gw.extra_fields_enabled
    dumps = orjson.dumps
    first = True
    usage: dict | None = None
    held: list[dict] = []
    text: list[str] = []
    last: dict = {}
    try:
        async for batch in opened.batches():
            out: list[bytes] = []
            for chunk in batch:
                last = chunk
                choices = chunk.get("choices")
                if chunk.get("usage"):
                    usage = chunk["usage"]
                    if not choices:
                        if client_wants_usage:
                            held.append(chunk)
                        continue
                if first and with_extra:
                    chunk["extra_fields"] = extra_fields.routing_head(call)
                first = False
                if choices:
                    finishing = False
                    for choice in choices:
                        delta = choice.get("delta")
                        if delta and delta.get("content"):
                            text.append(delta["content"])
                        if choice.get("finish_reason"):
                            finishing = True
                    if finishing:
                        held.append(chunk)
                        continue
                out.append(b"data: " + dumps(chunk) + b"\n\n")
            if out:
                await response.write(b"".join(out))
    except UpstreamError as err:
        # Committed to this deployment: end the stream with an error event, never a silent [DONE].
        error: dict[str, Any] = {"error": err.to_openai()}
        if with_extra:
            error["extra_fields"] = extra_fields.full(call)
        tail = b"".join(b"data: " + dumps(c) + b"\n\n" for c in held if c.get("choices"))
        await response.write(tail + b"data: " + dumps(error) + b"\n\n")
        return
    target = call.target
    estimated = usage is None
    if estimated:
        usage = estimate_usage(vendor_body.get("messages"), target.model, "".join(text), vendor_body.get("tools"))
        if client_wants_usage:
            held.append(_empty_chunk(last, target, usage=usage))
    if with_extra:
        if not held:
            held.append(_empty_chunk(last, target))
        held[-1]["extra_fields"] = extra_fields.full(call, billed=billed_usage(gw.pricer, target, usage, estimated))
    await response.write(b"".join(b"data: " + dumps(c) + b"\n\n" for c in held) + DONE)


def _empty_chunk(like: dict, target: Target, **extra: Any) -> dict:
    """A `choices: []` chunk in the stream's identity, for usage or metadata the vendor did not send."""
    return {"id": like.get("id", "chatcmpl-switchboard"), "object": "chat.completion.chunk",
            "created": like.get("created", int(time.time())), "model": like.get("model", target.model),
            "choices": [], **extra}
