"""Agents using the tools of MCP servers (`tools: ["mcp:<name>"]`), against real servers.

The servers are the `mcp` SDK's own MCPServer (tests/support/mcp_server.py) in child processes, over
Streamable HTTP (behind a required header) and over stdio; the model is the scripted fake vendor. So
each test sees both ends: what the router offered and fed back to the model (the upstream bodies) and
what the client got (both agent faces). One HTTP server serves the tests that leave it as it is;
tests that kill a server or change its tool list get their own, and run in both protocol eras (the
2026-07-28 wire, and the initialize handshake with its sessions).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import mcp
import pytest
from agent_kit import bodies, call, check_ui_chunks, config, tool_results, ui_user
from fakes.openai_upstream import FakeOpenAI, Gate, Reply
from prometheus_client.parser import text_string_to_metric_families
from support.mcp_server import McpServerProcess, free_port, stdio_command

OPENAI_PATH = "/v1/chat/completions"
UI_PATH = "/agent/v1/chat/completions"
AGENT = "clerk"
QUESTION = "Where is order A-17?"
ANSWER = "Order A-17 has shipped (3 items)."
ORDER = {"order_id": "A-17", "status": "shipped", "items": 3}  # lookup_order's structured content

HEADER = "x-api-key"
KEY_VAR = "SB_TEST_DOCS_MCP_KEY"  # the config names it, the environment holds it
KEY_VALUE = "docs-mcp-key-4711"
SERVER_TOOLS = {"lookup_order", "add", "echo_headers", "fail", "slow", "secret_admin_tool", "grow", "big"}
DOCS_TOOLS = {f"docs-{t}" for t in SERVER_TOOLS}
BOUND_S = 5.0  # bound on waiting for a server's state to change


# -- servers and routers ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def docs_server() -> Iterator[McpServerProcess]:
    """The shared HTTP server, answering 401 without the key header; its tools are never changed."""
    with McpServerProcess(require_header=(HEADER, KEY_VALUE)) as server:
        yield server


@pytest.fixture
async def own_server() -> AsyncIterator[McpServerProcess]:
    """A server of this test's own (not started): for tests that kill it or grow its tool list."""
    server = McpServerProcess(require_header=(HEADER, KEY_VALUE))
    yield server
    server.kill()  # not a graceful stop: it would wait a second for the router's open streams
    await server.astop()


@pytest.fixture
def docs_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server key in the environment, where the config's `${SB_TEST_DOCS_MCP_KEY}` finds it."""
    monkeypatch.setenv(KEY_VAR, KEY_VALUE)


def docs(url: str, **extra: Any) -> dict[str, Any]:
    """An `mcp.servers` entry for an HTTP test server; the key header comes from the environment."""
    return {"url": url, "headers": {HEADER: f"${{{KEY_VAR}}}"}, **extra}


def mcp_config(fake: FakeOpenAI, servers: dict[str, dict], tools: list[str] | None = None,
               **extra: Any) -> dict[str, Any]:
    """The agent `clerk` with the tools of `mcp:docs` (or `tools`), and `servers` under `mcp.servers`."""
    agent = {"model": "smart", "instructions": "Answer from the tools.", "tools": tools or ["mcp:docs"],
             "max_steps": 4}
    return config(fake, agents={AGENT: agent}, mcp={"servers": servers}, **extra)


# -- one agent run, through either face -------------------------------------------------------------
@dataclass
class Run:
    answer: str
    tools: list[tuple[str, str | None]]  # each tool call the agent ran: (name, error or None)
    parts: list[dict] = field(default_factory=list)  # the UI face's message parts


async def run_agent(raw, base: str, face: str = "openai", *, stream: bool = False,
                    headers: dict[str, str] | None = None) -> Run:
    """Ask `clerk` QUESTION through `face` ("openai": model "agent:clerk"; "ui": agentId) and read the
    answer and the tool calls the agent ran (the OpenAI face's `extra_fields.steps`, the UI face's parts)."""
    if face == "openai":
        body = {"model": f"agent:{AGENT}", "messages": [{"role": "user", "content": QUESTION}], "stream": stream}
        resp = await raw.post(base + OPENAI_PATH, json=body, headers=headers)
        assert resp.status == 200, resp.body
        if stream:
            assert resp.events[-1] == "[DONE]"
            chunks = resp.events[:-1]
            assert not any("error" in c for c in chunks), chunks
            answer = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
            extra = chunks[-1]["extra_fields"]
        else:
            answer, extra = resp.json()["choices"][0]["message"]["content"], resp.json()["extra_fields"]
        assert extra["agent"] == AGENT
        return Run(answer, [(t["name"], t["error"]) for s in extra["steps"] for t in s["tools"]])
    body = {"agentId": AGENT, "messages": [ui_user(QUESTION)], "stream": stream}
    resp = await raw.post(base + UI_PATH, json=body, headers=headers)
    assert resp.status == 200, resp.body
    parts = _fold(check_ui_chunks(resp.events)) if stream else resp.json()["parts"]
    answer = "".join(p["text"] for p in parts if p["type"] == "text")
    tools = [(p["type"].removeprefix("tool-"), p.get("errorText")) for p in parts if p["type"].startswith("tool-")]
    return Run(answer, tools, parts)


def _fold(chunks: list[dict]) -> list[dict]:
    from router.agents.ui_stream import UIMessageBuilder

    builder = UIMessageBuilder()
    builder.add(chunks)
    return builder.parts


def offered(body: dict) -> dict[str, dict]:
    """The function tools a step request offered the model: name -> function definition."""
    return {t["function"]["name"]: t["function"] for t in body.get("tools", [])}


async def readiness(raw, base: str) -> dict[str, Any]:
    resp = await raw.request("GET", base + "/readyz")
    assert resp.status == 200, resp.body  # an MCP server down never makes the router unready
    return resp.json()


async def wait_for(raw, base: str, predicate, what: str) -> dict[str, Any]:
    """/readyz's `mcp_servers.docs` once `predicate` holds of it (polled, at most BOUND_S)."""
    deadline = time.monotonic() + BOUND_S
    while True:
        ready = await readiness(raw, base)
        docs_state = ready["checks"]["mcp_servers"]["docs"]
        if predicate(docs_state):
            return ready
        assert time.monotonic() < deadline, f"{what}: /readyz still says {ready}"
        await asyncio.sleep(0.05)


# -- 1. the tool loop through both faces ------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("face", ["openai", "ui"])
async def test_an_agent_calls_an_mcp_tool_and_answers_from_its_result(fake_openai, make_router, raw, docs_server,
                                                                      docs_key, face, stream) -> None:
    fake_openai.queue("up1", Reply(text=None, tool_calls=[call("docs-lookup_order", order_id="A-17")]),
                      Reply(text=ANSWER))
    base = await make_router(mcp_config(fake_openai, {"docs": docs(docs_server.url)}))
    run = await run_agent(raw, base, face, stream=stream)

    assert run.answer == ANSWER
    assert run.tools == [("docs-lookup_order", None)]
    first, second = bodies(fake_openai)
    assert all(b.get("stream", False) is stream for b in (first, second))
    tools = offered(first)
    assert set(tools) == DOCS_TOOLS  # every tool of the server, as <server>-<tool>
    lookup = tools["docs-lookup_order"]
    assert lookup["description"] == "Look up an order by id (always shipped, 3 items)."
    schema = lookup["parameters"]  # the server's own input schema, passed on
    assert schema["type"] == "object" and schema["required"] == ["order_id"]
    assert schema["properties"]["order_id"]["type"] == "string"
    assert offered(second) == tools
    assert tool_results(second) == [ORDER]  # the structured content, not its text rendering
    if face == "ui":
        part = next(p for p in run.parts if p["type"] == "tool-docs-lookup_order")
        assert part["state"] == "output-available"
        assert part["input"] == {"order_id": "A-17"} and part["output"] == ORDER


async def test_the_configured_header_reaches_the_server(fake_openai, make_router, raw, docs_server,
                                                        docs_key) -> None:
    fake_openai.queue("up1", Reply(text=None, tool_calls=[call("docs-echo_headers")]), Reply(text="ok"))
    base = await make_router(mcp_config(fake_openai, {"docs": docs(docs_server.url)}))
    assert (await run_agent(raw, base)).tools == [("docs-echo_headers", None)]
    seen = tool_results(bodies(fake_openai)[1])[0]
    assert seen[HEADER] == KEY_VALUE  # `${SB_TEST_DOCS_MCP_KEY}` expanded from the environment


# -- 2. stdio ---------------------------------------------------------------------------------------
async def test_a_stdio_server_works_the_same_way(fake_openai, make_router, raw) -> None:
    command, args = stdio_command()
    fake_openai.queue("up1", Reply(text=None, tool_calls=[call("files-add", a=2, b=3),
                                                          call("files-lookup_order", order_id="A-17")]),
                      Reply(text="5"))
    base = await make_router(mcp_config(fake_openai, {"files": {"command": command, "args": args}},
                                        tools=["mcp:files", "calculator"]))
    ready = await readiness(raw, base)
    assert ready["checks"]["mcp_servers"]["files"] == {"state": "up", "tools": len(SERVER_TOOLS)}
    run = await run_agent(raw, base)
    assert run.answer == "5"
    assert run.tools == [("files-add", None), ("files-lookup_order", None)]
    first, second = bodies(fake_openai)
    assert set(offered(first)) == {f"files-{t}" for t in SERVER_TOOLS} | {"calculator"}
    assert offered(first)["files-add"]["parameters"]["required"] == ["a", "b"]
    assert tool_results(second) == [{"result": 5}, ORDER]


# -- 3. allowed_tools / blocked_tools ---------------------------------------------------------------
async def test_allowed_and_blocked_tools_are_never_offered(fake_openai, make_router, raw, docs_server,
                                                           docs_key) -> None:
    fake_openai.queue("up1", Reply(text=None, tool_calls=[call("docs-secret_admin_tool"),
                                                          call("docs-add", a=1, b=1)]),
                      Reply(text="2"))
    server = docs(docs_server.url, allowed_tools=["lookup_*", "add", "secret_*"], blocked_tools=["secret_*"])
    base = await make_router(mcp_config(fake_openai, {"docs": server}))
    assert (await readiness(raw, base))["checks"]["mcp_servers"]["docs"]["tools"] == 2
    run = await run_agent(raw, base)
    assert run.answer == "2"
    assert run.tools == [("docs-secret_admin_tool", "unknown tool 'docs-secret_admin_tool'"), ("docs-add", None)]
    first, second = bodies(fake_openai)
    assert set(offered(first)) == {"docs-lookup_order", "docs-add"}
    assert tool_results(second) == [{"error": "unknown tool 'docs-secret_admin_tool'"}, {"result": 2}]


# -- protocol eras ----------------------------------------------------------------------------------
MODERN, HANDSHAKE = "2026-07-28", "2025-11-25"


@pytest.fixture(params=[MODERN, HANDSHAKE], ids=["modern", "handshake"])
def era(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The protocol era the gateway's SDK client speaks: the test server speaks both, and the SDK picks the
    2026-07-28 one unless told `mode="legacy"` (the initialize handshake, sessions, list_changed on the
    session), as it does with servers that only know the handshake."""
    real = mcp.Client
    mode = "auto" if request.param == MODERN else "legacy"
    monkeypatch.setattr(mcp, "Client", functools.partial(real, mode=mode))
    return request.param


# -- 4. the server dies mid-run, then comes back ----------------------------------------------------
LOOKUP = call("docs-lookup_order", order_id="A-17")


async def test_a_server_killed_mid_run_is_a_tool_error_and_a_restart_recovers(fake_openai, make_router, raw,
                                                                             own_server, docs_key, era) -> None:
    await own_server.astart()
    held = asyncio.Event()
    fake_openai.queue("up1", Gate(held, Reply(text=None, tool_calls=[LOOKUP])), Reply(text="The service is down."),
                      Reply(text=None, tool_calls=[LOOKUP]), Reply(text="Still down."),
                      Reply(text=None, tool_calls=[LOOKUP]), Reply(text=ANSWER))
    base = await make_router(mcp_config(fake_openai, {"docs": docs(own_server.url, connect_timeout_s=3)}))
    running = asyncio.create_task(run_agent(raw, base))
    while not fake_openai.calls():  # step 1 is at the model: the tools are already offered
        await asyncio.sleep(0.01)
    own_server.kill()
    held.set()
    run = await running
    assert run.answer == "The service is down."  # a 200: the model read the failure and answered
    [(name, error)] = run.tools
    assert name == "docs-lookup_order" and error is not None and "MCP server 'docs'" in error
    assert tool_results(bodies(fake_openai)[1]) == [{"error": error}]
    ready = await wait_for(raw, base, lambda s: s["state"] == "down", "the server was killed")
    assert ready["status"] == "degraded" and ready["checks"]["mcp_servers"]["docs"]["error"]

    # Still down: the call asks for a reconnect at once and fails when that attempt does, without
    # waiting out connect_timeout_s over the backoff's further attempts.
    t0 = time.monotonic()
    run = await run_agent(raw, base)
    assert time.monotonic() - t0 < 1.5
    [(name, error)] = run.tools
    assert "MCP server 'docs' is unavailable" in error and run.answer == "Still down."

    await own_server.astart()  # the same port
    run = await run_agent(raw, base)  # its call reconnects at once (no waiting out the backoff)
    assert run.answer == ANSWER and run.tools == [("docs-lookup_order", None)]
    assert tool_results(bodies(fake_openai)[5]) == [ORDER]
    ready = await readiness(raw, base)
    assert ready["status"] == "ready"
    assert ready["checks"]["mcp_servers"]["docs"] == {"state": "up", "tools": len(SERVER_TOOLS)}


async def test_a_restart_between_runs_is_survived(fake_openai, make_router, raw, own_server, docs_key,
                                                 era) -> None:
    """The server restarts (same port) between two calls. At 2026-07-28 nothing is lost (each request
    stands alone); a handshake-era session dies with the server, which answers 404 "Session not found" to
    its id: the call is sent again on a new session (the server ran nothing), so neither run notices."""
    await own_server.astart()
    fake_openai.queue("up1", *[Reply(text=None, tool_calls=[LOOKUP]), Reply(text=ANSWER)] * 3)
    base = await make_router(mcp_config(fake_openai, {"docs": docs(own_server.url)}))
    assert (await run_agent(raw, base)).tools == [("docs-lookup_order", None)]
    own_server.kill()
    await own_server.astart()
    first = await run_agent(raw, base)
    assert first.tools == [("docs-lookup_order", None)]
    second = await run_agent(raw, base)
    assert second.tools == [("docs-lookup_order", None)] and second.answer == ANSWER
    assert tool_results(bodies(fake_openai)[5]) == [ORDER]
    assert (await readiness(raw, base))["checks"]["mcp_servers"]["docs"]["state"] == "up"


# -- 5. the server's tool list changes --------------------------------------------------------------
async def test_a_tool_added_at_run_time_is_offered_to_the_next_run(fake_openai, make_router, raw, own_server,
                                                                  docs_key, era) -> None:
    await own_server.astart()
    fake_openai.queue("up1", Reply(text=None, tool_calls=[call("docs-grow")]), Reply(text="grown"),
                      Reply(text=None, tool_calls=[call("docs-grown", x=21)]), Reply(text="42"))
    base = await make_router(mcp_config(fake_openai, {"docs": docs(own_server.url)}))
    run = await run_agent(raw, base)
    assert run.tools == [("docs-grow", None)] and run.answer == "grown"
    assert "docs-grown" not in offered(bodies(fake_openai)[0])
    await wait_for(raw, base, lambda s: s["tools"] == len(SERVER_TOOLS) + 1, "list_changed after grow")

    run = await run_agent(raw, base)
    assert run.tools == [("docs-grown", None)] and run.answer == "42"
    third, fourth = bodies(fake_openai)[2:]
    assert set(offered(third)) == DOCS_TOOLS | {"docs-grown"}
    assert offered(third)["docs-grown"]["description"] == "Double x (added at run time by `grow`)."
    assert tool_results(fourth) == [{"result": 42}]


# -- 6. a virtual key's tool allow-list -------------------------------------------------------------
NARROW = "sk-client-narrow-mcp"
FULL = "sk-client-full-mcp"


async def test_a_key_sees_and_calls_only_the_tools_it_may_use(fake_openai, make_router, raw, docs_server,
                                                              docs_key) -> None:
    auth = {"keys": [{"name": "narrow", "key": NARROW, "tools": ["docs-lookup_order"]},
                     {"name": "full", "key": FULL}]}
    fake_openai.queue("up1", Reply(text=None, tool_calls=[call("docs-add", a=2, b=3),
                                                          call("docs-lookup_order", order_id="A-17")]),
                      Reply(text=ANSWER), Reply(text="hello"))
    base = await make_router(mcp_config(fake_openai, {"docs": docs(docs_server.url)}, auth=auth))
    run = await run_agent(raw, base, headers={"authorization": f"Bearer {NARROW}"})
    assert run.answer == ANSWER
    assert run.tools == [("docs-add", "unknown tool 'docs-add'"), ("docs-lookup_order", None)]
    first, second = bodies(fake_openai)
    assert set(offered(first)) == {"docs-lookup_order"}
    assert tool_results(second) == [{"error": "unknown tool 'docs-add'"}, ORDER]
    await run_agent(raw, base, headers={"authorization": f"Bearer {FULL}"})
    assert set(offered(bodies(fake_openai)[2])) == DOCS_TOOLS  # a key without `tools` may use them all


# -- 7. a server down at start-up -------------------------------------------------------------------
async def test_a_server_down_at_start_up_degrades_readyz_until_it_comes_up(fake_openai, make_router, raw,
                                                                           docs_key) -> None:
    server = McpServerProcess(port=free_port(), require_header=(HEADER, KEY_VALUE))
    try:
        base = await make_router(mcp_config(fake_openai, {"docs": docs(server.url, connect_timeout_s=2)},
                                            tools=["mcp:docs", "calculator"]))
        ready = await readiness(raw, base)  # the app started all the same
        assert ready["status"] == "degraded"
        down = ready["checks"]["mcp_servers"]["docs"]
        assert down["state"] == "down" and down["tools"] == 0 and down["error"]
        await run_agent(raw, base)
        assert set(offered(bodies(fake_openai)[0])) == {"calculator"}

        await server.astart()  # the owner task retries on its backoff (0.5 s, then 1 s, 2 s, …)
        ready = await wait_for(raw, base, lambda s: s["state"] == "up", "the server came up")
        assert ready["status"] == "ready"
        assert ready["checks"]["mcp_servers"]["docs"] == {"state": "up", "tools": len(SERVER_TOOLS)}
        fake_openai.queue("up1", Reply(text=None, tool_calls=[call("docs-lookup_order", order_id="A-17")]),
                          Reply(text=ANSWER))
        run = await run_agent(raw, base, "ui")
        assert run.answer == ANSWER and run.tools == [("docs-lookup_order", None)]
        assert set(offered(bodies(fake_openai)[1])) == DOCS_TOOLS | {"calculator"}
    finally:
        await server.astop()


async def test_a_server_refusing_the_header_is_down_with_the_reason(fake_openai, make_router, raw,
                                                                    docs_server, monkeypatch) -> None:
    monkeypatch.setenv(KEY_VAR, "the-wrong-key")
    base = await make_router(mcp_config(fake_openai, {"docs": docs(docs_server.url)}))
    ready = await readiness(raw, base)
    down = ready["checks"]["mcp_servers"]["docs"]
    assert ready["status"] == "degraded" and down["state"] == "down" and down["tools"] == 0
    # The SDK reports any HTTP error status as "Server returned an error response" (the 401 is not in it).
    assert down["error"].startswith("MCPError")
    assert KEY_VALUE not in down["error"] and "the-wrong-key" not in down["error"]


# -- 8. metrics and the access log ------------------------------------------------------------------
Sample = dict[tuple[str, frozenset], float]


async def scrape(raw, base: str) -> Sample:
    resp = await raw.request("GET", base + "/metrics")
    assert resp.status == 200
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(resp.body.decode()) for s in family.samples}


def delta(after: Sample, before: Sample, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)




async def test_mcp_tool_calls_are_counted_and_logged(fake_openai, make_router, raw, docs_server, docs_key,
                                                     access_lines) -> None:
    fake_openai.queue("up1", Reply(text=None, tool_calls=[call("docs-lookup_order", order_id="A-17"),
                                                          call("docs-fail", message="no such order")]),
                      Reply(text=ANSWER))
    base = await make_router(mcp_config(fake_openai, {"docs": docs(docs_server.url)}))
    before = await scrape(raw, base)
    run = await run_agent(raw, base)
    after = await scrape(raw, base)
    failed = "Error executing tool fail: no such order"
    assert run.tools == [("docs-lookup_order", None), ("docs-fail", failed)]
    assert tool_results(bodies(fake_openai)[1]) == [ORDER, {"error": failed}]  # isError: the model reads it
    calls = "switchboard_tool_calls_total"
    assert delta(after, before, calls, tool="docs-lookup_order", via="agent", outcome="ok") == 1
    assert delta(after, before, calls, tool="docs-lookup_order", via="agent", outcome="error") == 0
    assert delta(after, before, calls, tool="docs-fail", via="agent", outcome="error") == 1
    assert delta(after, before, "switchboard_tool_duration_seconds_count", tool="docs-lookup_order",
                 via="agent") == 1
    [line] = [line for line in await access_lines.wait(1) if line["path"] == OPENAI_PATH]
    assert [(c["name"], c["error"]) for c in line["tool_calls"]] == [("docs-lookup_order", None),
                                                                     ("docs-fail", failed)]
    assert all(c["latency_ms"] > 0 for c in line["tool_calls"])


# -- timeouts -------------------------------------------------------------------------------------------
async def test_a_slow_call_times_out_and_the_session_still_serves(fake_openai, make_router, raw, docs_server,
                                                                  docs_key) -> None:
    fake_openai.queue("up1", Reply(text=None, tool_calls=[call("docs-slow", seconds=3)]),
                      Reply(text=None, tool_calls=[call("docs-lookup_order", order_id="A-17")]),
                      Reply(text=ANSWER))
    base = await make_router(mcp_config(fake_openai, {"docs": docs(docs_server.url, timeout_s=0.3)}))
    t0 = time.monotonic()
    run = await run_agent(raw, base)
    assert time.monotonic() - t0 < 2.5
    assert run.tools == [("docs-slow", "the tool did not answer within 0.3s"), ("docs-lookup_order", None)]
    assert tool_results(bodies(fake_openai)[2]) == [ORDER]
    assert (await readiness(raw, base))["checks"]["mcp_servers"]["docs"]["state"] == "up"
