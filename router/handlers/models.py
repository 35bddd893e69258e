"""`GET /v1/models`: configured aliases and the models each provider declares."""

from __future__ import annotations

import orjson
from aiohttp import web

from ..gateway import GATEWAY


async def list_models(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    created = gw.started_at
    data = [{"id": model_id, "object": "model", "created": created, "owned_by": owner}
            for model_id, owner in gw.table.model_ids()]
    return web.Response(body=orjson.dumps({"object": "list", "data": data}), content_type="application/json")
