"""Errors in Anthropic's shape, `{"type": "error", "error": {"type", "message"}}`, with Anthropic's statuses.

The anthropic SDK picks its exception class from the status (and retries 429 and 5xx on its own), so
a Messages client must get the statuses Anthropic uses: the router's own 502 (no deployment served)
is Anthropic's 500 `api_error`, an overloaded upstream or gateway is 529 `overloaded_error`, and a
rate limit keeps its `retry-after`. Every error the router raises for a Messages request, from the
key check to the body reader, goes through `anthropic_error` (the route sets it as the request's
error shape), so none leaves in OpenAI's shape.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from providers import ErrorKind, UpstreamError

from ...errors import retry_headers

# The router's status -> (Anthropic's status, Anthropic's error type).
_BY_STATUS: dict[int, tuple[int, str]] = {
    400: (400, "invalid_request_error"), 401: (401, "authentication_error"), 402: (402, "billing_error"),
    403: (403, "permission_error"), 404: (404, "not_found_error"), 405: (405, "invalid_request_error"),
    408: (408, "timeout_error"), 413: (413, "request_too_large"), 415: (415, "invalid_request_error"),
    422: (400, "invalid_request_error"), 429: (429, "rate_limit_error"), 500: (500, "api_error"),
    502: (500, "api_error"), 503: (529, "overloaded_error"), 504: (504, "timeout_error"),
    529: (529, "overloaded_error"),
}


def error_object(status: int, message: str) -> tuple[int, dict[str, Any]]:
    """(Anthropic's status, the body) for an error the router answers with `status`."""
    anthropic_status, etype = _BY_STATUS.get(status, (500, "api_error") if status >= 500 else
                                             (status, "invalid_request_error"))
    return anthropic_status, {"type": "error", "error": {"type": etype, "message": message}}


def anthropic_error(status: int, error: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    """The error shape of the Messages routes: an OpenAI-shaped `error` object, re-shaped."""
    anthropic_status, body = error_object(status, str(error.get("message") or "error"))
    return web.Response(status=anthropic_status, body=orjson.dumps(body), content_type="application/json",
                        headers=headers)


def upstream_status(err: UpstreamError) -> int:
    """The router's status for a failed call, overloaded vendors kept apart (Anthropic's 529)."""
    return 529 if err.kind is ErrorKind.OVERLOADED else err.client_status


def upstream_error(err: UpstreamError, headers: dict[str, str]) -> web.Response:
    """No deployment served: the most relevant upstream error, `retry-after` kept on a rate limit."""
    return anthropic_error(upstream_status(err), {"message": err.message}, {**headers, **retry_headers(err)})


def stream_error(err: UpstreamError) -> dict[str, Any]:
    """The `error` member of an `event: error` in a stream that already started."""
    return error_object(upstream_status(err), err.message)[1]["error"]
