"""A proxied request's life around the routing core: who asks, what they may spend, what it cost.

Order (DESIGN.md "data flows one way"): authenticate → validate → authorise the model → resolve
the route → admit (rate limits and budget, reserved atomically) → cache → attempt chain →
respond → account and settle the reservation with the real usage. `Scope` carries what the front
half decided to the back half, so the chat and embeddings handlers stay short.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from aiohttp import web

from ..accounting import UsageRecord
from ..auth import UNLIMITED, Reservation, VirtualKey, usd_to_nanos
from ..cache import ANONYMOUS_TENANT, OFF, CacheDirective, CachedResponse, cache_key, status_headers
from ..gateway import Gateway
from ..observe import EXCHANGE, Exchange
from ..routing import Target
from ..routing.chain import Call
from ..routing.table import Plan


class Scope:
    __slots__ = ("cache_status", "directive", "gw", "obs", "reservation", "settled", "vk")

    def __init__(self, gw: Gateway, vk: VirtualKey | None, directive: CacheDirective | None,
                 obs: Exchange | None = None) -> None:
        self.gw = gw
        self.vk = vk
        self.directive = directive
        self.obs = obs  # what the metrics and the access log learn of this request (router/observe.py)
        self.cache_status = OFF if directive is None else directive.status_on_miss
        self.reservation: Reservation = UNLIMITED
        self.settled = False

    @classmethod
    async def open(cls, gw: Gateway, request: web.Request) -> Scope:
        """Authenticate (401) and read the cache headers (400 on a bad TTL) before the body is read."""
        vk = await gw.authenticator.authenticate(request) if gw.authenticator is not None else None
        obs = request.get(EXCHANGE)
        if obs is not None and vk is not None:
            obs.key = vk.name
        directive = CacheDirective.from_headers(request.headers, gw.cache_ttl_s) if gw.cache is not None else None
        return cls(gw, vk, directive, obs)

    @property
    def key_name(self) -> str | None:
        return self.vk.name if self.vk is not None else None

    def authorize(self, model: str) -> None:
        if self.obs is not None:
            self.obs.requested = model
        if self.vk is not None:
            self.gw.authenticator.check_model(self.vk, model)

    async def admit(self, plan: Plan, body: dict[str, Any], prompt_estimate, cached: bool = False) -> None:
        """Reserve this request against the key's RPM, TPM and budget (429/402 when over).

        A cache hit (`cached`) costs no tokens and nothing: it counts as a request only, so an
        exhausted budget does not refuse an answer that is free."""
        vk = self.vk
        if vk is None or not vk.has_limits:
            return
        if cached:
            self.reservation = await self.gw.limiter.admit(vk, 0, 0)
            return
        prompt = prompt_estimate() if (vk.tpm is not None or vk.budget_nanos is not None) else 0
        completion = body.get("max_completion_tokens") or body.get("max_tokens") or 0
        completion = completion if isinstance(completion, int) else 0
        cost = 0
        if vk.budget_nanos is not None:
            target = plan.targets[0]
            usd = self.gw.pricer.cost(target.runtime.provider.settings.type, target.label, target.model,
                                      {"prompt_tokens": prompt, "completion_tokens": completion})
            cost = usd_to_nanos(usd or 0.0)
        self.reservation = await self.gw.limiter.admit(vk, prompt + completion, cost)

    # -- cache ----------------------------------------------------------------------------------
    def cache_key(self, endpoint: str, model: str, body: dict[str, Any], streamed: bool) -> str | None:
        if self.directive is None:
            return None
        tenant = self.vk.name if self.vk is not None else ANONYMOUS_TENANT
        return cache_key(endpoint, tenant, model, body, streamed)

    async def lookup(self, key: str | None) -> CachedResponse | None:
        if key is None or self.directive is None or not self.directive.lookup:
            return None
        entry = await self.gw.cache.get(key)
        if entry is None or not self.directive.fresh_enough(entry.stored_at):
            return None
        self.cache_status = "hit"
        return entry

    async def store(self, key: str | None, entry: CachedResponse | None) -> None:
        if key is not None and entry is not None and self.directive is not None and self.directive.store:
            await self.gw.cache.set(key, entry, self.directive.ttl_s)

    def headers(self) -> dict[str, str]:
        """Response headers: cache status and the key's rate-limit state."""
        out = status_headers(self.cache_status)
        if self.reservation is not UNLIMITED:
            out.update(self.reservation.headers())
        return out

    # -- the back half ----------------------------------------------------------------------------
    def record(self, call: Call, target: Target | None, billed: dict[str, Any] | None, *, ok: bool,
               cache_hit: bool = False, served_by: tuple[str, str] | None = None) -> None:
        """Account for the request (sync, no I/O) and settle its reservation in the background."""
        if served_by is not None:
            provider, label = served_by
        elif target is not None:
            provider, label = target.runtime.name, target.label
        elif call.attempts:
            label = call.attempts[-1].model
            provider = label.partition("/")[0]
        else:
            provider, label = "", call.requested
        self.gw.accountant.record(UsageRecord.from_billed(self.key_name, provider, label, billed,
                                                          cache_hit=cache_hit, ok=ok))
        if self.obs is not None:
            self.obs.outcome(call, provider, label, billed, ok, self.cache_status)
        self.settle(billed if not cache_hit else None)

    def first_token(self) -> None:
        """A stream's first content chunk is going out (time to first token)."""
        obs = self.obs
        if obs is not None and obs.first_token_at is None:
            obs.first_token_at = time.perf_counter()

    def settle(self, billed: dict[str, Any] | None) -> None:
        """Replace the reservation with what was really used (nothing, for errors and cache hits)."""
        if self.settled or self.reservation is UNLIMITED:
            self.settled = True
            return
        self.settled = True
        tokens = int((billed or {}).get("total_tokens") or 0)
        cost = usd_to_nanos((billed or {}).get("cost_usd") or 0.0)
        task = asyncio.ensure_future(self.gw.limiter.settle(self.reservation, tokens, cost))
        self.gw.background(task)

    def release(self) -> None:
        """Call when the request is over: frees the reservation if no outcome settled it (the client
        left, or the handler was cancelled, before anything was served); otherwise does nothing."""
        with contextlib.suppress(Exception):
            self.settle(None)

    def skip_lookup(self) -> None:
        """Serve this request from upstream even if a cached answer exists (the answer is still stored)."""
        if self.directive is not None:
            self.directive = self.directive.without_lookup()
            self.cache_status = self.directive.status_on_miss
