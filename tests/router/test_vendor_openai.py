"""OpenAI-compatible vendors end to end: the official openai SDK -> the router -> the fake OpenAI API
playing a compatible vendor's quirks (tests/fakes/openai_upstream.py).

What such a vendor sends differently from OpenAI must reach the client in OpenAI's shape: Mistral's
tool calls without `"type": "function"`, `"usage": null` on every chunk of a stream that did not ask for
usage, and empty arguments for a tool without parameters.
"""

from __future__ import annotations

import json

import openai
import pytest
from fakes.openai_upstream import SECRET, Reply
from support.vendor_chat import ask, collect

MISTRAL = "mistral/mistral-large-latest"
VLLM = "local/qwen2.5-7b-instruct"
USER = [{"role": "user", "content": "Where is my payment T1001?"}]
STATUS = {"type": "function", "function": {"name": "payment_status", "parameters": {
    "type": "object", "properties": {"transaction_id": {"type": "string"}}, "required": ["transaction_id"]}}}
NOW = {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}


@pytest.fixture
async def client(fake_openai, make_router, openai_client) -> openai.AsyncOpenAI:
    def provider(kind: str, upstream: str) -> dict:
        return {"type": kind, "base_url": fake_openai.base_url(upstream), "keys": [{"value": SECRET}],
                "max_retries": 0}

    return openai_client(await make_router({"providers": {"mistral": provider("mistral", "mistral"),
                                                          "local": provider("vllm", "local")}}))


@pytest.mark.parametrize("stream", [False, True])
async def test_mistral_tool_calls_get_their_type(fake_openai, client, stream):
    fake_openai.queue("mistral", Reply(text=None, tool_calls=[("payment_status", '{"transaction_id": "T1001"}')],
                                       typed_calls=False))
    message, reason, _ = await ask(client, stream, model=MISTRAL, messages=USER, tools=[STATUS])
    [call] = message.tool_calls
    assert reason == "tool_calls" and call.type == "function" and call.id == "call_0abc"
    assert json.loads(call.function.arguments) == {"transaction_id": "T1001"}


async def test_null_usage_on_chunks_is_not_relayed(fake_openai, client):
    fake_openai.queue("mistral", Reply(text="It was paid yesterday.", null_usage=True))
    chunks = await collect(client, model=MISTRAL, messages=USER)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "It was paid yesterday."
    assert not [c for c in chunks if "usage" in c.model_fields_set]


@pytest.mark.parametrize("stream", [False, True])
async def test_tool_without_parameters_has_empty_object_arguments(fake_openai, client, stream):
    fake_openai.queue("local", Reply(text=None, tool_calls=[("now", "")]))
    message, reason, _ = await ask(client, stream, model=VLLM, messages=USER, tools=[NOW])
    [call] = message.tool_calls
    assert reason == "tool_calls" and json.loads(call.function.arguments) == {}
