"""providers/openai_responses.py: OpenAI Responses bodies and streams read as canonical objects.

Every Response and stream event is built with the openai SDK's own types (`openai.types.responses`) and
dumped as JSON, so the reader is tested on real shapes; every canonical answer is validated with the
SDK's Chat Completions types (`support.openai_chunks.feed`, `ChatCompletion`). The round trip through
the Responses face's renderer (`router/handlers/responses`) checks the reader against an independent
writer of the same wire format.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from openai.types.chat import ChatCompletion
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseCreatedEvent,
    ResponseCustomToolCall,
    ResponseCustomToolCallInputDeltaEvent,
    ResponseErrorEvent,
    ResponseFailedEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseFunctionToolCall,
    ResponseIncompleteEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseOutputRefusal,
    ResponseOutputText,
    ResponseOutputTextAnnotationAddedEvent,
    ResponseReasoningItem,
    ResponseReasoningSummaryTextDeltaEvent,
    ResponseRefusalDeltaEvent,
    ResponseTextDeltaEvent,
    ResponseUsage,
)
from openai.types.responses.response_reasoning_item import Summary
from support.openai_chunks import assemble, feed

from providers.errors import ErrorKind, UpstreamError
from providers.openai_responses import ResponsesStream, response_to_completion

MODEL = "gpt-5"
RID = "resp_0123456789abcdef"


# -- building real shapes ---------------------------------------------------------------------
def usage(inp: int = 120, out: int = 40, cached: int = 100, reasoning: int = 24) -> ResponseUsage:
    return ResponseUsage(input_tokens=inp, output_tokens=out, total_tokens=inp + out,
                         input_tokens_details={"cached_tokens": cached, "cache_write_tokens": 0},
                         output_tokens_details={"reasoning_tokens": reasoning})


def response(output: list, status: str = "completed", reason: str | None = None, error: dict | None = None,
             use: ResponseUsage | None = None) -> Response:
    return Response(id=RID, created_at=1_700_000_000, model="gpt-5-2025-08-07", object="response", output=output,
                    parallel_tool_calls=True, tool_choice="auto", tools=[], status=status,  # type: ignore[arg-type]
                    incomplete_details={"reason": reason} if reason else None, error=error, usage=use)


def message(*parts: Any, mid: str = "msg_1") -> ResponseOutputMessage:
    return ResponseOutputMessage(id=mid, type="message", role="assistant", status="completed", content=list(parts))


def text(value: str, annotations: list | None = None) -> ResponseOutputText:
    return ResponseOutputText(type="output_text", text=value, annotations=annotations or [])


def call(call_id: str, name: str, arguments: str, fid: str) -> ResponseFunctionToolCall:
    return ResponseFunctionToolCall(type="function_call", id=fid, call_id=call_id, name=name, arguments=arguments,
                                    status="completed")


def reasoning(*summaries: str) -> ResponseReasoningItem:
    return ResponseReasoningItem(id="rs_1", type="reasoning",
                                 summary=[Summary(type="summary_text", text=s) for s in summaries])


def body(resp: Response) -> bytes:
    return orjson.dumps(resp.model_dump(mode="json"))


class Events:
    """A Responses SSE stream, event by event, numbered as OpenAI numbers them."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def add(self, cls: type, **fields: Any) -> Events:
        event = cls(sequence_number=len(self.parts), type=cls.model_fields["type"].annotation.__args__[0], **fields)
        data = orjson.dumps(event.model_dump(mode="json"))
        self.parts.append(b"event: " + event.type.encode() + b"\ndata: " + data + b"\n\n")
        return self

    def created(self) -> Events:
        return self.add(ResponseCreatedEvent, response=response([], status="in_progress"))

    def text(self, delta: str, item: str = "msg_1", at: int = 0, part: int = 0) -> Events:
        return self.add(ResponseTextDeltaEvent, item_id=item, output_index=at, content_index=part, delta=delta,
                        logprobs=[])

    def added(self, item: Any, at: int) -> Events:
        return self.add(ResponseOutputItemAddedEvent, item=item, output_index=at)

    def args(self, delta: str, item: str, at: int) -> Events:
        return self.add(ResponseFunctionCallArgumentsDeltaEvent, item_id=item, output_index=at, delta=delta)

    def bytes(self) -> bytes:
        return b"".join(self.parts)


def in_progress(item: ResponseFunctionToolCall) -> ResponseFunctionToolCall:
    return item.model_copy(update={"arguments": "", "status": "in_progress"})


def read(data: bytes, step: int | None = None) -> list[dict]:
    return feed(ResponsesStream("openai", MODEL), data, step)


def check_contract(chunks: list[dict]) -> None:
    """Role chunk first, one finish, tool indices from 0 with id and name on the first fragment, usage last."""
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    finishes = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finishes) == 1
    seen: list[int] = []
    for chunk in chunks:
        for choice in chunk["choices"]:
            for piece in choice["delta"].get("tool_calls") or ():
                if piece["index"] not in seen:
                    assert piece["index"] == len(seen) and piece["id"] and piece["function"]["name"]
                    seen.append(piece["index"])
    assert len({c["id"] for c in chunks}) == 1 and {c["model"] for c in chunks} == {MODEL}
    usage_chunks = [i for i, c in enumerate(chunks) if c.get("usage")]
    assert usage_chunks in ([], [len(chunks) - 1]) and (not usage_chunks or chunks[-1]["choices"] == [])


# -- non-stream -------------------------------------------------------------------------------
def test_body_text_refusal_reasoning_usage() -> None:
    cite = {"type": "url_citation", "start_index": 0, "end_index": 5, "url": "https://example.com", "title": "Ex"}
    resp = response([reasoning("**Plan**", "Think."), message(text("Hello "), text("world", [cite])),
                     message(ResponseOutputRefusal(type="refusal", refusal="No."), mid="msg_2")],
                    use=usage())
    out = response_to_completion("openai", body(resp), MODEL)
    ChatCompletion.model_validate(out)
    msg = out["choices"][0]["message"]
    assert (out["id"], out["model"], out["created"]) == (RID, MODEL, 1_700_000_000)
    assert msg["content"] == "Hello world" and msg["refusal"] == "No."
    assert msg["reasoning_content"] == "**Plan**\n\nThink."
    assert msg["annotations"][0]["url_citation"] == {"start_index": 6, "end_index": 11,
                                                     "url": "https://example.com", "title": "Ex"}
    assert out["choices"][0]["finish_reason"] == "stop"
    assert out["usage"] == {"prompt_tokens": 120, "completion_tokens": 40, "total_tokens": 160,
                            "prompt_tokens_details": {"cached_tokens": 100},
                            "completion_tokens_details": {"reasoning_tokens": 24}}


def test_body_function_calls() -> None:
    resp = response([call("call_a", "get_weather", '{"city":"Paris"}', "fc_1"), call("call_b", "now", "", "fc_2")],
                    use=usage())
    out = response_to_completion("openai", body(resp), MODEL)
    ChatCompletion.model_validate(out)
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
        {"id": "call_b", "type": "function", "function": {"name": "now", "arguments": "{}"}}]


def test_body_custom_tool_call_and_hosted_tools_skipped() -> None:
    custom = ResponseCustomToolCall(type="custom_tool_call", id="ctc_1", call_id="call_p", name="apply_patch",
                                    input="*** Begin Patch")
    search = {"id": "ws_1", "type": "web_search_call", "status": "completed",
              "action": {"type": "search", "query": "weather"}}
    resp = response([search, custom]).model_dump(mode="json")
    resp["tool_usage"] = {"web_search": {"num_requests": 1},
                          "image_gen": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0,
                                        "input_tokens_details": {"image_tokens": 0, "text_tokens": 0}}}
    resp["usage"] = usage().model_dump(mode="json")
    Response.model_validate(resp)
    out = response_to_completion("openai", orjson.dumps(resp), MODEL)
    assert out["choices"][0]["message"]["tool_calls"] == [
        {"id": "call_p", "type": "custom", "custom": {"name": "apply_patch", "input": "*** Begin Patch"}}]
    assert out["choices"][0]["finish_reason"] == "tool_calls"
    assert out["usage"]["server_tool_use"] == {"web_search_requests": 1}


@pytest.mark.parametrize(("reason", "finish"), [("max_output_tokens", "length"), ("content_filter", "content_filter")])
def test_body_incomplete(reason: str, finish: str) -> None:
    resp = response([message(text("Once upon"))], status="incomplete", reason=reason, use=usage())
    assert response_to_completion("openai", body(resp), MODEL)["choices"][0]["finish_reason"] == finish


@pytest.mark.parametrize(("code", "kind"), [
    ("server_error", ErrorKind.SERVER), ("rate_limit_exceeded", ErrorKind.RATE_LIMIT),
    ("invalid_prompt", ErrorKind.BAD_REQUEST), ("bio_policy", ErrorKind.CONTENT_POLICY),
    ("invalid_image_url", ErrorKind.BAD_REQUEST)])
def test_body_failed(code: str, kind: ErrorKind) -> None:
    resp = response([], status="failed", error={"code": code, "message": "it broke"})
    with pytest.raises(UpstreamError) as caught:
        response_to_completion("openai", body(resp), MODEL)
    assert (caught.value.kind, caught.value.code) == (kind, code) and "it broke" in caught.value.message


def test_body_context_window_and_error_envelope() -> None:
    envelope = {"error": {"message": "Your input exceeds the context window of this model.",
                          "type": "invalid_request_error", "code": "context_length_exceeded", "param": "input"}}
    with pytest.raises(UpstreamError) as caught:
        response_to_completion("openai", orjson.dumps(envelope), MODEL)
    assert caught.value.kind is ErrorKind.CONTEXT_WINDOW and caught.value.param == "input"


@pytest.mark.parametrize("raw", [b"<html>502</html>", b"[1, 2]", b'{"id": "resp_1", "object": "response"}',
                                 body(response([], status="queued"))])
def test_body_invalid(raw: bytes) -> None:
    with pytest.raises(UpstreamError) as caught:
        response_to_completion("openai", raw, MODEL)
    assert caught.value.kind is ErrorKind.INVALID_RESPONSE


# -- streams ----------------------------------------------------------------------------------
def text_stream() -> Events:
    final = response([reasoning("Think."), message(text("Héllo wörld 🌍"), mid="msg_1")], use=usage())
    return (Events().created()
            .added(ResponseReasoningItem(id="rs_1", type="reasoning", summary=[]), 0)
            .add(ResponseReasoningSummaryTextDeltaEvent, item_id="rs_1", output_index=0, summary_index=0,
                 delta="Think.")
            .added(message(mid="msg_1"), 1).text("Héllo ", at=1).text("wörld 🌍", at=1)
            .add(ResponseCompletedEvent, response=final))


@pytest.mark.parametrize("step", [None, 1, 2, 7])
def test_stream_text_reasoning_usage_any_read_size(step: int | None) -> None:
    chunks = read(text_stream().bytes(), step)  # step 1 and 2 split inside the UTF-8 characters
    check_contract(chunks)
    got = assemble(chunks)
    assert (got["content"], got["reasoning"], got["finish"]) == ("Héllo wörld 🌍", "Think.", "stop")
    assert got["usage"] == {"prompt_tokens": 120, "completion_tokens": 40, "total_tokens": 160,
                            "prompt_tokens_details": {"cached_tokens": 100},
                            "completion_tokens_details": {"reasoning_tokens": 24}}
    assert chunks[0]["id"] == RID


def test_stream_refusal_and_summary_parts() -> None:
    events = Events().created()
    for index, piece in enumerate(["**A**", "**B**"]):
        events.add(ResponseReasoningSummaryTextDeltaEvent, item_id="rs_1", output_index=0, summary_index=index,
                   delta=piece)
    events.add(ResponseRefusalDeltaEvent, item_id="msg_1", output_index=1, content_index=0, delta="I can't.")
    chunks = read(events.add(ResponseCompletedEvent, response=response([])).bytes())
    check_contract(chunks)
    assert assemble(chunks)["reasoning"] == "**A**\n\n**B**"
    assert "".join(c["choices"][0]["delta"].get("refusal") or "" for c in chunks if c["choices"]) == "I can't."
    assert not any(c.get("usage") for c in chunks)  # none reported: none made up


def calls_stream() -> Events:
    a, b = call("call_a", "get_weather", '{"city":"Paris"}', "fc_1"), call("call_b", "now", "", "fc_2")
    events = Events().created().added(in_progress(a), 0).added(in_progress(b), 1)
    for piece in ('{"ci', 'ty":', '"Paris"}'):  # interleaved with nothing for the second: it has no arguments
        events.args(piece, "fc_1", 0)
    events.add(ResponseFunctionCallArgumentsDoneEvent, item_id="fc_1", output_index=0, name="get_weather",
               arguments='{"city":"Paris"}')
    events.add(ResponseOutputItemDoneEvent, item=a, output_index=0)
    events.add(ResponseOutputItemDoneEvent, item=b, output_index=1)
    return events.add(ResponseCompletedEvent, response=response([a, b], use=usage()))


@pytest.mark.parametrize("step", [None, 1, 5])
def test_stream_parallel_calls(step: int | None) -> None:
    chunks = read(calls_stream().bytes(), step)
    check_contract(chunks)
    got = assemble(chunks)
    assert got["finish"] == "tool_calls"
    assert got["calls"] == {0: {"id": "call_a", "name": "get_weather", "arguments": '{"city":"Paris"}'},
                            1: {"id": "call_b", "name": "now", "arguments": "{}"}}


def test_stream_arguments_only_in_done_events() -> None:
    a = call("call_a", "f", '{"x":1}', "fc_1")
    events = (Events().created().added(in_progress(a), 0)
              .add(ResponseFunctionCallArgumentsDoneEvent, item_id="fc_1", output_index=0, name="f",
                   arguments='{"x":1}')
              .add(ResponseOutputItemDoneEvent, item=a, output_index=0)
              .add(ResponseCompletedEvent, response=response([a])))
    assert assemble(read(events.bytes()))["calls"] == {0: {"id": "call_a", "name": "f", "arguments": '{"x":1}'}}


def test_stream_custom_tool_call() -> None:
    item = ResponseCustomToolCall(type="custom_tool_call", id="ctc_1", call_id="call_p", name="apply_patch", input="")
    events = (Events().created().added(item, 0)
              .add(ResponseCustomToolCallInputDeltaEvent, item_id="ctc_1", output_index=0, delta="*** Begin")
              .add(ResponseCompletedEvent, response=response([item])))
    chunks = read(events.bytes())
    calls = [p for c in chunks if c["choices"] for p in c["choices"][0]["delta"].get("tool_calls") or ()]
    assert calls == [{"index": 0, "id": "call_p", "custom": {"name": "apply_patch", "input": ""}},
                     {"index": 0, "custom": {"input": "*** Begin"}}]
    assert assemble(chunks)["finish"] == "tool_calls"


def test_stream_annotation_spans_the_content() -> None:
    cite = {"type": "url_citation", "start_index": 0, "end_index": 3, "url": "https://a.example", "title": "A"}
    events = (Events().created().text("See ", part=0).text("one", item="msg_2", at=1)
              .add(ResponseOutputTextAnnotationAddedEvent, item_id="msg_2", output_index=1, content_index=0,
                   annotation_index=0, annotation=cite)
              .add(ResponseCompletedEvent, response=response([])))
    chunks = read(events.bytes())
    cited = [c["choices"][0]["delta"]["annotations"] for c in chunks if c["choices"]
             and c["choices"][0]["delta"].get("annotations")]
    assert cited == [[{"type": "url_citation", "url_citation": {"start_index": 4, "end_index": 7,
                                                                "url": "https://a.example", "title": "A"}}]]


def test_stream_incomplete_is_length() -> None:
    events = Events().created().text("Once upon").add(
        ResponseIncompleteEvent, response=response([], status="incomplete", reason="max_output_tokens", use=usage()))
    chunks = read(events.bytes())
    check_contract(chunks)
    assert assemble(chunks)["finish"] == "length"


def test_stream_failed_raises_at_once_when_nothing_came() -> None:
    failed = response([], status="failed", error={"code": "rate_limit_exceeded", "message": "slow down"})
    stream = ResponsesStream("openai", MODEL)
    with pytest.raises(UpstreamError) as caught:
        stream.feed(Events().add(ResponseFailedEvent, response=failed).bytes())
    assert caught.value.kind is ErrorKind.RATE_LIMIT and caught.value.code == "rate_limit_exceeded"


def test_stream_failed_after_text_is_held() -> None:
    failed = response([], status="failed", error={"code": "server_error", "message": "boom"})
    stream = ResponsesStream("openai", MODEL)
    chunks = stream.feed(Events().created().text("partial").add(ResponseFailedEvent, response=failed).bytes())
    assert assemble(chunks)["content"] == "partial"
    for call_ in (stream.check, lambda: stream.feed(b""), stream.close):
        with pytest.raises(UpstreamError) as caught:
            call_()
        assert caught.value.kind is ErrorKind.SERVER


@pytest.mark.parametrize(("code", "message", "kind"), [
    ("context_length_exceeded", "too long", ErrorKind.CONTEXT_WINDOW),
    ("rate_limit_exceeded", "slow down", ErrorKind.RATE_LIMIT),
    (None, "Internal error", ErrorKind.SERVER)])
def test_stream_error_event(code: str | None, message: str, kind: ErrorKind) -> None:
    stream = ResponsesStream("openai", MODEL)
    stream.feed(Events().created().bytes())
    with pytest.raises(UpstreamError) as caught:
        stream.feed(Events().add(ResponseErrorEvent, code=code, message=message, param=None).bytes())
    assert caught.value.kind is kind


@pytest.mark.parametrize("cut", [0, 40, -30])
def test_stream_cut(cut: int) -> None:
    data = text_stream().bytes()
    data = data[:len(data) - len(text_stream().parts[-1])] if cut == 0 else data[:cut]  # no terminal event
    stream = ResponsesStream("openai", MODEL)
    stream.feed(data)
    with pytest.raises(UpstreamError) as caught:
        stream.close()
    assert caught.value.kind is ErrorKind.STREAM_CUT and caught.value.code == "stream_truncated"


def test_stream_ignores_unknown_events_and_garbage_is_invalid() -> None:
    events = text_stream()
    events.parts.insert(2, b'event: response.brand_new\ndata: {"type": "response.brand_new", "x": 1}\n\n')
    assert assemble(read(events.bytes()))["content"] == "Héllo wörld 🌍"
    with pytest.raises(UpstreamError) as caught:
        ResponsesStream("openai", MODEL).feed(b"data: <html>\n\n")
    assert caught.value.kind is ErrorKind.INVALID_RESPONSE


# -- round trip through the Responses face's renderer -----------------------------------------
def canonical_chunks() -> list[dict]:
    head = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": MODEL}

    def chunk(delta: dict, finish: str | None = None) -> dict:
        return {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    return [chunk({"role": "assistant", "content": ""}), chunk({"reasoning_content": "Let me "}),
            chunk({"reasoning_content": "think."}), chunk({"content": "Checking "}), chunk({"content": "now 🌍"}),
            chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                                   "function": {"name": "get_weather", "arguments": ""}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
            chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                                   "function": {"name": "now", "arguments": ""}}]}),
            chunk({}, "tool_calls"),
            {**head, "choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 30, "total_tokens": 80,
                                              "prompt_tokens_details": {"cached_tokens": 20},
                                              "completion_tokens_details": {"reasoning_tokens": 10}}}]


def test_round_trip_stream_through_the_renderer() -> None:
    outbound = pytest.importorskip("router.handlers.responses.outbound")
    renderer = outbound.ResponseEvents(RID, MODEL, {}, 1_700_000_000)
    wire = renderer.batch(canonical_chunks()) + renderer.finish()
    for step in (None, 3):
        chunks = read(wire, step)
        check_contract(chunks)
        got = assemble(chunks)
        assert (got["content"], got["reasoning"], got["finish"]) == ("Checking now 🌍", "Let me think.", "tool_calls")
        assert got["calls"] == {0: {"id": "call_a", "name": "get_weather", "arguments": '{"city":"Paris"}'},
                                1: {"id": "call_b", "name": "now", "arguments": "{}"}}
        assert got["usage"]["prompt_tokens"] == 50 and got["usage"]["completion_tokens"] == 30
        assert got["usage"]["prompt_tokens_details"]["cached_tokens"] == 20
        assert got["usage"]["completion_tokens_details"]["reasoning_tokens"] == 10
    Response.model_validate(renderer.response)
    back = response_to_completion("openai", orjson.dumps(renderer.response), MODEL)
    assert back["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == '{"city":"Paris"}'


@pytest.mark.parametrize("finish", ["stop", "length", "content_filter", "tool_calls"])
def test_round_trip_body_through_the_renderer(finish: str) -> None:
    to_response = pytest.importorskip("router.handlers.responses.output").to_response
    message_ = {"role": "assistant", "content": "Hi", "refusal": "Not that part.", "reasoning_content": "Hmm.",
                "tool_calls": [{"id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
                if finish == "tool_calls" else None}
    completion = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": MODEL,
                  "choices": [{"index": 0, "message": message_, "finish_reason": finish}],
                  "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13,
                            "prompt_tokens_details": {"cached_tokens": 3},
                            "completion_tokens_details": {"reasoning_tokens": 2}}}
    rendered = to_response(completion, response_id=RID, model=MODEL, request={}, created_at=1)
    Response.model_validate(rendered)
    back = response_to_completion("openai", orjson.dumps(rendered), MODEL)
    ChatCompletion.model_validate(back)
    choice = back["choices"][0]
    assert choice["finish_reason"] == finish and choice["message"]["content"] == "Hi"
    assert choice["message"]["refusal"] == "Not that part."
    assert choice["message"]["reasoning_content"] == "Hmm."
    assert choice["message"].get("tool_calls") == message_["tool_calls"]
    assert back["usage"] == completion["usage"]
