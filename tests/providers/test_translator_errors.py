"""Every stream translator keeps what a read produced before an error in that same read.

One network read may hold content and then an error event (or garbage): the router relays content
it has read and fails over only before the first content, so a translator that raised from the
middle of a read would make it drop content the vendor sent (and bills) and ask another deployment
again. `feed` returns the chunks and holds the error back; the next `feed`, `close` or `check`
raises it. An error before any chunk of a read still raises at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from openai.types.chat import ChatCompletionChunk

from providers import ErrorKind, ProviderSettings, StreamTranslator, UpstreamError, create_provider
from providers.eventstream import event_frame, exception_frame

FIXTURES = Path(__file__).parent / "fixtures"


def translator(kind: str, model: str = "m") -> Callable[[], StreamTranslator]:
    return lambda: create_provider(ProviderSettings(name=kind, type=kind)).chat_stream(model)


def sse(*events: dict, name: str | None = None) -> bytes:
    head = f"event: {name}\n".encode() if name else b""
    return b"".join(head + b"data: " + orjson.dumps(e) + b"\n\n" for e in events)


def frames(*events: tuple[str, dict]) -> bytes:
    return b"".join(event_frame(name, orjson.dumps(payload)) for name, payload in events)


def _openai_chunk(delta: dict) -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}]}


def _anthropic_fixture() -> tuple[bytes, bytes]:
    head, sep, tail = (FIXTURES / "anthropic" / "error_midstream.sse").read_bytes().partition(b"event: error")
    return head, sep + tail


def _gemini_fixture() -> tuple[bytes, bytes]:
    data = (FIXTURES / "gemini" / "error_stream.sse").read_bytes()
    cut = data.index(b'data: {"error"')
    return data[:cut], data[cut:]


def _corrupt(frame: bytes) -> bytes:
    """A frame whose message CRC does not match (its prelude is intact)."""
    return frame[:-1] + bytes([frame[-1] ^ 0xFF])


_ANTHROPIC = _anthropic_fixture()
_GEMINI = _gemini_fixture()
_BEDROCK_HEAD = frames(("messageStart", {"role": "assistant"}),
                       ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hel"}}))
_COHERE_HEAD = sse({"type": "message-start", "id": "c1", "delta": {"message": {"role": "assistant"}}},
                   {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "Hel"}}}})


@dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[], StreamTranslator]
    head: bytes  # events that carry content
    fault: bytes  # what breaks the stream right after them
    kind: ErrorKind
    text: str  # the content (and reasoning) the head carries

    def __str__(self) -> str:
        return self.id


CASES = [
    Case("openai-error-event", translator("openai"),
         sse(_openai_chunk({"role": "assistant", "content": ""}), _openai_chunk({"content": "Hel"})),
         sse({"error": {"message": "Overloaded", "type": "overloaded_error"}}), ErrorKind.OVERLOADED, "Hel"),
    Case("openai-garbage", translator("openai"), sse(_openai_chunk({"content": "Hel"})),
         b'data: {"choices": [{"delta": {"content": "oo\n\n', ErrorKind.INVALID_RESPONSE, "Hel"),
    Case("anthropic-overloaded", translator("anthropic"), *_ANTHROPIC, ErrorKind.OVERLOADED, "Once upon"),
    Case("gemini-error-event", translator("gemini", "gemini-2.5-flash"), *_GEMINI, ErrorKind.OVERLOADED,
         "**Answering**\n\nThe user wants the capital."),
    Case("gemini-failed-finish", translator("gemini", "gemini-2.5-flash"),
         sse({"candidates": [{"content": {"parts": [{"text": "Hel"}], "role": "model"}, "index": 0}],
              "responseId": "r1"}),
         sse({"candidates": [{"content": {"role": "model"}, "index": 0, "finishReason": "MALFORMED_FUNCTION_CALL"}],
              "responseId": "r1"}), ErrorKind.INVALID_RESPONSE, "Hel"),
    Case("bedrock-exception-frame", translator("bedrock"), _BEDROCK_HEAD,
         exception_frame("throttlingException", b'{"message":"Too many tokens"}'), ErrorKind.RATE_LIMIT, "Hel"),
    Case("bedrock-corrupt-frame", translator("bedrock"), _BEDROCK_HEAD,
         _corrupt(event_frame("contentBlockDelta", b'{"contentBlockIndex":0,"delta":{"text":"lo"}}')),
         ErrorKind.INVALID_RESPONSE, "Hel"),
    Case("cohere-error-finish", translator("cohere"), _COHERE_HEAD,
         sse({"type": "message-end", "delta": {"finish_reason": "ERROR", "error": "internal failure"}},
             name="message-end"), ErrorKind.SERVER, "Hel"),
    Case("cohere-error-event", translator("cohere"), _COHERE_HEAD,
         sse({"type": "error", "error": "internal failure"}), ErrorKind.SERVER, "Hel"),
]


def streamed(chunks: list[dict]) -> str:
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    return "".join((c["delta"].get("content") or "") + (c["delta"].get("reasoning_content") or "")
                   for chunk in chunks for c in chunk["choices"])


@pytest.mark.parametrize("case", CASES, ids=str)
def test_content_then_error_in_one_read_returns_the_content_then_raises(case):
    stream = case.make()
    assert streamed(stream.feed(case.head + case.fault)) == case.text
    with pytest.raises(UpstreamError) as info:
        stream.feed(b"")  # the next read, whatever it holds
    assert info.value.kind is case.kind


@pytest.mark.parametrize("case", CASES, ids=str)
def test_held_error_is_raised_by_check_and_close(case):
    stream = case.make()
    assert streamed(stream.feed(case.head + case.fault)) == case.text
    for call in (stream.check, stream.close, stream.check):
        with pytest.raises(UpstreamError) as info:
            call()
        assert info.value.kind is case.kind


@pytest.mark.parametrize("case", CASES, ids=str)
def test_error_before_any_chunk_of_a_read_raises_at_once(case):
    stream = case.make()
    assert streamed(stream.feed(case.head)) == case.text
    with pytest.raises(UpstreamError) as info:
        stream.feed(case.fault)
    assert info.value.kind is case.kind


def test_clean_stream_has_nothing_held():
    stream = translator("openai")()
    chunks = stream.feed(sse(_openai_chunk({"content": "Hel"})) + b"data: [DONE]\n\n")
    stream.check()
    assert streamed(chunks + stream.close()) == "Hel"


def test_gemini_content_and_failed_finish_in_one_event():
    """A Gemini event is a whole response: its text parts come before the finishReason that fails it."""
    stream = translator("gemini", "gemini-2.5-flash")()
    event = sse({"candidates": [{"content": {"parts": [{"text": "Hel"}], "role": "model"}, "index": 0,
                                 "finishReason": "MALFORMED_FUNCTION_CALL"}], "responseId": "r1"})
    assert streamed(stream.feed(event)) == "Hel"
    with pytest.raises(UpstreamError) as info:
        stream.close()
    assert info.value.kind is ErrorKind.INVALID_RESPONSE and info.value.code == "malformed_function_call"
