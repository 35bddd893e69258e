"""The AI SDK UI message stream v1 (shared/reference/wire_formats.md §1): run events in, chunks out.

Only the core chunk types and fields every `ai` 5.x/6.x client accepts are emitted (the strict zod
schemas of older clients reject unknown keys): `start`, `start-step`, `text-start/delta/end`,
`reasoning-start/delta/end`, `tool-input-start/delta/available`, `tool-output-available`,
`tool-output-error`, `finish-step`, `data-output`, `error`, `finish` (its `finishReason` only when
`agent_settings.ui_finish_reason` is on: clients older than ai 5.0.92 reject it). Extra
information rides in `messageMetadata` (`start`: agentId, sessionId; `finish`: usage, stopReason)
and in the `data-output` part. Ids are unique per message (`t0`, `r1`, ...).

Ordering follows the client's rules: a text or reasoning part is opened before its deltas and
closed before a tool chunk or the end of the step; every tool call gets `tool-input-available`
before its output; a tool call that streamed its input but was not run gets an output error so no
part is left half-open. `UIMessageBuilder` folds the same chunks into the final UIMessage parts, as
`readUIMessageStream` would, for the non-stream response.
"""

from __future__ import annotations

from typing import Any

import orjson

from .events import (
    Event,
    ReasoningDelta,
    StepEnd,
    StepStart,
    TextDelta,
    ToolInputDelta,
    ToolInputReady,
    ToolInputStart,
    ToolOutput,
)
from .tools import parse_arguments

HEADERS = {"content-type": "text/event-stream", "cache-control": "no-cache", "connection": "keep-alive",
           "x-vercel-ai-ui-message-stream": "v1", "x-accel-buffering": "no"}
DONE = b"data: [DONE]\n\n"
_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool-calls", "content_filter": "content-filter",
           "error": "error"}


def sse(chunks: list[dict[str, Any]]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks)


class UIEncoder:
    def __init__(self, message_id: str, metadata: dict[str, Any], finish_reason: bool = True) -> None:
        self.message_id = message_id
        self.metadata = metadata
        self.finish_reason = finish_reason
        self._ids = 0
        self._text: str | None = None
        self._reasoning: str | None = None
        self._in_step = False
        self._pending: dict[str, dict[str, Any]] = {}  # tool calls whose input streamed, not yet available

    def _id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{self._ids - 1}"

    def start(self) -> list[dict[str, Any]]:
        return [{"type": "start", "messageId": self.message_id, "messageMetadata": self.metadata}]

    def _close(self) -> list[dict[str, Any]]:
        out = []
        if self._text is not None:
            out.append({"type": "text-end", "id": self._text})
            self._text = None
        if self._reasoning is not None:
            out.append({"type": "reasoning-end", "id": self._reasoning})
            self._reasoning = None
        return out

    def event(self, event: Event) -> list[dict[str, Any]]:
        if isinstance(event, StepStart):
            self._in_step = True
            return [{"type": "start-step"}]
        if isinstance(event, TextDelta):
            out = []
            if self._reasoning is not None:
                out = self._close()
            if self._text is None:
                self._text = self._id("t")
                out.append({"type": "text-start", "id": self._text})
            out.append({"type": "text-delta", "id": self._text, "delta": event.text})
            return out
        if isinstance(event, ReasoningDelta):
            out = []
            if self._text is not None:
                out = self._close()
            if self._reasoning is None:
                self._reasoning = self._id("r")
                out.append({"type": "reasoning-start", "id": self._reasoning})
            out.append({"type": "reasoning-delta", "id": self._reasoning, "delta": event.text})
            return out
        if isinstance(event, ToolInputStart):
            self._pending[event.call_id] = {"name": event.name, "args": []}
            return [*self._close(), {"type": "tool-input-start", "toolCallId": event.call_id,
                                     "toolName": event.name}]
        if isinstance(event, ToolInputDelta):
            pending = self._pending.get(event.call_id)
            if pending is None:
                return []
            pending["args"].append(event.delta)
            return [{"type": "tool-input-delta", "toolCallId": event.call_id, "inputTextDelta": event.delta}]
        if isinstance(event, ToolInputReady):
            self._pending.pop(event.call_id, None)
            return [*self._close(), {"type": "tool-input-available", "toolCallId": event.call_id,
                                     "toolName": event.name, "input": event.input}]
        if isinstance(event, ToolOutput):
            if event.error is not None:
                return [{"type": "tool-output-error", "toolCallId": event.call_id, "errorText": event.error}]
            return [{"type": "tool-output-available", "toolCallId": event.call_id, "output": event.output}]
        if isinstance(event, StepEnd):
            return self._end_step()
        return []

    def _end_step(self) -> list[dict[str, Any]]:
        out = self._close()
        for call_id, pending in self._pending.items():  # streamed but not run (dropped by the loop)
            out.append({"type": "tool-input-available", "toolCallId": call_id, "toolName": pending["name"],
                        "input": parse_arguments("".join(pending["args"]))[0]})
            out.append({"type": "tool-output-error", "toolCallId": call_id,
                        "errorText": "not run: the agent ended this step without executing it"})
        self._pending.clear()
        if self._in_step:
            out.append({"type": "finish-step"})
            self._in_step = False
        return out

    def finish(self, finish_reason: str, metadata: dict[str, Any], output: Any = None,
               has_output: bool = False) -> list[dict[str, Any]]:
        out = self._end_step()
        if has_output:
            out.append({"type": "data-output", "data": output})
        chunk: dict[str, Any] = {"type": "finish"}
        if self.finish_reason:
            chunk["finishReason"] = _FINISH.get(finish_reason, "other")
        chunk["messageMetadata"] = metadata
        out.append(chunk)
        return out

    def error(self, text: str, metadata: dict[str, Any]) -> list[dict[str, Any]]:
        out = self._close()
        out.append({"type": "error", "errorText": text})
        out.extend(self.finish("error", metadata))
        return out


class UIMessageBuilder:
    """Folds UI chunks into one assistant UIMessage, as the client's `readUIMessageStream` does."""

    def __init__(self) -> None:
        self.id = ""
        self.metadata: dict[str, Any] = {}
        self.parts: list[dict[str, Any]] = []
        self.finish_reason: str | None = None
        self._open: dict[str, dict[str, Any]] = {}
        self._tools: dict[str, dict[str, Any]] = {}

    def add(self, chunks: list[dict[str, Any]]) -> None:
        for chunk in chunks:
            self._add(chunk)

    def _tool(self, chunk: dict[str, Any]) -> dict[str, Any]:
        part = self._tools.get(chunk["toolCallId"])
        if part is None:
            part = {"type": f"tool-{chunk.get('toolName', '')}", "toolCallId": chunk["toolCallId"],
                    "state": "input-streaming", "input": None}
            self._tools[chunk["toolCallId"]] = part
            self.parts.append(part)
        return part

    def _add(self, chunk: dict[str, Any]) -> None:
        kind = chunk["type"]
        if kind in ("start", "finish", "message-metadata"):
            self.id = chunk.get("messageId") or self.id
            self.metadata.update(chunk.get("messageMetadata") or {})
            self.finish_reason = chunk.get("finishReason", self.finish_reason)
        elif kind == "start-step":
            self.parts.append({"type": "step-start"})
        elif kind in ("text-start", "reasoning-start"):
            part = {"type": kind.split("-")[0], "text": "", "state": "streaming"}
            self._open[chunk["id"]] = part
            self.parts.append(part)
        elif kind in ("text-delta", "reasoning-delta"):
            self._open[chunk["id"]]["text"] += chunk["delta"]
        elif kind in ("text-end", "reasoning-end"):
            self._open.pop(chunk["id"])["state"] = "done"
        elif kind == "tool-input-start":
            self._tool(chunk)
        elif kind == "tool-input-available":
            part = self._tool(chunk)
            part.update(state="input-available", input=chunk["input"])
        elif kind == "tool-output-available":
            self._tool(chunk).update(state="output-available", output=chunk["output"])
        elif kind == "tool-output-error":
            self._tool(chunk).update(state="output-error", errorText=chunk["errorText"])
        elif kind.startswith("data-"):
            self.parts.append({"type": kind, "data": chunk.get("data")})

    def text(self) -> str:
        return "\n\n".join(p["text"] for p in self.parts if p["type"] == "text" and p["text"])
