"""`POST /mcp`: the gateway's tools for MCP clients, checked with the official `mcp` SDK's client.

The router re-exports the tools of a real MCP server (the SDK's own MCPServer, on loopback) beside
its built-ins, behind virtual keys: what a key may not use is neither listed nor callable.
"""

from __future__ import annotations

import httpx2
import mcp_types
import orjson
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from support.mcp_server import McpServerProcess

FULL = "sk-client-full-tools"
NARROW = "sk-client-narrow-tools"
NARROW_TOOLS = ["calculator", "docs-lookup_order"]
BUILTINS = {"calculator", "current_time", "http_fetch"}


def config(url: str, **mcp: object) -> dict:
    return {"providers": {"demo": {"type": "mock", "models": ["echo"]}},
            "auth": {"keys": [{"name": "full", "key": FULL},
                              {"name": "narrow", "key": NARROW, "tools": NARROW_TOOLS}]},
            "mcp": {"servers": {"docs": {"url": url, "blocked_tools": ["secret_*"]}}, **mcp}}


@pytest.fixture(scope="module")
def docs_server():
    with McpServerProcess() as server:
        yield server


@pytest.fixture
async def router(make_router, docs_server) -> str:
    return await make_router(config(docs_server.url))


def client(router: str, key: str | None, mode: str = "legacy") -> Client:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    http = httpx2.AsyncClient(headers=headers, timeout=10.0)
    return Client(streamable_http_client(f"{router}/mcp", http_client=http), mode=mode)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_initialize_and_the_key_decides_what_is_listed(router, mode) -> None:
    async with client(router, FULL, mode) as full:
        assert full.protocol_version == "2025-11-25"  # "auto" probed server/discover and fell back
        assert full.server_info.name == "switchboard"
        assert full.server_capabilities.tools is not None
        listed = {t.name: t for t in (await full.list_tools()).tools}
    assert set(listed) >= BUILTINS
    docs = {n for n in listed if n.startswith("docs-")}
    assert {"docs-lookup_order", "docs-add", "docs-fail", "docs-grow"} <= docs
    assert "docs-secret_admin_tool" not in docs  # blocked on the server's config
    assert listed["docs-lookup_order"].input_schema["properties"]["order_id"]["type"] == "string"
    assert listed["calculator"].input_schema["required"] == ["expression"]
    async with client(router, NARROW, mode) as narrow:
        assert sorted(t.name for t in (await narrow.list_tools()).tools) == NARROW_TOOLS


async def test_calls_of_a_builtin_and_of_a_reexported_tool(router) -> None:
    async with client(router, FULL) as mcp:
        calc = await mcp.call_tool("calculator", {"expression": "6*7"})
        assert not calc.is_error
        assert calc.structured_content == {"expression": "6*7", "result": 42}
        assert orjson.loads(calc.content[0].text) == {"expression": "6*7", "result": 42}
        order = await mcp.call_tool("docs-lookup_order", {"order_id": "A7"})
        assert not order.is_error  # the MCP server's own result, passed on whole
        assert order.structured_content == {"order_id": "A7", "status": "shipped", "items": 3}
        failed = await mcp.call_tool("docs-fail", {"message": "boom"})
        assert failed.is_error and "boom" in failed.content[0].text
        bad = await mcp.call_tool("calculator", {"expression": 7})
        assert bad.is_error and "invalid arguments" in bad.content[0].text
        div = await mcp.call_tool("calculator", {"expression": "1/0"})
        assert div.is_error and isinstance(div.content[0], mcp_types.TextContent)


async def test_a_tool_outside_the_allow_list_cannot_be_called(router) -> None:
    async with client(router, NARROW) as mcp:
        ok = await mcp.call_tool("docs-lookup_order", {"order_id": "A1"})
        assert not ok.is_error
        for name in ("docs-add", "current_time", "no-such-tool"):
            with pytest.raises(MCPError) as denied:
                await mcp.call_tool(name, {"a": 1, "b": 2})
            assert denied.value.code == -32602 and f"unknown tool '{name}'" in str(denied.value)


@pytest.mark.parametrize("key", [None, "sk-not-a-key"])
async def test_a_bad_key_is_refused(router, raw, key) -> None:
    with pytest.raises(BaseException):  # noqa: B017 - the SDK raises an exception group from its task group
        async with client(router, key) as mcp:
            await mcp.list_tools()
    headers = {"authorization": f"Bearer {key}"} if key else {}
    resp = await raw.post(f"{router}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                          headers=headers)
    assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
    body = resp.json()
    assert body["jsonrpc"] == "2.0" and body["id"] is None and body["error"]["code"] == -32001
    assert "sk-not-a-key" not in resp.body.decode()


async def test_the_wire_without_an_sdk(router, raw) -> None:
    url, auth = f"{router}/mcp", {"authorization": f"Bearer {FULL}"}
    init = await raw.post(url, headers=auth, json={"jsonrpc": "2.0", "id": "a", "method": "initialize", "params": {
        "protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "curl", "version": "1"}}})
    assert init.status == 200 and init.json()["result"]["protocolVersion"] == "2025-03-26"
    assert "mcp-session-id" not in {k.lower() for k in init.headers}  # stateless: no session to keep
    note = await raw.post(url, headers=auth, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert note.status == 202 and note.body == b""
    batch = await raw.post(url, headers=auth, json=[
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 9}},
        {"jsonrpc": "2.0", "id": 2, "method": "resources/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "calculator", "arguments": "2+2"}},
        {"jsonrpc": "1.0", "id": 4, "method": "ping"}])
    assert batch.status == 400  # one message was not JSON-RPC 2.0; every other one is still answered
    answers = {a["id"]: a for a in batch.json()}
    assert answers[1]["result"] == {}
    assert answers[2]["error"]["code"] == -32601
    assert answers[3]["error"]["code"] == -32602 and "'arguments' must be an object" in answers[3]["error"]["message"]
    assert answers[4]["error"]["code"] == -32600
    broken = await raw.post(url, headers=auth, data=b'{"jsonrpc": "2.0", "id": 1,')
    assert broken.status == 400 and broken.json()["error"]["code"] == -32700
    old = await raw.post(url, headers={**auth, "mcp-protocol-version": "1999-01-01"},
                         json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert old.status == 400 and "unsupported MCP protocol version" in old.json()["error"]["message"]
    form = await raw.post(url, headers={**auth, "content-type": "text/plain"}, data=b"{}")
    assert form.status == 415 and form.json()["jsonrpc"] == "2.0"
    for method in ("GET", "DELETE"):
        resp = await raw.request(method, url, headers=auth)
        assert resp.status == 405 and resp.json()["error"]["code"] == -32600


async def test_tool_calls_are_metered_and_logged(router, raw, access_lines) -> None:
    async with client(router, FULL) as mcp:
        await mcp.call_tool("docs-add", {"a": 2, "b": 3})
        await mcp.call_tool("docs-fail", {"message": "boom"})
    logged = await access_lines.wait(4)
    calls = [c for line in logged for c in line.get("tool_calls", [])]
    assert [c["name"] for c in calls] == ["docs-add", "docs-fail"]
    assert calls[0]["error"] is None and "boom" in calls[1]["error"] and calls[0]["latency_ms"] > 0
    assert all(line["key"] == "full" for line in logged if line.get("tool_calls"))
    text = (await raw.request("GET", f"{router}/metrics")).body.decode()
    assert 'switchboard_tool_calls_total{outcome="ok",tool="docs-add",via="mcp"}' in text
    assert 'switchboard_tool_calls_total{outcome="error",tool="docs-fail",via="mcp"}' in text
    assert 'switchboard_tool_duration_seconds_count{tool="docs-add",via="mcp"}' in text
    assert 'switchboard_requests_total{model="none",provider="none",route="mcp",status_class="2xx"}' in text


async def test_switched_off(make_router, docs_server, raw) -> None:
    router = await make_router(config(docs_server.url, serve=False))
    resp = await raw.post(f"{router}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                          headers={"authorization": f"Bearer {FULL}"})
    assert resp.status == 404 and resp.json()["error"]["code"] == -32600
