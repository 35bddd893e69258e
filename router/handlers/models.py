"""`GET /v1/models`: configured aliases and the models each provider declares.

With `auth:` configured the caller needs a key, and sees only the models that key may use: names it
may write that reach at least one deployment it may use."""

from __future__ import annotations

import orjson
from aiohttp import web

from ..gateway import GATEWAY
from ..pipeline.policy import listable


async def list_models(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    vk = await gw.authenticator.authenticate(request) if gw.authenticator is not None else None
    created = gw.started_at
    data = [{"id": model_id, "object": "model", "created": created, "owned_by": owner}
            for model_id, owner in gw.table.model_ids() if listable(vk, gw.table, model_id)]
    return web.Response(body=orjson.dumps({"object": "list", "data": data}), content_type="application/json")
