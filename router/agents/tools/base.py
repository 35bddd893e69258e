"""What every server-side tool shares: its OpenAI definition, argument validation and safe execution.

A tool never fails the request: bad JSON arguments, arguments that do not match the tool's JSON
Schema (checked with `jsonschema` before the tool runs), a timeout or an exception inside the tool
all become a tool result the model can read (`{"error": "..."}`) and, on the UI face, a
`tool-output-error` part.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from ...errors import where

log = logging.getLogger("switchboard")


class ToolError(Exception):
    """A failure the model should read (the message is shown to it verbatim)."""


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    run: Callable[[dict[str, Any]], Awaitable[Any]]
    timeout_s: float | None = None  # None: agent_settings.tool_timeout_s
    validate: bool = True  # check the arguments against `parameters` first (MCP servers check their own)
    # MCP tools: the server's whole `CallToolResult`, which /mcp passes on (content blocks, isError)
    relay: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]] | None = None

    def definition(self) -> dict[str, Any]:
        """The OpenAI function-tool definition sent to the model."""
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": self.parameters}}


@dataclass(slots=True)
class ToolOutcome:
    output: Any  # what the tool returned (None on error)
    error: str | None
    content: str  # what the model reads as the tool message
    latency_ms: float
    result_bytes: int


@functools.lru_cache(maxsize=512)
def _validator(schema_json: bytes) -> Draft202012Validator:
    schema = orjson.loads(schema_json)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def schema_problem(schema: Any, value: Any) -> str | None:
    """The first way `value` breaks `schema` (`path: message`), or None when it validates."""
    if not isinstance(schema, dict):
        return None
    try:
        validator = _validator(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS))
    except SchemaError as exc:
        return f"the tool's parameter schema is invalid: {exc.message}"
    error = next(iter(sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))), None)
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{where or '<root>'}: {error.message}"


def parse_arguments(raw: str | None) -> tuple[Any, str | None]:
    """(arguments, problem): the model's JSON argument string as an object."""
    if raw is None or not raw.strip():
        return {}, None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw, "the arguments are not valid JSON"
    if not isinstance(value, dict):
        return value, "the arguments must be a JSON object"
    return value, None


def _encode(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return str(value)


def _truncate(text: str, limit: int) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore") + f"… [truncated: {len(data)} bytes, showing {limit}]"


async def execute(tool: Tool | None, name: str, raw_args: str | None, timeout_s: float,
                  max_result_bytes: int) -> ToolOutcome:
    """Run one call; every failure is returned as an outcome with `error`, never raised."""
    t0 = time.perf_counter()
    args, problem = parse_arguments(raw_args)
    output: Any = None
    if tool is None:
        problem = f"unknown tool '{name}'"
    elif problem is None and tool.validate:
        problem = schema_problem(tool.parameters, args)
        if problem is not None:
            problem = f"invalid arguments: {problem}"
    if problem is None:
        assert tool is not None
        limit = tool.timeout_s or timeout_s
        try:
            async with asyncio.timeout(limit):
                output = await tool.run(args)
        except ToolError as exc:
            problem = str(exc) or "the tool failed"
        except TimeoutError:
            problem = f"the tool did not answer within {limit:g}s"
        except Exception as exc:  # a bug or an unexpected failure in a tool: the model is told, the run goes on
            log.warning("agent tool %s failed: %s", name, where(exc))
            problem = f"the tool failed ({type(exc).__name__})"
    latency_ms = round((time.perf_counter() - t0) * 1000.0, 3)
    if problem is not None:
        content = orjson.dumps({"error": problem}).decode()
        return ToolOutcome(None, problem, content, latency_ms, len(content))
    content = _encode(output)
    size = len(content.encode())
    return ToolOutcome(output, None, _truncate(content, max_result_bytes), latency_ms, size)
