"""Client-facing errors in OpenAI's shape: `{"error": {message, type, param, code}}` (a face may
re-shape them: `ERROR_SHAPE`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from providers import ErrorKind, UpstreamError

_TYPE_FOR_STATUS = {
    400: "invalid_request_error", 401: "authentication_error", 402: "insufficient_quota",
    403: "permission_error", 404: "invalid_request_error", 405: "invalid_request_error",
    413: "invalid_request_error", 415: "invalid_request_error", 429: "rate_limit_error",
    500: "server_error", 502: "upstream_error", 503: "service_unavailable", 504: "timeout_error",
}


class ApiError(Exception):
    """An error the router answers itself (validation, routing, auth, limits)."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 type: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type or _TYPE_FOR_STATUS.get(status, "invalid_request_error")
        self.headers = headers

    def to_openai(self) -> dict[str, Any]:
        return {"message": self.message, "type": self.type, "param": self.param, "code": self.code}


# A face whose clients expect errors in another shape sets its renderer on the request under this key
# before anything can fail (`ErrorShape(status, openai_error, headers)`); the error middleware uses it.
ErrorShape = Callable[[int, dict[str, Any], "dict[str, str] | None"], web.Response]
ERROR_SHAPE = web.RequestKey("error_shape", ErrorShape)


def error_body(error: dict[str, Any], extra_fields: dict[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {"error": error}
    if extra_fields is not None:
        body["extra_fields"] = extra_fields
    return orjson.dumps(body)


def error_response(status: int, error: dict[str, Any], extra_fields: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=error_body(error, extra_fields), content_type="application/json",
                        headers=headers)


def retry_headers(err: UpstreamError) -> dict[str, str]:
    """`Retry-After` for an upstream rate limit the client sees (whole seconds, at least 1)."""
    if err.kind is ErrorKind.RATE_LIMIT:
        return {"retry-after": str(max(1, round(err.retry_after or 1)))}
    return {}


def upstream_error_response(err: UpstreamError, extra_fields: dict[str, Any] | None = None,
                            headers: dict[str, str] | None = None) -> web.Response:
    """The error a client gets when no deployment served: the upstream's status and message."""
    return error_response(err.client_status, err.to_openai(), extra_fields, {**(headers or {}), **retry_headers(err)})


def where(exc: BaseException) -> str:
    """`Type at file:line` of the innermost frame that raised `exc`: enough to find a bug from one log
    line, without a traceback (whose frames may show request data)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return type(exc).__name__
    code = tb.tb_frame.f_code
    return f"{type(exc).__name__} at {code.co_filename.rpartition('/')[2]}:{tb.tb_lineno} ({code.co_name})"
