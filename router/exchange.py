"""What is known about one HTTP request once it is over: the record metrics, access log and traces read.

The observing middleware opens an `Exchange` per request; the pipeline adds an `Outcome` for every
model call it makes (one for a chat request, one per step of an agent run) and marks the first
token of a stream. Everything else (the requested model, who served, tokens, cost, attempts) is
derived from those outcomes when the request is written up, after the response has gone out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiohttp import web

from .accounting.billed import ZERO, Billed
from .routing.call import Attempt, Call


@dataclass(slots=True)
class Outcome:
    """One model call as it ended: the call (attempts, deployment), the bill, who served, the cache."""

    call: Call
    billed: Billed | None
    ok: bool
    cache: str  # hit | miss | bypass | off
    provider: str  # provider that served it (or was last tried); "" when nothing was tried
    model: str  # `provider/model` label that served it (or was last tried); the requested name otherwise

    @classmethod
    def of(cls, call: Call, billed: Billed | None, ok: bool, cache: str,
           served_by: tuple[str, str] | None = None) -> Outcome:
        """Who served, from `served_by` (a cache hit), the call's target, or its last attempt."""
        if served_by is not None:
            provider, label = served_by
        elif call.target is not None:
            provider, label = call.target.runtime.name, call.target.label
        elif call.attempts:
            label = call.attempts[-1].model
            provider = label.partition("/")[0]
        else:
            provider, label = "", call.requested
        return cls(call, billed, ok, cache, provider, label)


class Exchange:
    """One HTTP request as observed: who asked, the model calls it made, when the first token left."""

    __slots__ = ("billed", "cache", "content", "error_code", "first_token_at", "keep_content", "key", "method",
                 "model", "ok", "outcomes", "path", "provider", "request_id", "request_type", "requested", "route",
                 "started", "tool_calls", "wall")

    def __init__(self, request_id: str, started: float, route: str | None, keep_content: bool = False) -> None:
        self.request_id = request_id
        self.started = started
        self.wall = time.time()
        self.route = route
        self.key: str | None = None  # virtual key name
        self.outcomes: list[Outcome] = []
        # Of the last model call (the model asked for is known before any call is made):
        self.requested: str | None = None
        self.request_type: str | None = None
        self.provider: str | None = None
        self.model: str | None = None
        self.ok: bool | None = None
        self.cache = "off"
        self.billed = ZERO  # every call's bill, summed
        self.first_token_at: float | None = None
        self.error_code: str | None = None  # `code` of the router's own error answer, if it gave one
        self.keep_content = keep_content  # the access log wants the request body
        self.content: bytes | None = None
        self.method = self.path = ""
        self.tool_calls: list[dict] = []  # server-side tool calls (an agent's loop, /mcp): name, latency_ms, error

    def add(self, outcome: Outcome) -> None:
        """A model call of this request ended."""
        self.outcomes.append(outcome)
        call = outcome.call
        self.requested, self.request_type = call.requested, call.request_type
        self.provider, self.model, self.ok, self.cache = outcome.provider, outcome.model, outcome.ok, outcome.cache
        billed = outcome.billed
        if billed is not None and outcome.cache != "hit":
            self.billed = billed if self.billed is ZERO else self.billed + billed

    def first_token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()

    # -- derived, read after the response went out ------------------------------------------------
    @property
    def recorded(self) -> bool:
        return bool(self.outcomes)

    @property
    def trails(self) -> list[list[Attempt]]:
        """One attempt trail per model call (an agent run makes several)."""
        return [o.call.attempts for o in self.outcomes]

    @property
    def attempts(self) -> list[Attempt]:
        return [a for o in self.outcomes for a in o.call.attempts]

    @property
    def upstream_s(self) -> float:
        return sum(o.call.upstream_s for o in self.outcomes)


EXCHANGE = web.RequestKey("switchboard_exchange", Exchange)


def note_error(request: web.BaseRequest, code: str | None) -> None:
    """Remember the `code` of an error the router answered itself (for the error class in metrics)."""
    exchange = request.get(EXCHANGE)
    if exchange is not None:
        exchange.error_code = code
