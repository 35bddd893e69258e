"""`GET /v1/models` and `GET /v1/models/{id}`: configured aliases and the models each provider declares.

With `auth:` configured the caller needs a key, and sees only the models that key may use: names it
may write that reach at least one deployment it may use. Any other id is 404, as an unknown one is.

A request with an `anthropic-version` header (the anthropic SDK, Claude Code) is answered in
Anthropic's shapes: `{"data": [{"type": "model", "id", "display_name", "created_at"}], "has_more",
"first_id", "last_id"}`, and its errors in Anthropic's error shape.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from ..edge import json_response
from ..errors import ERROR_SHAPE, ApiError
from ..gateway import GATEWAY, Gateway
from ..pipeline.policy import listable
from .messages.errors import anthropic_error


async def _visible(request: web.Request) -> tuple[Gateway, list[dict]]:
    gw = request.app[GATEWAY]
    vk = await gw.authenticator.authenticate(request) if gw.authenticator is not None else None
    created = gw.started_at
    return gw, [{"id": model_id, "object": "model", "created": created, "owned_by": owner}
                for model_id, owner in gw.table.model_ids() if listable(vk, gw.table, model_id)]


def _anthropic(request: web.Request) -> bool:
    if "anthropic-version" not in request.headers:
        return False
    request[ERROR_SHAPE] = anthropic_error
    return True


def _anthropic_model(model: dict) -> dict:
    created = datetime.fromtimestamp(model["created"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"type": "model", "id": model["id"], "display_name": model["id"], "created_at": created}


async def list_models(request: web.Request) -> web.Response:
    anthropic = _anthropic(request)
    _, data = await _visible(request)
    if anthropic:
        models = [_anthropic_model(m) for m in data]
        return json_response({"data": models, "has_more": False, "first_id": models[0]["id"] if models else None,
                              "last_id": models[-1]["id"] if models else None})
    return json_response({"object": "list", "data": data})


async def retrieve_model(request: web.Request) -> web.Response:
    anthropic = _anthropic(request)
    wanted = request.match_info["model"]
    _, data = await _visible(request)
    for model in data:
        if model["id"] == wanted:
            return json_response(_anthropic_model(model) if anthropic else model)
    raise ApiError(404, f"the model '{wanted}' does not exist", param="model", code="model_not_found")
