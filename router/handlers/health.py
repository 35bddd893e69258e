"""`GET /healthz` (the process answers) and `GET /readyz` (config loaded, dependencies reachable).

`/readyz` also reports each deployment's circuit-breaker state as this worker sees it; an open
breaker does not make the router unready (other deployments and fallbacks still serve).
"""

from __future__ import annotations

import orjson
from aiohttp import web

from ..gateway import GATEWAY


async def healthz(request: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ok"}', content_type="application/json")


async def readyz(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    checks = {"config": "ok" if gw.ready else "starting",
              "providers": sorted(gw.table.runtimes), "disabled_providers": sorted(gw.table.disabled),
              "deployments": gw.health.snapshot()}
    ready = gw.ready
    body = {"status": "ready" if ready else "not_ready", "checks": checks}
    return web.Response(status=200 if ready else 503, body=orjson.dumps(body), content_type="application/json")
