"""HTTP tools from config and redirects: not followed by default; when followed, the configured
(secret) headers never leave the configured origin and every other hop passes the SSRF guard.

Three loopback servers stand in for the network: `home` (127.0.0.1, the tool's configured endpoint:
trusted, although loopback), `other` (127.0.0.2, another origin the tests mark reachable with
`allow_private: [127.0.0.2/32]`) and `inner` (127.0.0.1 on another port: a private address nobody
allowed). Every socket connect is spied on (`connects`, host and port) and anything outside
127.0.0.0/8 is refused by the spy itself, so "refused before connecting" is asserted, not assumed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field

import orjson
import pytest
from agent_kit import bodies, call, config, tool_results
from aiohttp import web
from aiohttp.test_utils import TestServer
from fakes.openai_upstream import Reply

TOKEN = "tok-secret-123"
# aiohttp itself drops `authorization` on a cross-origin redirect, but no other header: an API key is
# the kind of secret that used to leak
SECRETS = {"authorization": "Bearer ${ORDERS_TOKEN}", "x-api-key": "${ORDERS_TOKEN}"}
OTHER = "127.0.0.2"
REACHABLE = {"http_fetch": {"allow_private": [f"{OTHER}/32"]}}
ORDER = {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}


@dataclass
class Seen:
    method: str
    path: str
    secrets: tuple[str, ...]  # which of the configured secret headers arrived
    body: str


@dataclass
class Site:
    """A loopback server answering `redirects[path]` with (status, location) and JSON everywhere else."""

    name: str
    redirects: dict[str, tuple[int, str]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    base: str = ""
    port: int = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = (await request.read()).decode()
        secrets = tuple(name for name in SECRETS if name in request.headers)
        self.seen.append(Seen(request.method, request.path, secrets, body))
        if request.path in self.redirects:
            status, location = self.redirects[request.path]
            return web.Response(status=status, headers={"location": location})
        return web.json_response({"site": self.name, "path": request.path})


@pytest.fixture
async def sites():
    servers: list[TestServer] = []

    async def start(name: str, host: str) -> Site:
        site = Site(name)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", site.handle)
        server = TestServer(app, host=host, port=0)
        await server.start_server()
        servers.append(server)
        site.base, site.port = f"http://{host}:{server.port}", server.port
        return site

    yield {"home": await start("home", "127.0.0.1"), "other": await start("other", OTHER),
           "inner": await start("inner", "127.0.0.1")}
    for server in servers:
        await server.close()


@pytest.fixture
async def connects(monkeypatch):
    """(host, port) of every connect this test's sockets attempted; only 127.0.0.0/8 is let through."""
    loop = asyncio.get_running_loop()
    seen: list[tuple[str, int]] = []
    real = loop.sock_connect

    async def spy(sock, address):
        seen.append((address[0], address[1]))
        if not ipaddress.ip_address(address[0]).is_loopback:
            raise OSError("test spy: refusing a connection outside the loopback network")
        return await real(sock, address)

    monkeypatch.setattr(loop, "sock_connect", spy)
    return seen


def tool(name: str, url: str, **extra) -> dict:
    return {"name": name, "url": url, "parameters": ORDER, "headers": SECRETS, **extra}


async def run_tools(fake_openai, make_router, raw, monkeypatch, tools: list[dict],
                    settings: dict | None = None) -> dict:
    """One agent step calling each tool once (`id` = the tool's name); returns name -> tool result."""
    monkeypatch.setenv("ORDERS_TOKEN", TOKEN)
    fake_openai.queue("up1", Reply(text=None, tool_calls=[call(t["name"], id=t["name"]) for t in tools]),
                      Reply(text="done"))
    base = await make_router(config(fake_openai, agents={"shop": {"model": "smart", "tools": tools}},
                                    settings=settings))
    resp = await raw.post(f"{base}/v1/chat/completions", json={"model": "agent:shop", "messages": [
        {"role": "user", "content": "check the orders"}]})
    assert resp.status == 200, resp.body
    assert TOKEN not in resp.body.decode()
    results = tool_results(bodies(fake_openai)[1])
    assert TOKEN not in orjson.dumps(results).decode()
    return {t["name"]: result for t, result in zip(tools, results, strict=True)}


async def test_redirects_are_not_followed_by_default(fake_openai, make_router, raw, monkeypatch, sites,
                                                     connects) -> None:
    home, other = sites["home"], sites["other"]
    home.redirects = {"/away": (307, f"{other.base}/collect?token=leaked-in-query"), "/same": (302, "/orders")}
    results = await run_tools(fake_openai, make_router, raw, monkeypatch,
                              [tool("away", f"{home.base}/away"), tool("same", f"{home.base}/same")])
    assert other.seen == [] and (OTHER, other.port) not in connects  # the other host got nothing at all
    assert sorted(s.path for s in home.seen) == ["/away", "/same"]  # and never /orders
    away, same = results["away"]["error"], results["same"]["error"]
    assert f"redirected (HTTP 307) to {other.base}/collect" in away and "does not follow redirects" in away
    assert "leaked-in-query" not in away
    assert f"redirected (HTTP 302) to {home.base}/orders" in same


async def test_followed_redirects_drop_the_secret_headers_off_the_configured_origin(
        fake_openai, make_router, raw, monkeypatch, sites, connects) -> None:
    home, other = sites["home"], sites["other"]
    home.redirects = {"/same": (307, "/orders"), "/away": (307, f"{other.base}/orders?x=1"),
                      "/boomerang": (307, f"{other.base}/back"), "/see-other": (303, f"{other.base}/status")}
    other.redirects = {"/back": (308, f"{home.base}/orders")}
    tools = [tool(name, f"{home.base}/{path}", follow_redirects=True)
             for name, path in (("same", "same"), ("away", "away"), ("boomerang", "boomerang"),
                                ("see_other", "see-other"))]
    results = await run_tools(fake_openai, make_router, raw, monkeypatch, tools, REACHABLE)
    assert results == {"same": {"site": "home", "path": "/orders"}, "away": {"site": "other", "path": "/orders"},
                       "boomerang": {"site": "home", "path": "/orders"},
                       "see_other": {"site": "other", "path": "/status"}}
    both = tuple(SECRETS)
    home_orders = {orjson.loads(s.body)["id"]: s.secrets for s in home.seen if s.path == "/orders"}
    # same origin (loopback, yet trusted: it is the configured one) keeps the header; a chain that left
    # the origin does not get it back when it returns
    assert home_orders == {"same": both, "boomerang": ()}
    assert all(s.secrets == both for s in home.seen if s.path != "/orders")  # the configured URLs
    assert sorted((s.method, s.path, s.secrets, s.body) for s in other.seen) == [
        ("GET", "/status", (), ""),  # 303: a GET without the body
        ("POST", "/back", (), '{"id":"boomerang"}'),  # 307/308: the same request, minus the configured headers
        ("POST", "/orders", (), '{"id":"away"}')]


async def test_followed_redirects_to_private_addresses_are_refused_before_connecting(
        fake_openai, make_router, raw, monkeypatch, sites, connects) -> None:
    home, other, inner = sites["home"], sites["other"], sites["inner"]
    home.redirects = {"/loopback": (307, f"{inner.base}/orders"), "/by-name": (307, f"http://localhost:{inner.port}/"),
                      "/metadata": (302, "http://169.254.169.254/latest/meta-data/"),
                      "/cgnat": (302, "http://100.64.0.1/"), "/mapped": (302, "http://[::ffff:10.0.0.1]/"),
                      "/file": (302, "file:///etc/passwd"),
                      "/credentials": (307, f"http://user:pw@{OTHER}:{other.port}/orders")}
    names = [path.strip("/") for path in home.redirects]
    tools = [tool(name.replace("-", "_"), f"{home.base}/{name}", follow_redirects=True) for name in names]
    results = await run_tools(fake_openai, make_router, raw, monkeypatch, tools, REACHABLE)
    for name, result in results.items():
        assert "refused the redirect" in result.get("error", ""), (name, result)
    for name in ("loopback", "by_name", "metadata", "cgnat", "mapped"):
        assert "is not public" in results[name]["error"], results[name]
    assert f"refused the redirect to {inner.base}/orders" in results["loopback"]["error"]
    assert "scheme 'file'" in results["file"]["error"] and "credentials" in results["credentials"]["error"]
    assert "pw" not in results["credentials"]["error"]
    assert inner.seen == [] and other.seen == []
    assert all(port not in (inner.port, other.port) for _, port in connects), connects  # nothing even tried
    assert all(host.startswith("127.") for host, _ in connects), connects


async def test_redirect_loops_and_long_chains_end_in_a_tool_error(fake_openai, make_router, raw, monkeypatch,
                                                                  sites, connects) -> None:
    home, other = sites["home"], sites["other"]
    home.redirects = {"/loop": (307, "/loop"), "/ping": (307, f"{other.base}/pong"),
                      "/hop3": (302, "/hop2"), "/hop2": (302, "/hop1"), "/hop1": (302, "/orders")}
    other.redirects = {"/pong": (307, f"{home.base}/ping")}
    tools = [tool("loop", f"{home.base}/loop", follow_redirects=True, max_redirects=2),
             tool("ping", f"{home.base}/ping", follow_redirects=True),
             tool("three", f"{home.base}/hop3", follow_redirects=True, max_redirects=3)]
    results = await run_tools(fake_openai, make_router, raw, monkeypatch, tools, REACHABLE)
    assert "more than 2 redirects" in results["loop"]["error"]
    assert "more than 3 redirects" in results["ping"]["error"]
    assert results["three"] == {"site": "home", "path": "/orders"}  # exactly max_redirects hops is fine
    assert sum(s.path == "/loop" for s in home.seen) == 3  # the configured request and two redirects
    assert sum(s.path == "/ping" for s in home.seen) + sum(s.path == "/pong" for s in other.seen) == 4


def _resolver(table: dict[str, list[str]]):
    async def resolve(host: str, port: int, family: int):
        return [{"hostname": host, "host": ip, "port": port, "family": socket.AF_INET6 if ":" in ip else socket.AF_INET,
                 "proto": 0, "flags": 0} for ip in table[host]]

    return resolve


async def test_a_redirect_target_is_checked_after_dns(sites, connects, monkeypatch) -> None:
    """A host name is resolved once, checked, and connected to at exactly the checked address."""
    from router.agents.tools import AddressGuard, HttpTools, ToolError
    from router.config.agents import AgentHttpToolConfig

    home, other = sites["home"], sites["other"]
    home.redirects = {"/named": (307, f"http://orders.example:{other.port}/orders"),
                      "/metadata": (307, "http://metadata.example/latest/"),
                      "/rebind": (307, f"http://mixed.example:{other.port}/orders")}
    dns = {"orders.example": [OTHER], "metadata.example": ["169.254.169.254"],
           "mixed.example": [OTHER, "10.0.0.1"]}
    tools = HttpTools(AddressGuard(["*"], [f"{OTHER}/32"]), _resolver(dns))
    try:
        def spec(path: str) -> AgentHttpToolConfig:
            return AgentHttpToolConfig(name="t", url=f"{home.base}/{path}", headers={"x-api-key": "s"},
                                       follow_redirects=True)

        assert await tools.call(spec("named"), {"id": "1"}) == {"site": "other", "path": "/orders"}
        for path in ("metadata", "rebind"):
            with pytest.raises(ToolError, match=r"refused the redirect .*is not public"):
                await tools.call(spec(path), {"id": "2"})
    finally:
        await tools.close()
    assert [(s.path, s.secrets) for s in other.seen] == [("/orders", ())]
    assert [host for host, _ in connects].count(OTHER) == 1 and "169.254.169.254" not in dict(connects)
