"""Tool-call ids from other vendors (Gemini's carry a thought signature) must fit OpenAI's 40 chars."""

from __future__ import annotations

import orjson

from providers import ProviderSettings
from providers.openai import MAX_TOOL_CALL_ID, OpenAIProvider

PROVIDER = OpenAIProvider(ProviderSettings(name="o", type="openai"))


def _sent(messages: list[dict]) -> list[dict]:
    request = PROVIDER.chat_request({"model": "x", "messages": messages}, "gpt-4o-mini", "sk-1", False)
    return orjson.loads(request.body)["messages"]


def _turn(call_id: str) -> list[dict]:
    return [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": call_id, "content": "sunny"},
    ]


def test_long_ids_are_shortened_consistently_and_stably() -> None:
    long_id = "call_0123456789abcdef__thought__" + "Q" * 300
    first = _sent(_turn(long_id))
    second = _sent(_turn(long_id))
    call_id = first[1]["tool_calls"][0]["id"]
    assert len(call_id) <= MAX_TOOL_CALL_ID
    assert first[2]["tool_call_id"] == call_id
    assert second[1]["tool_calls"][0]["id"] == call_id  # the same id on every turn of the conversation


def test_distinct_long_ids_stay_distinct() -> None:
    a = _sent(_turn("call_a__thought__" + "A" * 80))[1]["tool_calls"][0]["id"]
    b = _sent(_turn("call_a__thought__" + "B" * 80))[1]["tool_calls"][0]["id"]
    assert a != b


def test_short_ids_pass_through_untouched() -> None:
    messages = _turn("call_abc123")
    assert _sent(messages) == messages
