"""Shared pieces of the agent tests: router configs, a scripted multi-step tool run, UI stream checks.

The scripted run (`script_three_steps`) is the one every face is held to: two tools in parallel
(calculator and current_time) in step 1, a calculator call in step 2 whose first deployment answers
503 so the alias falls back to its second deployment, and a text answer in step 3.
"""

from __future__ import annotations

from typing import Any

import orjson
from fakes.openai_upstream import CHAT, Fail, FakeOpenAI, Reply, check_chat_request

MODEL = "gpt-4o-mini"
ANSWER = "The answer is 43."
INSTRUCTIONS = "You are a careful assistant. Use the tools."
HELPER = {"model": "smart", "instructions": INSTRUCTIONS, "tools": ["calculator", "current_time"], "max_steps": 5}


def call(name: str, **args: Any) -> tuple[str, str]:
    """A scripted tool call for `Reply(tool_calls=[...])`."""
    return name, orjson.dumps(args).decode()


def config(fake: FakeOpenAI, agents: dict | None = None, settings: dict | None = None, **extra: Any) -> dict:
    """Two fake upstreams behind the alias `smart` (up1, falling back to up2) and the `helper` agent.

    The per-IP agent rate limit is off unless a test sets it (the suite makes many runs from 127.0.0.1).
    """
    return {
        "providers": {"up1": fake.provider("up1"), "up2": fake.provider("up2")},
        "models": {"smart": {"targets": [f"up1/{MODEL}"], "fallbacks": [f"up2/{MODEL}"]}},
        "agents": {"helper": HELPER} if agents is None else agents,
        "agent_settings": {"rate_limits": {"per_ip": None}, **(settings or {})},
        **extra,
    }


def script_three_steps(fake: FakeOpenAI) -> None:
    fake.queue("up1", Reply(text=None, tool_calls=[call("calculator", expression="6*7"),
                                                    call("current_time", timezone="UTC")]),
               Fail(503), Reply(text=ANSWER))
    fake.queue("up2", Reply(text=None, tool_calls=[call("calculator", expression="42+1")]))


def bodies(fake: FakeOpenAI) -> list[dict]:
    """Every chat request the upstreams received, in order, each checked against OpenAI's param types."""
    out = []
    for received in fake.calls(endpoint=CHAT):
        check_chat_request(received.body)
        out.append(received.body)
    return out


def tool_results(body: dict) -> list[Any]:
    """The tool messages at the end of a step request, JSON-decoded."""
    out = []
    for message in reversed(body["messages"]):
        if message["role"] != "tool":
            break
        out.insert(0, orjson.loads(message["content"]))
    return out


def check_three_step_upstream(fake: FakeOpenAI, stream: bool) -> None:
    """What the scripted run sent upstream: the fallback in step 2, the tool results fed back."""
    assert [r.upstream for r in fake.calls(endpoint=CHAT)] == ["up1", "up1", "up2", "up1"]
    first, failed, second, third = bodies(fake)
    assert all(b.get("stream", False) is stream for b in (first, second, third))
    assert first["messages"][0] == {"role": "system", "content": INSTRUCTIONS}
    assert {t["function"]["name"] for t in first["tools"]} == {"calculator", "current_time"}
    assert "tool_choice" not in first
    assert failed == second  # the same step request, retried on the fallback deployment
    calc, now = tool_results(second)
    assert calc == {"expression": "6*7", "result": 42}
    assert now["timezone"] == "UTC" and isinstance(now["unix"], int)
    assert tool_results(third) == [{"expression": "42+1", "result": 43}]
    assert len(third["messages"]) == len(second["messages"]) + 2  # + the step-2 call and its result


def check_steps_trace(steps: list[dict]) -> None:
    """`extra_fields.steps` (or the session record) of the scripted run."""
    assert [s["step"] for s in steps] == [1, 2, 3]
    assert [[t["name"] for t in s["tools"]] for s in steps] == [["calculator", "current_time"], ["calculator"], []]
    assert [a["model"] for a in steps[1]["attempts"]] == [f"up1/{MODEL}", f"up2/{MODEL}"]
    assert [a["status"] for a in steps[1]["attempts"]] == [503, 200]
    assert [s["model"] for s in steps] == [f"up1/{MODEL}", f"up2/{MODEL}", f"up1/{MODEL}"]
    calc = steps[0]["tools"][0]
    assert calc["arguments"] == {"expression": "6*7"} and calc["result_bytes"] > 0 and calc["error"] is None
    assert all(t["latency_ms"] >= 0 for s in steps for t in s["tools"])


SUMMED_USAGE = {"prompt_tokens": 36, "completion_tokens": 15, "total_tokens": 51}  # 3 x the fake's usage

# The core fields of each UI chunk type (wire_formats.md §1.4): anything else breaks strict clients.
UI_FIELDS = {
    "start": {"messageId", "messageMetadata"}, "start-step": set(), "finish-step": set(),
    "finish": {"finishReason", "messageMetadata"}, "error": {"errorText"},
    "text-start": {"id"}, "text-delta": {"id", "delta"}, "text-end": {"id"},
    "reasoning-start": {"id"}, "reasoning-delta": {"id", "delta"}, "reasoning-end": {"id"},
    "tool-input-start": {"toolCallId", "toolName"}, "tool-input-delta": {"toolCallId", "inputTextDelta"},
    "tool-input-available": {"toolCallId", "toolName", "input"}, "tool-output-available": {"toolCallId", "output"},
    "tool-output-error": {"toolCallId", "errorText"}, "data-output": {"data"},
}


def check_ui_chunks(events: list[Any]) -> list[dict]:
    """The UI message stream's chunks after checking framing, fields and ordering; returns the chunks."""
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    open_text: set[str] = set()
    tools: dict[str, str] = {}
    in_step = False
    for chunk in chunks:
        kind = chunk["type"]
        assert kind in UI_FIELDS, kind
        assert set(chunk) - {"type"} <= UI_FIELDS[kind], chunk
        if kind == "start-step":
            assert not in_step
            in_step = True
        elif kind == "finish-step":
            assert in_step and not open_text
            in_step = False
        elif kind in ("text-start", "reasoning-start"):
            open_text.add(chunk["id"])
        elif kind in ("text-delta", "reasoning-delta"):
            assert chunk["id"] in open_text
        elif kind in ("text-end", "reasoning-end"):
            open_text.remove(chunk["id"])
        elif kind == "tool-input-start":
            assert chunk["toolCallId"] not in tools, "tool call ids are unique per message"
            tools[chunk["toolCallId"]] = "streaming"
        elif kind == "tool-input-delta":
            assert tools[chunk["toolCallId"]] == "streaming"
        elif kind == "tool-input-available":
            assert tools.get(chunk["toolCallId"], "streaming") == "streaming"
            tools[chunk["toolCallId"]] = "available"
        elif kind in ("tool-output-available", "tool-output-error"):
            assert tools[chunk["toolCallId"]] == "available"
            tools[chunk["toolCallId"]] = "done"
    assert chunks[0]["type"] == "start" and chunks[-1]["type"] == "finish"
    return chunks


def ui_user(text: str, message_id: str = "u1") -> dict:
    return {"id": message_id, "role": "user", "parts": [{"type": "text", "text": text}]}
