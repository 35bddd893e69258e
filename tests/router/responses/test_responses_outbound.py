"""Canonical answers -> Responses answers (`router/handlers/responses/outbound.py`, `output.py`).

Whole answers are validated with the openai SDK's `Response`; streams are parsed as SSE, every event
validated with the SDK's `ResponseStreamEvent` union, sequence numbers checked, and the events folded by
the SDK's own accumulator (`ResponseStreamState`, what `client.responses.stream()` uses); the final
Response of a stream must equal what `to_response` makes of the same answer. The openai client itself
reads both forms once, over an in-memory transport.
"""

from __future__ import annotations

import copy
from typing import Any

import httpx
import openai
import orjson
import pydantic
import pytest
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent
from support.typed_sse import typed_events

from router.handlers.responses.inbound import to_canonical
from router.handlers.responses.outbound import ResponseEvents, responses_usage, to_response

EVENT = pydantic.TypeAdapter(ResponseStreamEvent)
RID = "resp_abc"
MODEL = "smart"  # what the client asked for; the canonical chunks name the vendor's model
CREATED = 1_700_000_000
REQUEST: dict[str, Any] = {"model": MODEL, "input": "Hi"}
NS_REQUEST: dict[str, Any] = {
    "model": MODEL, "input": "Hi", "tool_choice": "auto", "parallel_tool_calls": True,
    "tools": [{"type": "function", "name": "weather", "parameters": {"type": "object"}, "strict": False},
              {"type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents", "tools": [
                  {"type": "function", "name": "wait_agent", "parameters": {"type": "object"}, "strict": False}]},
              {"type": "web_search"}]}


# -- helpers ----------------------------------------------------------------------------------
def chunk(delta: dict | None = None, finish: str | None = None, **extra: Any) -> dict:
    return {"id": "chatcmpl-abc123", "object": "chat.completion.chunk", "created": 1, "model": "gpt-x",
            "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish, "logprobs": None}], **extra}


def usage(prompt: int, completion: int, cached: int = 0, reasoning: int = 0, written: int = 0) -> dict:
    out: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                           "total_tokens": prompt + completion}
    if cached or written:
        out["prompt_tokens_details"] = {"cached_tokens": cached, "cache_creation_tokens": written}
    if reasoning:
        out["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return out


def usage_chunk(*args: int, **kwargs: int) -> dict:
    return {"id": "chatcmpl-abc123", "object": "chat.completion.chunk", "created": 1, "model": "gpt-x",
            "choices": [], "usage": usage(*args, **kwargs)}


ROLE = chunk({"role": "assistant", "content": ""})


def call(index: int, arguments: str = "", id: str | None = None, name: str | None = None) -> dict:
    piece: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if id is not None:
        piece.update(id=id, type="function")
        piece["function"]["name"] = name
    return chunk({"tool_calls": [piece]})


def completion(message: dict, finish: str = "stop", usage: dict | None = None) -> dict:
    out = {"id": "chatcmpl-xyz", "object": "chat.completion", "created": 1, "model": "gpt-x",
           "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}]}
    if usage is not None:
        out["usage"] = usage
    return out


def assemble(chunks: list[dict]) -> dict:
    """The `chat.completion` the chunks add up to (what the pipeline gives `to_response` unstreamed)."""
    message: dict[str, Any] = {"role": "assistant", "content": ""}
    calls: dict[int, dict] = {}
    finish, total = None, None
    for c in chunks:
        total = c.get("usage") or total
        for choice in c["choices"]:
            delta = choice["delta"]
            for key in ("content", "reasoning_content", "refusal"):
                if delta.get(key):
                    message[key] = (message.get(key) or "") + delta[key]
            for key in ("thinking_blocks", "annotations"):
                if delta.get(key):
                    message[key] = delta[key]
            for piece in delta.get("tool_calls") or ():
                slot = calls.setdefault(piece["index"], {"id": None, "type": "function",
                                                         "function": {"name": "", "arguments": ""}})
                slot["id"] = piece.get("id") or slot["id"]
                slot["function"]["name"] += piece["function"].get("name") or ""
                slot["function"]["arguments"] += piece["function"].get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    out = completion({k: v for k, v in message.items() if k != "role"}, finish or "stop", total)
    return out


def parse_sse(data: bytes) -> list[dict]:
    """Events of a byte stream, checking the exact framing and the sequence numbers (0, 1, 2 …)."""
    events = typed_events(data)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


def fold(data: bytes) -> tuple[dict, list[dict]]:
    """The final Response (validated, as a dict) the SDK's accumulator reaches, and the raw events."""
    events = parse_sse(data)
    state: ResponseStreamState = ResponseStreamState(input_tools=omit, text_format=omit)
    for event in events:
        state.handle_event(EVENT.validate_python(event))
    last = events[-1]
    assert last["type"] in ("response.completed", "response.incomplete", "response.failed")
    assert [e["type"] for e in events].count(last["type"]) == 1
    final = Response.model_validate(last["response"])
    if last["type"] == "response.completed":
        parsed = state._completed_response
        assert parsed is not None and parsed.id == final.id and parsed.output_text == final.output_text
    return final.model_dump(mode="json", exclude_unset=True), events


def run(chunks: list[dict], step: int = 1, request: dict | None = None) -> tuple[bytes, ResponseEvents]:
    """Feed the chunks `step` at a time, as the pipeline's batches come, then finish."""
    events = ResponseEvents(RID, MODEL, request or REQUEST, CREATED)
    data = b"".join(events.batch(chunks[i:i + step]) for i in range(0, len(chunks), step))
    return data + events.finish(), events


def whole(chunks: list[dict], request: dict | None = None) -> dict:
    return to_response(assemble(chunks), response_id=RID, model=MODEL, request=request or REQUEST,
                       created_at=CREATED)


def streamed(chunks: list[dict], request: dict | None = None, step: int = 1) -> tuple[dict, list[dict]]:
    """The stream's final Response, checked equal to `to_response` of the same answer and to `.response`."""
    data, events = run(chunks, step, request)
    final, parsed = fold(data)
    assert events.response == parsed[-1]["response"]
    assert parsed[-1]["response"] == whole(chunks, request)
    return final, parsed


def kinds(events: list[dict]) -> list[str]:
    return [e["type"].removeprefix("response.") for e in events]


# -- to_response ------------------------------------------------------------------------------
def respond(message: dict, finish: str = "stop", use: dict | None = None, request: dict | None = None) -> dict:
    out = to_response(completion(message, finish, use), response_id=RID, model=MODEL, request=request or REQUEST,
                      created_at=CREATED)
    Response.model_validate(out)
    return out


def test_text_response() -> None:
    out = respond({"content": "Hello!"}, use=usage(12, 3))
    assert out == {
        "id": RID, "object": "response", "created_at": CREATED, "status": "completed", "error": None,
        "incomplete_details": None, "instructions": None, "max_output_tokens": None, "model": MODEL,
        "output": [{"id": "msg_abc_0", "type": "message", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": "Hello!", "annotations": []}]}],
        "parallel_tool_calls": True, "previous_response_id": None, "reasoning": {"effort": None, "summary": None},
        "store": True, "temperature": None, "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [],
        "top_p": None, "truncation": "disabled",
        "usage": {"input_tokens": 12, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                  "output_tokens": 3, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 15},
        "user": None, "metadata": {}}
    assert Response.model_validate(out).output_text == "Hello!"


def test_reasoning_text_annotations_and_calls_in_order() -> None:
    blocks = [{"type": "thinking", "thinking": "Weather needs a city.", "signature": "sig=="},
              {"type": "redacted_thinking", "data": "opaque"}]
    out = respond({
        "content": "Checking Oslo (see met.no).", "reasoning_content": "Weather needs a city.",
        "thinking_blocks": blocks,
        "annotations": [{"type": "url_citation", "url_citation": {"start_index": 19, "end_index": 25,
                                                                  "url": "https://met.no", "title": "MET"}},
                        {"type": "file_citation", "file_citation": {"file_id": "f"}}],
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "wait_agent", "arguments": ""}}]},
        finish="tool_calls", request=NS_REQUEST)
    reasoning, message, first, second = out["output"]
    assert reasoning["type"] == "reasoning" and reasoning["id"] == "rs_abc_0"
    assert reasoning["summary"] == [{"type": "summary_text", "text": "Weather needs a city."}]
    assert reasoning["encrypted_content"].startswith("sb1:")
    assert message["content"] == [{"type": "output_text", "text": "Checking Oslo (see met.no).", "annotations": [
        {"type": "url_citation", "start_index": 19, "end_index": 25, "url": "https://met.no", "title": "MET"}]}]
    assert first == {"id": "fc_abc_2", "type": "function_call", "status": "completed", "call_id": "call_1",
                     "name": "weather", "arguments": '{"city":"Oslo"}'}
    assert second == {"id": "fc_abc_3", "type": "function_call", "status": "completed", "call_id": "call_2",
                      "name": "wait_agent", "arguments": "{}", "namespace": "multi_agent_v1"}  # Codex needs it
    assert out["status"] == "completed" and out["tools"] == NS_REQUEST["tools"]


def test_reasoning_without_blocks_has_no_encrypted_content() -> None:
    out = respond({"content": "4", "reasoning_content": "2+2"})
    assert out["output"][0] == {"id": "rs_abc_0", "type": "reasoning", "encrypted_content": None,
                                "summary": [{"type": "summary_text", "text": "2+2"}]}


def test_tool_calls_only_and_no_empty_message() -> None:
    out = respond({"content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "null"}}]}, finish="tool_calls")
    assert [(i["type"], i.get("arguments")) for i in out["output"]] == [("function_call", "{}")]
    assert respond({"content": ""})["output"] == []


@pytest.mark.parametrize(("finish", "status", "reason"), [
    ("stop", "completed", None), ("tool_calls", "completed", None), ("length", "incomplete", "max_output_tokens"),
    ("content_filter", "incomplete", "content_filter"), (None, "completed", None),
])
def test_status(finish: str | None, status: str, reason: str | None) -> None:
    out = respond({"content": "x"}, finish=finish)  # type: ignore[arg-type]
    assert out["status"] == status
    assert out["incomplete_details"] == ({"reason": reason} if reason else None)
    assert out["output"][0]["status"] == ("incomplete" if reason else "completed")


def test_refusal_part() -> None:
    out = respond({"content": None, "refusal": "I can't help with that."}, finish="content_filter")
    assert out["output"][0]["content"] == [{"type": "refusal", "refusal": "I can't help with that."}]
    assert out["status"] == "incomplete"


def test_usage() -> None:
    canonical = usage(1000, 50, cached=600, reasoning=20, written=300)
    assert responses_usage(canonical) == {
        "input_tokens": 1000, "input_tokens_details": {"cached_tokens": 600, "cache_write_tokens": 300},
        "output_tokens": 50, "output_tokens_details": {"reasoning_tokens": 20}, "total_tokens": 1050}
    assert responses_usage(None)["total_tokens"] == 0
    assert responses_usage({"prompt_tokens": "x", "completion_tokens": 2})["total_tokens"] == 2
    assert respond({"content": "x"})["usage"] is None  # no usage known: null, as the SDK allows


def test_request_members_are_echoed() -> None:
    request = {"model": MODEL, "input": "x", "instructions": "Be brief.", "max_output_tokens": 99,
               "metadata": {"k": "v"}, "parallel_tool_calls": False, "temperature": 0.3, "top_p": 0.8,
               "tool_choice": {"type": "function", "name": "f"},
               "tools": [{"type": "function", "name": "f", "parameters": {}, "strict": True}],
               "text": {"format": {"type": "json_object"}, "verbosity": "low"},
               "reasoning": {"effort": "low", "summary": "auto"}, "previous_response_id": "resp_0", "store": False,
               "truncation": "auto", "user": "u"}
    out = respond({"content": "{}"}, request=request)
    for key in ("instructions", "max_output_tokens", "metadata", "parallel_tool_calls", "temperature", "top_p",
                "tool_choice", "tools", "text", "reasoning", "previous_response_id", "store", "truncation", "user"):
        assert out[key] == request[key], key


def test_malformed_completions_do_not_raise() -> None:
    for odd in ({}, {"choices": None}, {"choices": [None]}, {"choices": [{"message": "x"}]},
                completion({"content": 5, "tool_calls": [5, {"function": None}], "annotations": "x",
                            "thinking_blocks": "x", "reasoning_content": []}), {"choices": [], "usage": "lots"}):
        out = to_response(odd, response_id=RID, model=MODEL, request={}, created_at=CREATED)  # type: ignore[arg-type]
        Response.model_validate(out)
        assert out["output"] == [] and out["usage"] is None


# -- streams ----------------------------------------------------------------------------------
def test_text_stream() -> None:
    final, events = streamed([ROLE, chunk({"content": "Hel"}), chunk({"content": "lo"}), chunk({}, "stop"),
                              usage_chunk(20, 2)])
    assert kinds(events) == ["created", "in_progress", "output_item.added", "content_part.added",
                             "output_text.delta", "output_text.delta", "output_text.done", "content_part.done",
                             "output_item.done", "completed"]
    assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    assert events[2]["item"] == {"id": "msg_abc_0", "type": "message", "status": "in_progress", "role": "assistant",
                                 "content": []}
    assert events[4] == {"type": "response.output_text.delta", "sequence_number": 4, "item_id": "msg_abc_0",
                         "output_index": 0, "content_index": 0, "delta": "Hel", "logprobs": []}
    assert events[6]["text"] == "Hello"
    assert final["output"][0]["content"][0]["text"] == "Hello" and final["usage"]["input_tokens"] == 20
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == "Hello"


def test_reasoning_then_text() -> None:
    final, events = streamed([ROLE, chunk({"reasoning_content": "Two plus "}), chunk({"reasoning_content": "two."}),
                              chunk({"content": "4"}), chunk({}, "stop"), usage_chunk(10, 8, reasoning=5)])
    assert kinds(events)[2:10] == ["output_item.added", "reasoning_summary_part.added",
                                   "reasoning_summary_text.delta", "reasoning_summary_text.delta",
                                   "reasoning_summary_text.done", "reasoning_summary_part.done", "output_item.done",
                                   "output_item.added"]
    assert events[2]["item"] == {"id": "rs_abc_0", "type": "reasoning", "summary": [], "encrypted_content": None}
    assert events[4]["summary_index"] == 0 and events[6]["text"] == "Two plus two."
    assert [item["type"] for item in final["output"]] == ["reasoning", "message"]
    assert final["output"][0]["summary"] == [{"type": "summary_text", "text": "Two plus two."}]
    assert final["usage"]["output_tokens_details"] == {"reasoning_tokens": 5}


@pytest.mark.parametrize("step", [1, 3, 100])
def test_text_then_two_parallel_tool_calls_in_pieces(step: int) -> None:
    chunks = [ROLE, chunk({"content": "Checking both."}),
              call(0, id="call_a", name="weather"), call(0, '{"city": "Pa'), call(0, 'ris"}'),
              call(1, id="call_b", name="wait_agent"), call(1, '{"targets":'), call(1, ' ["x"]}'),
              chunk({}, "tool_calls"), usage_chunk(300, 40, cached=256)]
    final, events = streamed(chunks, NS_REQUEST, step)
    assert [(i["type"], i.get("name")) for i in final["output"]] == [
        ("message", None), ("function_call", "weather"), ("function_call", "wait_agent")]
    first, second = final["output"][1:]
    assert (first["call_id"], first["arguments"], first["status"]) == ("call_a", '{"city": "Paris"}', "completed")
    assert (second["call_id"], second["arguments"], second["namespace"]) == ("call_b", '{"targets": ["x"]}',
                                                                             "multi_agent_v1")
    added = [e["item"] for e in events if e["type"] == "response.output_item.added"]
    assert added[1] == {"id": "fc_abc_1", "type": "function_call", "status": "in_progress", "call_id": "call_a",
                        "name": "weather", "arguments": ""}
    pieces = [e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"
              and e["output_index"] == 2]
    assert "".join(pieces) == '{"targets": ["x"]}'
    done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert [e["arguments"] for e in done] == ['{"city": "Paris"}', '{"targets": ["x"]}']
    assert final["usage"]["input_tokens_details"]["cached_tokens"] == 256


@pytest.mark.parametrize("filler", [False, True])
def test_a_tool_without_arguments_ends_with_an_empty_object(filler: bool) -> None:
    # `filler`: the "{}" that providers.base.StreamedArguments puts into the finish chunk's own delta
    finish = chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]} if filler else {}, "tool_calls")
    final, events = streamed([ROLE, call(0, id="call_now", name="clock"), finish, usage_chunk(30, 5)])
    assert [(i["name"], i["arguments"]) for i in final["output"]] == [("clock", "{}")]
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert done["arguments"] == "{}"


def test_length_is_incomplete() -> None:
    final, events = streamed([ROLE, chunk({"content": "Once upon a"}), chunk({}, "length"), usage_chunk(5, 3)])
    assert events[-1]["type"] == "response.incomplete"
    assert final["status"] == "incomplete" and final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["output"][0]["status"] == "incomplete"
    assert events[-2]["item"]["status"] == "incomplete"  # output_item.done of the cut message


def test_finish_without_a_usage_chunk() -> None:
    final, events = streamed([ROLE, chunk({"content": "Hi"}), chunk({}, "stop")])
    assert events[-1]["response"]["usage"] is None and final["status"] == "completed"


def test_finish_of_an_empty_stream_is_still_a_whole_response() -> None:
    events = ResponseEvents(RID, MODEL, REQUEST, CREATED)
    assert events.response is None and events.batch([]) == b""
    final, parsed = fold(events.finish())
    assert kinds(parsed) == ["created", "in_progress", "completed"] and final["output"] == []
    assert events.finish() == b"" and events.batch([chunk({"content": "late"})]) == b""


def test_fail_after_a_text_delta() -> None:
    events = ResponseEvents(RID, MODEL, REQUEST, CREATED)
    data = events.batch([ROLE, chunk({"content": "Partial"})])
    data += events.fail({"code": "server_error", "message": "upstream: boom"})
    final, parsed = fold(data)
    assert kinds(parsed) == ["created", "in_progress", "output_item.added", "content_part.added",
                             "output_text.delta", "failed"]
    assert final["status"] == "failed" and final["error"] == {"code": "server_error", "message": "upstream: boom"}
    assert final["output"][0]["status"] == "incomplete" and final["output"][0]["content"][0]["text"] == "Partial"
    assert events.response is not None and events.response["status"] == "failed"
    assert events.finish() == b"" and events.fail({"code": "x", "message": "y"}) == b""
    assert events.batch([chunk({"content": "late"})]) == b""


@pytest.mark.parametrize(("given", "code"), [
    ({"code": "rate_limit", "message": "m"}, "rate_limit_exceeded"),
    ({"code": "context_window", "message": "m"}, "context_length_exceeded"),
    ({"code": "invalid_prompt", "message": "m"}, "invalid_prompt"),
    ({"message": "m"}, "server_error"), ({}, "server_error"),
])
def test_fail_codes(given: dict, code: str) -> None:
    events = ResponseEvents(RID, MODEL, REQUEST, CREATED)
    parsed = parse_sse(events.fail(given))
    assert kinds(parsed) == ["created", "in_progress", "failed"]
    assert parsed[-1]["response"]["error"]["code"] == code and parsed[-1]["response"]["error"]["message"]


def test_thinking_blocks_on_an_open_reasoning_item() -> None:
    blocks = [{"type": "thinking", "thinking": "Hmm.", "signature": "sig-9"}]
    final, events = streamed([ROLE, chunk({"reasoning_content": "Hmm."}), chunk({"thinking_blocks": blocks}),
                              chunk({}, "stop")])
    done = next(e for e in events if e["type"] == "response.output_item.done")
    assert done["item"]["encrypted_content"] == final["output"][0]["encrypted_content"]
    assert final["output"][0]["encrypted_content"].startswith("sb1:")


def test_thinking_blocks_after_the_reasoning_closed_are_sent_again_at_the_end() -> None:
    blocks = [{"type": "thinking", "thinking": "Two plus two.", "signature": "s1"}]
    final, events = streamed([ROLE, chunk({"reasoning_content": "Two plus two."}), chunk({"content": "4"}),
                              chunk({"thinking_blocks": blocks}), chunk({}, "stop"), usage_chunk(10, 8)])
    done = [e for e in events if e["type"] == "response.output_item.done"]
    assert [(e["output_index"], e["item"]["type"]) for e in done] == [(0, "reasoning"), (1, "message"),
                                                                      (0, "reasoning")]
    assert done[0]["item"]["encrypted_content"] is None  # sent before the blocks came
    assert done[2]["item"] == {**final["output"][0], "summary": []}  # once more, with them, summary shown already
    assert kinds(events)[-2:] == ["output_item.done", "completed"]
    assert final["output"][0]["encrypted_content"].startswith("sb1:")
    assert final["output"][0]["summary"] == [{"type": "summary_text", "text": "Two plus two."}]


def test_redacted_thinking_alone_opens_a_reasoning_item() -> None:
    data, _ = run([ROLE, chunk({"content": "Hi"}), chunk({"thinking_blocks": [{"type": "redacted_thinking",
                                                                                "data": "x"}]}), chunk({}, "stop")])
    final, _ = fold(data)
    assert [i["type"] for i in final["output"]] == ["message", "reasoning"]
    assert final["output"][1]["summary"] == [] and final["output"][1]["encrypted_content"].startswith("sb1:")


def test_annotations_and_refusal_stream() -> None:
    cite = [{"type": "url_citation", "url_citation": {"start_index": 0, "end_index": 3, "url": "https://a.example",
                                                      "title": "A"}}]
    final, events = streamed([ROLE, chunk({"content": "See A."}), chunk({"annotations": cite}),
                              chunk({"refusal": "No more."}), chunk({}, "stop")])
    added = next(e for e in events if e["type"] == "response.output_text.annotation.added")
    assert added["annotation_index"] == 0 and added["annotation"]["url"] == "https://a.example"
    assert final["output"][0]["content"] == [
        {"type": "output_text", "text": "See A.", "annotations": [
            {"type": "url_citation", "start_index": 0, "end_index": 3, "url": "https://a.example", "title": "A"}]},
        {"type": "refusal", "refusal": "No more."}]
    assert "refusal.done" in kinds(events) and "refusal.delta" in kinds(events)


def test_held_and_ignored_chunks() -> None:
    events = ResponseEvents(RID, MODEL, REQUEST, CREATED)
    head = events.batch([ROLE])
    assert kinds(parse_sse(head)) == ["created", "in_progress"]
    odd = [None, {"choices": None}, {"choices": [None, {"delta": "x"}]}, chunk({"content": 5, "reasoning_content": []}),
           chunk({"tool_calls": [5, {"index": "a", "function": None}]}), chunk({"thinking_blocks": "x"}),
           {**chunk({"content": "second choice"}), "choices": [{"index": 1, "delta": {"content": "no"},
                                                                "finish_reason": None}]},
           {"choices": [], "usage": "lots"}, chunk({"content": "fine"}), chunk({}, "stop")]
    data = head + events.batch(odd) + events.finish()  # type: ignore[arg-type]
    final = Response.model_validate(parse_sse(data)[-1]["response"])
    assert [i.type for i in final.output] == ["function_call", "message"] and final.output_text == "fine"


# -- thinking blocks round trip ---------------------------------------------------------------
BLOCKS = [{"type": "thinking", "thinking": "Weather needs a city.", "signature": "EqQBCkgIARAB=="},
          {"type": "redacted_thinking", "data": "EmwKAhgB"},
          {"type": "thinking", "thinking": " Paris it is.", "signature": "sig-2"}]


def _next_turn(output: list[dict], calls: int = 1) -> dict:
    """The canonical assistant message of the next request, which replays `output` and answers its calls."""
    replay = [{"role": "user", "content": "Weather?"}, *copy.deepcopy(output),
              *({"type": "function_call_output", "call_id": f"toolu_{i + 1}", "output": "18C"} for i in range(calls))]
    body = to_canonical({"model": MODEL, "input": replay,
                         "tools": [{"type": "function", "name": "weather", "parameters": {"type": "object"},
                                    "strict": False}]}).body
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", *["tool"] * calls]
    return body["messages"][1]


def test_thinking_blocks_round_trip_through_to_response() -> None:
    out = respond({"content": "Checking.", "reasoning_content": "Weather needs a city. Paris it is.",
                   "thinking_blocks": BLOCKS, "tool_calls": [
                       {"id": "toolu_1", "type": "function", "function": {"name": "weather",
                                                                          "arguments": '{"city":"Paris"}'}}]},
                  finish="tool_calls")
    assistant = _next_turn(out["output"])
    assert assistant["thinking_blocks"] == BLOCKS
    assert assistant["reasoning_content"] == "Weather needs a city. Paris it is."
    assert assistant["content"] == "Checking." and assistant["tool_calls"][0]["id"] == "toolu_1"


@pytest.mark.parametrize("late", [False, True])
def test_thinking_blocks_round_trip_through_a_stream(late: bool) -> None:
    """Replayed from the final Response (the face's store) or, as Codex does, from every `output_item.done`."""
    thinking = [chunk({"reasoning_content": "Weather needs a city."}), chunk({"reasoning_content": " Paris it is."})]
    calls = [chunk({"content": "Checking."}), call(0, id="toolu_1", name="weather"), call(0, '{"city":"Paris"}'),
             call(1, id="toolu_2", name="weather"), call(1, '{"city":"Oslo"}')]
    blocks = [chunk({"thinking_blocks": BLOCKS})]
    # Anthropic's order: the blocks whole just before the finish, after the text and the calls
    body = [*thinking, *calls, *blocks] if late else [*thinking, *blocks, *calls]
    final, events = streamed([ROLE, *body, chunk({}, "tool_calls"), usage_chunk(50, 20)])
    kept = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert len(kept) == (5 if late else 4)
    for output in (final["output"], kept):
        assistant = _next_turn(output, 2)
        assert assistant["thinking_blocks"] == BLOCKS
        assert assistant["reasoning_content"] == "Weather needs a city. Paris it is."
        assert assistant["content"] == "Checking." and len(assistant["tool_calls"]) == 2


# -- the openai client itself -----------------------------------------------------------------
def _client(body: bytes, content_type: str) -> openai.OpenAI:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body,
                                                                  headers={"content-type": content_type}))
    return openai.OpenAI(api_key="sk-test", base_url="http://router.test/v1", max_retries=0,
                         http_client=httpx.Client(transport=transport))


def test_the_openai_client_reads_both_forms() -> None:
    chunks = [ROLE, chunk({"reasoning_content": "Think."}), chunk({"content": "Calling."}),
              call(0, id="call_1", name="weather"), call(0, '{"city":"Oslo"}'), chunk({}, "tool_calls"),
              usage_chunk(40, 9, cached=32, reasoning=4)]
    data, _ = run(chunks, 2, NS_REQUEST)
    with _client(data, "text/event-stream").responses.stream(model=MODEL, input="Hi") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert deltas == ["Calling."] and final.output_text == "Calling."
    assert [i.type for i in final.output] == ["reasoning", "message", "function_call"]
    assert final.usage is not None and final.usage.input_tokens_details.cached_tokens == 32
    body = orjson.dumps(whole(chunks, NS_REQUEST))
    created = _client(body, "application/json").responses.create(model=MODEL, input="Hi")
    assert created.model_dump(mode="json", exclude_unset=True) == _unparsed(final.model_dump(mode="json",
                                                                                             exclude_unset=True))


def _unparsed(value: Any) -> Any:
    """A ParsedResponse without the `parsed` members the stream helper adds."""
    if isinstance(value, dict):
        return {k: _unparsed(v) for k, v in value.items() if k not in ("parsed", "parsed_arguments")}
    if isinstance(value, list):
        return [_unparsed(v) for v in value]
    return value
