"""The HTTP edge every face shares: reading a request body, JSON and SSE responses.

Faces (chat, embeddings, the agents) keep only their wire format; how bytes come in and go out
is written here once.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from .errors import ApiError
from .exchange import EXCHANGE
from .validation import parse_json_object

SSE_HEADERS = {"content-type": "text/event-stream", "cache-control": "no-cache", "x-accel-buffering": "no"}
DONE = b"data: [DONE]\n\n"
PING = b": ping\n\n"


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body, or 413 when it is larger than `server.max_body_bytes`."""
    length = request.content_length
    if length is not None and length > limit:
        raise ApiError(413, f"request body is {length} bytes; the limit is {limit}", code="request_too_large")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, f"request body is larger than the limit of {limit} bytes",
                       code="request_too_large") from None
    exchange = request.get(EXCHANGE)
    if exchange is not None and exchange.keep_content:
        exchange.content = raw
    return raw


async def read_json(request: web.Request, limit: int) -> dict[str, Any]:
    """The request body as a JSON object (400 otherwise, 413 when too large)."""
    raw = await read_body(request, limit)
    return parse_json_object(raw)


def json_response(body: Any, headers: dict[str, str] | None = None, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json", headers=headers)


def sse_data(payload: Any) -> bytes:
    """One `data:` event of a JSON payload."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


async def open_sse(request: web.Request, headers: dict[str, str] | None = None,
                   content_headers: dict[str, str] = SSE_HEADERS) -> web.StreamResponse:
    """A prepared 200 event-stream response."""
    response = web.StreamResponse(status=200, headers={**content_headers, **(headers or {})})
    await response.prepare(request)
    return response
