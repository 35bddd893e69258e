"""The OpenAI Chat Completions face: `POST /v1/chat/completions` (the agents are routed elsewhere).

Non-stream answers are the canonical `chat.completion` plus `extra_fields`. Streams are OpenAI's
SSE: the first chunk carries `extra_fields` `provider` and `model`; chunks with a finish reason
(and the usage chunk) are held back until the upstream ends, so the full `extra_fields`, which
needs the final usage, rides on the last chunk before `data: [DONE]`. The usage chunk is sent only
when the client asked for it (`stream_options.include_usage`). A failure after the first chunk
ends the stream with one OpenAI error event.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from providers import UpstreamError

from .. import extra_fields
from ..cache import CHAT
from ..edge import DONE, SSE_HEADERS, sse_data
from ..errors import upstream_error_response
from ..exchange import Outcome
from ..pipeline import CallFailed, Completion, LiveStream, ModelRequest, Replay
from ..validation import validate_chat

ROUTER_ONLY_FIELDS = ("fallbacks",)


def upstream_body(body: dict[str, Any]) -> dict[str, Any]:
    """The request as vendors should see it: router-only members removed."""
    if any(f in body for f in ROUTER_ONLY_FIELDS):
        body = {k: v for k, v in body.items() if k not in ROUTER_ONLY_FIELDS}
    return body


class OpenAIFace:
    """What the OpenAI-shaped faces share: `extra_fields` on answers and errors."""

    stream_headers = SSE_HEADERS
    error_shape = None

    def __init__(self, with_extra: bool) -> None:
        self.with_extra = with_extra

    def headers(self, mreq: ModelRequest, answer: Completion | Replay | LiveStream) -> dict[str, str]:
        return {}  # `extra_fields` carries the routing metadata

    def render(self, mreq: ModelRequest, answer: Completion) -> dict[str, Any]:
        if not self.with_extra:
            return answer.body
        raw = orjson.loads(answer.raw) if answer.raw is not None else None
        return {**answer.body, "extra_fields": extra_fields.full(answer.outcome, raw)}

    def failure(self, failed: CallFailed, headers: dict[str, str]) -> web.Response:
        extra = extra_fields.full(failed.outcome) if self.with_extra else None
        return upstream_error_response(failed.error, extra, headers)


class ChatFace(OpenAIFace):
    def parse(self, body: dict[str, Any], headers: Mapping[str, str]) -> ModelRequest:
        model, fallbacks = validate_chat(body)
        stream = body.get("stream") is True
        return ModelRequest("chat", model, upstream_body(body), "chat.completion.chunk" if stream else
                            "chat.completion", fallbacks, stream, CHAT)

    def chunks(self, mreq: ModelRequest, answer: Replay | LiveStream) -> ChatChunks:
        options = mreq.body.get("stream_options")
        return ChatChunks(answer.outcome, isinstance(options, dict) and options.get("include_usage") is True,
                          self.with_extra)


class ChatChunks:
    """Canonical chunks to OpenAI SSE events (see the module docstring for what is held back)."""

    __slots__ = ("first", "held", "last", "outcome", "wants_usage", "with_extra")

    def __init__(self, outcome: Outcome, wants_usage: bool, with_extra: bool) -> None:
        self.outcome = outcome
        self.wants_usage = wants_usage
        self.with_extra = with_extra
        self.first = True
        self.held: list[dict[str, Any]] = []
        self.last: dict[str, Any] = {}

    def batch(self, chunks: list[dict[str, Any]]) -> bytes:
        out: list[bytes] = []
        for chunk in chunks:
            self.last = chunk
            choices = chunk.get("choices")
            if not choices and chunk.get("usage"):
                if self.wants_usage:
                    self.held.append(chunk)
                continue
            if self.first:
                self.first = False
                if self.with_extra:
                    chunk = {**chunk, "extra_fields": extra_fields.routing_head(self.outcome)}
            if choices and _finishes(choices):
                self.held.append(chunk)
                continue
            out.append(sse_data(chunk))
        return b"".join(out)

    def finish(self) -> bytes:
        held = self.held
        if self.with_extra:
            last = held.pop() if held else _empty_chunk(self.last)
            held.append({**last, "extra_fields": extra_fields.full(self.outcome)})
        return b"".join(sse_data(chunk) for chunk in held) + DONE

    def fail(self, error: UpstreamError) -> bytes:
        payload: dict[str, Any] = {"error": error.to_openai()}
        if self.with_extra:
            payload["extra_fields"] = extra_fields.full(self.outcome)
        return b"".join(sse_data(chunk) for chunk in self.held if chunk.get("choices")) + sse_data(payload)


def _finishes(choices: list[dict[str, Any]]) -> bool:
    for choice in choices:  # noqa: SIM110 - a loop, not any() over a generator: it runs for every chunk
        if choice.get("finish_reason"):
            return True
    return False


def _empty_chunk(like: dict[str, Any]) -> dict[str, Any]:
    """A `choices: []` chunk in the stream's identity, to carry metadata the stream had no room for."""
    return {"id": like.get("id", "chatcmpl-switchboard"), "object": "chat.completion.chunk",
            "created": like.get("created", int(time.time())), "model": like.get("model", ""), "choices": []}
