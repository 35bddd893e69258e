"""The Anthropic Messages face: `POST /v1/messages` for Claude Code and the anthropic SDK, on any vendor.

A Messages request becomes a canonical request (`inbound.py`) and goes through the one pipeline like
any other; the canonical answer comes back as a Messages object or as Anthropic's event stream
(`outbound.py`). A deployment whose vendor speaks Messages itself (Anthropic) is sent the request as
the client wrote it, with only the model set (`Native`), and its answer is relayed byte for byte
(`routing/relay.py`): nothing converted twice, every member kept, usage still read for accounting.

Members that only tune Anthropic's own behaviour (Claude Code sends several on every request) are
dropped for other vendors and named in `x-switchboard-dropped` (a name that is not a plain token is
percent-encoded, so no member name can break the header); `thinking` is kept for the vendors that
have an equivalent and dropped for the others. Routing metadata is in `x-switchboard-*`
headers and, for a whole answer, in a top-level `extra_fields` member the SDK ignores.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from providers import MESSAGES_DIALECT, MESSAGES_HEADERS, UpstreamError
from providers.capabilities import untuned

from ... import extra_fields
from ...edge import SSE_HEADERS, header_list
from ...exchange import Outcome
from ...pipeline import CallFailed, Completion, LiveStream, ModelRequest, Replay
from ...pipeline.request import Native
from ...routing.relay import Relay
from .errors import anthropic_error, stream_error, upstream_error
from .inbound import to_canonical
from .outbound import MessageEvents, to_message

MESSAGES = "anthropic.messages"  # the cache namespace of this face's answers
TUNING = ("thinking", "cache_control")  # kept for the vendors that honour them (see `Tuning`)


class MessagesFace:
    stream_headers = SSE_HEADERS
    error_shape = staticmethod(anthropic_error)

    def __init__(self, with_extra: bool) -> None:
        self.with_extra = with_extra

    def parse(self, body: dict[str, Any], headers: Mapping[str, str]) -> ModelRequest:
        inbound = to_canonical(body)
        canonical = inbound.body
        stream = canonical.get("stream") is True
        forwarded = {name: headers[name] for name in MESSAGES_HEADERS if name in headers}
        return ModelRequest("chat", canonical["model"], canonical, "message", None, stream, MESSAGES,
                            native=Native(MESSAGES_DIALECT, body, forwarded), tuning=TUNING,
                            dropped=tuple(inbound.dropped))

    def render(self, mreq: ModelRequest, answer: Completion) -> dict[str, Any]:
        relayed = answer.relayed
        out = orjson.loads(relayed) if relayed is not None else to_message(answer.body, mreq.model)
        if self.with_extra:
            out["extra_fields"] = extra_fields.full(answer.outcome)
        return out

    def chunks(self, mreq: ModelRequest, answer: Replay | LiveStream) -> RelayedEvents | CanonicalEvents:
        relay = answer.relay
        if relay is not None:
            return RelayedEvents(relay)
        # `message_start` cannot know the vendor's input count yet: the cumulative usage of
        # `message_delta`, which clients read, carries it
        return CanonicalEvents(MessageEvents(mreq.model))

    def failure(self, failed: CallFailed, headers: dict[str, str]) -> web.Response:
        return upstream_error(failed.error, {**headers, **routing_headers(failed.outcome)})

    def headers(self, mreq: ModelRequest, answer: Completion | Replay | LiveStream) -> dict[str, str]:
        outcome = answer.outcome
        out = routing_headers(outcome)
        if isinstance(answer, Completion) and outcome.billed is not None and outcome.billed.cost_usd is not None:
            out["x-switchboard-cost-usd"] = f"{outcome.billed.cost_usd:.10g}"
        relayed = answer.relayed is not None if isinstance(answer, Completion) else answer.relay is not None
        if not relayed:
            dropped = set(mreq.dropped)
            target = outcome.call.target
            if target is not None and outcome.cache != "hit":
                dropped.update(untuned(target.runtime.provider.capabilities, mreq.body, mreq.tuning))
            if dropped:
                out["x-switchboard-dropped"] = header_list(dropped)
        return out


def routing_headers(outcome: Outcome) -> dict[str, str]:
    """Who served (or tried): the same facts as `extra_fields`, readable from the headers of a stream."""
    head = extra_fields.routing_head(outcome)
    out = {"x-switchboard-attempts": str(len(outcome.call.attempts))}
    if head["provider"]:
        out["x-switchboard-provider"] = head["provider"]
    if head["model"]:
        out["x-switchboard-model"] = head["model"]
    return out


class RelayedEvents:
    """A stream from a vendor that speaks Messages: its own bytes, event by event."""

    __slots__ = ("_relay",)

    def __init__(self, relay: Relay) -> None:
        self._relay = relay

    def batch(self, chunks: list[dict[str, Any]]) -> bytes:
        return self._relay.take()

    def finish(self) -> bytes:
        return self._relay.rest()

    def fail(self, error: UpstreamError) -> bytes:
        return self._relay.take() + _error_event(error)


class CanonicalEvents:
    """Canonical chunks rendered as Anthropic's event stream; a failure is one `error` event."""

    __slots__ = ("_events",)

    def __init__(self, events: MessageEvents) -> None:
        self._events = events

    def batch(self, chunks: list[dict[str, Any]]) -> bytes:
        return self._events.batch(chunks)

    def finish(self) -> bytes:
        return self._events.finish()

    def fail(self, error: UpstreamError) -> bytes:
        return self._events.fail(stream_error(error))


def _error_event(error: UpstreamError) -> bytes:
    return b"event: error\ndata: " + orjson.dumps({"type": "error", "error": stream_error(error)}) + b"\n\n"
