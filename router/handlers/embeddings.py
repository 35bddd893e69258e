"""`POST /v1/embeddings`: OpenAI Embeddings through the same attempt chain as chat."""

from __future__ import annotations

import base64
import struct
import time
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from providers.tokens import count_text

from .. import extra_fields
from ..cache import EMBEDDINGS, CachedResponse
from ..gateway import GATEWAY, Gateway
from ..routing import Target
from ..routing.chain import Call, ChainFailed
from ..routing.table import Plan
from ..usage import billed_usage
from ..validation import parse_json_object, validate_embeddings
from .common import chain_failed, plan, read_body, upstream_body, wants_raw
from .scope import Scope


async def embeddings(request: web.Request) -> web.Response:
    started = time.perf_counter()
    gw = request.app[GATEWAY]
    scope = await Scope.open(gw, request)
    body = parse_json_object(await read_body(request, gw.max_body_bytes))
    model, fallbacks = validate_embeddings(body)
    scope.authorize(model)
    targets = plan(gw.table, model, fallbacks)
    call = Call(model, "embedding", started, wants_raw(gw, request))
    vendor_body = upstream_body(body)
    if call.raw_requested:
        scope.skip_lookup()  # a cached entry has no raw vendor body
    key = scope.cache_key(EMBEDDINGS, model, vendor_body, streamed=False)
    entry = await scope.lookup(key)
    await scope.admit(targets, body, lambda: _input_tokens(body.get("input"), model), cached=entry is not None)
    try:
        return await _respond(gw, scope, call, targets, vendor_body, body, key, entry)
    finally:
        scope.release()


async def _respond(gw: Gateway, scope: Scope, call: Call, targets: Plan, vendor_body: dict[str, Any],
                   body: dict[str, Any], key: str | None, entry: CachedResponse | None) -> web.Response:
    if entry is not None:
        scope.record(call, None, None, ok=True, cache_hit=True, served_by=(entry.provider or "", entry.model or ""))
        extra = extra_fields.cached(call, entry) if gw.extra_fields_enabled else None
        return web.Response(body=orjson.dumps(entry.response_body(extra)), content_type="application/json",
                            headers=scope.headers())

    def build(target: Target, key: str | None):
        return target.runtime.provider.embeddings_request(vendor_body, target.model, key)

    def parse(target: Target, raw: bytes, headers: Mapping[str, str]) -> dict:
        return target.runtime.provider.embeddings_response(raw, target.model, headers)

    try:
        result, raw = await gw.chain.complete(targets, call, build, parse)
    except ChainFailed as failed:
        scope.record(call, None, None, ok=False)
        return chain_failed(gw, call, failed, scope.headers(), scope.cache_status)
    if body.get("encoding_format") == "base64":
        _to_base64(result)
    target = call.target
    billed = billed_usage(gw.pricer, target, result.get("usage"))
    scope.record(call, target, billed, ok=True)
    await scope.store(key, CachedResponse.from_body(result, provider=target.runtime.name, model=target.label,
                                                    billed_usage=billed))
    if gw.extra_fields_enabled:
        result["extra_fields"] = extra_fields.full(call, billed=billed, cache=scope.cache_status,
                                                   raw=orjson.loads(raw) if call.wants_raw else None)
    return web.Response(body=orjson.dumps(result), content_type="application/json", headers=scope.headers())


def _input_tokens(data: object, model: str) -> int:
    """Tokens of an embeddings `input` (strings counted with tiktoken, token arrays by length)."""
    items = [data] if isinstance(data, str) else data if isinstance(data, list) else []
    if items and all(isinstance(x, int) for x in items):
        return len(items)
    return sum(count_text(x, model) if isinstance(x, str) else len(x) if isinstance(x, list) else 0 for x in items)


def _to_base64(result: dict) -> None:
    """Vendors without base64 output return floats: encode them as OpenAI does (float32, little-endian)."""
    for item in result.get("data") or ():
        vector = item.get("embedding") if isinstance(item, dict) else None
        if isinstance(vector, list):
            item["embedding"] = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
