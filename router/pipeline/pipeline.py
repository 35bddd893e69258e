"""One request pipeline for every face.

A request's life, in order, whichever face it came in by:

    open       authenticate (401), read the cache headers, bind the observation   -> ProxyRequest
    (the face parses its body into a ModelRequest)
    route      plan the model name, check every name and deployment against the key (403),
               keep the deployments that can honour the request (400), fan out `n`  -> Route
    lookup     the cache, under the key's immutable identity
    admit      reserve against the key's RPM, TPM and budget (429 / 402): the prompt plus the most
               the answer may cost
    call       walk the attempt chain (fallbacks, retries, breakers), translate, bill, record
    settle     replace the reservation by what the call really cost
    store      keep the answer for the next identical request

`run` does all of it for a face that makes one model call (chat, embeddings, and later Messages and
Responses); an agent run makes several calls and uses the same steps one by one (`route`, `lookup`,
`admit`, `complete` / `open_stream`, `store`). Nothing reaches a vendor any other way.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from providers import HttpRequest, UpstreamError

from ..accounting import UsageRecord
from ..accounting.billed import ZERO, Billed
from ..auth import UNLIMITED, Reservation, usd_to_nanos
from ..cache import OFF, CachedResponse, StreamRecorder, cache_key, status_headers
from ..cache.control import CacheDirective
from ..errors import ApiError
from ..exchange import EXCHANGE, Outcome
from ..gateway import Gateway
from ..routing import RouteError, Target
from ..routing.call import Call, ChainFailed
from ..routing.fanout import complete_n, needs_fanout, open_stream_n, without_n
from . import policy
from .answers import CallFailed, Completion, LiveStream, Replay
from .billing import bill, completion_text, estimate_usage, prompt_tokens, reservation
from .request import ModelRequest, Native, ProxyRequest, Route

RAW_HEADER = "x-switchboard-raw-response"


class Pipeline:
    """Per-process: built once from the `Gateway` (the shared state) and used by every face."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.extra_fields = gw.extra_fields_enabled
        self.max_body_bytes = gw.max_body_bytes
        self.body_timeout_s = gw.body_timeout_s
        self._auth = gw.authenticator
        self._cache = gw.cache
        self._limiter = gw.limiter
        self._pricer = gw.pricer
        self._chain = gw.chain
        self._table = gw.table
        self._default_output = gw.loaded.config.auth.max_output_tokens if gw.loaded.config.auth else 4096

    # -- open -----------------------------------------------------------------------------------
    async def open(self, request: web.Request) -> ProxyRequest:
        """Authenticate (401) and read the cache headers (400 on a bad TTL) before any body is read."""
        gw = self.gw
        key = await self._auth.authenticate(request) if self._auth is not None else None
        exchange = request.get(EXCHANGE)
        if exchange is not None and key is not None:
            exchange.key = key.name
        directive = CacheDirective.from_headers(request.headers, gw.cache_ttl_s) if self._cache is not None else None
        raw = gw.allow_raw_header and request.headers.get(RAW_HEADER, "").lower() == "true"
        started = exchange.started if exchange is not None else time.perf_counter()
        return ProxyRequest(key, directive, exchange, started, raw)

    def close(self, req: ProxyRequest) -> None:
        """The request is over: free what it still holds against the key's limits (a call that never
        ended: the client left, the handler was cancelled)."""
        for held in req.reservations:
            with contextlib.suppress(Exception):
                self._settle(req, held, None)

    # -- route ----------------------------------------------------------------------------------
    def route(self, req: ProxyRequest, mreq: ModelRequest) -> Route:
        """Where this call may go: 403 for a name or a whole plan the key may not use, 404 for an
        unknown model, 400 when no deployment can honour the request."""
        if req.exchange is not None and req.exchange.requested is None:
            req.exchange.requested = mreq.model
        key = req.key
        if key is not None and key.models is not None:
            named = [(mreq.model, "model")] if mreq.model_named else []
            policy.check_names(key, [*named, *((f, "fallbacks") for f in mreq.fallbacks or ())])
        try:
            plan = self._table.plan(mreq.model, mreq.fallbacks)
        except RouteError as exc:
            raise ApiError(exc.status, exc.message, param=exc.param, code=exc.code) from None
        if key is not None and key.models is not None:
            plan = policy.reachable(key, plan, mreq.model)
        body = mreq.body
        plan, stripped = policy.capable(plan, mreq.kind, body, mreq.tuning)
        fan = needs_fanout(plan, body) if mreq.kind == "chat" and "n" in body else 0
        if fan:
            body = without_n(body)
            if stripped:
                stripped = {label: without_n(b) for label, b in stripped.items()}
        return Route(plan, body, fan, stripped)

    # -- cache ----------------------------------------------------------------------------------
    def cache_key(self, req: ProxyRequest, mreq: ModelRequest, streamed: bool) -> str | None:
        if req.directive is None or mreq.cache_endpoint is None:
            return None
        body = mreq.native.body if mreq.native is not None else mreq.body  # every member the client wrote
        return cache_key(mreq.cache_endpoint, req.tenant, mreq.model, body, streamed)

    def cache_status(self, req: ProxyRequest, key: str | None) -> str:
        """What to report when the answer comes from upstream: miss, bypass (lookup skipped) or off."""
        if req.directive is None or key is None:
            return OFF
        return "bypass" if self._skips_lookup(req) else "miss"

    def _skips_lookup(self, req: ProxyRequest) -> bool:
        # A cached entry has no raw vendor body: a raw request is served from upstream.
        return req.directive is None or not req.directive.lookup or req.raw_requested

    async def lookup(self, req: ProxyRequest, key: str | None) -> CachedResponse | None:
        if key is None or self._skips_lookup(req):
            return None
        entry = await self._cache.get(key)
        if entry is None or not req.directive.fresh_enough(entry.stored_at):
            return None
        if req.key is not None and entry.model and not req.key.allows(entry.model):
            return None  # served by a deployment this key may no longer use: ask again
        return entry

    async def store(self, req: ProxyRequest, key: str | None, entry: CachedResponse | None) -> None:
        if key is not None and entry is not None and req.directive is not None and req.directive.store:
            await self._cache.set(key, entry, req.directive.ttl_s)

    # -- limits ---------------------------------------------------------------------------------
    async def admit(self, req: ProxyRequest, route: Route, mreq: ModelRequest, cached: bool = False) -> Reservation:
        """Reserve this call against the key's limits (429 / 402). A cache hit reserves nothing but the
        request itself: an exhausted budget does not refuse an answer that is free. Only a request's
        first call counts against its RPM (an agent run is one request)."""
        key = req.key
        if key is None or not key.has_limits:
            return UNLIMITED
        first = not req.counted
        if cached:
            held = await self._limiter.admit(key, 0, 0, count_request=first)
        else:
            prompt = prompt_tokens(mreq.kind, mreq.body, mreq.model) if (
                key.tpm is not None or key.budget_nanos is not None) else 0
            tokens, usd = reservation(self._pricer, route, mreq, prompt, self._default_output)
            cost = usd_to_nanos(usd) if key.budget_nanos is not None else 0
            held = await self._limiter.admit(key, tokens, cost, count_request=first)
        if first:
            req.counted = True
            req.rate_headers = held.headers()
        if not held.settled:
            req.reservations.append(held)
        return held

    def _settle(self, req: ProxyRequest, held: Reservation, billed: Billed | None) -> None:
        """Replace a reservation by what the call really cost (in the background: no added latency)."""
        if held is UNLIMITED or held.settled:
            return
        with contextlib.suppress(ValueError):
            req.reservations.remove(held)
        tokens = billed.total_tokens if billed is not None else 0
        cost = usd_to_nanos(billed.cost_usd or 0.0) if billed is not None else 0
        self.gw.background(asyncio.ensure_future(self._limiter.settle(held, tokens, cost)))

    def headers(self, req: ProxyRequest, cache: str) -> dict[str, str]:
        """Response headers: the cache status and the key's rate-limit state."""
        out = status_headers(cache)
        if req.rate_headers:
            out.update(req.rate_headers)
        return out

    # -- record ---------------------------------------------------------------------------------
    def record(self, req: ProxyRequest, outcome: Outcome, held: Reservation | None = None) -> None:
        """Account for one call (sync, no I/O), tell the observation, settle its reservation."""
        self.gw.accountant.record(UsageRecord.from_billed(req.key_name, outcome.provider, outcome.model,
                                                          outcome.billed, cache_hit=outcome.cache == "hit",
                                                          ok=outcome.ok))
        if req.exchange is not None:
            req.exchange.add(outcome)
        if held is not None:
            self._settle(req, held, None if outcome.cache == "hit" else outcome.billed)

    def hit(self, req: ProxyRequest, mreq: ModelRequest, entry: CachedResponse, held: Reservation | None,
            started: float | None = None) -> Outcome:
        """A cache hit: no upstream call, nothing billed; served by whoever served it first."""
        outcome = Outcome(Call(mreq.requested, mreq.request_type, req.started if started is None else started), ZERO,
                          True, "hit", entry.provider or "", entry.model or "")
        self.record(req, outcome, held)
        return outcome

    def wants_raw(self, req: ProxyRequest, call: Call) -> bool:
        target = call.target
        return req.raw_requested or (target is not None and target.runtime.raw_response)

    # -- call -----------------------------------------------------------------------------------
    async def complete(self, req: ProxyRequest, mreq: ModelRequest, route: Route, cache: str,
                       held: Reservation | None = None, started: float | None = None) -> Completion:
        """Walk the chain for a whole answer, bill and record it. Raises `CallFailed` (recorded)."""
        call = Call(mreq.requested, mreq.request_type, req.started if started is None else started)
        kind = mreq.kind
        native = mreq.native

        def build(target: Target, key: str | None):
            provider = target.runtime.provider
            if kind == "embeddings":
                return provider.embeddings_request(route.body_for(target), target.model, key)
            return _chat_request(route, native, target, key, False)

        def parse(target: Target, raw: bytes, headers: Mapping[str, str]) -> dict:
            provider = target.runtime.provider
            if kind == "embeddings":
                return provider.embeddings_response(raw, target.model, headers)
            if _forwarded(native, target):
                return provider.native_response(native.dialect, raw, target.model)
            return provider.chat_response(raw, target.model)

        try:
            if route.fan:
                result, raw = await complete_n(self._chain, route.plan, call, route.fan, build, parse)
            else:
                result, raw = await self._chain.complete(route.plan, call, build, parse)
        except ChainFailed as failed:
            raise self._failed(req, call, failed.error, cache, held) from None
        target = call.target
        assert target is not None
        usage = result.get("usage")
        estimated = not usage and kind == "chat"
        if estimated:
            usage = estimate_usage(route.body, target.model, completion_text(result))
        outcome = Outcome(call, bill(self._pricer, target, usage, estimated), True, cache, target.runtime.name,
                          target.label)
        self.record(req, outcome, held)
        return Completion(result, outcome, raw if self.wants_raw(req, call) else None,
                          raw if _forwarded(native, target) else None)

    async def open_stream(self, req: ProxyRequest, mreq: ModelRequest, route: Route, cache: str,
                          held: Reservation | None = None, recorder: StreamRecorder | None = None,
                          key: str | None = None, started: float | None = None) -> LiveStream:
        """A committed stream (its first content read). Raises `CallFailed` (recorded) when no
        deployment produced one; the stream records its own outcome when it ends."""
        call = Call(mreq.requested, mreq.request_type, req.started if started is None else started)
        native = mreq.native

        def build(target: Target, api_key: str | None):
            return _chat_request(route, native, target, api_key, True)

        try:
            if route.fan:
                opened = await open_stream_n(self._chain, route.plan, call, route.fan, build)
            else:
                opened = await self._chain.open_stream(route.plan, call, build)
        except ChainFailed as failed:
            raise self._failed(req, call, failed.error, cache, held) from None
        target = call.target
        assert target is not None

        def bill_usage(usage: dict[str, Any] | None, estimated: bool) -> Billed:
            return bill(self._pricer, target, usage, estimated)

        def account(outcome: Outcome) -> None:
            self.record(req, outcome, held)

        async def store(entry: CachedResponse) -> None:
            await self.store(req, key, entry)

        return LiveStream(opened, call, cache, route.body, bill_usage, account, recorder,
                          store if key is not None else None)

    def _failed(self, req: ProxyRequest, call: Call, error: UpstreamError, cache: str,
                held: Reservation | None) -> CallFailed:
        outcome = Outcome.of(call, None, False, cache)
        self.record(req, outcome, held)
        return CallFailed(error, outcome)

    # -- the whole life of a one-call request ------------------------------------------------------
    async def run(self, req: ProxyRequest, mreq: ModelRequest) -> Completion | Replay | LiveStream:
        """Route, look up, admit, call, bill, record, settle and (for a stream, when it completes)
        store. Raises `ApiError` (refused) or `CallFailed` (no deployment served)."""
        route = self.route(req, mreq)
        key = self.cache_key(req, mreq, mreq.stream)
        entry = await self.lookup(req, key)
        held = await self.admit(req, route, mreq, cached=entry is not None)
        if entry is not None:
            outcome = self.hit(req, mreq, entry, held)
            return Replay(entry, outcome) if entry.chunks is not None else Completion(entry.body or {}, outcome)
        cache = self.cache_status(req, key)
        if mreq.stream:
            recorder = StreamRecorder(self._cache.max_entry_bytes) if (
                key is not None and req.directive is not None and req.directive.store) else None
            return await self.open_stream(req, mreq, route, cache, held, recorder, key)
        flight = self.gw.flight
        if key is None or flight is None or self._skips_lookup(req):
            answer = await self.complete(req, mreq, route, cache, held)
            if key is not None and req.directive is not None and req.directive.store:
                await self.store(req, key, self._entry(answer))
            return answer
        async with flight.slot(key) as slot:  # identical misses in flight share one upstream call
            if slot.shared:
                assert slot.value is not None
                return Completion(slot.value.body or {}, self.hit(req, mreq, slot.value, held))
            answer = await self.complete(req, mreq, route, cache, held)
            fresh = self._entry(answer)
            slot.publish(fresh)
            await self.store(req, key, fresh)
            return answer

    @staticmethod
    def _entry(answer: Completion) -> CachedResponse:
        outcome = answer.outcome
        return CachedResponse.from_body(answer.body, provider=outcome.provider, model=outcome.model,
                                        billed_usage=outcome.billed.as_dict() if outcome.billed else None)


def _forwarded(native: Native | None, target: Target) -> bool:
    """Whether `target` gets the request in the face's own dialect (its vendor speaks it)."""
    return native is not None and target.runtime.provider.speaks(native.dialect)


def _chat_request(route: Route, native: Native | None, target: Target, api_key: str | None,
                  stream: bool) -> HttpRequest:
    """What `target` is sent for a chat call: the request as the client wrote it where the vendor
    speaks the face's dialect, else the canonical body translated by its provider."""
    provider = target.runtime.provider
    if native is not None and _forwarded(native, target):
        return provider.native_request(native.dialect, native.body, target.model, api_key, stream, native.headers)
    return provider.chat_request(route.body_for(target), target.model, api_key, stream)


PIPELINE = web.AppKey("pipeline", Pipeline)
