"""The real Claude Code CLI (`claude -p`, pinned in tests/faces/claude_code) through the Messages face.

Claude Code is pointed at the router (`ANTHROPIC_BASE_URL`), with a model name the operator maps to
another vendor by an alias: here a fake OpenAI upstream, which validates every request the router
sends with the openai SDK's types. One run is a plain question; in the other the backend asks Claude
Code to read a file with its own `Read` tool and answers from what the tool returned. Everything is
started and stopped by the test; the CLI has a private HOME and makes loopback calls only.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fakes.openai_upstream import Reply
from support.claude_code import claude_binary, run_claude

KEY = "sk-claude-code-test"
CAPTURED = Path(__file__).resolve().parents[2] / "faces" / "claude_code" / "captured"


@pytest.fixture(scope="module")
def claude() -> Path:
    return claude_binary()


def config(fake_openai) -> dict:
    return {"providers": {"up": fake_openai.provider("up")},
            "models": {"smart": "up/gpt-4o-mini", "claude-sonnet-4-5": "up/gpt-4o"},
            "auth": {"keys": [{"name": "cc", "key": KEY, "models": ["smart", "claude-sonnet-4-5", "up/*"]}]}}


@pytest.mark.parametrize("model", ["smart", "claude-sonnet-4-5"])
async def test_claude_code_answered_by_openai(claude, fake_openai, make_router, tmp_path, model) -> None:
    url = await make_router(config(fake_openai))
    fake_openai.queue("up", Reply(text="4"))
    run = await run_claude(url, KEY, "What is 2+2? Answer with just the number.", cwd=tmp_path, model=model)
    assert run.returncode == 0, run.stderr
    assert run.result is not None and run.result.get("is_error") is False and run.result["result"].strip() == "4"
    [sent] = fake_openai.calls("up")
    body = sent.body
    assert body["stream"] is True and body["model"] == ("gpt-4o-mini" if model == "smart" else "gpt-4o")
    assert body["messages"][0]["role"] == "system"  # Claude Code's system blocks, one system message
    assert "What is 2+2?" in json.dumps([m for m in body["messages"] if m["role"] == "user"][-1])
    names = {t["function"]["name"] for t in body["tools"]}
    assert {"Read", "Bash", "Edit", "Write"} <= names and all(set(t) == {"type", "function"} for t in body["tools"])
    assert not {"context_management", "output_config", "thinking", "metadata"} & set(body)  # only tuned Anthropic
    assert '"cache_control"' not in json.dumps(body)  # Anthropic's cache marks are not OpenAI's


async def test_claude_code_uses_its_read_tool(claude, fake_openai, make_router, tmp_path) -> None:
    url = await make_router(config(fake_openai))
    note = tmp_path / "note.txt"
    note.write_text("the secret is 1234\n")
    fake_openai.queue("up", Reply(text=None, tool_calls=[("Read", json.dumps({"file_path": str(note)}))]),
                      Reply(text="The note says: the secret is 1234."))
    run = await run_claude(url, KEY, "What does note.txt say?", cwd=tmp_path, model="smart", allowed_tools=["Read"],
                           auth="bearer")
    assert run.returncode == 0, run.stderr
    assert run.result is not None and "1234" in run.result["result"]
    first, second = fake_openai.bodies("up")
    messages = second["messages"]
    calls = [m for m in messages if m["role"] == "assistant" and m.get("tool_calls")]
    results = [m for m in messages if m["role"] == "tool"]
    assert calls[-1]["tool_calls"][0]["function"]["name"] == "Read"
    assert results[-1]["tool_call_id"] == calls[-1]["tool_calls"][0]["id"]
    assert "the secret is 1234" in json.dumps(results[-1]["content"])
    assert len(first["messages"]) < len(messages)


def test_the_captured_requests_are_claude_codes() -> None:
    """The captures the translation tests use hold what makes Claude Code special (see their README)."""
    body = json.loads((CAPTURED / "first_request.json").read_text())["body"]
    assert {"context_management", "output_config", "thinking", "metadata", "system", "tools"} <= set(body)
    assert any(m["role"] == "system" for m in body["messages"])
    assert any(t.get("defer_loading") for t in body["tools"])


async def test_claude_code_runs_a_gateway_tool_over_mcp(claude, fake_openai, make_router, tmp_path) -> None:
    """`claude mcp add --transport http` as a config file: Claude Code lists the gateway's tools through
    /mcp under its key (only `calculator` is allowed to it) and runs the one its model asks for there."""
    cfg = config(fake_openai)
    cfg["auth"]["keys"][0]["tools"] = ["calculator"]
    url = await make_router(cfg)
    servers = tmp_path / "mcp.json"
    servers.write_text(json.dumps({"mcpServers": {"switchboard": {
        "type": "http", "url": f"{url}/mcp", "headers": {"Authorization": f"Bearer {KEY}"}}}}))
    tool = "mcp__switchboard__calculator"
    fake_openai.queue("up", Reply(text=None, tool_calls=[(tool, json.dumps({"expression": "6*7"}))]),
                      Reply(text="6*7 is 42."))
    run = await run_claude(url, KEY, "What is 6*7? Use the calculator.", cwd=tmp_path, model="smart",
                           allowed_tools=[tool], extra_args=["--mcp-config", str(servers), "--strict-mcp-config"])
    assert run.returncode == 0, run.stderr
    assert run.result is not None and "42" in run.result["result"]
    first, second = fake_openai.bodies("up")
    # Claude Code defers MCP tools (named in the prompt, loaded on use): only the key's one is named.
    assert set(re.findall(r"mcp__switchboard__\w+", json.dumps(first))) == {tool}
    results = [m for m in second["messages"] if m["role"] == "tool"]
    assert '"result":42' in json.dumps(results[-1]["content"]).replace("\\", "").replace(" ", "")
