"""One request's observation: request id, in-flight gauge, metrics, access log and trace.

`Observer.middleware` wraps every request. It takes the request id (`x-request-id` when valid,
else a new one), puts an `Exchange` on the request for the pipeline to fill in (an outcome per
model call, the first token of a stream), and when the handler is done (for a stream: after its
last byte) it hands the `Exchange` to `Metrics.observe`, the access log and the tracer,
in a callback that runs just after aiohttp has written the response (off the request's latency).
`x-request-id` is echoed on every response by an `on_response_prepare` hook, errors and streams
included. Metrics cover the proxy routes (`ROUTES`); the access log covers every route but
`/metrics` and the health probes.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import time
from typing import TYPE_CHECKING

from aiohttp import web

from .access_log import AccessLog
from .config import LoadedConfig
from .exchange import EXCHANGE, Exchange
from .metrics import Metrics
from .metrics_gauges import GaugeRefresher

if TYPE_CHECKING:
    from .gateway import Gateway

log = logging.getLogger("switchboard")

# Proxy routes (canonical path -> `route` label).
ROUTES = {"/v1/chat/completions": "chat", "/chat/completions": "chat", "/v1/embeddings": "embeddings",
          "/embeddings": "embeddings", "/agent/v1/chat/completions": "agent", "/v1/messages": "messages",
          "/v1/messages/count_tokens": "messages", "/v1/responses": "responses", "/mcp": "mcp"}
QUIET = frozenset({"/metrics", "/healthz", "/readyz"})  # scrapes and probes: no access-log line
CLIENT_CLOSED = 499  # nginx's status for "the client went away before the response"
_REQUEST_ID = re.compile(r"[\w.:@/+=-]{1,128}", re.ASCII)
# The router's own 503s that are not an upstream's fault: keys or limits cannot be checked.
_INTERNAL_UNAVAILABLE = frozenset({"auth_unavailable", "limits_unavailable"})


def error_class(status: int, ex: Exchange, request: web.Request) -> str | None:
    """The error class of a finished request, or None when it succeeded."""
    if status < 400:
        if ex.ok is False:  # a stream that broke after its first chunk (status 200 already sent)
            transport = request.transport
            return "client_closed" if transport is None or transport.is_closing() else "upstream"
        return None
    if status == CLIENT_CLOSED:
        return "client_closed"
    if status == 429:
        return "rate_limit"
    if status == 402:
        return "budget"
    if status in (401, 403):
        return "auth"
    if status == 504:
        return "timeout"
    if status == 502:
        return "upstream"
    if status == 503:  # no deployment available (upstream) or Redis-backed keys/limits unavailable (internal)
        return "internal" if ex.error_code in _INTERNAL_UNAVAILABLE else "upstream"
    return "caller" if status < 500 else "internal"


class Observer:
    """The per-app observability pieces and the middleware that feeds them."""

    def __init__(self, loaded: LoadedConfig, gw: Gateway, gauges_interval_s: float = 5.0) -> None:
        config = loaded.config
        self.settings = config.logging
        self.metrics = Metrics(config)
        self.gauges = GaugeRefresher(self.metrics, gw, gauges_interval_s)
        self.access_log = AccessLog(include_content=self.settings.include_content) if self.settings.access_log \
            else None
        from .tracing import build_tracing

        self.tracing = build_tracing(self.settings.otlp_endpoint, {
            name: rt.provider.settings.type for name, rt in gw.table.runtimes.items()})
        self._id_prefix = os.urandom(8).hex()  # per worker (apps are built after the fork)
        self._ids = itertools.count(1)
        self.middleware = self._make_middleware()

    def new_request_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids):08x}"

    async def start(self) -> None:
        if self.settings.level is not None:
            logging.getLogger("switchboard").setLevel(self.settings.level)
        if self.access_log is not None:
            self.access_log.start()
        self.gauges.start()

    async def close(self) -> None:
        await self.gauges.close()
        if self.access_log is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.access_log.stop)
        if self.tracing is not None:  # flushes the last spans over the network: off the loop
            await asyncio.get_running_loop().run_in_executor(None, self.tracing.shutdown)

    def _make_middleware(self):
        metrics = self.metrics
        finish = self._finish
        valid_id = _REQUEST_ID.fullmatch
        new_id = self.new_request_id
        clock = time.perf_counter
        keep_content = self.access_log is not None and self.access_log.include_content

        @web.middleware
        async def observe(request: web.Request, handler) -> web.StreamResponse:
            resource = request.match_info.route.resource
            canonical = resource.canonical if resource is not None else ""
            route = ROUTES.get(canonical)
            rid = request.headers.get("x-request-id")
            if rid is None or valid_id(rid) is None:
                rid = new_id()
            ex = Exchange(rid, clock(), route, keep_content)
            request[EXCHANGE] = ex
            gauge = None
            if route is not None:
                gauge = metrics.route(route)[0]
                gauge.inc()
            status = 500
            try:
                response = await handler(request)
                status = response.status
                return response
            except web.HTTPException as exc:
                status = exc.status
                raise
            except (asyncio.CancelledError, ConnectionError):
                status = CLIENT_CLOSED
                raise
            finally:
                end = clock()
                if gauge is not None:
                    gauge.dec()
                # Metrics, access log and trace once aiohttp has written the response (it does so
                # in this same task step, after the handler returns): off the request's latency.
                asyncio.get_running_loop().call_soon(finish, request, ex, canonical, status, end)

        return observe

    def _finish(self, request: web.Request, ex: Exchange, canonical: str, status: int, end: float) -> None:
        try:
            self._record(request, ex, canonical, status, end)
        except Exception:  # observing must never fail the request it observes
            log.warning("observability: could not record a request", exc_info=True)

    def _record(self, request: web.Request, ex: Exchange, canonical: str, status: int, end: float) -> None:
        error = error_class(status, ex, request)
        if ex.route is not None:
            self.metrics.observe(ex, status, error, end)
        if self.access_log is not None and canonical not in QUIET:
            ex.method = request.method
            ex.path = request.path
            self.access_log.emit(ex, status, error, end)
        if self.tracing is not None:
            self.tracing.record(ex, status, error, end, request)


OBSERVER = web.AppKey("observer", Observer)


async def echo_request_id(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """`on_response_prepare`: every response carries the request's `x-request-id`."""
    ex = request.get(EXCHANGE)
    if ex is not None:
        response.headers["x-request-id"] = ex.request_id
