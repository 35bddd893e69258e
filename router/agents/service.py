"""Per-app agent state and what both faces do around a run.

`launch` is the request preamble after authentication: endpoint switch, agent rate limits,
authorisation (`agent:<id>` for a configured agent; the model itself for an inline agent or a
per-request model override), the route (404 before anything runs), admission against the key's
RPM/TPM/budget (once per run), the session and its history. `finish` stores the session and
settles the key's reservation with the usage summed over every step (each step was already
accounted on its own as it happened).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from providers.tokens import count_messages

from ..errors import ApiError
from ..gateway import GATEWAY, Gateway
from ..handlers.scope import Scope
from ..routing.chain import ChainFailed
from .events import Event
from .limits import AgentLimiter
from .output import OutputSpec
from .registry import Agent, Registry
from .runtime import AgentRun, OutputInvalid, RunSpec
from .sessions import SESSION_HEADER, SessionRef, SessionStore, build_store, conversation
from .step import StepContext, StepFailed
from .tools import Resolve, ToolBox

log = logging.getLogger("switchboard")

PING = object()  # what `heartbeat` yields while the run is quiet


@dataclass(slots=True)
class Launch:
    run: AgentRun
    agent: Agent
    scope: Scope
    session: SessionRef | None
    session_key: str | None
    loaded: dict[str, Any] | None
    started: float
    requested: str  # what the client asked for (`model_requested`)

    def headers(self) -> dict[str, str]:
        out = self.scope.headers()
        if self.session is not None:
            out[SESSION_HEADER] = self.session.id
        return out


class AgentService:
    def __init__(self, gw: Gateway, resolve: Resolve | None = None) -> None:
        config = gw.loaded.config
        self.gw = gw
        self.settings = config.agent_settings
        self.registry = Registry(config)
        self.toolbox = ToolBox(self.settings, resolve)
        self.sessions: SessionStore = build_store(self.settings.sessions, gw.redis)
        self.limiter = AgentLimiter(self.settings.rate_limits, gw.redis)

    async def close(self) -> None:
        await self.toolbox.close()

    def enabled(self, face: str) -> None:
        on = self.settings.endpoints.openai if face == "openai" else self.settings.endpoints.ui
        if not on:
            what = ("agents on /v1/chat/completions" if face == "openai" else "POST /agent/v1/chat/completions")
            raise ApiError(404, f"{what} is disabled on this router (agent_settings.endpoints.{face})",
                           code="endpoint_disabled")

    async def launch(self, request: web.Request, scope: Scope, agent: Agent, *, requested: str,
                     messages: list[dict[str, Any]], stream: bool, max_steps: int, params: dict[str, Any] | None = None,
                     client_tools: list[dict[str, Any]] | None = None, output: OutputSpec | None = None,
                     model_override: str | None = None, fallbacks: list[str] | None = None,
                     session: SessionRef | None = None, started: float | None = None) -> Launch:
        await self.limiter.check(request, scope.key_name)
        if agent.inline:
            if agent.model is None:
                raise ApiError(400, "the inline agent names no model and the router has no default model "
                                    "(agent_settings.default_model)", param="agent.model", code="missing_model")
            scope.authorize(agent.model)
        else:
            scope.authorize(agent.label)
        model = model_override or agent.model
        if model_override is not None:
            scope.authorize(model_override)
        if model is None:
            raise ApiError(404, f"agent '{agent.id}' has no model: set agents.{agent.id}.model or "
                                "agent_settings.default_model", param="model", code="model_not_found")
        spec = RunSpec(agent=agent, model=model, conversation=[], params=dict(params or {}),
                       client_tools=list(client_tools or []), max_steps=max_steps, output=output or agent.output,
                       fallbacks=fallbacks)
        ctx = StepContext(self.gw, scope, step_recorder(scope), stream,
                          self.settings.cache_steps and self.gw.cache is not None, agent.label)
        run = AgentRun(ctx, spec, self.toolbox.tools(agent.tools), self.settings)
        plan = run.plan()  # 404 for an unknown model before anything is admitted
        tenant = scope.key_name or ""
        key = self.sessions.key(tenant, agent.id, session.id) if session is not None else None
        loaded = await self.sessions.load(key) if key is not None else None
        spec.conversation = conversation(agent.history, (loaded or {}).get("messages") or [], messages)
        run.messages += spec.conversation
        body = {**spec.params, "messages": run.messages}
        await scope.admit(plan, body, lambda: count_messages(run.messages, model, run.definitions or None))
        return Launch(run, agent, scope, session, key, loaded, started or time.perf_counter(), requested)

    async def finish(self, launch: Launch) -> None:
        """Store the session (if any) and settle the key's reservation; safe to call once per launch."""
        run = launch.run
        launch.scope.settle(run.billed)
        if launch.session_key is None:
            return
        record_run = {"agent": launch.agent.id, "stop_reason": run.stop_reason, "finish_reason": run.finish_reason,
                      "usage": run.billed, "steps": [s.as_dict() for s in run.steps]}
        with contextlib.suppress(Exception):
            await self.sessions.update(launch.session_key, launch.agent.id,
                                       [*run.spec.conversation, *run.new_messages], record_run, launch.loaded)


def step_recorder(scope: Scope) -> Scope:
    """Accounts each step like any routing-core call, without settling the request's reservation
    (`finish` settles it once, with the run's total): a scope with no reservation of its own that
    reports to the same request observation (metrics, access log) when there is one."""
    child = Scope(scope.gw, scope.vk, None)
    if hasattr(scope, "obs"):
        child.obs = scope.obs
    return child


def first_token(scope: Scope) -> None:
    """Tell the request's observation that content is going out (time to first token), if it listens."""
    mark = getattr(scope, "first_token", None)
    if mark is not None:
        mark()


def failure(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, OpenAI error, headers) for what a run may raise; re-raises anything else."""
    if isinstance(exc, ApiError):
        return exc.status, exc.to_openai(), dict(exc.headers or {})
    if isinstance(exc, ChainFailed):
        err = exc.error
        headers = {"retry-after": str(max(1, round(err.retry_after or 1)))} if err.kind == "rate_limit" else {}
        return err.client_status, err.to_openai(), headers
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


def gateway(request: web.Request) -> Gateway:
    return request.app[GATEWAY]


AGENTS = web.AppKey("agents", AgentService)
