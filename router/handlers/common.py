"""What every proxying handler does before and after the routing core."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..errors import ApiError, error_response
from ..extra_fields import full
from ..gateway import Gateway
from ..routing import RouteError, RoutingTable
from ..routing.chain import Call, ChainFailed
from ..routing.table import Plan

ROUTER_ONLY_FIELDS = ("fallbacks",)


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body, or 413 when it is larger than `server.max_body_bytes`."""
    length = request.content_length
    if length is not None and length > limit:
        raise ApiError(413, f"request body is {length} bytes; the limit is {limit}", code="request_too_large")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, f"request body is larger than the limit of {limit} bytes",
                       code="request_too_large") from None


def plan(table: RoutingTable, model: str, fallbacks: list[str] | None) -> Plan:
    try:
        return table.plan(model, fallbacks)
    except RouteError as exc:
        raise ApiError(exc.status, exc.message, param=exc.param, code=exc.code) from None


def upstream_body(body: dict[str, Any]) -> dict[str, Any]:
    """The request as vendors should see it: router-only members removed."""
    if any(f in body for f in ROUTER_ONLY_FIELDS):
        body = {k: v for k, v in body.items() if k not in ROUTER_ONLY_FIELDS}
    return body


def wants_raw(gw: Gateway, request: web.Request) -> bool:
    return gw.allow_raw_header and request.headers.get("x-switchboard-raw-response", "").lower() == "true"


def chain_failed(gw: Gateway, call: Call, failed: ChainFailed, headers: dict[str, str] | None = None,
                 cache: str = "off") -> web.Response:
    """Every attempt failed: the most relevant upstream error plus the whole attempt trail."""
    err = failed.error
    headers = dict(headers or {})
    if err.kind == "rate_limit":
        headers["retry-after"] = str(max(1, round(err.retry_after or 1)))
    extra = full(call, cache=cache) if gw.extra_fields_enabled else None
    return error_response(err.client_status, err.to_openai(), extra, headers or None)
