"""HTTP in and out for a face that makes one model call: what every such face shares.

A face supplies `parse` (its request into a `ModelRequest`), `render` (a whole answer in its wire
format), `chunks` (a renderer of the stream's chunks), `failure` (no deployment served), `headers`
(its routing metadata) and `error_shape` (how the router's own errors look to its clients).
`serve` runs the pipeline between them and writes the response; a stream is written chunk by chunk
and ends with the face's error event if the upstream breaks after the first chunk.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from aiohttp import web

from providers import UpstreamError

from ..edge import json_response, open_sse
from ..errors import ErrorShape
from ..pipeline import CallFailed, Completion, LiveStream, ModelRequest, Pipeline, ProxyRequest, Replay


class ChunkRenderer(Protocol):
    """Turns canonical chunks into the face's stream events, in order."""

    def batch(self, chunks: list[dict[str, Any]]) -> bytes: ...

    def finish(self) -> bytes: ...

    def fail(self, error: UpstreamError) -> bytes: ...


class Face(Protocol):
    stream_headers: dict[str, str]
    error_shape: ErrorShape | None  # None: OpenAI's

    def parse(self, body: dict[str, Any], headers: Mapping[str, str]) -> ModelRequest: ...

    def headers(self, mreq: ModelRequest, answer: Completion | Replay | LiveStream) -> dict[str, str]:
        """Response headers of the face's own (routing metadata a client reads without the body)."""
        ...

    def render(self, mreq: ModelRequest, answer: Completion) -> dict[str, Any]: ...

    def chunks(self, mreq: ModelRequest, answer: Replay | LiveStream) -> ChunkRenderer: ...

    def failure(self, failed: CallFailed, headers: dict[str, str]) -> web.Response: ...


async def serve(pipeline: Pipeline, face: Face, request: web.Request, req: ProxyRequest,
                body: dict[str, Any], before_last: Callable[[], Awaitable[None]] | None = None) -> web.StreamResponse:
    """Run the pipeline for one face and write its answer. `before_last` runs once a stream's last
    bytes are known and before they are written: state the client may read as soon as it has them
    (a stored response) is kept by then."""
    mreq = face.parse(body, request.headers)
    try:
        answer = await pipeline.run(req, mreq)
    except CallFailed as failed:
        return face.failure(failed, pipeline.headers(req, failed.outcome.cache))
    headers = pipeline.headers(req, answer.outcome.cache)
    headers.update(face.headers(mreq, answer))
    if isinstance(answer, Completion):
        return json_response(face.render(mreq, answer), headers)
    renderer = face.chunks(mreq, answer)
    live = isinstance(answer, LiveStream)
    response = web.StreamResponse(status=200)
    batches = answer.batches()
    try:
        response = await open_sse(request, headers, face.stream_headers)
        first = True
        async for batch in batches:
            data = renderer.batch(batch)
            if data:
                if first and live:
                    req.first_token()
                first = False
                await response.write(data)
        last = renderer.finish()
        if before_last is not None:
            await before_last()
        await response.write(last)
    except UpstreamError as err:  # committed to its deployment: end with an error event, never silently
        await response.write(renderer.fail(err))
        return response
    except ConnectionError:
        return response  # the client went away: the upstream request is dropped with it (below)
    finally:
        await batches.aclose()
    await answer.finish()
    return response
