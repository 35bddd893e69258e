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

import contextlib
import time
import uuid
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from providers import RESPONSES_DIALECT, UpstreamError

from ... import extra_fields
from ...edge import SSE_HEADERS, header_list
from ...errors import upstream_error_response
from ...pipeline import CallFailed, Completion, LiveStream, ModelRequest, Replay
from ...pipeline.request import Native
from ...routing.relay import Relay
from .inbound import to_canonical
from .outbound import ResponseEvents, to_response
from .thinking import PREFIX

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
        self.response: dict[str, Any] | None = None  # the Response, once rendered whole

    def parse(self, body: dict[str, Any], headers: Mapping[str, str]) -> ModelRequest:
        inbound = to_canonical(body, self.previous)
        self.request = body
        self.input_items = inbound.input_items
        canonical = inbound.body
        stream = canonical.get("stream") is True
        return ModelRequest("chat", canonical["model"], canonical, "response", None, stream, RESPONSES,
                            native=Native(RESPONSES_DIALECT, self._forwarded(body), {}),
                            dropped=tuple(inbound.dropped))

    def _forwarded(self, body: dict[str, Any]) -> dict[str, Any]:
        """The request as a vendor that serves Responses gets it: as written, except that a continued
        conversation is sent whole (the previous response is ours, not the vendor's), without the
        reasoning we sealed for another vendor's signatures (OpenAI refuses foreign encrypted content)."""
        if self.previous is None:
            return body
        history = [item for item in self.previous if not _sealed(item)]
        return {**{k: v for k, v in body.items() if k != "previous_response_id"},
                "input": [*history, *self.input_items]}

    def render(self, mreq: ModelRequest, answer: Completion) -> dict[str, Any]:
        if answer.relayed is not None:  # the vendor's own Response, stored under the vendor's id
            response = orjson.loads(answer.relayed)
        else:
            response = to_response(answer.body, response_id=self.id, model=mreq.model, request=self.request,
                                   created_at=self.created_at)
        self.response = response
        if self.with_extra:
            return {**response, "extra_fields": extra_fields.full(answer.outcome)}
        return response

    def chunks(self, mreq: ModelRequest, answer: Replay | LiveStream) -> ResponseChunks | RelayedResponse:
        if answer.relay is not None:
            return RelayedResponse(self, answer.relay)
        events = ResponseEvents(self.id, mreq.model, self.request, self.created_at)
        if self.with_extra:
            events.extra_fields = lambda: extra_fields.full(answer.outcome)
        return ResponseChunks(self, events)

    def failure(self, failed: CallFailed, headers: dict[str, str]) -> web.Response:
        extra = extra_fields.full(failed.outcome) if self.with_extra else None
        return upstream_error_response(failed.error, extra, headers)

    def headers(self, mreq: ModelRequest, answer: Completion | Replay | LiveStream) -> dict[str, str]:
        relayed = answer.relayed is not None if isinstance(answer, Completion) else answer.relay is not None
        return {"x-switchboard-dropped": header_list(mreq.dropped)} if mreq.dropped and not relayed else {}

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


class RelayedResponse:
    """A stream from a vendor that serves Responses: its own events, passed on as they are; the final
    Response (in `response.completed` or `.incomplete`) is read from them, for the store."""

    __slots__ = ("_call", "_relay")

    def __init__(self, call: ResponsesCall, relay: Relay) -> None:
        self._call = call
        self._relay = relay

    def batch(self, chunks: list[dict[str, Any]]) -> bytes:
        return self._seen(self._relay.take())

    def finish(self) -> bytes:
        return self._seen(self._relay.rest())

    def fail(self, error: UpstreamError) -> bytes:
        failed = {"type": "response.failed", "response": {"status": "failed", "error": {
            "code": error.code or error.kind.value, "message": error.message}}}
        return self._relay.take() + b"event: response.failed\ndata: " + orjson.dumps(failed) + b"\n\n"

    def _seen(self, data: bytes) -> bytes:
        """`data`, after keeping the final Response if it is in there."""
        if b'"response.completed"' in data or b'"response.incomplete"' in data:
            for line in data.split(b"\n"):
                if line.startswith(b"data:") and (b'"response.completed"' in line or b'"response.incomplete"' in line):
                    with contextlib.suppress(orjson.JSONDecodeError):
                        event = orjson.loads(line[5:])
                        if isinstance(event, dict) and isinstance(event.get("response"), dict):
                            self._call.response = event["response"]
        return data


def _sealed(item: Any) -> bool:
    """A reasoning item whose encrypted content is our seal of another vendor's signed thinking."""
    return isinstance(item, dict) and item.get("type") == "reasoning" and \
        isinstance(item.get("encrypted_content"), str) and item["encrypted_content"].startswith(PREFIX)
