"""Chat completions as an SSE stream: relay from the committed deployment, or replay from the cache.

The first chunk carries `extra_fields` `provider` and `model`; the last chunk before `[DONE]`
carries the full object. A failure after the first content chunk ends the stream with one OpenAI
error event (never a silent `[DONE]`). Usage is always accounted: the vendor's figures, or a
tiktoken estimate of what was streamed when the stream broke or the client left.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from providers import UpstreamError

from .. import extra_fields
from ..cache import CachedResponse, StreamRecorder
from ..core import open_chat_stream
from ..routing import Target
from ..routing.chain import Call, ChainFailed, OpenStream
from ..routing.fanout import MergedStream
from ..routing.table import Plan
from ..usage import billed_usage, estimate_usage
from .common import chain_failed
from .scope import Scope

SSE_HEADERS = {"content-type": "text/event-stream", "cache-control": "no-cache", "x-accel-buffering": "no"}
DONE = b"data: [DONE]\n\n"


async def stream_chat(request: web.Request, scope: Scope, call: Call, targets: Plan, vendor_body: dict[str, Any],
                      send_body: dict[str, Any], fan: int, key: str | None,
                      entry: CachedResponse | None) -> web.StreamResponse:
    gw = scope.gw
    if entry is not None:
        return await _replay(request, scope, call, entry)

    try:
        opened = await open_chat_stream(gw, scope, call, targets, send_body, fan)
    except ChainFailed as failed:
        return chain_failed(gw, call, failed, scope.headers(), scope.cache_status)  # nothing sent yet
    recorder = (StreamRecorder(gw.cache.max_entry_bytes)
                if key is not None and scope.directive is not None and scope.directive.store else None)
    relay = Relay(scope, call, vendor_body, recorder)
    response = web.StreamResponse(status=200, headers={**SSE_HEADERS, **scope.headers()})
    try:
        await response.prepare(request)
        await relay.run(response, opened)
    except ConnectionError:
        pass  # the client went away: the upstream request is dropped with it (below)
    finally:
        opened.close()
        relay.account()
    if relay.completed and recorder is not None:
        await scope.store(key, recorder.entry(provider=call.target.runtime.name, model=call.target.label,
                                              billed_usage=relay.billed))
    return response


class Relay:
    """Writes canonical chunks as SSE and keeps what accounting needs.

    Chunks with a finish reason (and the usage chunk) are held back until the upstream ends, so the
    full `extra_fields`, which needs the final usage, rides on the last chunk the client reads.
    """

    __slots__ = ("accounted", "billed", "call", "completed", "recorder", "scope", "text", "usage", "vendor_body")

    def __init__(self, scope: Scope, call: Call, vendor_body: dict[str, Any], recorder: StreamRecorder | None) -> None:
        self.scope = scope
        self.call = call
        self.vendor_body = vendor_body
        self.recorder = recorder
        self.usage: dict | None = None
        self.text: list[str] = []
        self.completed = False
        self.accounted = False
        self.billed: dict[str, Any] | None = None

    async def run(self, response: web.StreamResponse, opened: OpenStream | MergedStream) -> None:
        gw = self.scope.gw
        call = self.call
        options = self.vendor_body.get("stream_options")
        client_wants_usage = isinstance(options, dict) and options.get("include_usage") is True
        with_extra = gw.extra_fields_enabled
        recorder = self.recorder
        dumps = orjson.dumps
        first = True
        held: list[dict] = []
        text = self.text
        last: dict = {}
        try:
            async for batch in opened.batches():
                out: list[bytes] = []
                for chunk in batch:
                    last = chunk
                    choices = chunk.get("choices")
                    if chunk.get("usage"):
                        self.usage = chunk["usage"]
                        if not choices:
                            if client_wants_usage:
                                held.append(chunk)
                            continue
                    if first:
                        if with_extra:
                            chunk["extra_fields"] = extra_fields.routing_head(call)
                        first = False
                        self.scope.first_token()
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
                    encoded = dumps(chunk)
                    if recorder is not None:
                        recorder.add(chunk, len(encoded))
                    out.append(b"data: " + encoded + b"\n\n")
                if out:
                    await response.write(b"".join(out))
        except UpstreamError as err:
            # Committed to this deployment: end with an error event, never a silent [DONE].
            error: dict[str, Any] = {"error": err.to_openai()}
            tail = b"".join(b"data: " + dumps(c) + b"\n\n" for c in held if c.get("choices"))
            self.account()
            if with_extra:
                error["extra_fields"] = extra_fields.full(call, billed=self.billed, cache=self.scope.cache_status)
            await response.write(tail + b"data: " + dumps(error) + b"\n\n")
            return
        target = call.target
        if self.usage is None and client_wants_usage:
            held.append(_empty_chunk(last, target, usage=self._estimate()))
        self.completed = True
        self.account()
        if with_extra:
            if not held:
                held.append(_empty_chunk(last, target))
            held[-1]["extra_fields"] = extra_fields.full(call, billed=self.billed, cache=self.scope.cache_status)
        payload = []
        for chunk in held:
            encoded = dumps(chunk)
            if recorder is not None:
                recorder.add(chunk, len(encoded))
            payload.append(b"data: " + encoded + b"\n\n")
        await response.write(b"".join(payload) + DONE)

    def _estimate(self) -> dict[str, Any]:
        body = self.vendor_body
        return estimate_usage(body.get("messages"), self.call.target.model, "".join(self.text), body.get("tools"))

    def account(self) -> None:
        """Record usage once: the vendor's, or an estimate of what was streamed (marked estimated)."""
        if self.accounted:
            return
        self.accounted = True
        target = self.call.target
        estimated = self.usage is None
        usage = self._estimate() if estimated else self.usage
        self.billed = billed_usage(self.scope.gw.pricer, target, usage, estimated)
        self.scope.record(self.call, target, self.billed, ok=self.completed)


async def _replay(request: web.Request, scope: Scope, call: Call, entry: CachedResponse) -> web.StreamResponse:
    """A cache hit for a stream: the stored chunks, in order, with fresh `extra_fields`."""
    gw = scope.gw
    scope.record(call, None, None, ok=True, cache_hit=True, served_by=(entry.provider or "", entry.model or ""))
    with_extra = gw.extra_fields_enabled
    payload = entry.sse_payload(extra_fields.cached_head(entry) if with_extra else None,
                                extra_fields.cached(call, entry) if with_extra else None)
    response = web.StreamResponse(status=200, headers={**SSE_HEADERS, **scope.headers()})
    await response.prepare(request)
    await response.write(payload)
    await response.write_eof()
    return response


def _empty_chunk(like: dict, target: Target, **extra: Any) -> dict:
    """A `choices: []` chunk in the stream's identity, for usage or metadata the vendor did not send."""
    return {"id": like.get("id", "chatcmpl-switchboard"), "object": "chat.completion.chunk",
            "created": like.get("created", int(time.time())), "model": like.get("model", target.model),
            "choices": [], **extra}
