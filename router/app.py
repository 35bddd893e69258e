"""Explicit app wiring: routes, the error middleware, start-up and shutdown."""

from __future__ import annotations

import logging

from aiohttp import web

from providers import UpstreamError

from .agents.routes import add_agent_routes
from .config import LoadedConfig
from .errors import ApiError, error_response
from .gateway import GATEWAY, Gateway
from .handlers.admin import add_admin_routes
from .handlers.chat import chat_completions
from .handlers.embeddings import embeddings
from .handlers.health import healthz, readyz
from .handlers.metrics import metrics
from .handlers.models import list_models
from .handlers.openapi import openapi
from .handlers.usage import usage
from .observe import OBSERVER, Observer, echo_request_id

log = logging.getLogger("switchboard")


@web.middleware
async def error_middleware(request: web.Request, handler):
    """Every failure leaves as an OpenAI-shaped JSON error: never a traceback, never a key."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.to_openai(), headers=exc.headers)
    except UpstreamError as exc:  # a provider rejected the request while translating it
        return error_response(exc.client_status, exc.to_openai())
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(exc.status)
        headers = {"allow": exc.headers["allow"]} if "allow" in exc.headers else None
        return error_response(exc.status, {"message": f"{request.method} {request.path}: {exc.reason}",
                                           "type": "invalid_request_error", "param": None, "code": code},
                              headers=headers)
    except (ConnectionResetError, ConnectionError):
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, {"message": "internal error in the router", "type": "server_error",
                                    "param": None, "code": "internal_error"})


def build_app(loaded: LoadedConfig) -> web.Application:
    gateway = Gateway(loaded)
    observer = Observer(loaded, gateway)  # request id, metrics, access log, traces (router/observe.py)
    app = web.Application(middlewares=[observer.middleware, error_middleware],
                          client_max_size=loaded.config.server.max_body_bytes + 1)
    app[GATEWAY] = gateway
    app[OBSERVER] = observer
    app.on_response_prepare.append(echo_request_id)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/chat/completions", chat_completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/embeddings", embeddings)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/models", list_models)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/v1/usage", usage)
    add_admin_routes(app)
    add_agent_routes(app)

    async def lifecycle(app: web.Application):
        await gateway.start()
        await observer.start()
        yield
        await observer.close()
        await gateway.close()

    app.cleanup_ctx.append(lifecycle)
    return app
