"""`GET /v1/models` and `GET /v1/models/{id}`: configured aliases and the models each provider declares.

With `auth:` configured the caller needs a key, and sees only the models that key may use: names it
may write that reach at least one deployment it may use. Any other id is 404, as an unknown one is.
"""

from __future__ import annotations

from aiohttp import web

from ..edge import json_response
from ..errors import ApiError
from ..gateway import GATEWAY, Gateway
from ..pipeline.policy import listable


async def _visible(request: web.Request) -> tuple[Gateway, list[dict]]:
    gw = request.app[GATEWAY]
    vk = await gw.authenticator.authenticate(request) if gw.authenticator is not None else None
    created = gw.started_at
    return gw, [{"id": model_id, "object": "model", "created": created, "owned_by": owner}
                for model_id, owner in gw.table.model_ids() if listable(vk, gw.table, model_id)]


async def list_models(request: web.Request) -> web.Response:
    _, data = await _visible(request)
    return json_response({"object": "list", "data": data})


async def retrieve_model(request: web.Request) -> web.Response:
    wanted = request.match_info["model"]
    _, data = await _visible(request)
    for model in data:
        if model["id"] == wanted:
            return json_response(model)
    raise ApiError(404, f"the model '{wanted}' does not exist", param="model", code="model_not_found")
