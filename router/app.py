"""Explicit app wiring: routes, the error middleware, start-up and shutdown.

The proxy routes open a request in the pipeline (authenticate), read its JSON body and hand both
to a face. The chat route decides here whether a request runs an agent or is plain chat, so the
chat face and the agents never import each other.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from providers import UpstreamError

from .agents.mcp_face import rpc_error_shape
from .agents.openai_face import agent_chat, agent_target
from .agents.routes import add_agent_routes
from .config import LoadedConfig
from .cors import Cors
from .edge import read_json
from .errors import ERROR_SHAPE, ApiError, error_response
from .exchange import note_error
from .gateway import GATEWAY, Gateway
from .handlers.admin import add_admin_routes
from .handlers.chat import ChatFace
from .handlers.embeddings import EmbeddingsFace
from .handlers.face import Face, serve
from .handlers.health import healthz, readyz
from .handlers.messages import MessagesFace, count_tokens_route
from .handlers.messages.errors import anthropic_error
from .handlers.metrics import metrics
from .handlers.models import list_models, retrieve_model
from .handlers.responses import add_responses_routes
from .handlers.usage import usage
from .observe import OBSERVER, Observer, echo_request_id
from .openapi_spec import openapi
from .pipeline import PIPELINE, Pipeline

log = logging.getLogger("switchboard")


@web.middleware
async def error_middleware(request: web.Request, handler):
    """Every failure leaves as a JSON error, OpenAI-shaped unless the face set its own shape
    (`ERROR_SHAPE`): never a traceback, never a key."""
    try:
        return await handler(request)
    except ApiError as exc:
        note_error(request, exc.code)
        return _error(request, exc.status, exc.to_openai(), exc.headers)
    except UpstreamError as exc:  # a provider rejected the request while translating it
        return _error(request, exc.client_status, exc.to_openai())
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(exc.status)
        headers = {"allow": exc.headers["allow"]} if "allow" in exc.headers else None
        return _error(request, exc.status, {"message": f"{request.method} {request.path}: {exc.reason}",
                                            "type": "invalid_request_error", "param": None, "code": code}, headers)
    except (ConnectionResetError, ConnectionError):
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error(request, 500, {"message": "internal error in the router", "type": "server_error",
                                     "param": None, "code": "internal_error"})


# Paths whose errors are never OpenAI-shaped, even those the router answers before any route runs
# (a method the path does not serve).
_PATH_SHAPES = (("/v1/messages", anthropic_error), ("/mcp", rpc_error_shape))


def _error(request: web.Request, status: int, error: dict, headers: dict[str, str] | None = None) -> web.Response:
    shape = request.get(ERROR_SHAPE) or next((s for p, s in _PATH_SHAPES if request.path.startswith(p)), None)
    return shape(status, error, headers) if shape is not None else error_response(status, error, headers=headers)


def proxy_route(pipeline: Pipeline, face: Face, agents: bool = False) -> Callable[[web.Request],
                                                                                  Awaitable[web.StreamResponse]]:
    """A route through the pipeline: authenticate, read the JSON body, let the face serve it, and
    release whatever the request still holds when it is over. With `agents`, a body that names an
    agent (`model: "agent:<id>"` or `x-agent-id`) goes to the agents' OpenAI face instead."""
    limit, timeout_s = pipeline.max_body_bytes, pipeline.body_timeout_s

    shape = face.error_shape

    async def route(request: web.Request) -> web.StreamResponse:
        if shape is not None:
            request[ERROR_SHAPE] = shape  # before anything can fail: every error in the face's shape
        req = await pipeline.open(request)
        try:
            body = await read_json(request, limit, timeout_s)
            if agents and (agent := agent_target(request, body)) is not None:
                return await agent_chat(request, req, body, agent)
            return await serve(pipeline, face, request, req, body)
        finally:
            pipeline.close(req)

    return route


def build_app(loaded: LoadedConfig) -> web.Application:
    gateway = Gateway(loaded)
    pipeline = Pipeline(gateway)
    observer = Observer(loaded, gateway)  # request id, metrics, access log, traces (router/observe.py)
    cors = Cors(loaded.config.server.cors) if loaded.config.server.cors is not None else None
    middlewares = [observer.middleware, error_middleware]
    if cors is not None:
        middlewares.insert(0, cors.preflight)  # preflights are answered before anything else
    app = web.Application(middlewares=middlewares, client_max_size=loaded.config.server.max_body_bytes + 1)
    app[GATEWAY] = gateway
    app[PIPELINE] = pipeline
    app[OBSERVER] = observer
    app.on_response_prepare.append(echo_request_id)
    if cors is not None:
        app.on_response_prepare.append(cors.on_prepare)
    with_extra = gateway.extra_fields_enabled
    chat = proxy_route(pipeline, ChatFace(with_extra), agents=True)
    embeddings = proxy_route(pipeline, EmbeddingsFace(with_extra))
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/chat/completions", chat)
    app.router.add_post("/v1/messages", proxy_route(pipeline, MessagesFace(with_extra)))
    app.router.add_post("/v1/messages/count_tokens", count_tokens_route(pipeline))
    add_responses_routes(app, pipeline, gateway)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/embeddings", embeddings)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/models", list_models)
    app.router.add_get("/v1/models/{model:.+}", retrieve_model)
    app.router.add_get("/models/{model:.+}", retrieve_model)
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
