"""The OpenAI Responses face: `POST /v1/responses` for Codex, the Agents SDK and the openai SDK, on any vendor.

A Responses request becomes a canonical request (`inbound.py`) and goes through the one pipeline; the
canonical answer comes back as a Response object or as the typed event stream (`outbound.py`), with
`extra_fields` on the Response. One `ResponsesCall` is made per request: it carries what the request
continues (`previous_response_id`, loaded from the store by the route) and, once rendered, the
Response to store. What was dropped is named in `x-switchboard-dropped` (a name that is not a plain
token percent-encoded: unknown members and hosted tool types come from the client). Errors are
OpenAI's shape; a stream that fails after it started ends with `response.failed`, never silently.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from providers import UpstreamError

from ... import extra_fields
from ...edge import SSE_HEADERS, header_list
from ...errors import upstream_error_response
from ...pipeline import CallFailed, Completion, LiveStream, ModelRequest, Replay
from .inbound import to_canonical
from .outbound import ResponseEvents, to_response

RESPONSES = "responses"  # the cache namespace of this face's answers


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


class ResponsesCall:
    """One `POST /v1/responses`: the face for that request, and what it leaves to store."""

    stream_headers = SSE_HEADERS
    error_shape = None  # OpenAI's

    def __init__(self, with_extra: bool, conversation: list[dict[str, Any]] | None) -> None:
        self.with_extra = with_extra
        self.previous = conversation  # the items a `previous_response_id` continues, oldest first
        self.id = new_id("resp")
        self.created_at = int(time.time())
        self.request: dict[str, Any] = {}
        self.input_items: list[dict[str, Any]] = []
        self.dropped: list[str] = []
        self.response: dict[str, Any] | None = None  # the Response, once rendered whole

    def parse(self, body: dict[str, Any], headers: Mapping[str, str]) -> ModelRequest:
        inbound = to_canonical(body, self.previous)
        self.request = body
        self.input_items = inbound.input_items
        self.dropped = inbound.dropped
        canonical = inbound.body
        stream = canonical.get("stream") is True
        return ModelRequest("chat", canonical["model"], canonical, "response", None, stream, RESPONSES,
                            dropped=tuple(inbound.dropped))

    def render(self, mreq: ModelRequest, answer: Completion) -> dict[str, Any]:
        response = to_response(answer.body, response_id=self.id, model=mreq.model, request=self.request,
                               created_at=self.created_at)
        self.response = response
        if self.with_extra:
            return {**response, "extra_fields": extra_fields.full(answer.outcome)}
        return response

    def chunks(self, mreq: ModelRequest, answer: Replay | LiveStream) -> ResponseChunks:
        events = ResponseEvents(self.id, mreq.model, self.request, self.created_at)
        if self.with_extra:
            events.extra_fields = lambda: extra_fields.full(answer.outcome)
        return ResponseChunks(self, events)

    def failure(self, failed: CallFailed, headers: dict[str, str]) -> web.Response:
        extra = extra_fields.full(failed.outcome) if self.with_extra else None
        return upstream_error_response(failed.error, extra, headers)

    def headers(self, mreq: ModelRequest, answer: Completion | Replay | LiveStream) -> dict[str, str]:
        return {"x-switchboard-dropped": header_list(self.dropped)} if self.dropped else {}

    def conversation(self) -> list[dict[str, Any]]:
        """Everything a later `previous_response_id` continues: what came before, this input, this output."""
        assert self.response is not None
        return [*(self.previous or ()), *self.input_items, *self.response["output"]]


class ResponseChunks:
    """Canonical chunks to the Responses event stream; the finished Response goes back to its call."""

    __slots__ = ("_call", "_events")

    def __init__(self, call: ResponsesCall, events: ResponseEvents) -> None:
        self._call = call
        self._events = events

    def batch(self, chunks: list[dict[str, Any]]) -> bytes:
        return self._events.batch(chunks)

    def finish(self) -> bytes:
        out = self._events.finish()
        self._call.response = self._events.response
        return out

    def fail(self, error: UpstreamError) -> bytes:
        return self._events.fail({"code": error.code or error.kind.value, "message": error.message})
