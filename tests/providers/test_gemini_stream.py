"""Gemini SSE streams -> OpenAI chunks: byte-split robustness, rebuild == non-stream, cut streams, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from google.genai import types
from openai.types.chat import ChatCompletion
from support.openai_chunks import feed

from providers.base import ProviderSettings
from providers.errors import ErrorKind, UpstreamError
from providers.gemini import GeminiProvider
from providers.gemini_request import decode_tool_call_id
from providers.sse import SSEDecoder

FIXTURES = Path(__file__).parent / "fixtures" / "gemini"
SIG_3 = "fg9iOt56FW0zJSEYxexUlcjfVtvEBx7TiqsDdItgvIrZyZ+TzIgXCPv//g=="


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def provider() -> GeminiProvider:
    return GeminiProvider(ProviderSettings(name="gem", type="gemini"))


def run(data: bytes, step: int | None = None, model: str = "gemini-2.5-flash") -> list[dict]:
    """Feed a whole stream (or `step` bytes at a time) and close it; every chunk is SDK-validated."""
    return feed(provider().chat_stream(model), data, step)


def rebuild(chunks: list[dict]) -> dict:
    """Accumulate chunks the way an OpenAI client does into a chat.completion."""
    choices: dict[int, dict] = {}
    usage = None
    for chunk in chunks:
        if chunk.get("usage"):
            usage = chunk["usage"]
        for ch in chunk["choices"]:
            state = choices.setdefault(ch["index"], {"content": None, "reasoning": None, "calls": {},
                                                     "finish": None})
            delta = ch["delta"]
            if delta.get("content") is not None:
                state["content"] = (state["content"] or "") + delta["content"]
            if delta.get("reasoning_content"):
                state["reasoning"] = (state["reasoning"] or "") + delta["reasoning_content"]
            for call in delta.get("tool_calls") or []:
                slot = state["calls"].setdefault(call["index"], {"id": None, "type": "function",
                                                                 "function": {"name": "", "arguments": ""}})
                slot["id"] = call.get("id") or slot["id"]
                slot["function"]["name"] += call.get("function", {}).get("name") or ""
                slot["function"]["arguments"] += call.get("function", {}).get("arguments") or ""
            if ch["finish_reason"]:
                state["finish"] = ch["finish_reason"]
    out_choices = []
    for index, state in sorted(choices.items()):
        calls = [state["calls"][i] for i in sorted(state["calls"])]
        message: dict[str, Any] = {"role": "assistant", "content": state["content"] or (None if calls else "")}
        if state["reasoning"]:
            message["reasoning_content"] = state["reasoning"]
        if calls:
            message["tool_calls"] = calls
        out_choices.append({"index": index, "message": message, "logprobs": None,
                            "finish_reason": state["finish"]})
    first = chunks[0]
    out = {"id": first["id"], "object": "chat.completion", "created": first["created"], "model": first["model"],
           "choices": out_choices}
    if usage:
        out["usage"] = usage
    ChatCompletion.model_validate(out)
    return out


def without_created(chunks: list[dict]) -> list[dict]:
    return [{k: v for k, v in c.items() if k != "created"} for c in chunks]


@pytest.mark.parametrize("name", ["text_stream.sse", "parallel_tool_stream.sse", "truncated_stream.sse",
                                  "prompt_blocked_stream.sse", "malformed_stream.sse"])
def test_fixture_events_are_gemini_responses(name: str):
    decoder = SSEDecoder()
    events = decoder.feed(fixture(name)) + decoder.close()
    assert events
    for _event, data in events:
        types.GenerateContentResponse.model_validate_json(data)


@pytest.mark.parametrize("name", ["text_stream.sse", "parallel_tool_stream.sse"])
def test_byte_at_a_time_equals_whole(name: str):
    whole = run(fixture(name))
    for step in (1, 2, 7, 64):
        assert without_created(run(fixture(name), step=step)) == without_created(whole)


def test_text_stream_chunks():
    chunks = run(fixture("text_stream.sse"))
    assert {c["id"] for c in chunks} == {"chatcmpl-h3kXaZHfB8WFz7IPjYCo8Q8"}
    assert {c["model"] for c in chunks} == {"gemini-2.5-flash"}
    assert chunks[0]["choices"] == [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                     "logprobs": None, "finish_reason": None}]
    deltas = [c["choices"][0]["delta"] for c in chunks[1:-2]]
    assert deltas == [{"reasoning_content": "**Answering**\n\nThe user wants the capital."},
                      {"content": "The capital of France"},
                      {"content": " is Paris 🇫🇷 — «la Ville Lumière»."}]
    assert chunks[-2]["choices"] == [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 1200, "completion_tokens": 50, "total_tokens": 1250,
                                   "prompt_tokens_details": {"cached_tokens": 1024},
                                   "completion_tokens_details": {"reasoning_tokens": 34}}
    assert all("usage" not in c for c in chunks[:-1])


@pytest.mark.parametrize(("sse", "whole", "model"), [
    ("text_stream.sse", "text_stream_whole.json", "gemini-2.5-flash"),
    ("parallel_tool_stream.sse", "parallel_tool_stream_whole.json", "gemini-3-flash-preview"),
])
def test_rebuilt_stream_equals_non_stream_translation(sse: str, whole: str, model: str):
    rebuilt = rebuild(run(fixture(sse), step=5, model=model))
    direct = provider().chat_response(fixture(whole), model)
    assert {k: v for k, v in rebuilt.items() if k != "created"} == {
        k: v for k, v in direct.items() if k != "created"}


def test_parallel_tool_calls_across_events_keep_increasing_indices():
    chunks = run(fixture("parallel_tool_stream.sse"), model="gemini-3-flash-preview")
    call_deltas = [c["choices"][0]["delta"]["tool_calls"] for c in chunks
                   if c["choices"] and "tool_calls" in c["choices"][0]["delta"]]
    assert [[d["index"] for d in deltas] for deltas in call_deltas] == [[0], [1]]
    first, second = call_deltas[0][0], call_deltas[1][0]
    assert first["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert second["function"] == {"name": "get_weather", "arguments": '{"city":"London"}'}
    assert first["type"] == second["type"] == "function"
    assert decode_tool_call_id(first["id"])[1] == SIG_3
    assert decode_tool_call_id(second["id"])[1] is None
    assert first["id"] != second["id"]
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finish[-1] == "tool_calls"
    assert chunks[-1]["usage"]["completion_tokens"] == 76


def test_stream_tool_ids_round_trip_into_the_next_request():
    message = rebuild(run(fixture("parallel_tool_stream.sse"), model="gemini-3-flash-preview"))[
        "choices"][0]["message"]
    history = [{"role": "user", "content": "Paris and London?"}, message]
    history += [{"role": "tool", "tool_call_id": c["id"], "content": "ok"} for c in message["tool_calls"]]
    body = orjson.loads(provider().chat_request({"messages": history}, "gemini-3-flash-preview", "k", True).body)
    assert body["contents"][1]["parts"] == [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": SIG_3},
        {"functionCall": {"name": "get_weather", "args": {"city": "London"}}},
    ]


def test_truncated_stream_is_stream_cut():
    stream = provider().chat_stream("gemini-2.5-flash")
    chunks = stream.feed(fixture("truncated_stream.sse"))
    assert [c["choices"][0]["delta"].get("content") for c in chunks[2:]] == ["The capital of France"]
    with pytest.raises(UpstreamError) as err:
        stream.close()
    assert err.value.kind is ErrorKind.STREAM_CUT


def test_empty_stream_and_half_event_are_stream_cut():
    for data in (b"", b'data: {"candidates": [{"content": {"parts": [{"text": "Hi"}]}, "finishR'):
        stream = provider().chat_stream("m")
        with pytest.raises(UpstreamError) as err:
            stream.feed(data)
            stream.close()
        assert err.value.kind is ErrorKind.STREAM_CUT


def test_error_event_mid_stream_raises_classified_error():
    stream = provider().chat_stream("gemini-2.5-flash")
    data = fixture("error_stream.sse")
    cut = data.index(b'data: {"error"')
    assert stream.feed(data[:cut])  # the role and reasoning chunks went out
    with pytest.raises(UpstreamError) as err:
        stream.feed(data[cut:])
    assert err.value.kind is ErrorKind.OVERLOADED and err.value.upstream_status == 503
    assert "overloaded" in err.value.message


def test_blocked_prompt_stream_is_content_policy():
    with pytest.raises(UpstreamError) as err:
        run(fixture("prompt_blocked_stream.sse"))
    assert err.value.kind is ErrorKind.CONTENT_POLICY


def test_malformed_function_call_stream_is_an_error_not_stop():
    stream = provider().chat_stream("gemini-2.5-flash")
    chunks = stream.feed(fixture("malformed_stream.sse"))  # what came before the error, then the error
    reasoning = "".join(c["choices"][0]["delta"].get("reasoning_content") or "" for c in chunks)
    assert reasoning == "**Answering**\n\nThe user wants the capital."
    with pytest.raises(UpstreamError) as err:
        stream.close()
    assert err.value.kind is ErrorKind.INVALID_RESPONSE and err.value.code == "malformed_function_call"


def _event(obj: dict) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def test_interleaved_candidates_and_finish_per_candidate():
    events = b"".join([
        _event({"candidates": [{"content": {"parts": [{"text": "Red"}], "role": "model"}, "index": 0},
                               {"content": {"parts": [{"text": "Blue"}], "role": "model"}, "index": 1}],
                "responseId": "r1"}),
        _event({"candidates": [{"content": {"parts": [{"text": "."}], "role": "model"}, "index": 1,
                                "finishReason": "STOP"}], "responseId": "r1"}),
        _event({"candidates": [{"content": {"parts": [{"text": "!"}], "role": "model"}, "index": 0,
                                "finishReason": "MAX_TOKENS"}],
                "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 4}, "responseId": "r1"}),
    ])
    out = rebuild(run(events))
    assert [(c["index"], c["message"]["content"], c["finish_reason"]) for c in out["choices"]] == [
        (0, "Red!", "length"), (1, "Blue.", "stop")]
    assert out["usage"]["total_tokens"] == 7 and out["model"] == "gemini-2.5-flash"

    # candidate 1 never finished: the stream was cut
    stream = provider().chat_stream("m")
    stream.feed(events.split(b"\n\n")[0] + b"\n\n" + events.split(b"\n\n")[2] + b"\n\n")
    with pytest.raises(UpstreamError) as err:
        stream.close()
    assert err.value.kind is ErrorKind.STREAM_CUT


def test_non_json_event_is_invalid_response():
    stream = provider().chat_stream("m")
    with pytest.raises(UpstreamError) as err:
        stream.feed(b"data: <html>\n\n")
    assert err.value.kind is ErrorKind.INVALID_RESPONSE


def test_no_usage_means_no_usage_chunk_and_last_event_without_blank_line_counts():
    data = _event({"candidates": [{"content": {"parts": [{"text": "Hi"}]}, "finishReason": "STOP"}]})
    chunks = run(data.rstrip(b"\n"))
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[0]["id"].startswith("chatcmpl-")
