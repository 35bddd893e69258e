"""`POST /mcp`: the gateway's agent tools for MCP clients (Claude Code, Cursor, the `mcp` SDK).

What is offered is the tool box's catalog: the built-ins, every HTTP tool of the config and every
configured MCP server's tools (re-exported as `<server>-<tool>`), less what the caller's virtual key
may not use (`auth.keys[].tools`): a tool outside the allow-list is neither listed nor callable, and
calling it reads exactly like calling a tool that does not exist. Calls run as in an agent's loop
(arguments checked against the schema, the same timeout and result cap, every failure a result
with `isError`), are counted per tool in the metrics and listed in the request's access-log line.
A re-exported MCP tool's result is passed on whole (its content blocks, its structured content).

Errors the gateway answers itself (401, 403, 404 when switched off, 413, 415) keep their HTTP status
and come as a JSON-RPC error object, which is what MCP clients read.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from aiohttp import web

from .. import __version__
from ..auth import VirtualKey
from ..edge import read_body, require_json
from ..errors import ERROR_SHAPE, ApiError
from ..exchange import EXCHANGE
from ..metrics import observe_tool
from ..pipeline import PIPELINE
from . import mcp_protocol as rpc
from .service import AgentService, service
from .tools import Tool, ToolError, execute

PATH = "/mcp"
_RPC_CODES = {401: rpc.UNAUTHORIZED, 403: rpc.FORBIDDEN}


def rpc_error_shape(status: int, error: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    """An error the gateway answers on /mcp: its HTTP status, a JSON-RPC error body."""
    code = _RPC_CODES.get(status, rpc.PARSE_ERROR if error.get("code") == "invalid_json" else rpc.INVALID_REQUEST)
    return web.Response(status=status, body=orjson.dumps(rpc.error(None, code, error.get("message") or "error")),
                        content_type="application/json", headers=headers)


async def mcp_post(request: web.Request) -> web.Response:
    request[ERROR_SHAPE] = rpc_error_shape
    agents = service(request)
    if not agents.mcp_serve:
        raise ApiError(404, "/mcp is disabled on this router (mcp.serve)", code="endpoint_disabled")
    pipeline = request.app[PIPELINE]
    req = await pipeline.open(request)
    try:
        version = request.headers.get(rpc.VERSION_HEADER)
        if version is not None and version not in rpc.SUPPORTED_VERSIONS:
            raise ApiError(400, f"unsupported MCP protocol version '{version[:40]}' (supported: "
                                f"{', '.join(rpc.SUPPORTED_VERSIONS)})", code="unsupported_protocol_version")
        require_json(request)
        raw = await read_body(request, pipeline.max_body_bytes, pipeline.body_timeout_s)
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return web.json_response(rpc.error(None, rpc.PARSE_ERROR, "the body is not valid JSON"), status=400,
                                     dumps=_dumps)
        session = _Session(request, agents, req.key)
        if isinstance(payload, list):  # a batch (2025-03-26)
            if not payload:
                return web.json_response(rpc.error(None, rpc.INVALID_REQUEST, "an empty batch"), status=400,
                                         dumps=_dumps)
            answers = [a for a in await asyncio.gather(*(session.handle(m) for m in payload)) if a is not None]
            return _answer(answers or None, session.malformed)
        return _answer(await session.handle(payload), session.malformed)
    finally:
        pipeline.close(req)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _answer(body: Any, malformed: bool) -> web.Response:
    """202 when the POST held only notifications or responses, else the answer(s) as JSON; 400 when a
    message was not JSON-RPC at all (the transport says so, and the body still answers every message)."""
    if body is None:
        return web.Response(status=400 if malformed else 202)
    return web.Response(status=400 if malformed else 200, body=orjson.dumps(body), content_type="application/json")


class _Session:
    """One POST's messages, answered for one caller (its key decides which tools exist)."""

    def __init__(self, request: web.Request, agents: AgentService, key: VirtualKey | None) -> None:
        self.request = request
        self.agents = agents
        self.key = key
        self.settings = agents.settings
        self.malformed = False

    async def handle(self, raw: Any) -> dict[str, Any] | None:
        ident = raw.get("id") if isinstance(raw, dict) else None
        try:
            try:
                message = rpc.parse(raw)
            except rpc.RpcError:
                self.malformed = True
                raise
            if message is None or not message.is_request:
                return None  # notifications (initialized, cancelled) and responses need no answer
            return rpc.reply(message.id, await self.dispatch(message))
        except rpc.RpcError as exc:
            return rpc.error(ident if isinstance(ident, str | int) and not isinstance(ident, bool) else None,
                             exc.code, exc.message)

    async def dispatch(self, message: rpc.Message) -> dict[str, Any]:
        method = message.method
        if method == "initialize":
            return rpc.negotiate(message.params, __version__)
        if method == "ping":
            return {}
        if method == "tools/list":
            return rpc.listing(self.agents.toolbox.catalog(self.key))
        if method == "tools/call":
            return await self.call(*rpc.call_params(message.params))
        raise rpc.RpcError(rpc.METHOD_NOT_FOUND, f"method '{method[:100]}' is not offered here")

    async def call(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        tool = self.agents.toolbox.catalog(self.key).get(name)
        if tool is None:
            raise rpc.RpcError(rpc.INVALID_PARAMS, f"unknown tool '{name[:100]}'")
        started = time.perf_counter()
        if tool.relay is not None:
            result = await self._relay(tool, arguments)
        else:
            settings = self.settings
            outcome = await execute(tool, name, orjson.dumps(arguments).decode(), settings.tool_timeout_s,
                                    settings.max_tool_result_bytes)
            result = (rpc.text_result(outcome.error, error=True) if outcome.error is not None
                      else rpc.text_result(outcome.content, outcome.output))
        seconds = time.perf_counter() - started
        failed = bool(result.get("isError"))
        observe_tool(name, "mcp", failed, seconds)
        exchange = self.request.get(EXCHANGE)
        if exchange is not None:
            exchange.tool_calls.append({"name": name, "latency_ms": round(seconds * 1000.0, 3),
                                        "error": result["content"][0].get("text", "")[:300] if failed else None})
        return result

    async def _relay(self, tool: Tool, arguments: dict[str, Any]) -> dict[str, Any]:
        """A re-exported MCP tool: the server's own result, unless it failed, timed out or is too big."""
        assert tool.relay is not None
        limit = tool.timeout_s or self.settings.tool_timeout_s
        try:
            async with asyncio.timeout(limit):
                result = await tool.relay(arguments)
        except ToolError as exc:
            return rpc.text_result(str(exc) or "the tool failed", error=True)
        except TimeoutError:
            return rpc.text_result(f"the tool did not answer within {limit:g}s", error=True)
        size = len(orjson.dumps(result))
        cap = self.settings.max_tool_result_bytes
        if size > cap:
            return rpc.text_result(f"the tool's result is {size} bytes, more than this gateway passes on ({cap})",
                                   error=True)
        return result


def add_mcp_routes(app: web.Application) -> None:
    """POST /mcp; GET (a server-initiated stream) and DELETE (a session) are 405: we keep neither."""
    app.router.add_post(PATH, mcp_post)
