"""`GET /metrics`: Prometheus text exposition (every worker's values under `serve --workers N`)."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from ..metrics import exposition
from ..observe import OBSERVER


async def metrics(request: web.Request) -> web.Response:
    observer = request.app.get(OBSERVER)
    if observer is not None:
        observer.gauges.refresh_local()  # this worker's breaker/Redis/buffer gauges as of now (no I/O)
    # Rendering (and, with workers, reading every worker's file) happens off the event loop.
    body = await asyncio.get_running_loop().run_in_executor(None, exposition)
    return web.Response(body=body, headers={"content-type": CONTENT_TYPE_PLAIN_0_0_4})
