"""The typed objects a request is carried in through the pipeline.

- `ProxyRequest`: one HTTP request once authenticated: who asks (the virtual key), what the cache
  headers allow, where it is observed, what it reserved against the key's limits.
- `ModelRequest`: one model call in canonical (OpenAI-shaped) form, as a face parsed it.
- `Route`: where that call may go once policy has spoken: the deployments the key may use and that
  can honour the request, in order, and the body each is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..auth import VirtualKey
from ..auth.limits import Reservation
from ..cache import ANONYMOUS_TENANT, CacheDirective
from ..exchange import Exchange
from ..routing.table import Plan, Target

Kind = Literal["chat", "embeddings"]


@dataclass(frozen=True, slots=True)
class Native:
    """A request as the client wrote it in its face's dialect, for a deployment whose vendor speaks
    that dialect (`Provider.speaks`): forwarded as it is, with the client's dialect `headers`."""

    dialect: str
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass(slots=True)
class ModelRequest:
    """One model call as a face parsed it: canonical body, the name asked for, how it may be cached."""

    kind: Kind  # which provider methods serve it
    model: str  # the name the client (or the agent's config) asked for
    body: dict[str, Any]  # canonical body; router-only members (`fallbacks`) removed
    request_type: str  # `extra_fields.request_type`
    fallbacks: list[str] | None = None
    stream: bool = False
    cache_endpoint: str | None = None  # the face's cache namespace; None: never cached
    reported_as: str | None = None  # `model_requested` when not `model` (an agent run reports the agent)
    model_named: bool = True  # the client wrote `model` (False: an agent's configured model, checked by
    #                           its deployments only)
    native: Native | None = None  # the request in its own dialect, where a vendor speaks it
    tuning: tuple[str, ...] = ()  # members that only tune the vendor: stripped where not honoured
    dropped: tuple[str, ...] = ()  # what the face could not carry into `body` (it only tuned the vendor)

    @property
    def requested(self) -> str:
        return self.reported_as or self.model

    @property
    def requested_tokens(self) -> int | None:
        """The output the caller allows (`max_completion_tokens` / `max_tokens`), when it says."""
        body = self.body
        value = body.get("max_completion_tokens") or body.get("max_tokens")
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None

    @property
    def choices(self) -> int:
        n = self.body.get("n")
        return n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1


@dataclass(slots=True)
class Route:
    """The deployments one call may reach, and what each is sent."""

    plan: Plan
    body: dict[str, Any]  # what vendors are sent (without `n` when the call is fanned out)
    fan: int = 0  # > 1: `n` emulated with this many parallel calls
    stripped: dict[str, dict[str, Any]] | None = None  # label -> body without what it drops

    def body_for(self, target: Target) -> dict[str, Any]:
        return self.stripped.get(target.label, self.body) if self.stripped else self.body


class ProxyRequest:
    """One authenticated HTTP request as the pipeline carries it."""

    __slots__ = ("counted", "directive", "exchange", "key", "rate_headers", "raw_requested", "reservations",
                 "started")

    def __init__(self, key: VirtualKey | None, directive: CacheDirective | None, exchange: Exchange | None,
                 started: float, raw_requested: bool) -> None:
        self.key = key
        self.directive = directive  # None: no cache configured
        self.exchange = exchange
        self.started = started
        self.raw_requested = raw_requested  # `x-switchboard-raw-response: true`, allowed by the config
        self.reservations: list[Reservation] = []  # admitted against the key's limits, not yet settled
        self.rate_headers: dict[str, str] = {}  # `x-ratelimit-*` of the first admission
        self.counted = False  # admitted once: counted against the key's RPM

    @property
    def key_name(self) -> str | None:
        return self.key.name if self.key is not None else None

    @property
    def tenant(self) -> str:
        """Whose cache entries, sessions and stored responses these are: the key's immutable id."""
        return self.key.id if self.key is not None else ANONYMOUS_TENANT

    def first_token(self) -> None:
        """Content is going out (time to first token)."""
        if self.exchange is not None:
            self.exchange.first_token()
