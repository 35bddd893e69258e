"""The agent runtime: the tool loop, shared by both faces, streamed or not.

    messages = [instructions] + conversation
    for each step (at most max_steps model calls):
        call the model through the routing core (step.py) with the server tools and client tools
        client tool calls   -> stop; they go back to the client as `tool_calls` (it runs them)
        server tool calls   -> run them in parallel (validated arguments, timeouts, errors as
                               results), append the results, next step
        an answer           -> done (structured output: validated, one repair step if invalid)

- The last allowed step forces a final answer (`tool_choice: "none"`); a tool call the model makes
  there anyway is dropped (stop reason `max_steps`).
- Loop guard: the same tool with the same arguments more than `max_identical_calls` times in one
  run is not executed; the model is told why and the next step is a forced final answer (stop
  reason `loop_guard`).
- A step with both server and client tool calls returns only the client calls (the server ones are
  not run; the model may ask again once it has the client's results).
- Structured output: `response_format` goes to every step that must answer (no tools offered, or
  the forced final step); an answer that does not validate gets one repair step (forced final, with
  `response_format`), which may exceed `max_steps` by one; still invalid -> `OutputInvalid`.
- Usage and cost are summed over the steps; each step's trace (model, attempts, tool name,
  arguments, result size, latency) is kept for `extra_fields.steps` and the session record.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..accounting.billed import Billed
from ..config.agents import AgentSettingsConfig
from ..exchange import Outcome
from ..metrics import observe_tool
from ..pipeline import ModelRequest, Route
from .events import Event, StepEnd, StepTrace, ToolInputReady, ToolOutput, ToolTrace
from .output import OutputSpec
from .registry import Agent
from .step import StepContext, StepResult, run_step
from .tools import Tool, ToolOutcome, execute, parse_arguments

# Request members that are the run's business, not each step's.
RUN_ONLY = frozenset({"model", "messages", "stream", "stream_options", "n", "tools", "tool_choice", "fallbacks",
                      "session_id", "max_steps", "functions", "function_call"})


class OutputInvalid(Exception):
    """The structured output still did not validate after the repair step."""


@dataclass(slots=True)
class RunSpec:
    agent: Agent
    model: str  # what each step requests (the agent's model, or a per-request override)
    conversation: list[dict[str, Any]]  # OpenAI messages, history applied, without the agent's instructions
    params: dict[str, Any] = field(default_factory=dict)  # generation parameters for every step
    client_tools: list[dict[str, Any]] = field(default_factory=list)  # OpenAI function tools the client runs
    max_steps: int = 8
    output: OutputSpec | None = None
    fallbacks: list[str] | None = None
    model_named: bool = False  # the client chose `model` (an inline agent, a per-request override)


class AgentRun:
    def __init__(self, ctx: StepContext, spec: RunSpec, tools: dict[str, Tool], settings: AgentSettingsConfig) -> None:
        self.ctx = ctx
        self.spec = spec
        self.tools = tools
        self.settings = settings
        system = "\n\n".join(s for s in (spec.agent.instructions, spec.output.instruction() if spec.output else "")
                             if s)
        self.messages: list[dict[str, Any]] = ([{"role": "system", "content": system}] if system else [])
        self.messages += spec.conversation
        self.new_messages: list[dict[str, Any]] = []  # what the run added (assistant turns, tool results)
        self.steps: list[StepTrace] = []
        self.billed: Billed | None = None  # every step's bill, summed
        self.texts: list[str] = []  # the text of each step that said something
        self.output: Any = None
        self.finish_reason = "stop"
        self.stop_reason = "answer"
        self.client_calls: list[dict[str, Any]] = []
        self._current: StepResult | None = None
        self._seen: dict[bytes, int] = {}
        # A client tool named like a server tool is dropped: the agent's own tool wins.
        client = [t for t in spec.client_tools if (t.get("function") or {}).get("name") not in tools]
        self.client_names = {t["function"]["name"] for t in client}
        self.definitions = [t.definition() for t in tools.values()] + client

    # -- results --------------------------------------------------------------------------------
    @property
    def content(self) -> str:
        return "\n\n".join(self.texts)

    @property
    def last_outcome(self) -> Outcome | None:
        """The current (or last) step's model call: its attempts and the deployment serving it."""
        return self._current.outcome if self._current is not None else None

    @property
    def usage(self) -> dict[str, Any]:
        return (self.billed or Billed()).usage()

    def step_request(self, final: bool) -> tuple[ModelRequest, Route]:
        """The next step's model call and where it may go (403/404/400 before anything is sent)."""
        spec, ctx = self.spec, self.ctx
        mreq = ctx.request(spec.model, self._body(final), spec.fallbacks, spec.model_named)
        return mreq, ctx.pipeline.route(ctx.req, mreq)

    # -- the loop -------------------------------------------------------------------------------
    async def events(self) -> AsyncIterator[Event]:
        spec = self.spec
        forced = False
        repaired = False
        index = 0
        while True:
            index += 1
            final = forced or index >= spec.max_steps
            kind = "repair" if repaired and forced else ("final" if final and self.definitions else "step")
            if final and self.definitions and not forced:
                self.stop_reason = "max_steps"  # tools withheld: the step limit forces this answer
            trace = StepTrace(index, spec.model, kind=kind)
            result = self._current = StepResult()
            self.steps.append(trace)
            try:
                mreq, route = self.step_request(final)
                async for event in run_step(self.ctx, mreq, route, trace, result):
                    yield event
            finally:
                outcome = result.outcome
                if outcome is None or not (outcome.call.attempts or outcome.cache == "hit"):
                    self.steps.remove(trace)  # never reached a deployment: nothing to report
                elif outcome.billed is not None and outcome.cache != "hit":
                    self.billed = outcome.billed if self.billed is None else self.billed + outcome.billed
            trace.finish_reason = result.finish_reason
            if result.text:
                self.texts.append(result.text)
            calls = result.tool_calls
            if calls and final:
                calls = []  # the model ignored tool_choice "none": the loop ends here anyway
            if calls:
                client = [c for c in calls if self._name(c) in self.client_names]
                if client:
                    self._append({"role": "assistant", "content": result.text or None, "tool_calls": client})
                    self.client_calls = client
                    for call in client:
                        yield ToolInputReady(call["id"], self._name(call), self._input(call), True)
                    self.finish_reason, self.stop_reason = "tool_calls", "client_tools"
                    yield StepEnd(trace)
                    return
                self._append({"role": "assistant", "content": result.text or None, "tool_calls": calls})
                for call in calls:
                    yield ToolInputReady(call["id"], self._name(call), self._input(call), False)
                guarded = [self._guard(call) for call in calls]
                outcomes = await asyncio.gather(*(self._run_tool(call, g) for call, g in zip(calls, guarded,
                                                                                             strict=True)))
                for call, outcome in zip(calls, outcomes, strict=True):
                    name = self._name(call)
                    yield ToolOutput(call["id"], name, outcome.output, outcome.error)
                    self._append({"role": "tool", "tool_call_id": call["id"], "content": outcome.content})
                    trace.tools.append(ToolTrace(call["id"], name, self._input(call), outcome.result_bytes,
                                                 outcome.latency_ms, outcome.error))
                yield StepEnd(trace)
                if any(guarded):
                    forced, self.stop_reason = True, "loop_guard"
                continue
            self._append({"role": "assistant", "content": result.text})
            yield StepEnd(trace)
            self.finish_reason = _finish(result.finish_reason)
            if spec.output is not None:
                value, problem = spec.output.extract(result.text)
                if problem is not None and not repaired:
                    repaired = forced = True
                    self._append(spec.output.repair_message(problem))
                    continue
                if problem is not None:
                    raise OutputInvalid(problem)
                self.output = value
            return

    # -- helpers --------------------------------------------------------------------------------
    def _body(self, final: bool) -> dict[str, Any]:
        spec = self.spec
        body: dict[str, Any] = {k: v for k, v in spec.params.items() if k not in RUN_ONLY and v is not None}
        if spec.agent.temperature is not None:
            body.setdefault("temperature", spec.agent.temperature)
        body["model"] = spec.model
        body["messages"] = list(self.messages)
        if self.definitions:
            body["tools"] = self.definitions
            if final:
                body["tool_choice"] = "none"
        if spec.output is not None and (final or not self.definitions):
            body["response_format"] = spec.output.response_format()
        return body

    def _append(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        self.new_messages.append(message)

    @staticmethod
    def _name(call: dict[str, Any]) -> str:
        return (call.get("function") or {}).get("name") or ""

    @staticmethod
    def _input(call: dict[str, Any]) -> Any:
        return parse_arguments((call.get("function") or {}).get("arguments"))[0]

    def _guard(self, call: dict[str, Any]) -> str | None:
        """The loop guard's refusal for this call, or None when it may run."""
        args = self._input(call)
        try:
            signature = orjson.dumps([self._name(call), args], option=orjson.OPT_SORT_KEYS)
        except TypeError:
            signature = orjson.dumps([self._name(call), str(args)])
        count = self._seen[signature] = self._seen.get(signature, 0) + 1
        limit = self.settings.max_identical_calls
        if count > limit:
            return (f"loop guard: '{self._name(call)}' was already called {limit} time(s) with these same "
                    "arguments in this run; it was not run again. Answer with what you have.")
        return None

    async def _run_tool(self, call: dict[str, Any], refused: str | None) -> ToolOutcome:
        name = self._name(call)
        if refused is not None:
            content = orjson.dumps({"error": refused}).decode()
            return ToolOutcome(None, refused, content, 0.0, len(content))
        settings = self.settings
        outcome = await execute(self.tools.get(name), name, (call.get("function") or {}).get("arguments"),
                                settings.tool_timeout_s, settings.max_tool_result_bytes)
        observe_tool(name if name in self.tools else "unknown", "agent", outcome.error is not None,
                     outcome.latency_ms / 1000.0)
        exchange = self.ctx.req.exchange
        if exchange is not None:
            exchange.tool_calls.append({"name": name, "latency_ms": outcome.latency_ms,
                                        "error": outcome.error[:300] if outcome.error else None})
        return outcome


def _finish(reason: str | None) -> str:
    return reason if reason in ("stop", "length", "content_filter") else "stop"
