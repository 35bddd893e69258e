"""Admin API for virtual keys, behind `Authorization: Bearer <auth.admin_token>`.

- `POST /admin/keys`           create: `{name, models?, tools?, budget_usd?, budget_period?, rpm?, tpm?}` -> 201,
                                the record plus `key` (the secret, shown this once only)
- `GET /admin/keys`            every key (config and admin), no secrets, with what is left of its limits
- `GET /admin/keys/{name}`     one key
- `DELETE /admin/keys/{name}`  204; 404 unknown; 409 for a key defined in the config
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from ..auth import require_admin
from ..auth.keys import (
    MAX_BUDGET_NANOS,
    NAME_RE,
    NANOS_PER_USD,
    ConfigKeyReadOnly,
    KeyExists,
    KeyStoreUnavailable,
    VirtualKey,
    parse_period,
)
from ..edge import read_body, require_json
from ..errors import ApiError
from ..gateway import GATEWAY

MAX_BODY = 64 * 1024
MAX_MODELS = 256
MAX_BUDGET_USD = MAX_BUDGET_NANOS // NANOS_PER_USD
MAX_RATE = 10**12
_FIELDS = ("name", "models", "tools", "budget_usd", "budget_period", "rpm", "tpm")


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def _bad(param: str, message: str) -> ApiError:
    return ApiError(400, f"{param}: {message}", param=param, code="invalid_value")


def _unavailable() -> ApiError:
    return ApiError(503, "the key store (Redis) cannot be reached; retry shortly", code="key_store_unavailable",
                    headers={"retry-after": "1"})


def _optional_int(body: dict[str, Any], field: str) -> int | None:
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RATE:
        raise _bad(field, f"must be an integer from 1 to {MAX_RATE}, or null")
    return value


def _globs(body: dict[str, Any], field: str, what: str) -> list[str] | None:
    value = body.get(field)
    if value is not None and (not isinstance(value, list) or len(value) > MAX_MODELS
                              or not all(isinstance(m, str) and m and len(m) <= 256 for m in value)):
        raise _bad(field, f"must be a list of at most {MAX_MODELS} {what} names or globs, or null")
    return value


def parse_create(raw: bytes) -> dict[str, Any]:
    """The validated arguments of `KeyStore.create`; 400 naming the field otherwise."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(400, "request body is not valid JSON", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object", code="invalid_json")
    for field in body:
        if field not in _FIELDS:
            raise _bad(str(field), f"unknown field; allowed: {', '.join(_FIELDS)}")
    name = body.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise _bad("name", "required: 1-64 characters of letters, digits and . _ @ : - starting with a letter or digit")
    models, tools = _globs(body, "models", "model"), _globs(body, "tools", "tool")
    budget = body.get("budget_usd")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int | float)
                               or not 0 <= budget <= MAX_BUDGET_USD):
        raise _bad("budget_usd", f"must be a number from 0 to {MAX_BUDGET_USD}, or null")
    period = body.get("budget_period", "30d")
    if not isinstance(period, str):
        raise _bad("budget_period", "must look like 30d, 12h or 90m")
    try:
        parse_period(period)
    except ValueError as exc:
        raise _bad("budget_period", str(exc)) from None
    return {"name": name, "models": models, "tools": tools, "budget_usd": budget, "budget_period": period,
            "rpm": _optional_int(body, "rpm"), "tpm": _optional_int(body, "tpm")}


async def _record(request: web.Request, vk: VirtualKey) -> dict[str, Any]:
    return {**vk.public(), "limits": await request.app[GATEWAY].limiter.remaining(vk)}


async def create_key(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    require_admin(request, gw.admin_token)
    require_json(request)
    args = parse_create(await read_body(request, MAX_BODY, gw.body_timeout_s))
    try:
        vk, secret = await gw.keys.create(**args)
    except KeyExists as exc:
        raise ApiError(409, str(exc), param="name", code="key_exists") from None
    except KeyStoreUnavailable:
        raise _unavailable() from None
    except ValueError as exc:
        raise _bad("name", str(exc)) from None
    return _json({**vk.public(), "key": secret}, status=201)


async def list_keys(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    require_admin(request, gw.admin_token)
    keys = await gw.keys.list()
    data = await asyncio.gather(*(_record(request, vk) for vk in keys))
    return _json({"object": "list", "data": data, "stale": gw.keys.stale})


async def get_key(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    require_admin(request, gw.admin_token)
    name = request.match_info["name"]
    vk = await gw.keys.get(name)
    if vk is None:
        raise ApiError(404, f"no key named '{name}'", param="name", code="key_not_found")
    return _json(await _record(request, vk))


async def delete_key(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    require_admin(request, gw.admin_token)
    name = request.match_info["name"]
    try:
        deleted = await gw.keys.delete(name)
    except ConfigKeyReadOnly as exc:
        raise ApiError(409, str(exc), param="name", code="config_key") from None
    except KeyStoreUnavailable:
        raise _unavailable() from None
    if not deleted:
        raise ApiError(404, f"no key named '{name}'", param="name", code="key_not_found")
    return web.Response(status=204)


def add_admin_routes(app: web.Application) -> None:
    app.router.add_post("/admin/keys", create_key)
    app.router.add_get("/admin/keys", list_keys)
    app.router.add_get("/admin/keys/{name}", get_key)
    app.router.add_delete("/admin/keys/{name}", delete_key)
