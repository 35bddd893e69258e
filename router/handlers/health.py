"""`GET /healthz` (the process answers) and `GET /readyz` (config loaded, dependencies reachable).

`/readyz` also reports each deployment's circuit-breaker state as this worker sees it; an open
breaker does not make the router unready (other deployments and fallbacks still serve). With Redis
configured it is pinged: unreachable Redis makes the router unready (503) only when
`auth.on_redis_down` is `fail_closed` (requests with limits would be refused anyway); otherwise the
router keeps serving in a degraded mode (cache misses, buffered accounting) and says so with 200.

Other parts add their own detail through `READINESS` (the agents: each MCP server's state); a
part that is down there degrades the status but never makes the router unready (a tool server
down is a tool error, not a reason to stop routing models).
"""

from __future__ import annotations

import orjson
from aiohttp import web

from ..gateway import GATEWAY

# name -> () -> (detail, healthy): checks registered by the parts that own them
READINESS = web.AppKey("readiness", dict)


async def healthz(request: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ok"}', content_type="application/json")


async def readyz(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    checks = {"config": "ok" if gw.ready else "starting",
              "providers": sorted(gw.table.runtimes), "disabled_providers": sorted(gw.table.disabled),
              "deployments": gw.health.snapshot()}
    ready = gw.ready
    status = "ready" if ready else "not_ready"
    if gw.redis is not None:
        redis_ok = await gw.redis.ping()
        checks["redis"] = "ok" if redis_ok else "unreachable"
        if not redis_ok:
            if gw.limiter.fail_open:
                status = "degraded" if ready else status
            else:
                ready, status = False, "not_ready"
    for name, check in request.app.get(READINESS, {}).items():
        checks[name], healthy = check()
        if not healthy and status == "ready":
            status = "degraded"
    body = {"status": status, "checks": checks}
    return web.Response(status=200 if ready else 503, body=orjson.dumps(body), content_type="application/json")
