"""What OpenAI-compatible vendors send differently from OpenAI is made right on the way back.

Mistral leaves `"type": "function"` out of its tool calls (and streams each call whole, in the finish
chunk); some compatible servers put `"usage": null` on every stream chunk even when usage was not asked
for, where OpenAI omits the member. The payloads below are the vendors' own shapes; the translations
are validated with the openai SDK's types.
"""

from __future__ import annotations

import json

import orjson
import pytest
from openai.types.chat import ChatCompletion
from support.openai_chunks import assemble, feed

from providers.base import ProviderSettings
from providers.openai import OpenAIProvider

MISTRAL = "mistral-large-latest"
CALL = {"id": "D681PevKs", "function": {"name": "retrieve_payment_status",
                                        "arguments": "{\"transaction_id\": \"T1001\"}"}, "index": 0}


def provider(kind: str = "mistral") -> OpenAIProvider:
    return OpenAIProvider(ProviderSettings(name=kind, type=kind))


def data(*chunks: dict) -> bytes:
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def mistral_chunk(delta: dict, finish: str | None = None, **extra: object) -> dict:
    return {"id": "a1f8c7b2e4d94f0c", "object": "chat.completion.chunk", "created": 1718000000, "model": MISTRAL,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}


def test_mistral_response_tool_calls_get_their_type() -> None:
    body = {"id": "cf79f7daaee244b1a0ae5c7b1444424a", "object": "chat.completion", "created": 1718000000,
            "model": MISTRAL, "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "", "tool_calls": [CALL], "prefix": False}}],
            "usage": {"prompt_tokens": 167, "completion_tokens": 24, "total_tokens": 191}}
    out = provider().chat_response(orjson.dumps(body), MISTRAL)
    parsed = ChatCompletion.model_validate(out)
    [call] = parsed.choices[0].message.tool_calls
    assert call.type == "function" and call.id == "D681PevKs"
    assert json.loads(call.function.arguments) == {"transaction_id": "T1001"}


def test_mistral_stream_tool_calls_get_their_type() -> None:
    stream = data(mistral_chunk({"role": "assistant", "content": ""}),
                  mistral_chunk({"tool_calls": [CALL]}, "tool_calls",
                                usage={"prompt_tokens": 167, "completion_tokens": 24, "total_tokens": 191}))
    chunks = feed(provider().chat_stream(MISTRAL), stream)
    [first] = chunks[1]["choices"][0]["delta"]["tool_calls"]
    assert first["type"] == "function" and first["id"] == "D681PevKs"
    assert assemble(chunks)["calls"][0]["arguments"] == CALL["function"]["arguments"]


def test_continuation_fragments_are_left_without_a_type() -> None:
    """Only a call's first fragment (the one with its id) carries `type`, as in OpenAI's own streams."""
    stream = data(mistral_chunk({"role": "assistant", "content": ""}),
                  mistral_chunk({"tool_calls": [{"index": 0, "id": "T7pQm2xZa",
                                                 "function": {"name": "get_time", "arguments": ""}}]}),
                  mistral_chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"zone\": \"UTC\"}"}}]}),
                  mistral_chunk({}, "tool_calls"))
    chunks = feed(provider().chat_stream(MISTRAL), stream)
    assert chunks[1]["choices"][0]["delta"]["tool_calls"][0]["type"] == "function"
    assert "type" not in chunks[2]["choices"][0]["delta"]["tool_calls"][0]


@pytest.mark.parametrize("kind", ["mistral", "together", "openai"])
def test_null_usage_members_are_dropped_from_chunks(kind: str) -> None:
    usage = {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}
    stream = data(mistral_chunk({"role": "assistant", "content": ""}, usage=None),
                  mistral_chunk({"content": "Hi!"}, usage=None),
                  mistral_chunk({}, "stop", usage=None),
                  {**mistral_chunk({}), "choices": [], "usage": usage})
    chunks = feed(provider(kind).chat_stream(MISTRAL), stream)
    assert [("usage" in c) for c in chunks] == [False, False, False, True]
    assert chunks[-1]["usage"] == usage and assemble(chunks)["content"] == "Hi!"
