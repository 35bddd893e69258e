"""The Vercel AI SDK face (`POST /agent/v1/chat/completions`): UI message stream v1, the non-stream
UIMessage, UIMessages in, structured output, errors. tests/agents/test_ai_sdk.py reads the same
stream with the real `ai` package.
"""

from __future__ import annotations

import pytest
from agent_kit import (
    ANSWER,
    SUMMED_USAGE,
    bodies,
    call,
    check_three_step_upstream,
    check_ui_chunks,
    config,
    script_three_steps,
    ui_user,
)
from fakes.openai_upstream import Reply
from jsonschema import Draft202012Validator

from router.openapi_spec import SPEC

PATH = "/agent/v1/chat/completions"
HELLO = [ui_user("What is 6*7+1?")]


def _compress(chunks: list[dict]) -> list[str]:
    """Chunk types with runs of deltas folded into one."""
    out: list[str] = []
    for chunk in chunks:
        if not (chunk["type"].endswith("-delta") and out and out[-1] == chunk["type"]):
            out.append(chunk["type"])
    return out


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_two_tools_three_steps_with_a_fallback_in_the_middle(fake_openai, make_router, raw, stream) -> None:
    script_three_steps(fake_openai)
    base = await make_router(config(fake_openai))
    resp = await raw.post(base + PATH, json={"agentId": "helper", "messages": HELLO, "stream": stream})
    assert resp.status == 200, resp.body
    check_three_step_upstream(fake_openai, stream)
    if not stream:
        body = resp.json()
        assert set(body) >= {"id", "role", "parts", "messages", "usage"} and body["role"] == "assistant"
        assert body["messages"] == [{"id": body["id"], "role": "assistant", "content": ANSWER}]
        assert body["usage"] == {**SUMMED_USAGE, "prompt_tokens_details": {"cached_tokens": 12}}
        assert body["finishReason"] == "stop" and "output" not in body
        parts = body["parts"]
    else:
        assert resp.headers["x-vercel-ai-ui-message-stream"] == "v1"
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        chunks = check_ui_chunks(resp.events)
        assert _compress(chunks) == [
            "start", "start-step", "tool-input-start", "tool-input-delta", "tool-input-start", "tool-input-delta",
            "tool-input-available", "tool-input-available", "tool-output-available", "tool-output-available",
            "finish-step", "start-step", "tool-input-start", "tool-input-delta", "tool-input-available",
            "tool-output-available", "finish-step", "start-step", "text-start", "text-delta", "text-end",
            "finish-step", "finish"]
        assert chunks[0]["messageMetadata"] == {"agentId": "helper", "sessionId": None}
        finish = chunks[-1]
        assert finish["finishReason"] == "stop" and finish["messageMetadata"]["usage"]["total_tokens"] == 51
        assert finish["messageMetadata"]["steps"] == 3
        parts = _fold(chunks)
    assert [p["type"] for p in parts] == ["step-start", "tool-calculator", "tool-current_time", "step-start",
                                          "tool-calculator", "step-start", "text"]
    tools = [p for p in parts if p["type"].startswith("tool-")]
    assert all(p["state"] == "output-available" for p in tools)
    assert tools[0]["input"] == {"expression": "6*7"} and tools[0]["output"] == {"expression": "6*7", "result": 42}
    assert tools[2]["output"]["result"] == 43 and len({p["toolCallId"] for p in tools}) == 3
    assert parts[-1] == {"type": "text", "text": ANSWER, "state": "done"}


def _fold(chunks: list[dict]) -> list[dict]:
    from router.agents.ui_stream import UIMessageBuilder

    builder = UIMessageBuilder()
    builder.add(chunks)
    return builder.parts


async def test_use_chat_bodies_stream_by_default(fake_openai, make_router, raw) -> None:
    base = await make_router(config(fake_openai))
    use_chat = await raw.post(base + PATH, json={"agentId": "helper", "id": "chat-1", "trigger": "submit-message",
                                                 "messages": HELLO})
    assert use_chat.headers["x-vercel-ai-ui-message-stream"] == "v1" and use_chat.headers["x-session-id"] == "chat-1"
    accept = await raw.post(base + PATH, json={"agentId": "helper", "messages": HELLO},
                            headers={"accept": "text/event-stream"})
    assert check_ui_chunks(accept.events)[-1]["type"] == "finish"
    plain = await raw.post(base + PATH, json={"agentId": "helper", "messages": HELLO})
    assert plain.headers["Content-Type"].startswith("application/json")
    off = await raw.post(base + PATH, json={"agentId": "helper", "messages": HELLO, "trigger": "x", "stream": False})
    assert off.headers["Content-Type"].startswith("application/json")


PNG = "data:image/png;base64,AA=="


async def test_ui_messages_become_openai_messages(fake_openai, make_router, raw) -> None:
    base = await make_router(config(fake_openai))
    history = [
        {"id": "s", "role": "system", "parts": [{"type": "text", "text": "Be brief."}]},
        {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Look at this"},
                                               {"type": "file", "mediaType": "image/png", "url": PNG}]},
        {"id": "a1", "role": "assistant", "parts": [
            {"type": "step-start"}, {"type": "reasoning", "text": "hmm", "state": "done"},
            {"type": "tool-calculator", "toolCallId": "c1", "state": "output-available",
             "input": {"expression": "1+1"}, "output": {"result": 2}},
            {"type": "tool-http_fetch", "toolCallId": "c2", "state": "output-error", "input": {"url": "x"},
             "errorText": "refused"},
            {"type": "tool-calculator", "toolCallId": "c3", "state": "input-available", "input": {}},
            {"type": "step-start"}, {"type": "text", "text": "It is 2.", "state": "done"},
            {"type": "source-url", "sourceId": "s1", "url": "https://example.com"}]},
        {"id": "u2", "role": "user", "parts": [{"type": "text", "text": "And 3?"}]},
    ]
    resp = await raw.post(base + PATH, json={"agentId": "helper", "messages": history})
    assert resp.status == 200, resp.body
    sent = bodies(fake_openai)[0]["messages"]
    assert sent[0]["role"] == "system" and sent[1] == {"role": "system", "content": "Be brief."}
    assert sent[2] == {"role": "user", "content": [{"type": "text", "text": "Look at this"}, {
        "type": "image_url", "image_url": {"url": PNG}}]}
    assert sent[3]["role"] == "assistant" and [c["id"] for c in sent[3]["tool_calls"]] == ["c1", "c2"]
    assert sent[4] == {"role": "tool", "tool_call_id": "c1", "content": '{"result":2}'}
    assert sent[5] == {"role": "tool", "tool_call_id": "c2", "content": "Error: refused"}
    assert sent[6] == {"role": "assistant", "content": "It is 2."}
    assert sent[7] == {"role": "user", "content": "And 3?"}


MOCK = {"providers": {"demo": {"type": "mock", "models": ["echo"]}}, "models": {"fast": "demo/echo"},
        "agents": {"shaper": {"model": "fast", "instructions": "Answer as data."}},
        "agent_settings": {"rate_limits": {"per_ip": None}}}
PERSON = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
          "required": ["name", "age"], "additionalProperties": False}


@pytest.mark.parametrize(("output", "check"), [
    ({"type": "object", "schema": PERSON}, lambda v: Draft202012Validator(PERSON).is_valid(v)),
    ({"type": "object"}, lambda v: isinstance(v, dict)),
    ({"type": "array", "schema": PERSON}, lambda v: isinstance(v, list) and all(
        Draft202012Validator(PERSON).is_valid(x) for x in v)),
    ({"type": "enum", "enum": ["red", "green"]}, lambda v: v in ("red", "green")),
], ids=["object", "any-object", "array", "enum"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_structured_output_with_the_providers_json_schema(make_router, raw, output, check, stream) -> None:
    base = await make_router(MOCK)
    resp = await raw.post(base + PATH, json={"agentId": "shaper", "messages": HELLO, "output": output,
                                             "stream": stream})
    assert resp.status == 200, resp.body
    if stream:
        chunks = check_ui_chunks(resp.events)
        data = [c for c in chunks if c["type"] == "data-output"]
        assert len(data) == 1 and check(data[0]["data"])
        assert chunks[-1]["messageMetadata"]["output"] == data[0]["data"]
    else:
        assert check(resp.json()["output"]), resp.json()


async def test_invalid_output_is_repaired_once_then_rejected(fake_openai, make_router, raw) -> None:
    agents = {"shaper": {"model": "smart"}}
    base = await make_router(config(fake_openai, agents=agents))
    request = {"agentId": "shaper", "messages": HELLO, "output": {"type": "object", "schema": PERSON}}
    fake_openai.queue("up1", Reply(text="Ada, 36 years"), Reply(text='{"name": "Ada", "age": 36}'))
    repaired = await raw.post(base + PATH, json=request)
    assert repaired.status == 200 and repaired.json()["output"] == {"name": "Ada", "age": 36}
    first, second = bodies(fake_openai)
    fmt = first["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"] == PERSON
    assert second["messages"][-2] == {"role": "assistant", "content": "Ada, 36 years"}
    assert "not valid JSON" in second["messages"][-1]["content"] and second["response_format"] == fmt
    fake_openai.queue("up1", Reply(text='{"name": "Ada"}'), Reply(text='{"name": "Ada", "age": -1}'))
    rejected = await raw.post(base + PATH, json=request)
    assert rejected.status == 502
    body = rejected.json()
    assert body["error"]["code"] == "output_validation_failed" and body["message"] == body["error"]["message"]
    assert "age" in body["error"]["message"]


async def test_client_tools_end_the_stream_with_their_input(fake_openai, make_router, raw) -> None:
    fake_openai.queue("up1", Reply(text=None, tool_calls=[call("get_weather", city="Oslo")]))
    base = await make_router(config(fake_openai))
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    resp = await raw.post(base + PATH, json={"agentId": "helper", "messages": HELLO, "tools": tools, "stream": True})
    chunks = check_ui_chunks(resp.events)
    available = [c for c in chunks if c["type"] == "tool-input-available"]
    assert available == [{"type": "tool-input-available", "toolCallId": available[0]["toolCallId"],
                          "toolName": "get_weather", "input": {"city": "Oslo"}}]
    assert not [c for c in chunks if c["type"].startswith("tool-output")]
    assert chunks[-1]["finishReason"] == "tool-calls"


async def test_inline_agents(make_router, raw) -> None:
    base = await make_router(MOCK)
    agent = {"name": "Calc", "instructions": "Compute.", "temperature": 0.2, "capabilities": {"dataAnalyst": True}}
    resp = await raw.post(base + PATH, json={"agent": agent, "messages": [ui_user("2+2")]})
    assert resp.status == 200, resp.body
    parts = resp.json()["parts"]
    assert parts[1]["type"] == "tool-calculator"  # the mock calls the one tool the capability gave
    assert resp.json()["metadata"]["agentId"] == "inline"


_REQUEST = Draft202012Validator({"$ref": "#/components/schemas/AgentUIRequest", "components": SPEC["components"]})
BODIES = [
    {"messages": HELLO}, {"agentId": "shaper", "messages": HELLO}, {"agentId": None, "agent": None, "messages": HELLO},
    {}, {"messages": []}, {"messages": "hi"}, {"messages": [{"role": "user"}]}, {"messages": [{"parts": []}]},
    {"messages": [{"role": "robot", "parts": []}]}, {"messages": [{"role": "user", "parts": [{"text": "x"}]}]},
    {"messages": [{"id": 3, "role": "user", "parts": [{"type": "text", "text": "x"}]}]},
    {"agentId": 5, "messages": HELLO}, {"agent": "x", "messages": HELLO},
    {"agent": {"name": "n" * 65}, "messages": HELLO},
    {"agent": {"temperature": 1.5}, "messages": HELLO}, {"agent": {"creativity": "hot"}, "messages": HELLO},
    {"agent": {"capabilities": {"webSearch": "yes"}}, "messages": HELLO},
    {"agent": {"webSearch": 1}, "messages": HELLO},
    {"agent": {"tools": ["rm"]}, "messages": HELLO}, {"agent": {"instruction": 7}, "messages": HELLO},
    {"agent": {"tools": ["calculator"], "temperature": 0.5}, "messages": HELLO},
    {"messages": HELLO, "stream": "yes"}, {"messages": HELLO, "maxSteps": 0}, {"messages": HELLO, "maxSteps": 20},
    {"messages": HELLO, "maxSteps": 21}, {"messages": HELLO, "maxSteps": True},
    {"messages": HELLO, "output": {"type": "list"}}, {"messages": HELLO, "output": {"type": "enum"}},
    {"messages": HELLO, "output": {"type": "enum", "enum": []}},
    {"messages": HELLO, "output": {"type": "enum", "enum": [1]}},
    {"messages": HELLO, "output": {"type": "object", "schema": "x"}}, {"messages": HELLO, "output": "object"},
    {"messages": HELLO, "tools": [{"function": {}}]}, {"messages": HELLO, "tools": {}},
    {"messages": HELLO, "imageResponseFormat": "png"}, {"messages": HELLO, "imageResponseFormat": "url"},
    {"messages": HELLO, "sessionId": "a b"}, {"messages": HELLO, "id": "ok", "session_id": "x" * 129},
    {"messages": HELLO, "user": 5}, {"messages": HELLO, "trigger": "submit-message", "stream": False},
]


@pytest.mark.parametrize("index", range(len(BODIES)))
async def test_request_schema_agrees_with_validation(make_router, raw, index: int) -> None:
    body = BODIES[index]
    resp = await raw.post(await make_router(MOCK) + PATH, json=body)
    assert (resp.status == 400) == (not _REQUEST.is_valid(body)), (resp.status, resp.body[:300])
    if resp.status == 400:
        err = resp.json()
        assert set(err) == {"error", "message"} and set(err["error"]) == {"message", "type", "param", "code"}
