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

from providers import ErrorKind, UpstreamError
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


# -- content as a list of typed chunks (Mistral's reasoning models) ---------------------------------
THINKING = {"type": "thinking", "thinking": [{"type": "text", "text": "12 times 12 is 144."}], "closed": True}


def completion(message: dict, finish: str = "stop", usage: dict | None = None) -> bytes:
    body = {"id": "cmpl-1", "object": "chat.completion", "created": 1718000000, "model": MISTRAL,
            "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", **message}}]}
    if usage is not None:
        body["usage"] = usage
    return orjson.dumps(body)


def test_content_chunks_become_string_content_and_reasoning() -> None:
    """Text chunks join into the content; thinking (its parts, or a plain string) goes to reasoning_content
    after any the vendor sent itself; chunks without answer text (references) are left out."""
    content = [THINKING, {"type": "text", "text": "14"}, {"type": "reference", "reference_ids": [1]},
               {"type": "thinking", "thinking": " Sure."}, {"type": "text", "text": "4"}]
    out = provider().chat_response(completion({"content": content, "reasoning_content": "First: "}), MISTRAL)
    message = ChatCompletion.model_validate(out).choices[0].message
    assert message.content == "144"
    assert out["choices"][0]["message"]["reasoning_content"] == "First: 12 times 12 is 144. Sure."


def test_content_chunks_without_text() -> None:
    """Only thinking: content is "" (a string) for an answer, None beside tool calls (as OpenAI sends it)."""
    out = provider().chat_response(completion({"content": [THINKING]}), MISTRAL)
    assert out["choices"][0]["message"]["content"] == ""
    out = provider().chat_response(completion({"content": [THINKING], "tool_calls": [CALL]}, "tool_calls"), MISTRAL)
    message = out["choices"][0]["message"]
    assert message["content"] is None and message["reasoning_content"] == "12 times 12 is 144."


def test_streamed_content_chunks_lose_no_text() -> None:
    """A delta whose list ends the thinking and starts the answer keeps both; an all-thinking delta has
    no content (None), so a client concatenating string content sees exactly the answer."""
    stream = data(mistral_chunk({"role": "assistant", "content": ""}),
                  mistral_chunk({"content": [THINKING]}),
                  mistral_chunk({"content": [{**THINKING, "thinking": [{"type": "text", "text": " Done."}]},
                                             {"type": "text", "text": "1"}]}),
                  mistral_chunk({"content": "44"}, "stop"))
    chunks = feed(provider().chat_stream(MISTRAL), stream)
    assert chunks[1]["choices"][0]["delta"]["content"] is None
    got = assemble(chunks)
    assert (got["content"], got["reasoning"]) == ("144", "12 times 12 is 144. Done.")


# -- finish reasons outside OpenAI's vocabulary -------------------------------------------------------
@pytest.mark.parametrize(("vendor", "reason", "want"), [
    ("together", "eos", "stop"), ("vllm", "eos_token", "stop"), ("vllm", "stop_sequence", "stop"),
    ("openrouter", "end_turn", "stop"), ("mistral", "model_length", "length"), ("openrouter", "max_tokens", "length"),
    ("openrouter", "tool_use", "tool_calls"), ("openrouter", "refusal", "content_filter"),
    ("openai", "stop", "stop"), ("openai", "length", "length"), ("openai", "tool_calls", "tool_calls"),
    ("openai", "content_filter", "content_filter"), ("openai", "function_call", "function_call"),
    ("ollama", "some_future_reason", "stop"),  # newer than the table: the turn did end
])
def test_finish_reasons_become_openai_ones(vendor: str, reason: str, want: str) -> None:
    out = provider(vendor).chat_response(completion({"content": "Hi"}, reason), MISTRAL)
    assert out["choices"][0]["finish_reason"] == want
    stream = data(mistral_chunk({"role": "assistant", "content": "Hi"}), mistral_chunk({}, reason))
    assert assemble(feed(provider(vendor).chat_stream(MISTRAL), stream))["finish"] == want


# -- a finish repeated to carry the usage (OpenRouter) ------------------------------------------------
USAGE = {"prompt_tokens": 15, "completion_tokens": 9, "total_tokens": 24}


def test_repeated_finish_is_relayed_once_with_its_usage() -> None:
    repeat = {"content": "", "role": "assistant"}
    stream = data(mistral_chunk({"role": "assistant", "content": "1 2 3"}),
                  mistral_chunk(repeat, "stop"),
                  mistral_chunk(repeat, "stop"),  # no usage: dropped whole
                  mistral_chunk(repeat, "stop", usage=USAGE))
    chunks = feed(provider("openrouter").chat_stream(MISTRAL), stream)
    assert [len(c["choices"]) for c in chunks] == [1, 1, 0]
    assert chunks[-1]["usage"] == USAGE
    assert sum(bool(ch["finish_reason"]) for c in chunks for ch in c["choices"]) == 1


def test_text_after_a_finish_is_never_dropped() -> None:
    """Only an empty repeat is dropped; other choices of the same chunk, and text, are relayed."""
    two = {**mistral_chunk({}), "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"},
                                            {"index": 1, "delta": {"content": "b"}, "finish_reason": None}]}
    stream = data(mistral_chunk({"content": "a"}, "stop"), two, mistral_chunk({"content": "!"}))
    chunks = feed(provider("openrouter").chat_stream(MISTRAL), stream)
    assert [ch["index"] for ch in chunks[1]["choices"]] == [1]
    assert chunks[2]["choices"][0]["delta"]["content"] == "!"


# -- reasoning counted apart from completion_tokens (xAI, Perplexity) ---------------------------------
XAI_USAGE = {"prompt_tokens": 200, "completion_tokens": 100, "total_tokens": 1100,
             "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 800}}
PPLX_USAGE = {"prompt_tokens": 200, "completion_tokens": 900, "total_tokens": 1100, "citation_tokens": 3000,
              "reasoning_tokens": 6000, "num_search_queries": 12}


def test_xai_reasoning_is_folded_into_completion_tokens() -> None:
    out = provider("xai").chat_response(completion({"content": "Hi"}, usage=XAI_USAGE), "grok-3-mini")["usage"]
    assert out == {**XAI_USAGE, "completion_tokens": 900}
    stream = data(mistral_chunk({"content": "Hi"}, "stop"), {**mistral_chunk({}), "choices": [], "usage": XAI_USAGE})
    assert assemble(feed(provider("xai").chat_stream("grok-3-mini"), stream))["usage"] == out


def test_perplexity_reasoning_and_citations_move_into_the_details() -> None:
    """Reasoning and citation tokens are output Perplexity bills apart: folded into completion_tokens with
    their parts in the details; its searches under the name the pricer reads for every vendor."""
    out = provider("perplexity").chat_response(completion({"content": "Hi"}, usage=PPLX_USAGE), "sonar")["usage"]
    assert out == {"prompt_tokens": 200, "completion_tokens": 9900, "total_tokens": 10100,
                   "completion_tokens_details": {"reasoning_tokens": 6000, "citation_tokens": 3000},
                   "server_tool_use": {"web_search_requests": 12}}


@pytest.mark.parametrize("kind", ["openai", "groq", "deepseek", "together", "mistral"])
def test_openai_convention_counts_are_never_added_twice(kind: str) -> None:
    """OpenAI's completion_tokens already hold the reasoning: every other preset relays them as sent."""
    usage = {"prompt_tokens": 800, "completion_tokens": 2500, "total_tokens": 3300,
             "completion_tokens_details": {"reasoning_tokens": 1800}}
    assert provider(kind).chat_response(completion({"content": "Hi"}, usage=usage), "m")["usage"] == usage


def test_xai_counts_already_in_openai_convention_are_left() -> None:
    """A total that already equals prompt + completion shows the reasoning inside completion_tokens."""
    usage = {**XAI_USAGE, "completion_tokens": 900}
    assert provider("xai").chat_response(completion({"content": "Hi"}, usage=usage), "m")["usage"] == usage


@pytest.mark.parametrize(("reason", "kind"), [("error", ErrorKind.SERVER), ("abort", ErrorKind.SERVER),
                                              ("insufficient_system_resource", ErrorKind.OVERLOADED)])
def test_a_finish_that_says_the_generation_failed_is_an_upstream_error(reason: str, kind: ErrorKind) -> None:
    """Not an answer (retried or fallen back on); mid-stream, the text sent before it (and with it) is kept."""
    with pytest.raises(UpstreamError) as info:
        provider("deepseek").chat_response(completion({"content": "Half an ans"}, reason), MISTRAL)
    assert (info.value.kind, info.value.code) == (kind, reason)
    translator = provider("deepseek").chat_stream(MISTRAL)
    chunks = translator.feed(data(mistral_chunk({"content": "Half"}), mistral_chunk({"content": " an ans"}, reason)))
    assert assemble(chunks)["content"] == "Half an ans" and assemble(chunks)["finish"] is None
    with pytest.raises(UpstreamError) as info:
        translator.close()
    assert info.value.kind is kind
