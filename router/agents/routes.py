"""Wiring: `add_agent_routes(app)` builds the app's `AgentService` and registers the agent routes."""

from __future__ import annotations

from aiohttp import web

from ..handlers.health import READINESS
from ..pipeline import PIPELINE
from .mcp_face import add_mcp_routes
from .service import AGENTS, AgentService
from .tools import Resolve
from .ui_face import ui_chat

UI_PATH = "/agent/v1/chat/completions"


def add_agent_routes(app: web.Application, resolve: Resolve | None = None) -> None:
    """`POST /agent/v1/chat/completions` and `POST /mcp`; the OpenAI face is chosen on the chat route
    (router/app.py).

    Both routes stay registered when switched off in `agent_settings.endpoints` (they answer 404
    `endpoint_disabled`), so the OpenAPI document matches the routes whatever the config says.
    """
    agents = AgentService(app[PIPELINE], resolve)
    app[AGENTS] = agents
    if agents.toolbox.mcp.servers:
        app.setdefault(READINESS, {})["mcp_servers"] = agents.toolbox.mcp.readiness
    app.router.add_post(UI_PATH, ui_chat)
    add_mcp_routes(app)

    async def start(app: web.Application) -> None:
        await agents.start()  # MCP servers: connected and their tools listed before the first request

    async def close(app: web.Application) -> None:
        await agents.close()

    app.on_startup.append(start)
    app.on_cleanup.append(close)
