"""The Responses routes: create through the pipeline, and retrieve, delete and list what was stored.

Every route authenticates first; stored responses are read under the caller's key identity, so an id
created by another key is a 404 like an id that never existed (see `store.py`).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ...edge import json_response, read_json
from ...errors import ApiError
from ...gateway import Gateway
from ...pipeline import Pipeline
from ..face import serve
from .face import ResponsesCall, new_id
from .store import ResponseStore, build_response_store

_ID_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco", "reasoning": "rs"}


def add_responses_routes(app: web.Application, pipeline: Pipeline, gw: Gateway) -> None:
    store = build_response_store(gw.loaded.config.responses, gw.redis)
    routes = ResponsesRoutes(pipeline, store, gw.extra_fields_enabled)
    app.router.add_post("/v1/responses", routes.create)
    app.router.add_get("/v1/responses/{id}", routes.retrieve)
    app.router.add_delete("/v1/responses/{id}", routes.delete)
    app.router.add_get("/v1/responses/{id}/input_items", routes.input_items)


class ResponsesRoutes:
    def __init__(self, pipeline: Pipeline, store: ResponseStore, with_extra: bool) -> None:
        self.pipeline = pipeline
        self.store = store
        self.with_extra = with_extra

    async def create(self, request: web.Request) -> web.StreamResponse:
        pipeline = self.pipeline
        req = await pipeline.open(request)
        try:
            body = await read_json(request, pipeline.max_body_bytes, pipeline.body_timeout_s)
            call = ResponsesCall(self.with_extra, await self._continued(req.tenant, body.get("previous_response_id")))
            kept = False

            async def keep() -> None:
                """Store the response (`store` is true unless the client said false), before the client
                can ask for it: a whole answer before it is sent, a stream before its last event."""
                nonlocal kept
                if kept or body.get("store") is False or call.response is None or \
                        call.response.get("status") == "failed":
                    return
                kept = True
                call.input_items = [_with_id(item) for item in call.input_items]
                await self.store.put(req.tenant, call.response, call.input_items, call.conversation())

            response = await serve(pipeline, call, request, req, body, before_last=keep)
            await keep()
            return response
        finally:
            pipeline.close(req)

    async def _continued(self, tenant: str, previous: Any) -> list[dict[str, Any]] | None:
        if previous is None:
            return None
        if not isinstance(previous, str) or not previous:
            raise ApiError(400, "'previous_response_id' must be a non-empty string", param="previous_response_id",
                           code="invalid_type")
        record = await self.store.get(tenant, previous)
        if record is None:
            raise ApiError(404, f"Previous response with id '{previous}' not found.", param="previous_response_id",
                           code="previous_response_not_found")
        return record["conversation"]

    async def _record(self, request: web.Request) -> tuple[str, dict[str, Any]]:
        req = await self.pipeline.open(request)
        response_id = request.match_info["id"]
        record = await self.store.get(req.tenant, response_id)
        if record is None:
            raise ApiError(404, f"Response with id '{response_id}' not found.", param="response_id",
                           code="response_not_found")
        return req.tenant, record

    async def retrieve(self, request: web.Request) -> web.Response:
        _, record = await self._record(request)
        return json_response(record["response"])

    async def delete(self, request: web.Request) -> web.Response:
        tenant, record = await self._record(request)
        response_id = record["response"]["id"]
        await self.store.delete(tenant, response_id)
        return json_response({"id": response_id, "object": "response.deleted", "deleted": True})

    async def input_items(self, request: web.Request) -> web.Response:
        """`order` (`desc` by default, as OpenAI), `limit` (1-100, default 20), `after` (an item id)."""
        _, record = await self._record(request)
        query = request.query
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise ApiError(400, "'order' must be 'asc' or 'desc'", param="order", code="invalid_value")
        try:
            limit = int(query.get("limit", "20"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            raise ApiError(400, "'limit' must be an integer from 1 to 100", param="limit", code="invalid_value")
        items = list(record["input_items"])
        if order == "desc":
            items.reverse()
        after = query.get("after")
        if after is not None:
            ids = [item.get("id") for item in items]
            items = items[ids.index(after) + 1:] if after in ids else []
        page = items[:limit]
        return json_response({"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                              "last_id": page[-1]["id"] if page else None, "has_more": len(items) > limit})


def _with_id(item: dict[str, Any]) -> dict[str, Any]:
    """Input items are listed with ids, as OpenAI lists them: the client's own, else one of ours."""
    if isinstance(item.get("id"), str) and item["id"]:
        return item
    kind = item.get("type", "message")
    return {"id": new_id(_ID_PREFIX.get(kind, "item")), **item}
