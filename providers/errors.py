"""The router's error taxonomy, shared by every provider.

Providers turn whatever a vendor sends back (an HTTP error body, an error event in a stream, a
body that does not parse) into one `UpstreamError` with a `kind`. The router decides retries,
fallbacks and the status the client sees from the kind alone, so vendor quirks stay in providers/.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from enum import StrEnum


class ErrorKind(StrEnum):
    """Why an upstream attempt failed. Drives retry, fallback and the client-facing status."""

    BAD_REQUEST = "bad_request"  # 400/422: the caller's request is wrong; never fall back
    TOO_LARGE = "too_large"  # 413
    CONTEXT_WINDOW = "context_window"  # prompt longer than the model accepts
    CONTENT_POLICY = "content_policy"  # vendor refused on safety grounds
    AUTH = "auth"  # 401/403 from the vendor: our provider key is bad
    NOT_FOUND = "not_found"  # 404: model or deployment missing at the vendor
    RATE_LIMIT = "rate_limit"  # 429
    OVERLOADED = "overloaded"  # 503/529, "overloaded_error"
    SERVER = "server"  # other 5xx
    TIMEOUT = "timeout"  # connect / first byte / idle / total deadline passed
    CONNECT = "connect"  # refused, reset, DNS, closed before headers
    INVALID_RESPONSE = "invalid_response"  # 2xx whose body is not what the wire format promises
    STREAM_CUT = "stream_cut"  # stream ended without a finish reason / terminator
    UNSUPPORTED = "unsupported"  # the request uses something this vendor cannot do


# Kinds that are the caller's fault: returned to the client as-is, never retried or fallen back on.
CALLER_KINDS = frozenset(
    {ErrorKind.BAD_REQUEST, ErrorKind.TOO_LARGE, ErrorKind.CONTEXT_WINDOW, ErrorKind.CONTENT_POLICY,
     ErrorKind.UNSUPPORTED}
)

# OpenAI error `type` and client-facing HTTP status for each kind.
_CLIENT_SHAPE: dict[ErrorKind, tuple[int, str]] = {
    ErrorKind.BAD_REQUEST: (400, "invalid_request_error"),
    ErrorKind.TOO_LARGE: (413, "invalid_request_error"),
    ErrorKind.CONTEXT_WINDOW: (400, "invalid_request_error"),
    ErrorKind.CONTENT_POLICY: (400, "invalid_request_error"),
    ErrorKind.UNSUPPORTED: (400, "invalid_request_error"),
    ErrorKind.AUTH: (502, "upstream_error"),
    ErrorKind.NOT_FOUND: (502, "upstream_error"),
    ErrorKind.RATE_LIMIT: (429, "rate_limit_error"),
    ErrorKind.OVERLOADED: (502, "upstream_error"),
    ErrorKind.SERVER: (502, "upstream_error"),
    ErrorKind.TIMEOUT: (504, "timeout_error"),
    ErrorKind.CONNECT: (502, "upstream_error"),
    ErrorKind.INVALID_RESPONSE: (502, "upstream_error"),
    ErrorKind.STREAM_CUT: (502, "upstream_error"),
}


class UpstreamError(Exception):
    """One failed attempt at a vendor, already classified."""

    __slots__ = ("code", "kind", "message", "param", "retry_after", "upstream_status")

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        upstream_status: int | None = None,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.upstream_status = upstream_status
        self.code = code
        self.param = param
        self.retry_after = retry_after

    @property
    def is_caller_error(self) -> bool:
        return self.kind in CALLER_KINDS

    @property
    def client_status(self) -> int:
        """The HTTP status the client sees when this is the error we report."""
        status, _ = _CLIENT_SHAPE[self.kind]
        if self.kind is ErrorKind.BAD_REQUEST and self.upstream_status in (400, 404, 422):
            return self.upstream_status
        return status

    @property
    def error_type(self) -> str:
        return _CLIENT_SHAPE[self.kind][1]

    def to_openai(self) -> dict:
        """OpenAI-shaped `error` object."""
        return {"message": self.message, "type": self.error_type, "param": self.param,
                "code": self.code or self.kind.value}

    def __repr__(self) -> str:
        return f"UpstreamError({self.kind.value}, {self.upstream_status}, {self.message!r})"


def bad_request_error(provider: str, message: str, param: str) -> UpstreamError:
    """The caller's request cannot be translated for `provider` as sent (a 400 naming `param`)."""
    return UpstreamError(ErrorKind.BAD_REQUEST, f"{provider}: {message}", param=param, code="invalid_request")


def unsupported_error(provider: str, message: str, param: str) -> UpstreamError:
    """The caller asks for something `provider` cannot do (a 400 naming `param`)."""
    return UpstreamError(ErrorKind.UNSUPPORTED, f"{provider}: {message}", param=param, code="unsupported_parameter")


# Error codes / types by which vendors say "the prompt is longer than the model accepts": OpenAI and
# most compatible servers `context_length_exceeded`, Perplexity `too_many_prompt_tokens`.
_CONTEXT_WINDOW_CODES = frozenset({"context_length_exceeded", "too_many_prompt_tokens"})
# The same said in words, for vendors whose code is generic (DeepSeek's and OpenRouter's "maximum
# context length", Anthropic's "prompt is too long", Bedrock's "Input Tokens Exceeded" and "Input is
# too long", Gemini's "input token count ... exceeds", Cohere's "too many tokens", Perplexity's "all
# messages is too long"). Narrow on purpose: "max_tokens is too large" or "exceeds the model limit of
# 8192" (an output bound the caller set) and "name too long" (one field) stay plain bad requests.
_CONTEXT_WINDOW_RE = re.compile(
    r"context (window|length|limit)|maximum (context|prompt|input) length"
    r"|(prompt|input|messages?|conversation)( is| are)? too long"
    r"|too many (input |prompt )?tokens|input tokens? (count )?exceed|input token count"
    r"|exceeds? the maximum (number of )?(input )?tokens|input length.*exceed|exceed\w* (the )?context",
    re.IGNORECASE,
)


def is_context_window(message: object, *codes: object) -> bool:
    """True when an error's code, type or message says the prompt does not fit the model's context.

    Every translator asks this of a vendor's bad request (one set of recognisers for all), so that
    `routing.fallback_on: [context_window]` moves on to a model with a larger window whatever the
    vendor's wording; any of `codes` may be None or a number (OpenRouter's numeric `code`).
    """
    if any(isinstance(code, str) and code.lower() in _CONTEXT_WINDOW_CODES for code in codes):
        return True
    return isinstance(message, str) and _CONTEXT_WINDOW_RE.search(message) is not None


def kind_for_status(status: int) -> ErrorKind:
    """Default classification of a vendor HTTP status; providers refine it from the body."""
    if status in (400, 422):
        return ErrorKind.BAD_REQUEST
    if status == 413:
        return ErrorKind.TOO_LARGE
    if status in (401, 403):
        return ErrorKind.AUTH
    if status == 404:
        return ErrorKind.NOT_FOUND
    if status == 408:
        return ErrorKind.TIMEOUT
    if status == 429:
        return ErrorKind.RATE_LIMIT
    if status in (503, 529):
        return ErrorKind.OVERLOADED
    if status == 504:
        return ErrorKind.TIMEOUT
    if status >= 500:
        return ErrorKind.SERVER
    return ErrorKind.BAD_REQUEST


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (delta seconds or HTTP date)."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
