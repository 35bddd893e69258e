"""The HTTP edge every face shares: reading a request body, JSON and SSE responses.

Faces (chat, embeddings, the agents) keep only their wire format; how bytes come in and go out
is written here once.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

import orjson
from aiohttp import ClientPayloadError, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from .errors import ApiError
from .exchange import EXCHANGE
from .validation import parse_json_object

SSE_HEADERS = {"content-type": "text/event-stream", "cache-control": "no-cache", "x-accel-buffering": "no"}
DONE = b"data: [DONE]\n\n"
PING = b": ping\n\n"
_TOKEN = re.compile(r"[A-Za-z0-9_.-]+")  # a name that goes into a header as it is


def require_json(request: web.Request) -> None:
    """415 unless the body is declared JSON (`application/json` or `…+json`, any charset).

    Form, multipart and text bodies are what a web page can send to another origin without a CORS
    preflight: refusing them keeps pages the user happens to open from spending through the gateway.
    """
    sent = request.headers.get("content-type")
    if sent is not None and sent.startswith("application/json") and (len(sent) == 16 or sent[16] in "; "):
        return  # the common case, without parsing the header
    media = request.content_type
    if media == "application/json" or (media.startswith("application/") and media.endswith("+json")):
        return
    raise ApiError(415, f"the request body must be JSON: send 'Content-Type: application/json' (got "
                        f"{repr(sent[:60]) if sent else 'none'})", code="unsupported_media_type")


async def read_body(request: web.Request, limit: int, timeout_s: float) -> bytes:
    """The request body: 413 when larger than `server.max_body_bytes`, 408 when it does not arrive
    within `server.timeouts.body_s`, 400 when its framing is broken (bad chunking, cut short)."""
    length = request.content_length
    if length is not None and length > limit:
        raise ApiError(413, f"request body is {length} bytes; the limit is {limit}", code="request_too_large")
    try:
        if request.content.is_eof():  # the whole body came with the headers (the usual case): no timer
            raw = await request.read()
        else:
            async with asyncio.timeout(timeout_s):
                raw = await request.read()
    except TimeoutError:
        raise ApiError(408, f"the request body did not arrive within {timeout_s:g}s", code="request_timeout",
                       headers={"connection": "close"}) from None
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, f"request body is larger than the limit of {limit} bytes",
                       code="request_too_large", headers={"connection": "close"}) from None
    except (ClientPayloadError, RequestPayloadError, HttpProcessingError):
        raise ApiError(400, "the request body is malformed (broken chunked encoding or cut short)",
                       code="malformed_body", headers={"connection": "close"}) from None
    exchange = request.get(EXCHANGE)
    if exchange is not None and exchange.keep_content:
        exchange.content = raw
    return raw


async def read_json(request: web.Request, limit: int, timeout_s: float) -> dict[str, Any]:
    """The request body as a JSON object: 415 unless declared JSON, 400 unless it is one, 413, 408."""
    require_json(request)
    raw = await read_body(request, limit, timeout_s)
    return parse_json_object(raw)


def json_response(body: Any, headers: dict[str, str] | None = None, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json", headers=headers)


def header_list(names: Iterable[str]) -> str:
    """Names as one comma-separated header value, sorted and unique (`x-switchboard-dropped`). A name
    from the client (an unknown member, a hosted tool's `type`) is any JSON string (control characters,
    commas, non-ASCII), which a header must not carry raw: one that is not a plain token is
    percent-encoded."""
    return ", ".join(sorted({name if _TOKEN.fullmatch(name) else quote(name, safe="") for name in names}))


def sse_data(payload: Any) -> bytes:
    """One `data:` event of a JSON payload."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


async def open_sse(request: web.Request, headers: dict[str, str] | None = None,
                   content_headers: dict[str, str] = SSE_HEADERS) -> web.StreamResponse:
    """A prepared 200 event-stream response."""
    response = web.StreamResponse(status=200, headers={**content_headers, **(headers or {})})
    await response.prepare(request)
    return response
