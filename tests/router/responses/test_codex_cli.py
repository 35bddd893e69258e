"""The real Codex CLI (`codex exec`, pinned in tests/faces/codex) through the Responses face.

Codex is given a custom model provider pointing at the router (`wire_api = "responses"`), with a
model name the operator maps by an alias to a Chat-Completions-only fake, which validates every
request with the openai SDK's types. One run is a plain answer; in the other the backend asks Codex
to run one of its own tools (`exec_command`, a harmless `cat` in a read-only sandbox) and answers
from its output. Everything is started and stopped by the test; the CLI talks to loopback only.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes.openai_upstream import Reply
from support.codex_cli import codex_binary, run_codex

KEY = "sk-codex-test"


@pytest.fixture(scope="module")
def codex() -> Path:
    return codex_binary()


def config(fake_openai) -> dict:
    return {"providers": {"up": fake_openai.provider("up")}, "models": {"smart": "up/gpt-4o-mini"},
            "auth": {"keys": [{"name": "codex", "key": KEY, "models": ["smart", "up/*"]}]}}


async def test_codex_answered_through_chat_completions(codex, fake_openai, make_router, tmp_path) -> None:
    url = await make_router(config(fake_openai))
    fake_openai.queue("up", Reply(text="4"))
    run = await run_codex(url, KEY, "What is 2+2? Answer with just the number.", cwd=tmp_path, model="smart")
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.last_message is not None and run.last_message.strip() == "4"
    [sent] = fake_openai.bodies("up")
    assert sent["stream"] is True and sent["model"] == "gpt-4o-mini"
    assert sent["messages"][0]["role"] == "system"  # Codex's developer message carries its instructions
    assert "What is 2+2?" in json.dumps(sent["messages"][-1])
    names = {t["function"]["name"] for t in sent["tools"]}
    assert "exec_command" in names  # function tools kept, namespaced ones flattened; hosted web_search dropped
    assert all(t["type"] == "function" for t in sent["tools"])


async def test_codex_runs_its_shell_tool_and_answers_from_it(codex, fake_openai, make_router, tmp_path) -> None:
    url = await make_router(config(fake_openai))
    (tmp_path / "note.txt").write_text("the secret is 1234\n")
    fake_openai.queue("up", Reply(text=None, tool_calls=[("exec_command", json.dumps({"cmd": "cat note.txt"}))]),
                      Reply(text="The note says: the secret is 1234."))
    run = await run_codex(url, KEY, "What does note.txt say?", cwd=tmp_path, model="smart")
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.last_message is not None and "1234" in run.last_message
    first, second = fake_openai.bodies("up")
    results = [m for m in second["messages"] if m["role"] == "tool"]
    assert results and "the secret is 1234" in json.dumps(results[-1]["content"])
    calls = [m for m in second["messages"] if m["role"] == "assistant" and m.get("tool_calls")]
    assert calls[-1]["tool_calls"][0]["function"]["name"] == "exec_command"
    assert results[-1]["tool_call_id"] == calls[-1]["tool_calls"][0]["id"]
    assert len(first["messages"]) < len(second["messages"])
