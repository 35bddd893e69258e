"""Per-app agent state and what both faces do around a run.

`launch` is the request preamble after authentication: endpoint switch, agent rate limits, the
names the request writes checked against the key (`agent:<id>` for a configured agent; the model
itself for an inline agent or a per-request model override), the first step's route (403 / 404
before anything runs), the session and its history. Each step is then admitted, called, billed and
settled on its own by the pipeline (only the first counts as a request against the key's RPM).
`finish` stores the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..errors import ApiError, retry_headers
from ..pipeline import CallFailed, Pipeline, ProxyRequest
from ..pipeline.policy import check_names
from .events import Event
from .limits import AgentLimiter
from .registry import Agent, Registry
from .runtime import AgentRun, OutputInvalid, RunSpec
from .sessions import SESSION_HEADER, SessionRef, SessionStore, build_store, conversation
from .step import StepContext, StepFailed
from .tools import Resolve, ToolBox, usable
from .tools.mcp import McpServer
from .tools.mcp_request import RequestServers, close_all

log = logging.getLogger("switchboard")

PING = object()  # what `heartbeat` yields while the run is quiet


@dataclass(slots=True)
class Launch:
    run: AgentRun
    req: ProxyRequest
    session: SessionRef | None
    session_key: str | None
    loaded: dict[str, Any] | None
    requested: str  # what the client asked for (`model_requested`)

    @property
    def agent(self) -> Agent:
        return self.run.spec.agent

    @property
    def started(self) -> float:
        return self.req.started


class AgentService:
    def __init__(self, pipeline: Pipeline, resolve: Resolve | None = None) -> None:
        gw = pipeline.gw
        config = gw.loaded.config
        self.pipeline = pipeline
        self.settings = config.agent_settings
        self.registry = Registry(config)
        self.mcp_serve = config.mcp.serve
        self.toolbox = ToolBox(self.settings, config.mcp, config.agents, resolve)
        self.request_servers = RequestServers(config.mcp.request_servers, resolve)
        self.sessions: SessionStore = build_store(self.settings.sessions, gw.redis)
        self.limiter = AgentLimiter(self.settings.rate_limits, gw.redis)
        self.cache_steps = self.settings.cache_steps and gw.cache is not None

    async def start(self) -> None:
        await self.toolbox.start()

    async def close(self) -> None:
        await self.toolbox.close()

    async def release(self, request: web.Request) -> None:
        """The request is over: close the MCP servers it named."""
        servers = request.pop(REQUEST_SERVERS, None)
        if servers:
            await close_all(servers)

    def enabled(self, face: str) -> None:
        on = self.settings.endpoints.openai if face == "openai" else self.settings.endpoints.ui
        if not on:
            what = ("agents on /v1/chat/completions" if face == "openai" else "POST /agent/v1/chat/completions")
            raise ApiError(404, f"{what} is disabled on this router (agent_settings.endpoints.{face})",
                           code="endpoint_disabled")

    async def launch(self, request: web.Request, req: ProxyRequest, spec: RunSpec, messages: list[dict[str, Any]],
                     *, stream: bool, requested: str, session: SessionRef | None = None,
                     override: bool = False) -> Launch:
        """Check and prepare a run (`spec.conversation` is filled from the session and `messages`)."""
        if req.exchange is not None:
            req.exchange.requested = requested
        await self.limiter.check(request, req.key_name)
        agent = spec.agent
        if agent.inline:
            if agent.model is None:
                raise ApiError(400, "the inline agent names no model and the router has no default model "
                                    "(agent_settings.default_model)", param="agent.model", code="missing_model")
        else:
            check_names(req.key, [(agent.label, "model")])
        if not spec.model:
            raise ApiError(404, f"agent '{agent.id}' has no model: set agents.{agent.id}.model or "
                                "agent_settings.default_model", param="model", code="model_not_found")
        ctx = StepContext(self.pipeline, req, stream, self.cache_steps, agent.label)
        tools = self.toolbox.tools(agent.tools, req.key)
        if agent.mcp_servers:  # connected for this request only; `release` closes them
            servers = request[REQUEST_SERVERS] = await self.request_servers.open(agent.mcp_servers,
                                                                                 "agent.mcp_servers")
            for server in servers:
                tools.update(usable(server.tools(), req.key))
        run = AgentRun(ctx, spec, tools, self.settings)
        run.step_request(final=False)  # 403 / 404 / 400 for the agent's model before anything runs
        key = self.sessions.key(req.tenant, agent.id, session.id) if session is not None else None
        loaded = await self.sessions.load(key) if key is not None else None
        spec.conversation = conversation(agent.history, (loaded or {}).get("messages") or [], messages)
        run.messages += spec.conversation
        return Launch(run, req, session, key, loaded, requested)

    def headers(self, launch: Launch) -> dict[str, str]:
        out = self.pipeline.headers(launch.req, run_cache_status(launch.run))
        if launch.session is not None:
            out[SESSION_HEADER] = launch.session.id
        return out

    async def finish(self, launch: Launch) -> None:
        """Store the session (if any); safe to call once per launch."""
        run = launch.run
        if launch.session_key is None:
            return
        record_run = {"agent": launch.agent.id, "stop_reason": run.stop_reason, "finish_reason": run.finish_reason,
                      "usage": run.billed.as_dict() if run.billed else None,
                      "steps": [s.as_dict() for s in run.steps]}
        with contextlib.suppress(Exception):
            await self.sessions.update(launch.session_key, launch.agent.id,
                                       [*run.spec.conversation, *run.new_messages], record_run, launch.loaded)


def run_cache_status(run: AgentRun) -> str:
    """A run's cache status: hit when every step was, miss when any step used the cache, else off."""
    statuses = {s.cache for s in run.steps}
    if statuses == {"hit"}:
        return "hit"
    return "miss" if "miss" in statuses or "hit" in statuses else "off"


def failure(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, OpenAI error, headers) for what a run may raise; re-raises anything else."""
    if isinstance(exc, ApiError):
        return exc.status, exc.to_openai(), dict(exc.headers or {})
    if isinstance(exc, CallFailed):
        return exc.error.client_status, exc.error.to_openai(), retry_headers(exc.error)
    if isinstance(exc, StepFailed):
        return 502, exc.error.to_openai(), {}
    if isinstance(exc, OutputInvalid):
        return 502, {"message": f"the answer did not match the requested output after one repair attempt: {exc}",
                     "type": "upstream_error", "param": "output", "code": "output_validation_failed"}, {}
    if isinstance(exc, TimeoutError):
        return 504, {"message": "the agent run did not finish within the non-stream time limit; send "
                                "`stream: true` to keep the connection open for long runs",
                     "type": "timeout_error", "param": None, "code": "agent_timeout"}, {}
    raise exc


def stream_failure(exc: BaseException) -> dict[str, Any]:
    """The OpenAI error for a failure after a stream started; an unexpected one is logged and masked."""
    try:
        return failure(exc)[1]
    except Exception:
        log.exception("agent run failed")
        return {"message": "An error occurred.", "type": "server_error", "param": None, "code": "internal_error"}


async def heartbeat(events: AsyncIterator[Event], interval_s: float) -> AsyncIterator[Event | object]:
    """The run's events, with `PING` whenever nothing happened for `interval_s` (SSE keep-alive)."""
    iterator = aiter(events)
    pending: asyncio.Future | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(iterator))
            done, _ = await asyncio.wait({pending}, timeout=interval_s)
            if not done:
                yield PING
                continue
            task, pending = pending, None
            try:
                event = task.result()
            except StopAsyncIteration:
                return
            yield event
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        with contextlib.suppress(Exception):
            await iterator.aclose()  # type: ignore[attr-defined]


def service(request: web.Request) -> AgentService:
    return request.app[AGENTS]


AGENTS = web.AppKey("agents", AgentService)
REQUEST_SERVERS = web.RequestKey("mcp_request_servers", list[McpServer])
