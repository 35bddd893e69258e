"""Server-side tools: safe arithmetic, time, argument validation, HTTP tools from config, and the
`http_fetch` SSRF guard.

SSRF cases never send traffic to a non-loopback address: every socket connect of the test is
spied on (`connects`) and anything but 127.0.0.1 is refused by the spy itself, and the tests assert
the guard refused *before* any connect was attempted.
"""

from __future__ import annotations

import asyncio
import socket

import orjson
import pytest
from agent_kit import bodies, call, check_ui_chunks, config, tool_results, ui_user
from aiohttp import web
from aiohttp.test_utils import TestServer
from fakes.openai_upstream import Reply

from router.agents.tools import HttpFetcher, Tool, ToolError, calculate, execute
from router.agents.tools.builtin import current_time
from router.config.agents import HttpFetchConfig

PATH = "/agent/v1/chat/completions"


@pytest.mark.parametrize(("expression", "result"), [
    ("2*(3+4)", 14), ("2**10", 1024), ("2^3", 8), ("-7 // 2", -4), ("7 % 3", 1), ("sqrt(16)", 4.0),
    ("max(1, 5, 3)", 5), ("round(pi, 2)", 3.14), ("1/4", 0.25)])
def test_calculator(expression: str, result: float) -> None:
    assert calculate(expression) == result


@pytest.mark.parametrize("expression", [
    "10/0", "__import__('os').system('id')", "open('/etc/passwd')", "9**9**9", "10**5000", "1e308*10", "x + 1",
    "(lambda: 1)()", "[1, 2]", "'a' * 3", "1 if 1 else 2", "2" * 600, "sqrt(-1)", "(-8) ** 0.5"])
def test_calculator_refuses_what_is_not_safe_arithmetic(expression: str) -> None:
    with pytest.raises(ToolError):
        calculate(expression)


async def test_execute_turns_every_failure_into_a_result() -> None:
    async def boom(args):
        raise RuntimeError("secret internals")

    async def slow(args):
        await asyncio.sleep(5)

    async def big(args):
        return "x" * 5000

    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    tools = {name: Tool(name, "", schema, fn) for name, fn in (("boom", boom), ("slow", slow), ("big", big))}
    cases = [(None, "ghost", "{}", "unknown tool 'ghost'"), (tools["boom"], "boom", "{not json", "not valid JSON"),
             (tools["boom"], "boom", "[1]", "must be a JSON object"),
             (tools["boom"], "boom", '{"n": "1"}', "invalid arguments: n: '1' is not of type 'integer'"),
             (tools["boom"], "boom", '{"n": 1}', "the tool failed (RuntimeError)"),
             (tools["slow"], "slow", '{"n": 1}', "did not answer within 0.05s")]
    for tool, name, args, problem in cases:
        outcome = await execute(tool, name, args, 0.05, 1000)
        assert outcome.output is None and problem in outcome.error, outcome.error
        assert orjson.loads(outcome.content) == {"error": outcome.error}
        assert "secret" not in outcome.content
    outcome = await execute(tools["big"], "big", '{"n": 1}', 1.0, 1000)
    assert outcome.error is None and outcome.result_bytes == 5000 and "[truncated" in outcome.content
    now = await execute(current_time(), "current_time", '{"timezone": "Europe/Paris"}', 1.0, 1000)
    assert now.output["timezone"] == "Europe/Paris" and now.output["iso"].endswith(("+01:00", "+02:00"))
    mars = await execute(current_time(), "current_time", '{"timezone": "Mars/Base"}', 1.0, 1000)
    assert "unknown time zone" in mars.error


# -- http_fetch -------------------------------------------------------------------------------------
@pytest.fixture
async def site():
    """A loopback web server: pages, redirects (to anywhere, without following them itself) and a slow page."""
    async def page(request):
        return web.Response(text="hello from the allowed site")

    async def big(request):
        return web.Response(text="y" * 10_000)

    async def redirect(request):
        raise web.HTTPFound(request.query["to"])

    async def slow(request):
        await asyncio.sleep(2)
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/page", page)
    app.router.add_get("/big", big)
    app.router.add_get("/to", redirect)
    app.router.add_get("/slow", slow)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}", server.port
    await server.close()


@pytest.fixture
async def connects(monkeypatch):
    """Every address a socket of this test tried to connect to; only 127.0.0.1 is let through."""
    loop = asyncio.get_running_loop()
    seen: list[str] = []
    real = loop.sock_connect

    async def spy(sock, address):
        seen.append(address[0])
        if address[0] != "127.0.0.1":
            raise OSError("test spy: refusing a connection to a non-loopback address")
        return await real(sock, address)

    monkeypatch.setattr(loop, "sock_connect", spy)
    return seen


def _resolver(table: dict[str, list[str]]):
    async def resolve(host: str, port: int, family: int):
        return [{"hostname": host, "host": ip, "port": port, "family": socket.AF_INET6 if ":" in ip else socket.AF_INET,
                 "proto": 0, "flags": 0} for ip in table[host]]

    return resolve


DNS = {"internal.test": ["10.0.0.1"], "metadata.test": ["169.254.169.254"], "mixed.test": ["93.184.216.34", "10.0.0.1"],
       "loop.test": ["127.0.0.1"]}


async def test_http_fetch_refuses_private_addresses_before_connecting(site, connects) -> None:
    base, port = site
    fetcher = HttpFetcher(HttpFetchConfig(allowed_hosts=["*"], allow_private=["127.0.0.1/32"], max_bytes=2000,
                                          timeout_s=0.5), _resolver(DNS))
    try:
        ok = await fetcher.fetch(f"{base}/page")
        assert ok["status"] == 200 and ok["content"] == "hello from the allowed site" and not ok["truncated"]
        named = await fetcher.fetch(f"http://loop.test:{port}/page")  # resolved, checked, then connected
        assert named["status"] == 200
        cut = await fetcher.fetch(f"{base}/big")
        assert cut["truncated"] and len(cut["content"]) == 2000
        bad_targets = ["http://10.0.0.1/", "http://169.254.169.254/latest/meta-data/", "http://127.0.0.2:1/",
                       "http://[::1]/", "http://[::ffff:169.254.169.254]/", "http://0.0.0.0/", "http://100.64.0.1/",
                       "http://internal.test/", "http://metadata.test/", "http://mixed.test/"]
        for target in bad_targets:
            for url in (target, f"{base}/to?to={target}"):  # directly, and as a redirect from the allowed site
                with pytest.raises(ToolError, match="refused"):
                    await fetcher.fetch(url)
        for url in ("file:///etc/passwd", "gopher://127.0.0.1/", f"http://user:pw@127.0.0.1:{port}/page"):
            with pytest.raises(ToolError, match="refused"):
                await fetcher.fetch(url)
        with pytest.raises(ToolError, match="no answer"):
            await fetcher.fetch(f"{base}/slow")
    finally:
        await fetcher.close()
    assert connects and set(connects) == {"127.0.0.1"}, connects


async def test_http_fetch_allow_list(site, connects) -> None:
    base, _ = site
    closed = HttpFetcher(HttpFetchConfig())  # the default allows no host at all
    only_docs = HttpFetcher(HttpFetchConfig(allowed_hosts=["*.example.org"]))
    try:
        with pytest.raises(ToolError, match="not in the allowed hosts"):
            await closed.fetch(f"{base}/page")
        with pytest.raises(ToolError, match="not in the allowed hosts"):
            await only_docs.fetch(f"{base}/page")
        with pytest.raises(ToolError, match="not in the allowed hosts"):
            await only_docs.fetch("http://example.org.evil.test/")
    finally:
        await closed.close()
        await only_docs.close()
    assert connects == []


async def test_an_agent_sees_the_refusal_as_a_tool_error(fake_openai, make_router, raw, connects) -> None:
    agents = {"web": {"model": "smart", "tools": ["http_fetch"]}}
    fake_openai.queue("up1", Reply(text=None, tool_calls=[call("http_fetch", url="http://169.254.169.254/latest/")]),
                      Reply(text="I cannot reach that."))
    base = await make_router(config(fake_openai, agents=agents, settings={"http_fetch": {"allowed_hosts": ["*"]}}))
    resp = await raw.post(base + PATH, json={"agentId": "web", "messages": [ui_user("fetch it")], "stream": True})
    errors = [c for c in check_ui_chunks(resp.events) if c["type"] == "tool-output-error"]
    assert len(errors) == 1 and "not public" in errors[0]["errorText"]
    assert "not public" in tool_results(bodies(fake_openai)[1])[0]["error"]
    assert all(address == "127.0.0.1" for address in connects)


# -- HTTP tools from config -------------------------------------------------------------------------
async def test_http_tools_from_config(fake_openai, make_router, raw, monkeypatch) -> None:
    seen: list[tuple[dict, str]] = []

    async def orders(request):
        body = await request.json()
        seen.append((body, request.headers.get("authorization", "")))
        if body["id"] == "broken":
            return web.json_response({"detail": "database down"}, status=500)
        return web.json_response({"id": body["id"], "status": "shipped"})

    app = web.Application()
    app.router.add_post("/orders", orders)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    monkeypatch.setenv("ORDERS_TOKEN", "tok-123")
    tool = {"name": "lookup_order", "description": "Order status", "url": f"http://127.0.0.1:{server.port}/orders",
            "headers": {"authorization": "Bearer ${ORDERS_TOKEN}"},
            "parameters": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}}
    agents = {"shop": {"model": "smart", "tools": [tool]}}
    fake_openai.queue("up1", Reply(text=None, tool_calls=[call("lookup_order", id="A1"), call("lookup_order", id=5),
                                                          call("lookup_order", id="broken")]),
                      Reply(text="A1 has shipped."))
    try:
        base = await make_router(config(fake_openai, agents=agents))
        resp = await raw.post(f"{base}/v1/chat/completions", json={"model": "agent:shop", "messages": [
            {"role": "user", "content": "Where is A1?"}]})
    finally:
        await server.close()
    assert resp.status == 200, resp.body
    assert seen == [({"id": "A1"}, "Bearer tok-123"), ({"id": "broken"}, "Bearer tok-123")]  # id=5 never sent
    shipped, invalid, broken = tool_results(bodies(fake_openai)[1])
    assert shipped == {"id": "A1", "status": "shipped"}
    assert invalid == {"error": "invalid arguments: id: 5 is not of type 'string'"}
    assert "HTTP 500" in broken["error"] and "database down" in broken["error"]
    assert "tok-123" not in resp.body.decode()
