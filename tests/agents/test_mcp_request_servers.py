"""MCP servers a request names (an inline agent's `mcp_servers`): the SSRF guard, then a real server.

The guard is `http_fetch`'s: allow-listed hosts, public addresses only unless `allow_private`, the
URL checked before anything is sent and the connection made to exactly the addresses checked.
"""

from __future__ import annotations

import socket

import pytest
from agent_kit import MODEL, call, config, tool_results
from fakes.openai_upstream import CHAT, Reply
from support.mcp_server import McpServerProcess

from router.agents.tools.mcp_request import RequestServers, parse_servers
from router.config.mcp import RequestServersConfig
from router.errors import ApiError

PATH = "/agent/v1/chat/completions"


@pytest.fixture(scope="module")
def ext_server():
    with McpServerProcess() as server:
        yield server


def resolver(table: dict[str, list[str]]):
    async def resolve(host: str, port: int, family: int):
        return [{"hostname": host, "host": ip, "port": port, "family": socket.AF_INET, "proto": 0, "flags": 0}
                for ip in table[host]]

    return resolve


def inline(url: str, **server: object) -> dict:
    return {"agent": {"name": "scout", "model": f"up1/{MODEL}", "mcp_servers": [{"name": "ext", "url": url, **server}]},
            "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": "2 + 3?"}]}],
            "stream": False}


@pytest.mark.parametrize(("policy", "code"), [
    ({}, "request_mcp_disabled"),  # the default: requests name no servers
    ({"allowed_hosts": ["mcp.example.com"]}, "mcp_server_refused"),  # 127.0.0.1 is not an allowed host
    ({"allowed_hosts": ["127.0.0.1"]}, "mcp_server_refused"),  # allowed host, but loopback is not public
])
async def test_refused_before_anything_is_sent(make_router, fake_openai, raw, ext_server, policy, code) -> None:
    router = await make_router(config(fake_openai, mcp={"request_servers": policy}))
    resp = await raw.post(router + PATH, json=inline(ext_server.url))
    error = resp.json()["error"]  # the UI face's shape: the OpenAI error plus a top-level message
    assert resp.status == 400 and error["code"] == code, resp.body
    assert error["param"].startswith("agent.mcp_servers")
    assert not fake_openai.calls(endpoint=CHAT)


async def test_an_allowed_server_serves_the_inline_agent(make_router, fake_openai, raw, ext_server) -> None:
    router = await make_router(config(fake_openai, mcp={"request_servers": {
        "allowed_hosts": ["127.0.0.1"], "allow_private": ["127.0.0.0/8"]}}))
    fake_openai.queue("up1", Reply(text=None, tool_calls=[call("ext-add", a=2, b=3)]), Reply(text="It is 5."))
    resp = await raw.post(router + PATH, json=inline(ext_server.url, allowed_tools=["add", "lookup_order"]))
    assert resp.status == 200, resp.body
    first, second = (r.body for r in fake_openai.calls(endpoint=CHAT))
    assert sorted(t["function"]["name"] for t in first["tools"]) == ["ext-add", "ext-lookup_order"]
    assert tool_results(second) == [{"result": 5}]
    assert resp.json()["parts"][-1]["text"] == "It is 5."


def test_the_request_members_are_checked() -> None:
    policy = RequestServersConfig(allowed_hosts=["*"])
    for value, member in [("http://x", "agent.mcp_servers"), ([{"url": "ftp://x"}], "agent.mcp_servers[0].url"),
                          ([{"url": "http://x", "headers": {"a b": "1"}}], "agent.mcp_servers[0].headers"),
                          ([{"url": "http://x", "name": "a-b"}], "agent.mcp_servers[0].name"),
                          ([{"url": "http://x", "token": "1"}], "agent.mcp_servers[0]"),
                          ([{"url": "http://x"}] * 5, "agent.mcp_servers")]:
        with pytest.raises(ApiError) as bad:
            parse_servers(value, policy, "agent.mcp_servers")
        assert bad.value.status == 400 and bad.value.param == member, (value, bad.value.param)


async def test_connections_go_to_the_checked_address_only(ext_server) -> None:
    """`localhost` resolved by the guard's resolver: a private address it gives is refused; an address
    that is allowed but where nothing listens fails, though the system's DNS would have said 127.0.0.1."""
    policy = RequestServersConfig(allowed_hosts=["localhost"], allow_private=["127.0.0.0/8"])
    url = ext_server.url.replace("127.0.0.1", "localhost")
    (spec,) = parse_servers([{"url": url}], policy, "m")
    with pytest.raises(ApiError) as refused:
        await RequestServers(policy, resolver({"localhost": ["10.1.2.3"]})).open([spec], "m")
    assert refused.value.status == 400 and "10.1.2.3" in refused.value.message
    with pytest.raises(ApiError) as elsewhere:
        await RequestServers(policy, resolver({"localhost": ["127.0.0.2"]})).open([spec], "m")
    assert elsewhere.value.status == 502 and elsewhere.value.code == "mcp_server_unavailable"
    servers = await RequestServers(policy, resolver({"localhost": ["127.0.0.1"]})).open([spec], "m")
    try:
        assert "mcp0-add" in servers[0].tools()
        assert await servers[0].tools()["mcp0-add"].run({"a": 1, "b": 2}) == {"result": 3}
    finally:
        await servers[0].close()
