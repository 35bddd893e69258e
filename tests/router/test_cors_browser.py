"""CORS as a browser enforces it (`server.cors`, router/cors.py): a real headless Chromium loads a page
from another local origin whose script calls the gateway with `fetch`.

Only a browser decides what a page may read, so the claims that matter are checked in one: a page
on an allowed origin reads both streams (the OpenAI chat stream and the AI SDK UI message stream)
as they arrive, and the response headers the gateway exposes; a page on any other origin cannot
read an answer, its JSON requests never get past the preflight, and the "simple" requests it may
send without one (text bodies) are refused with 415 before any model is called. The preflight and
header rules themselves are checked over plain HTTP at the end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import orjson
import pytest
from support.browser import PageServer, ensure_chromium, probe, run_page

from router.access_log import LOGGER
from router.config import ConfigError, parse_config

KEY = "sk-browser-cors-key"
ADMIN_TOKEN = "browser-admin-token"
CHAT = "/v1/chat/completions"
AGENT = "/agent/v1/chat/completions"
CHAT_PROMPT = "Streams reach the page across origins, chunk by chunk."
AGENT_PROMPT = "The agent stream reaches the page as UI message parts."
OTHER_ORIGIN = "https://app.example.com"
BROWSER_S = 20.0  # bound on one browser run (it takes about a second)
WAIT_S = 10.0


# -- fixtures ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chromium() -> str:
    """The Chromium binary, known to run pages here; the only reason these tests skip."""
    binary = ensure_chromium()
    if binary is None:
        pytest.skip("chromium is not installed and could not be installed "
                    "(Debian: apt-get install chromium, or run scripts/system-deps.sh as root)")
    if (why := probe(binary)) is not None:
        pytest.skip(f"chromium cannot start here: {why}")
    return binary


@pytest.fixture
async def pages() -> AsyncIterator[PageServer]:
    """The page server: a second local origin (its own loopback port), not the gateway's."""
    server = await PageServer().start()
    yield server
    await server.close()


class AccessLines(logging.Handler):
    """The gateway's access log lines: what requests actually reached it, and how it answered them."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(orjson.loads(record.getMessage()))

    async def settle(self, count: int, quiet_s: float = 0.3) -> list[dict[str, Any]]:
        """The lines once at least `count` arrived and no more came for `quiet_s` (the log is written
        off the event loop, a moment after each answer)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_S
        while len(self.lines) < count and loop.time() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(quiet_s)
        return list(self.lines)


@pytest.fixture
def access_lines() -> Iterator[AccessLines]:
    handler = AccessLines()
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def gateway_config(cors: dict[str, Any] | None, *, auth: bool = True,
                   providers: dict[str, Any] | None = None) -> dict[str, Any]:
    """The mock provider streaming in small timed parts (so a stream is really read piece by piece),
    an agent answering with it, `providers` besides, a client key when `auth`, and `server.cors`
    when given."""
    config: dict[str, Any] = {
        "providers": {"demo": {"type": "mock", "options": {"chunk_tokens": 2, "chunk_latency_ms": 15}},
                      **(providers or {})},
        "agents": {"main": {"model": "demo/echo", "instructions": "Repeat what the user says."}},
        "agent_settings": {"rate_limits": {"per_ip": None}},
    }
    if auth:
        config["auth"] = {"admin_token": ADMIN_TOKEN, "keys": [{"name": "web", "key": KEY}]}
    if cors is not None:
        config["server"] = {"cors": cors}
    return config


async def open_in_browser(chromium: str, pages: PageServer, name: str, script: str, **config: Any) -> Any:
    """Run `script` (defining `async function main()`) in a page on the page server's origin and
    return what it reported; a script that threw fails the test with the browser's words."""
    url = pages.add(name, script, **config)
    outcome = await run_page(chromium, pages, name, url, BROWSER_S)
    assert "ok" in outcome, f"the page failed: {outcome.get('error')}"
    return outcome["ok"]


# -- the browser: an allowed origin -----------------------------------------------------------------
ALLOWED_PAGE = """
async function main() {
  const headers = {"authorization": "Bearer " + CONFIG.key, "content-type": "application/json"};
  const chat = await fetch(CONFIG.gateway + "/v1/chat/completions", {method: "POST", headers, body: JSON.stringify(
    {model: "demo/echo", stream: true, messages: [{role: "user", content: CONFIG.chatPrompt}]})});
  const chatRead = await readEvents(chat);
  const chunks = chatRead.events.filter(e => e !== "[DONE]");
  const agent = await fetch(CONFIG.gateway + "/agent/v1/chat/completions", {method: "POST", headers,
    body: JSON.stringify({agentId: "main", stream: true,
                          messages: [{id: "m1", role: "user", parts: [{type: "text", text: CONFIG.agentPrompt}]}]})});
  const agentRead = await readEvents(agent);
  const parts = agentRead.events.filter(e => e !== "[DONE]");
  return {
    chat: {status: chat.status, contentType: chat.headers.get("content-type"),
           requestId: chat.headers.get("x-request-id"), date: chat.headers.get("date"),
           text: chunks.map(c => (c.choices[0] && c.choices[0].delta.content) || "").join(""),
           done: chatRead.events[chatRead.events.length - 1], reads: chatRead.reads},
    agent: {status: agent.status, requestId: agent.headers.get("x-request-id"),
            version: agent.headers.get("x-vercel-ai-ui-message-stream"),
            types: parts.map(p => p.type),
            text: parts.filter(p => p.type === "text-delta").map(p => p.delta).join(""),
            done: agentRead.events[agentRead.events.length - 1], reads: agentRead.reads},
    textBody: await attempt(CONFIG.gateway + "/v1/chat/completions", {method: "POST",
      headers: {"authorization": "Bearer " + CONFIG.key, "content-type": "text/plain"},
      body: JSON.stringify({model: "demo/echo", messages: [{role: "user", content: "hi"}]})}),
    admin: await attempt(CONFIG.gateway + "/admin/keys", {headers: {"authorization": "Bearer " + CONFIG.admin}}),
  };
}
"""


async def test_an_allowed_origin_reads_both_streams_and_the_exposed_headers(
        chromium: str, pages: PageServer, make_router: Callable, access_lines: AccessLines) -> None:
    """What a web app built on the gateway needs: streamed answers read as they arrive, the request
    id for support, errors it can show, and nothing from the admin API unless that is opened too."""
    gateway = await make_router(gateway_config({"allow_origins": [pages.origin]}))
    seen = await open_in_browser(chromium, pages, "allowed", ALLOWED_PAGE, gateway=gateway, key=KEY,
                                 admin=ADMIN_TOKEN, chatPrompt=CHAT_PROMPT, agentPrompt=AGENT_PROMPT)

    chat = seen["chat"]
    assert chat["status"] == 200 and chat["contentType"].startswith("text/event-stream")
    assert chat["text"] == CHAT_PROMPT and chat["done"] == "[DONE]"
    assert chat["reads"] >= 2  # the body reached the script in pieces, as streamed, not buffered whole
    assert chat["date"] is None  # sent, but not exposed: the browser hides it from the page

    agent = seen["agent"]
    assert agent["status"] == 200 and agent["version"] == "v1"
    assert agent["text"] == AGENT_PROMPT and agent["done"] == "[DONE]"
    assert agent["types"][0] == "start" and agent["types"][-1] == "finish"
    assert {"start-step", "text-start", "text-delta", "text-end", "finish-step"} <= set(agent["types"])

    # The JSON API refuses a text body (415); an allowed page may read that answer, errors included.
    assert seen["textBody"]["status"] == 415
    assert orjson.loads(seen["textBody"]["body"])["error"]["code"] == "unsupported_media_type"
    # The admin API does not answer browsers unless `cors.admin` says so.
    assert seen["admin"]["error"].startswith("TypeError"), seen["admin"]

    # The request ids the page read are the gateway's own, for the requests it answered.
    lines = await access_lines.settle(3)
    by_id = {line["request_id"]: line for line in lines}
    assert by_id[chat["requestId"]]["path"] == CHAT and by_id[chat["requestId"]]["status"] == 200
    assert by_id[agent["requestId"]]["path"] == AGENT and by_id[agent["requestId"]]["status"] == 200


# -- the browser: any other origin ------------------------------------------------------------------
REFUSED_PAGE = """
async function main() {
  const body = JSON.stringify({model: "up/gpt-4o-mini", stream: true, messages: [{role: "user", content: "spend"}]});
  const json = {"authorization": "Bearer " + CONFIG.key, "content-type": "application/json"};
  const agentBody = JSON.stringify({agentId: "main", stream: true,
                                    messages: [{id: "m1", role: "user", parts: [{type: "text", text: "spend"}]}]});
  return {
    chat: await attempt(CONFIG.gateway + "/v1/chat/completions", {method: "POST", headers: json, body}),
    agent: await attempt(CONFIG.gateway + "/agent/v1/chat/completions", {method: "POST", headers: json,
                                                                         body: agentBody}),
    simple: await attempt(CONFIG.gateway + "/v1/chat/completions",
                          {method: "POST", headers: {"content-type": "text/plain"}, body}),
    opaque: await attempt(CONFIG.gateway + "/v1/chat/completions",
                          {method: "POST", mode: "no-cors", headers: {"content-type": "text/plain"}, body}),
  };
}
"""


@pytest.mark.parametrize("cors", [{"allow_origins": [OTHER_ORIGIN]}, None], ids=["other-origin-only", "cors-off"])
async def test_any_other_origin_reads_nothing_and_spends_nothing(
        chromium: str, pages: PageServer, make_router: Callable, access_lines: AccessLines,
        fake_openai: Any, cors: dict[str, Any] | None) -> None:
    """A page the user happens to open cannot read from the gateway nor make it call a model, even
    with no auth configured (a gateway on a developer's machine, reachable from any page)."""
    gateway = await make_router(gateway_config(cors, auth=False, providers={"up": fake_openai.provider("up")}))
    seen = await open_in_browser(chromium, pages, "refused", REFUSED_PAGE, gateway=gateway, key=KEY)

    # JSON with a key needs a preflight, which grants nothing: the browser never sends the request.
    assert seen["chat"] == {"error": "TypeError: Failed to fetch"}
    assert seen["agent"] == {"error": "TypeError: Failed to fetch"}
    # A text body needs no preflight: it is sent, but the page cannot read the answer ...
    assert seen["simple"] == {"error": "TypeError: Failed to fetch"}
    assert seen["opaque"] == {"status": 0, "type": "opaque", "body": ""}
    # ... and the gateway refused both before reading them: 415, no model called. (Without
    # `server.cors` the preflights are ordinary requests, answered 405 and logged; with it they are
    # answered before the access log.)
    lines = await access_lines.settle(2)
    posts = [(line["path"], line["status"]) for line in lines if line["method"] != "OPTIONS"]
    assert posts == [(CHAT, 415)] * 2
    assert all(line["status"] == 405 for line in lines if line["method"] == "OPTIONS")
    assert fake_openai.calls() == []

    # The same request as JSON from a non-browser client does reach the model: the counter counts.
    async with aiohttp.ClientSession() as session, session.post(
            gateway + CHAT, json={"model": "up/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}) as resp:
        assert resp.status == 200
    assert len(fake_openai.calls()) == 1


# -- plain HTTP: the preflight and the headers ------------------------------------------------------
ORIGIN = "http://127.0.0.1:3000"


async def send(url: str, method: str, origin: str | None = ORIGIN, *, ask: str | None = "POST",
               ask_headers: str | None = "authorization, content-type", **kwargs: Any) -> tuple[int, dict[str, str]]:
    """(status, lower-cased headers) of one request; with `ask`, a preflight asking for that method."""
    headers = dict(kwargs.pop("headers", {}))
    if origin is not None:
        headers["origin"] = origin
    if method == "OPTIONS" and ask is not None:
        headers["access-control-request-method"] = ask
        if ask_headers is not None:
            headers["access-control-request-headers"] = ask_headers
    async with aiohttp.ClientSession() as session, asyncio.timeout(WAIT_S), \
            session.request(method, url, headers=headers, **kwargs) as resp:
        await resp.read()
        return resp.status, {k.lower(): v for k, v in resp.headers.items()}


def cors_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.startswith("access-control-")}


def grant(headers: dict[str, str]) -> dict[str, str]:
    """The CORS headers of a preflight that matter to it (a browser ignores exposed headers there)."""
    return {k: v for k, v in cors_headers(headers).items() if k != "access-control-expose-headers"}


async def test_a_preflight_from_an_allowed_origin_is_granted(make_router: Callable) -> None:
    base = await make_router(gateway_config({"allow_origins": [ORIGIN + "/"]}))  # a trailing slash is ignored
    status, headers = await send(base + CHAT, "OPTIONS", ask_headers="Authorization, Content-Type, X-Session-Id")
    assert status == 204
    assert grant(headers) == {
        "access-control-allow-origin": ORIGIN,
        "access-control-allow-methods": "GET, POST, DELETE, OPTIONS",
        "access-control-allow-headers": "Authorization, Content-Type, X-Session-Id",  # "*": what was asked
        "access-control-max-age": "600",
    }
    assert headers["vary"] == "Origin"
    # Before authentication: a browser sends no key with a preflight; the agent route is no different.
    status, headers = await send(base + AGENT, "OPTIONS")
    assert status == 204 and headers["access-control-allow-origin"] == ORIGIN


async def test_configured_headers_methods_age_and_credentials(make_router: Callable) -> None:
    base = await make_router(gateway_config({
        "allow_origins": [ORIGIN], "allow_headers": ["Authorization", "Content-Type"], "allow_methods": ["post"],
        "max_age_s": 60, "allow_credentials": True}))
    status, headers = await send(base + CHAT, "OPTIONS", ask_headers="x-anything")
    assert status == 204
    assert grant(headers) == {
        "access-control-allow-origin": ORIGIN,
        "access-control-allow-methods": "POST",
        "access-control-allow-headers": "authorization, content-type",  # the list, whatever was asked
        "access-control-max-age": "60",
        "access-control-allow-credentials": "true",
    }


async def test_any_origin(make_router: Callable) -> None:
    """`*` grants every origin, without credentials: `*` with credentials is refused at load time."""
    base = await make_router(gateway_config({"allow_origins": ["*"]}))
    _, headers = await send(base + CHAT, "OPTIONS", origin=OTHER_ORIGIN)
    assert headers["access-control-allow-origin"] == "*"
    with pytest.raises(ConfigError, match="allow_credentials"):
        parse_config(gateway_config({"allow_origins": ["*"], "allow_credentials": True}))


async def test_configured_origins_match_as_browsers_send_them(make_router: Callable) -> None:
    """Case and default ports do not matter; a path in the config is refused; every answer varies by Origin."""
    base = await make_router(gateway_config({"allow_origins": ["HTTPS://App.Example.com:443/"]}))
    _, headers = await send(base + CHAT, "OPTIONS", origin="https://app.example.com")
    assert headers["access-control-allow-origin"] == "https://app.example.com"
    _, headers = await send(base + CHAT, "POST", origin="https://other.example.com", json={"model": "x"})
    assert "origin" in headers.get("vary", "").lower() and "access-control-allow-origin" not in headers
    with pytest.raises(ConfigError, match="no path"):
        parse_config(gateway_config({"allow_origins": ["https://app.example.com/app"]}))


async def test_other_origins_get_no_grant(make_router: Callable) -> None:
    base = await make_router(gateway_config({"allow_origins": [ORIGIN]}))
    for origin in (OTHER_ORIGIN, "http://127.0.0.1:3001", "http://localhost:3000", "null"):
        status, headers = await send(base + CHAT, "OPTIONS", origin=origin)
        assert status == 204 and cors_headers(headers) == {}, origin
        # The answer itself (here a 401: no key) carries no grant either.
        status, headers = await send(base + CHAT, "POST", origin=origin, json={"model": "demo/echo"})
        assert status == 401 and cors_headers(headers) == {}, origin


async def test_answers_to_an_allowed_origin_expose_the_useful_headers(make_router: Callable) -> None:
    base = await make_router(gateway_config({"allow_origins": [ORIGIN]}))
    body = {"model": "demo/echo", "messages": [{"role": "user", "content": "hi"}]}
    for stream in (False, True):
        status, headers = await send(base + CHAT, "POST", json={**body, "stream": stream},
                                     headers={"authorization": f"Bearer {KEY}"})
        assert status == 200
        assert headers["access-control-allow-origin"] == ORIGIN and headers["vary"] == "Origin"
        exposed = {h.strip() for h in headers["access-control-expose-headers"].split(",")}
        assert {"x-request-id", "x-switchboard-cache", "x-session-id", "retry-after",
                "x-vercel-ai-ui-message-stream"} <= exposed
        assert "access-control-allow-methods" not in headers  # preflight-only headers stay on preflights
        assert "date" in headers and "date" not in exposed  # what the browser test sees hidden
    status, headers = await send(base + CHAT, "POST", json=body)  # an error answer: readable too
    assert status == 401 and headers["access-control-allow-origin"] == ORIGIN


@pytest.mark.parametrize("admin", [False, True])
async def test_the_admin_api_answers_browsers_only_when_configured(make_router: Callable, admin: bool) -> None:
    base = await make_router(gateway_config({"allow_origins": [ORIGIN], "admin": admin}))
    _, preflight = await send(base + "/admin/keys", "OPTIONS", ask="GET")
    status, answer = await send(base + "/admin/keys", "GET", headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    assert status == 200
    if admin:
        assert preflight["access-control-allow-origin"] == ORIGIN and answer["access-control-allow-origin"] == ORIGIN
    else:
        assert cors_headers(preflight) == {} and cors_headers(answer) == {}
    # The rest of the API is unaffected either way.
    _, headers = await send(base + CHAT, "OPTIONS")
    assert headers["access-control-allow-origin"] == ORIGIN


async def test_without_server_cors_nothing_is_granted(make_router: Callable) -> None:
    base = await make_router(gateway_config(None))
    status, headers = await send(base + CHAT, "OPTIONS")
    assert status == 405 and cors_headers(headers) == {}  # no preflight handling at all: POST-only route
    status, headers = await send(base + CHAT, "POST", json={"model": "demo/echo", "messages": []},
                                 headers={"authorization": f"Bearer {KEY}"})
    assert cors_headers(headers) == {}
