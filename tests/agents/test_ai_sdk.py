"""The real Vercel AI SDK (`ai@6`, pinned in tests/agents/js/package-lock.json) reads the agent stream.

`js/read_stream.mjs` does what a browser's `useChat` does: `DefaultChatTransport` posts the UIMessages
(no `stream` flag) and `readUIMessageStream` folds the chunks into the assistant message, validating
each chunk with the SDK's own schema; anything it rejects reaches `onError`. `npm ci` runs once per
session when `js/node_modules` is missing; the tests skip only when `node` is not installed.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest
from agent_kit import ANSWER, call, config, script_three_steps, ui_user
from fakes.openai_upstream import Reply

JS = Path(__file__).resolve().parent / "js"
PATH = "/agent/v1/chat/completions"


@pytest.fixture(scope="session")
def reader() -> Path:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the Vercel AI SDK check needs Node >= 18 (apt-get install nodejs)")
    if not (JS / "node_modules" / "ai" / "package.json").exists():
        npm = shutil.which("npm")
        assert npm is not None, "node is installed but npm is not: install npm to run the AI SDK check"
        subprocess.run([npm, "ci", "--prefix", str(JS), "--no-audit", "--no-fund", "--loglevel=error"],
                       check=True, timeout=300)
    return JS / "read_stream.mjs"


async def read(reader: Path, url: str, body: dict[str, Any], messages: list[dict]) -> dict[str, Any]:
    """Run the Node reader against the router (asynchronously: the router serves from this event loop)."""
    arg = orjson.dumps({"url": url, "body": body, "headers": {}, "messages": messages}).decode()
    proc = await asyncio.create_subprocess_exec("node", str(reader), arg, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, cwd=str(JS))
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return orjson.loads(out.splitlines()[-1])


async def test_use_chat_reads_a_three_step_run_with_a_fallback(fake_openai, make_router, reader) -> None:
    script_three_steps(fake_openai)
    base = await make_router(config(fake_openai))
    result = await read(reader, base + PATH, {"agentId": "helper"}, [ui_user("What is 6*7+1?")])
    assert result["errors"] == [] and result["status"] == 200
    assert result["headers"]["x-vercel-ai-ui-message-stream"] == "v1"
    assert "stream" not in result["sent"] and result["sent"]["trigger"] == "submit-message"
    message = result["message"]
    assert message["role"] == "assistant" and message["id"].startswith("msg-")
    parts = message["parts"]
    assert [p["type"] for p in parts] == ["step-start", "tool-calculator", "tool-current_time", "step-start",
                                          "tool-calculator", "step-start", "text"]
    tools = [p for p in parts if p["type"].startswith("tool-")]
    assert all(p["state"] == "output-available" for p in tools)
    assert tools[0]["input"] == {"expression": "6*7"} and tools[0]["output"]["result"] == 42
    assert tools[2]["output"]["result"] == 43
    assert parts[-1]["text"] == ANSWER and parts[-1]["state"] == "done"
    meta = message["metadata"]
    assert meta["agentId"] == "helper" and meta["usage"]["total_tokens"] == 51 and meta["steps"] == 3


async def test_use_chat_reads_structured_output_client_tools_and_errors(fake_openai, make_router, reader) -> None:
    base = await make_router(config(fake_openai, agents={"helper": {"model": "smart", "tools": ["calculator"]}}))
    fake_openai.queue("up1", Reply(text='{"elements": ["red", "blue"]}'))
    output = {"type": "array", "schema": {"type": "string"}}
    result = await read(reader, base + PATH, {"agentId": "helper", "output": output, "tools": None},
                        [ui_user("Two colours")])
    assert result["errors"] == []
    data = [p for p in result["message"]["parts"] if p["type"] == "data-output"]
    assert data == [{"type": "data-output", "data": ["red", "blue"]}]
    assert result["message"]["metadata"]["output"] == ["red", "blue"]

    fake_openai.queue("up1", Reply(text=None, tool_calls=[call("get_weather", city="Oslo")]))
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    result = await read(reader, base + PATH, {"agentId": "helper", "tools": tools}, [ui_user("Weather?")])
    assert result["errors"] == []
    weather = result["message"]["parts"][-1]
    assert weather["type"] == "tool-get_weather" and weather["state"] == "input-available"
    assert weather["input"] == {"city": "Oslo"}

    fake_openai.queue("up1", Reply(text=None, tool_calls=[call("calculator", expression="1+1")]),
                      Reply(text="a b c d e", error_after=3, chunk_delay_s=0.05))
    result = await read(reader, base + PATH, {"agentId": "helper"}, [ui_user("Break")])
    assert len(result["errors"]) == 1 and "server had an error" in result["errors"][0]
    assert result["message"]["parts"][1]["state"] == "output-available"  # what arrived before the failure
