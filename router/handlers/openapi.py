"""`GET /openapi.json`: the router's own OpenAPI document (see router/openapi_spec.py)."""

from __future__ import annotations

import orjson
from aiohttp import web

from ..openapi_spec import SPEC

_BODY = orjson.dumps(SPEC)


async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=_BODY, content_type="application/json")
