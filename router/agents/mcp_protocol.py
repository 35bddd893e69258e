"""The MCP server protocol of `/mcp`, apart from I/O: JSON-RPC messages in, results and errors out.

We speak the handshake era of the Model Context Protocol over Streamable HTTP (revisions 2024-11-05
to 2025-11-25), statelessly: every POST carries whole JSON-RPC messages and gets a JSON answer, no
session id is issued and no server-initiated stream is offered (GET is 405), which the transport
allows. A client that first probes the 2026-07-28 era (`server/discover`) gets "method not found"
and falls back to `initialize`, as the SDKs do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .tools import Tool

SUPPORTED_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
LATEST_VERSION = SUPPORTED_VERSIONS[-1]
VERSION_HEADER = "mcp-protocol-version"

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602
UNAUTHORIZED, FORBIDDEN = -32001, -32003  # server-defined: the HTTP status says the same


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Message:
    """One JSON-RPC message of a POST: a request (has an id) or a notification (has none)."""

    method: str
    params: dict[str, Any]
    id: Any = None
    is_request: bool = False


def parse(raw: Any) -> Message | None:
    """The message, None for a JSON-RPC response (a client answering us: we never ask), RpcError when malformed."""
    if not isinstance(raw, dict) or raw.get("jsonrpc") != "2.0":
        raise RpcError(INVALID_REQUEST, "not a JSON-RPC 2.0 message")
    if "method" not in raw:
        if "id" in raw and ("result" in raw or "error" in raw):
            return None
        raise RpcError(INVALID_REQUEST, "a JSON-RPC message needs 'method'")
    method, params = raw["method"], raw.get("params", {})
    if not isinstance(method, str):
        raise RpcError(INVALID_REQUEST, "'method' must be a string")
    if not isinstance(params, dict):
        raise RpcError(INVALID_PARAMS, "'params' must be an object")
    if "id" not in raw:
        return Message(method, params)
    ident = raw["id"]
    if isinstance(ident, bool) or not isinstance(ident, str | int) or ident is None:
        raise RpcError(INVALID_REQUEST, "'id' must be a string or an integer")
    return Message(method, params, ident, True)


def negotiate(params: dict[str, Any], server_version: str) -> dict[str, Any]:
    """The `initialize` result: the client's revision when we speak it, else our latest."""
    asked = params.get("protocolVersion")
    if not isinstance(asked, str):
        raise RpcError(INVALID_PARAMS, "'protocolVersion' must be a string")
    version = asked if asked in SUPPORTED_VERSIONS else LATEST_VERSION
    return {"protocolVersion": version, "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": {"name": "switchboard", "version": server_version},
            "instructions": "The gateway's tools. Each call runs on the gateway, under your key's tool allow-list."}


def listing(tools: dict[str, Tool]) -> dict[str, Any]:
    """`tools/list`: every tool at once (no pagination: a catalog is config-sized)."""
    return {"tools": [{"name": t.name, "description": t.description, "inputSchema": _input_schema(t.parameters)}
                      for t in tools.values()]}


def _input_schema(schema: dict[str, Any]) -> dict[str, Any]:
    return schema if schema.get("type") == "object" else {"type": "object", "properties": {}}


def call_params(params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(tool name, arguments) of `tools/call`."""
    name, arguments = params.get("name"), params.get("arguments")
    if not isinstance(name, str) or not name:
        raise RpcError(INVALID_PARAMS, "'name' must be a non-empty string")
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise RpcError(INVALID_PARAMS, "'arguments' must be an object")
    return name, arguments


def text_result(text: str, structured: Any = None, error: bool = False) -> dict[str, Any]:
    """A `CallToolResult` of one text block (and the structured value when the tool returned an object)."""
    result: dict[str, Any] = {"content": [{"type": "text", "text": text}], "isError": error}
    if isinstance(structured, dict) and not error:
        result["structuredContent"] = structured
    return result


def reply(ident: Any, result: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": ident, "result": result}


def error(ident: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": ident, "error": {"code": code, "message": message}}
