"""`GET /v1/usage`: token and cost totals (admin only).

Query: `key` (virtual key name), `from` / `to` (UTC days `YYYY-MM-DD`, inclusive; default: the 30
days ending today), `group_by` (comma-separated and/or repeated: day, key, provider, model; none =
one row), and optional `provider` / `model` filters. With Redis the totals are every instance's;
without it they are this worker's.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re

import orjson
from aiohttp import web

from ..accounting import GROUP_BY, sum_rows
from ..auth import require_admin
from ..errors import ApiError
from ..gateway import GATEWAY
from ..redis_conn import REDIS_ERRORS

DEFAULT_DAYS = 30
MAX_DAYS = 366
FLUSH_WAIT_S = 5.0
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _day(request: web.Request, param: str) -> dt.date | None:
    value = request.query.get(param)
    if value is None or value == "":
        return None
    try:
        if not _DAY.fullmatch(value):
            raise ValueError
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ApiError(400, f"'{param}' must be a UTC date as YYYY-MM-DD, got {value!r}", param=param,
                       code="invalid_date") from None


def _group_by(request: web.Request) -> list[str]:
    out: list[str] = []
    for value in request.query.getall("group_by", []):
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            if part not in GROUP_BY:
                raise ApiError(400, f"'group_by' members must be among {', '.join(GROUP_BY)}; got {part!r}",
                               param="group_by", code="invalid_group_by")
            if part not in out:
                out.append(part)
    return out


async def usage(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    require_admin(request, gw.admin_token)

    first, last = _day(request, "from"), _day(request, "to")
    if last is None:
        last = dt.datetime.now(dt.UTC).date() if first is None else max(first, dt.datetime.now(dt.UTC).date())
    if first is None:
        first = last - dt.timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise ApiError(400, f"'from' ({first}) is after 'to' ({last})", param="from", code="invalid_date")
    if (last - first).days + 1 > MAX_DAYS:
        raise ApiError(400, f"the range from {first} to {last} is longer than {MAX_DAYS} days", param="from",
                       code="range_too_long")
    group_by = _group_by(request)
    key = request.query.get("key") or None
    provider = request.query.get("provider") or None
    model = request.query.get("model") or None

    accountant = gw.accountant
    with contextlib.suppress(TimeoutError):  # this worker's own unflushed records; best effort
        async with asyncio.timeout(FLUSH_WAIT_S):
            await accountant.flush()
    try:
        rows = await accountant.totals(first, last, key, group_by, provider=provider, model=model)
    except REDIS_ERRORS:
        raise ApiError(503, "the usage store (Redis) is unreachable; try again shortly",
                       code="usage_store_unavailable", headers={"retry-after": "1"}) from None

    body = {"object": "usage", "from": first.isoformat(), "to": last.isoformat(), "group_by": group_by,
            "key": key, "backend": accountant.backend, "data": rows, "totals": sum_rows(rows)}
    return web.Response(body=orjson.dumps(body), content_type="application/json")
