"""`POST /v1/messages/count_tokens`: how many input tokens a Messages request holds, for any model.

The key must be allowed the model and the model must route somewhere (the same checks as a call), but
no vendor is asked: the count is ours (tiktoken over the canonical request, tools included), the same
figure the router reserves against a key's limits before a call. It is exact for OpenAI models and
an estimate for the others.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from ...edge import json_response, read_json
from ...errors import ERROR_SHAPE
from ...pipeline import ModelRequest, Pipeline
from ...pipeline.billing import prompt_tokens
from .errors import anthropic_error
from .inbound import to_canonical


def count_tokens_route(pipeline: Pipeline) -> Callable[[web.Request], Awaitable[web.Response]]:
    limit, timeout_s = pipeline.max_body_bytes, pipeline.body_timeout_s

    async def count_tokens(request: web.Request) -> web.Response:
        request[ERROR_SHAPE] = anthropic_error
        req = await pipeline.open(request)
        try:
            body = await read_json(request, limit, timeout_s)
            # A count needs no answer length: the Messages validation wants one, so it gets one.
            canonical = to_canonical({**body, "max_tokens": 1, "stream": False}).body
            mreq = ModelRequest("chat", canonical["model"], canonical, "message.count_tokens")
            pipeline.route(req, mreq)  # 403 / 404 as a call would get
            return json_response({"input_tokens": prompt_tokens("chat", canonical, mreq.model)})
        finally:
            pipeline.close(req)

    return count_tokens
