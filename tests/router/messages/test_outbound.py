"""Canonical answers -> Messages answers (`router/handlers/messages/outbound.py`).

Whole answers are validated with the anthropic SDK's `Message`; streams are parsed as SSE, every
event validated with the SDK's event union and folded with the SDK's own accumulator
(`accumulate_event`, what `client.messages.stream()` uses) into the message a client would see.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message
from support.openai_chunks import feed
from support.typed_sse import typed_events
from support.vendor_schemas import ANTHROPIC_EVENT, ANTHROPIC_MESSAGE

from providers.anthropic import translate_message
from providers.anthropic_stream import AnthropicStream
from router.handlers.messages.outbound import MessageEvents, anthropic_usage, message_id, to_message

FIXTURES = Path(__file__).resolve().parents[2] / "providers" / "fixtures" / "anthropic"
MODEL = "smart"  # what the client asked for; the canonical chunks name the vendor's model


# -- helpers ----------------------------------------------------------------------------------
def chunk(delta: dict | None = None, finish: str | None = None, **extra: Any) -> dict:
    return {"id": "chatcmpl-abc123", "object": "chat.completion.chunk", "created": 1, "model": "gpt-x",
            "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish, "logprobs": None}], **extra}


def usage_chunk(prompt: int, completion: int, cached: int = 0, written: int = 0) -> dict:
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                             "total_tokens": prompt + completion}
    if cached or written:
        usage["prompt_tokens_details"] = {"cached_tokens": cached, "cache_creation_tokens": written}
    return {"id": "chatcmpl-abc123", "object": "chat.completion.chunk", "created": 1, "model": "gpt-x",
            "choices": [], "usage": usage}


ROLE = chunk({"role": "assistant", "content": ""})


def call(index: int, arguments: str = "", id: str | None = None, name: str | None = None) -> dict:
    piece: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if id is not None:
        piece.update(id=id, type="function")
        piece["function"]["name"] = name
    return chunk({"tool_calls": [piece]})


def fold(data: bytes) -> tuple[Message, list[dict]]:
    """The Message the anthropic SDK's stream accumulator makes of these bytes (every event validated)."""
    events = typed_events(data)
    snapshot = None
    json_bufs: dict[int, bytes] = {}
    for event in events:
        if event["type"] == "ping":
            assert event == {"type": "ping"}
            continue
        assert event["type"] != "error", event
        snapshot = accumulate_event(event=ANTHROPIC_EVENT.validate_python(event), current_snapshot=snapshot,
                                    json_bufs=json_bufs)
    assert snapshot is not None
    return ANTHROPIC_MESSAGE.validate_python(snapshot.to_dict()), events


def run(chunks: list[dict], input_tokens: int = 0, step: int = 1) -> bytes:
    """Feed the chunks `step` at a time, as the pipeline's batches come, then finish."""
    events = MessageEvents(MODEL, input_tokens)
    data = b"".join(events.batch(chunks[i:i + step]) for i in range(0, len(chunks), step))
    return data + events.finish()


def kinds(events: list[dict]) -> list[str]:
    out = []
    for e in events:
        block = e.get("content_block") or e.get("delta") or {}
        out.append(f"{e['type']}:{block['type']}" if e["type"].startswith("content_block_") and
                   "type" in block else e["type"])
    return out


# -- to_message -------------------------------------------------------------------------------
def completion(message: dict, finish: str = "stop", usage: dict | None = None, id: str = "chatcmpl-xyz") -> dict:
    out = {"id": id, "object": "chat.completion", "created": 1, "model": "gpt-x",
           "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}]}
    if usage is not None:
        out["usage"] = usage
    return out


def test_text_message() -> None:
    out = to_message(completion({"content": "Hello!"}, usage={"prompt_tokens": 12, "completion_tokens": 3}), MODEL)
    Message.model_validate(out)
    assert out == {"id": "msg_xyz", "type": "message", "role": "assistant", "model": MODEL,
                   "content": [{"type": "text", "text": "Hello!"}], "stop_reason": "end_turn",
                   "stop_sequence": None, "usage": {"input_tokens": 12, "output_tokens": 3,
                                                    "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}}


def test_thinking_text_and_tool_calls_in_order() -> None:
    out = to_message(completion({
        "content": "Let me check.", "reasoning_content": "ignored: the blocks are exact",
        "thinking_blocks": [{"type": "thinking", "thinking": "Weather needs a city.", "signature": "sig=="},
                            {"type": "redacted_thinking", "data": "opaque"}],
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "clock", "arguments": ""}},
            {"id": "call_3", "type": "function", "function": {"name": "broken", "arguments": "{not json"}}]},
        finish="tool_calls"), MODEL)
    message = Message.model_validate(out)
    assert out["content"] == [
        {"type": "thinking", "thinking": "Weather needs a city.", "signature": "sig=="},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Oslo"}},
        {"type": "tool_use", "id": "call_2", "name": "clock", "input": {}},
        {"type": "tool_use", "id": "call_3", "name": "broken", "input": {}},
    ]
    assert message.stop_reason == "tool_use"


def test_reasoning_without_blocks_is_one_unsigned_thinking_block() -> None:
    out = to_message(completion({"content": "4", "reasoning_content": "2+2"}), MODEL)
    assert out["content"] == [{"type": "thinking", "thinking": "2+2", "signature": ""},
                              {"type": "text", "text": "4"}]


def test_tool_calls_only_and_no_empty_text_block() -> None:
    out = to_message(completion({"content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}, finish="stop"), MODEL)
    assert [b["type"] for b in out["content"]] == ["tool_use"]
    assert out["stop_reason"] == "tool_use"  # tool calls make it tool_use whatever the vendor said
    assert to_message(completion({"content": ""}), MODEL)["content"] == []


@pytest.mark.parametrize(("finish", "reason"), [
    ("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"), ("content_filter", "refusal"),
    ("function_call", "end_turn"), (None, "end_turn"),
])
def test_stop_reasons(finish: str | None, reason: str) -> None:
    out = to_message(completion({"content": "x"}, finish=finish), MODEL)  # type: ignore[arg-type]
    Message.model_validate(out)
    assert out["stop_reason"] == reason


def test_refusals() -> None:
    filtered = to_message(completion({"content": "", "refusal": "Policy."}, finish="content_filter"), MODEL)
    assert filtered["content"] == [] and filtered["stop_details"] == {"type": "refusal", "explanation": "Policy."}
    Message.model_validate(filtered)
    spoken = to_message(completion({"content": None, "refusal": "I can't help with that."}), MODEL)
    assert spoken["content"] == [{"type": "text", "text": "I can't help with that."}]


def test_message_ids() -> None:
    assert message_id("chatcmpl-abc") == "msg_abc"
    assert message_id("msg_01Anthropic") == "msg_01Anthropic"
    assert message_id("gen123") == "msg_gen123"
    assert message_id(None).startswith("msg_") and len(message_id(None)) == 36
    assert to_message({"choices": []}, MODEL)["id"].startswith("msg_")


def test_anthropic_usage() -> None:
    usage = {"prompt_tokens": 1000, "completion_tokens": 50, "total_tokens": 1050,
             "prompt_tokens_details": {"cached_tokens": 600, "cache_creation_tokens": 300},
             "completion_tokens_details": {"reasoning_tokens": 20}}
    assert anthropic_usage(usage) == {"input_tokens": 100, "output_tokens": 50, "cache_read_input_tokens": 600,
                                      "cache_creation_input_tokens": 300}
    assert anthropic_usage(None) == {"input_tokens": 0, "output_tokens": 0, "cache_read_input_tokens": 0,
                                     "cache_creation_input_tokens": 0}
    assert anthropic_usage({"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 9}})["input_tokens"] == 0


@pytest.mark.parametrize("name", ["text.json", "tool_use.json", "thinking_tool.json", "refusal.json"])
def test_anthropic_messages_survive_the_round_trip(name: str) -> None:
    """Anthropic -> canonical (the provider) -> Messages (the face): the same content and stop reason."""
    original = orjson.loads((FIXTURES / name).read_bytes())
    out = to_message(translate_message(original, "claude"), MODEL)
    Message.model_validate(out)
    assert out["content"] == [{k: v for k, v in b.items() if k != "citations"} for b in original["content"]
                              if b["type"] in ("text", "thinking", "redacted_thinking", "tool_use")]
    assert out["stop_reason"] == original["stop_reason"] and out["id"] == original["id"]
    usage = original["usage"]
    assert out["usage"]["input_tokens"] == usage["input_tokens"]
    assert out["usage"]["cache_read_input_tokens"] == (usage.get("cache_read_input_tokens") or 0)


# -- streams ----------------------------------------------------------------------------------
def test_text_stream() -> None:
    data = run([ROLE, chunk({"content": "Hel"}), chunk({"content": "lo"}), chunk({}, "stop"),
                usage_chunk(20, 2)], input_tokens=18)
    message, events = fold(data)
    assert kinds(events) == ["message_start", "ping", "content_block_start:text", "content_block_delta:text_delta",
                             "content_block_delta:text_delta", "content_block_stop", "message_delta", "message_stop"]
    assert events[0]["message"]["usage"]["input_tokens"] == 18 and events[0]["message"]["model"] == MODEL
    assert message.id == "msg_abc123" and message.model == MODEL
    assert [b.type for b in message.content] == ["text"] and message.content[0].text == "Hello"
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert (message.usage.input_tokens, message.usage.output_tokens) == (20, 2)
    assert data.startswith(b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_abc123"')


def test_reasoning_then_text() -> None:
    data = run([ROLE, chunk({"reasoning_content": "Two plus "}), chunk({"reasoning_content": "two."}),
                chunk({"content": "4"}),
                chunk({"thinking_blocks": [{"type": "thinking", "thinking": "Two plus two.", "signature": "s1"}]}),
                chunk({}, "stop"), usage_chunk(10, 8)])
    message, events = fold(data)
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "Two plus two." and message.content[1].text == "4"
    # the signature came after the thinking block closed: it cannot be sent any more
    assert message.content[0].signature == ""
    assert "content_block_delta:signature_delta" not in kinds(events)
    assert [e["index"] for e in events if e["type"] == "content_block_start"] == [0, 1]


def test_a_signature_known_while_thinking_is_open_is_sent() -> None:
    data = run([ROLE, chunk({"reasoning_content": "Hmm."}),
                chunk({"thinking_blocks": [{"type": "redacted_thinking", "data": "x"},
                                           {"type": "thinking", "thinking": "Hmm.", "signature": "sig-9"}]}),
                chunk({}, "stop")])
    message, events = fold(data)
    assert kinds(events)[2:6] == ["content_block_start:thinking", "content_block_delta:thinking_delta",
                                  "content_block_delta:signature_delta", "content_block_stop"]
    assert message.content[0].signature == "sig-9"


def test_text_then_two_parallel_tool_calls_in_pieces() -> None:
    chunks = [ROLE, chunk({"content": "Checking both."}),
              call(0, id="call_a", name="weather"), call(0, '{"city": "Pa'), call(0, 'ris", "unit": "c"}'),
              call(1, id="call_b", name="weather"), call(1, '{"city":'), call(1, ' "Oslo"}'),
              chunk({}, "tool_calls"), usage_chunk(300, 40)]
    for step in (1, 3, len(chunks)):
        message, events = fold(run(chunks, step=step))
        assert [b.type for b in message.content] == ["text", "tool_use", "tool_use"]
        assert message.content[0].text == "Checking both."
        assert (message.content[1].id, message.content[1].name) == ("call_a", "weather")
        assert message.content[1].input == {"city": "Paris", "unit": "c"}
        assert (message.content[2].id, message.content[2].input) == ("call_b", {"city": "Oslo"})
        assert message.stop_reason == "tool_use"
        starts = [e["index"] for e in events if e["type"] == "content_block_start"]
        stops = [e["index"] for e in events if e["type"] == "content_block_stop"]
        assert starts == stops == [0, 1, 2]


@pytest.mark.parametrize("filler", [False, True])
def test_a_tool_without_arguments_folds_to_an_empty_input(filler: bool) -> None:
    # `filler`: the "{}" that providers.base.StreamedArguments puts into the finish chunk's own delta
    finish = chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]} if filler else {}, "tool_calls")
    data = run([ROLE, call(0, id="call_now", name="clock"), finish, usage_chunk(30, 5)])
    message, events = fold(data)
    assert [(b.type, b.name, b.input) for b in message.content] == [("tool_use", "clock", {})]
    assert ("content_block_delta:input_json_delta" in kinds(events)) is filler
    assert message.stop_reason == "tool_use"


def test_usage_with_cache_reads_and_writes() -> None:
    message, events = fold(run([ROLE, chunk({"content": "ok"}), chunk({}, "stop"),
                                usage_chunk(1000, 7, cached=600, written=300)], input_tokens=990))
    assert events[-2]["usage"] == {"input_tokens": 100, "output_tokens": 7, "cache_read_input_tokens": 600,
                                   "cache_creation_input_tokens": 300}
    usage = message.usage
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens,
            usage.cache_creation_input_tokens) == (100, 7, 600, 300)


def test_length_is_max_tokens() -> None:
    message, _ = fold(run([ROLE, chunk({"content": "Once upon a"}), chunk({}, "length"), usage_chunk(5, 3)]))
    assert message.stop_reason == "max_tokens"


def test_finish_without_a_usage_chunk() -> None:
    message, events = fold(run([ROLE, chunk({"content": "Hi"}), chunk({}, "stop")], input_tokens=42))
    assert events[-2] == {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                          "usage": {"output_tokens": 0}}
    assert (message.usage.input_tokens, message.usage.output_tokens) == (42, 0)


def test_finish_of_an_empty_stream_is_still_a_whole_message() -> None:
    message, events = fold(MessageEvents(MODEL).finish())
    assert kinds(events) == ["message_start", "ping", "message_delta", "message_stop"]
    assert message.content == [] and message.stop_reason == "end_turn"


def test_fail_after_a_text_block() -> None:
    events = MessageEvents(MODEL)
    data = events.batch([ROLE, chunk({"content": "Partial"})])
    data += events.fail({"type": "overloaded_error", "message": "Overloaded"})
    parsed = typed_events(data)
    assert kinds(parsed) == ["message_start", "ping", "content_block_start:text", "content_block_delta:text_delta",
                             "error"]
    assert parsed[-1] == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert data.endswith(b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
                         b'"message":"Overloaded"}}\n\n')
    assert events.finish() == b"" and events.batch([chunk({"content": "late"})]) == b""


def test_held_and_ignored_chunks() -> None:
    events = MessageEvents(MODEL)
    assert events.batch([]) == b""
    assert kinds(typed_events(events.batch([ROLE]))) == ["message_start", "ping"]  # started, nothing else
    quiet = [chunk({"annotations": [{"type": "url_citation"}], "document_citations": []}),
             chunk({"role": "assistant"}), chunk({}, extra_fields={"provider": "p"}),
             {**chunk({"content": "second choice"}), "choices": [{"index": 1, "delta": {"content": "no"},
                                                                  "finish_reason": None}]},
             chunk({}, "stop"), usage_chunk(3, 1)]
    assert events.batch(quiet) == b""  # the finish and the usage wait for message_delta
    tail = typed_events(events.finish())
    assert kinds(tail) == ["message_delta", "message_stop"]
    assert tail[0]["usage"]["output_tokens"] == 1


def test_malformed_chunks_are_skipped_not_raised() -> None:
    odd = [None, {"choices": None}, {"choices": [None, {"delta": "x"}]}, chunk({"content": 5, "reasoning_content": []}),
           chunk({"tool_calls": [5, {"index": "a", "function": None}]}), chunk({"thinking_blocks": "x"}),
           {"choices": [], "usage": "lots"}, chunk({"content": "fine"}), chunk({}, "stop")]
    message, _ = fold(run(odd))  # type: ignore[arg-type]
    assert [b.type for b in message.content] == ["tool_use", "text"] and message.content[1].text == "fine"
    assert message.stop_reason == "tool_use"


def test_content_filter_refusal_stream() -> None:
    message, events = fold(run([ROLE, chunk({"content": "I"}), chunk({"refusal": "Blocked by policy."},
                                                                      "content_filter")]))
    assert message.stop_reason == "refusal" and message.content[0].text == "I"
    assert events[-2]["delta"]["stop_details"] == {"type": "refusal", "explanation": "Blocked by policy."}


@pytest.mark.parametrize("name", ["text", "tool_use", "thinking_tool"])
def test_anthropic_streams_survive_the_round_trip(name: str) -> None:
    """Anthropic SSE -> canonical chunks (the provider) -> Messages SSE (the face), folded by the SDK."""
    original = orjson.loads((FIXTURES / f"{name}.json").read_bytes())
    chunks = feed(AnthropicStream("anthropic", "claude"), (FIXTURES / f"{name}.sse").read_bytes())
    message, _ = fold(run(chunks))
    visible = [b for b in original["content"] if b["type"] in ("text", "thinking", "tool_use")]
    assert [b.type for b in message.content] == [b["type"] for b in visible]
    for got, want in zip(message.content, visible, strict=True):
        if want["type"] == "text":
            assert got.text == want["text"]
        elif want["type"] == "thinking":
            assert got.thinking == want["thinking"]  # its signature came after it closed (see MessageEvents)
        else:
            assert (got.id, got.name, got.input) == (want["id"], want["name"], want["input"])
    assert message.stop_reason == original["stop_reason"] and message.id == original["id"]
    usage = original["usage"]
    assert (message.usage.input_tokens, message.usage.output_tokens) == (usage["input_tokens"],
                                                                         usage["output_tokens"])
    assert message.usage.cache_read_input_tokens == usage.get("cache_read_input_tokens", 0)
