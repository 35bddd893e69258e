"""What an agent run reports as it goes, and what it keeps: the faces turn these into their wire formats.

A run is an async iterator of events. Both faces read the same events for stream and non-stream
requests; a non-stream face simply collects them. `StepStart` comes only once the step's model
call is committed (the chain found a deployment), so a run that cannot start fails before the
response is prepared and the client gets a plain HTTP error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class StepStart:
    index: int  # 1-based


@dataclass(slots=True)
class TextDelta:
    text: str


@dataclass(slots=True)
class ReasoningDelta:
    text: str


@dataclass(slots=True)
class ToolInputStart:
    call_id: str
    name: str


@dataclass(slots=True)
class ToolInputDelta:
    call_id: str
    delta: str


@dataclass(slots=True)
class ToolInputReady:
    call_id: str
    name: str
    input: Any  # the parsed arguments (the raw string when they are not JSON)
    client: bool  # a client tool: the run stops and returns it, the client runs it


@dataclass(slots=True)
class ToolOutput:
    call_id: str
    name: str
    output: Any
    error: str | None


@dataclass(slots=True)
class ToolTrace:
    call_id: str
    name: str
    arguments: Any
    result_bytes: int
    latency_ms: float
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.call_id, "name": self.name, "arguments": self.arguments,
                "result_bytes": self.result_bytes, "latency_ms": self.latency_ms, "error": self.error}


@dataclass(slots=True)
class StepTrace:
    """One model call of the run, as reported in `extra_fields.steps` and kept in the session."""

    index: int
    model_requested: str
    provider: str | None = None
    model: str | None = None
    finish_reason: str | None = None
    latency_ms: float = 0.0
    billed: dict[str, Any] | None = None
    cache: str = "off"
    attempts: list[dict[str, Any]] = field(default_factory=list)
    tools: list[ToolTrace] = field(default_factory=list)
    kind: str = "step"  # step | final (tools withheld: the answer is forced) | repair (structured-output retry)

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.index, "kind": self.kind, "provider": self.provider, "model": self.model,
                "finish_reason": self.finish_reason, "latency_ms": self.latency_ms, "billed_usage": self.billed,
                "cache": self.cache, "attempts": self.attempts, "tools": [t.as_dict() for t in self.tools]}


@dataclass(slots=True)
class StepEnd:
    trace: StepTrace


Event = StepStart | TextDelta | ReasoningDelta | ToolInputStart | ToolInputDelta | ToolInputReady | ToolOutput | StepEnd
