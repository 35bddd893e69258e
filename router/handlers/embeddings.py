"""`POST /v1/embeddings`: OpenAI Embeddings through the same attempt chain as chat."""

from __future__ import annotations

import base64
import struct
import time
from collections.abc import Mapping

import orjson
from aiohttp import web

from .. import extra_fields
from ..gateway import GATEWAY
from ..routing import Target
from ..routing.chain import Call, ChainFailed
from ..usage import billed_usage
from ..validation import parse_json_object, validate_embeddings
from .common import chain_failed, plan, read_body, upstream_body, wants_raw


async def embeddings(request: web.Request) -> web.Response:
    started = time.perf_counter()
    gw = request.app[GATEWAY]
    body = parse_json_object(await read_body(request, gw.max_body_bytes))
    model, fallbacks = validate_embeddings(body)
    targets = plan(gw.table, model, fallbacks)
    call = Call(model, "embedding", started, wants_raw(gw, request))
    vendor_body = upstream_body(body)

    def build(target: Target, key: str | None):
        return target.runtime.provider.embeddings_request(vendor_body, target.model, key)

    def parse(target: Target, raw: bytes, headers: Mapping[str, str]) -> dict:
        return target.runtime.provider.embeddings_response(raw, target.model, headers)

    try:
        result, raw = await gw.chain.complete(targets, call, build, parse)
    except ChainFailed as failed:
        return chain_failed(gw, call, failed)
    if body.get("encoding_format") == "base64":
        _to_base64(result)
    if gw.extra_fields_enabled:
        result["extra_fields"] = extra_fields.full(
            call, billed=billed_usage(gw.pricer, call.target, result.get("usage")),
            raw=orjson.loads(raw) if call.wants_raw else None)
    return web.Response(body=orjson.dumps(result), content_type="application/json")


def _to_base64(result: dict) -> None:
    """Vendors without base64 output return floats: encode them as OpenAI does (float32, little-endian)."""
    for item in result.get("data") or ():
        vector = item.get("embedding") if isinstance(item, dict) else None
        if isinstance(vector, list):
            item["embedding"] = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
