"""The OpenAI translator (providers/openai.py) and the SSE decoder (providers/sse.py), purely: no server."""

from __future__ import annotations

import orjson
import pytest
from multidict import CIMultiDict

from providers import ErrorKind, ProviderSettings, UpstreamError, create_provider
from providers.capabilities import unsupported
from providers.openai import AzureOpenAIProvider, OpenAIProvider, OpenAIStream
from providers.sse import SSEDecoder

KEY = "sk-test-0123456789"
HELLO = {"model": "alias-the-client-sent", "messages": [{"role": "user", "content": "hi"}]}

# The vendors' documented OpenAI-compatible base URLs (written out, not read from PRESETS).
PRESET_URLS = {
    "openai": "https://api.openai.com/v1",
    "groq": "https://api.groq.com/openai/v1",
    "mistral": "https://api.mistral.ai/v1",
    "deepseek": "https://api.deepseek.com/v1",
    "together": "https://api.together.xyz/v1",
    "xai": "https://api.x.ai/v1",
    "fireworks": "https://api.fireworks.ai/inference/v1",
    "openrouter": "https://openrouter.ai/api/v1",
    "perplexity": "https://api.perplexity.ai",
    "cerebras": "https://api.cerebras.ai/v1",
    "ollama": "http://127.0.0.1:11434/v1",
    "vllm": "http://127.0.0.1:8000/v1",
    "lmstudio": "http://127.0.0.1:1234/v1",
}
# Vendors that reject `stream_options` (they report stream usage on their own).
NO_STREAM_OPTIONS = {"mistral", "perplexity"}


def provider(type_: str = "openai", **settings) -> OpenAIProvider:
    return create_provider(ProviderSettings(name=settings.pop("name", type_), type=type_, **settings))


def sent(request) -> dict:
    return orjson.loads(request.body)


# -- requests -------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", sorted(PRESET_URLS))
def test_preset_base_url_and_bearer_auth(preset: str) -> None:
    p = provider(preset)
    request = p.chat_request(HELLO, "some-model", KEY, stream=False)
    assert request.method == "POST"
    assert request.url == f"{PRESET_URLS[preset]}/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert "api-key" not in request.headers
    assert request.headers["content-type"] == "application/json"
    assert sent(request)["model"] == "some-model"


def test_every_preset_is_covered() -> None:
    from providers.openai import PRESETS

    assert set(PRESETS) == set(PRESET_URLS)


def test_ollama_without_a_key_sends_no_authorization() -> None:
    request = provider("ollama").chat_request(HELLO, "llama3.1", None, stream=False)
    assert request.url == "http://127.0.0.1:11434/v1/chat/completions"
    assert {k.lower() for k in request.headers} == {"content-type"}


def test_base_url_override_and_extra_headers() -> None:
    p = provider("openai", base_url="http://10.0.0.5:9000/v1/", headers={"x-org": "acme"})
    request = p.chat_request(HELLO, "m", KEY, stream=False)
    assert request.url == "http://10.0.0.5:9000/v1/chat/completions"
    assert request.headers["x-org"] == "acme"
    embed = p.embeddings_request({"model": "e", "input": "x"}, "text-embedding-3-small", KEY)
    assert embed.url == "http://10.0.0.5:9000/v1/embeddings"
    assert sent(embed) == {"model": "text-embedding-3-small", "input": "x"}


def test_request_body_passes_every_parameter_through() -> None:
    body = {**HELLO, "temperature": 0.2, "tools": [{"type": "function", "function": {"name": "f"}}],
            "response_format": {"type": "json_object"}, "seed": 7, "prompt_cache_key": "k", "verbosity": "low"}
    out = sent(provider().chat_request(body, "gpt-4o-mini", KEY, stream=False))
    assert out == {**body, "model": "gpt-4o-mini"}
    assert body["model"] == "alias-the-client-sent"  # the caller's dict is not modified


def test_embeddings_refused_for_presets_without_them() -> None:
    groq = provider("groq")
    assert groq.capabilities.embeddings is False and OpenAIProvider.capabilities.embeddings is True
    assert unsupported(groq.capabilities, {"model": "e", "input": "x"}, "embeddings") == ["model"]
    assert unsupported(provider("openai").capabilities, {"model": "e", "input": "x"}, "embeddings") == []
    with pytest.raises(UpstreamError) as info:
        groq.embeddings_request({"model": "e", "input": "x"}, "e", KEY)
    assert info.value.kind is ErrorKind.UNSUPPORTED
    assert info.value.client_status == 400


def test_azure_url_deployment_api_version_and_api_key_header() -> None:
    p = provider("azure", name="az", base_url="https://acme.openai.azure.com/",
                 deployments={"gpt-4o-mini": "prod-mini"}, api_version="2024-06-01")
    assert isinstance(p, AzureOpenAIProvider)
    request = p.chat_request(HELLO, "gpt-4o-mini", KEY, stream=False)
    assert request.url == ("https://acme.openai.azure.com/openai/deployments/prod-mini/chat/completions"
                           "?api-version=2024-06-01")
    assert request.headers["api-key"] == KEY
    assert "authorization" not in {k.lower() for k in request.headers}
    unmapped = p.embeddings_request({"model": "e", "input": "x"}, "text-embedding-3-small", KEY)
    assert unmapped.url == ("https://acme.openai.azure.com/openai/deployments/text-embedding-3-small/embeddings"
                            "?api-version=2024-06-01")


def test_azure_default_api_version() -> None:
    p = provider("azure", base_url="https://acme.openai.azure.com")
    url = p.chat_request(HELLO, "gpt-4o", KEY, stream=True).url
    assert url.startswith("https://acme.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=")
    assert url.rpartition("=")[2]


@pytest.mark.parametrize("preset", sorted(PRESET_URLS))
def test_stream_options_forced_on_streams_where_accepted(preset: str) -> None:
    out = sent(provider(preset).chat_request({**HELLO, "stream": True}, "m", KEY, stream=True))
    assert out["stream"] is True
    if preset in NO_STREAM_OPTIONS:
        assert "stream_options" not in out
    else:
        assert out["stream_options"] == {"include_usage": True}


def test_stream_options_merged_with_the_clients() -> None:
    body = {**HELLO, "stream": True, "stream_options": {"include_usage": False, "include_obfuscation": False}}
    out = sent(provider().chat_request(body, "m", KEY, stream=True))
    assert out["stream_options"] == {"include_usage": True, "include_obfuscation": False}


def test_stream_members_removed_from_non_stream_requests() -> None:
    body = {**HELLO, "stream": False, "stream_options": {"include_usage": True}}
    out = sent(provider().chat_request(body, "m", KEY, stream=False))
    assert "stream" not in out and "stream_options" not in out


# -- responses ------------------------------------------------------------------------------------
COMPLETION = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"},
                           "finish_reason": "stop"}],
              "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}


def test_chat_response_passes_the_completion_through() -> None:
    assert provider().chat_response(orjson.dumps(COMPLETION), "gpt-4o-mini") == COMPLETION
    bare = {k: v for k, v in COMPLETION.items() if k != "object"}
    assert provider().chat_response(orjson.dumps(bare), "m")["object"] == "chat.completion"


@pytest.mark.parametrize("body", [
    b"<html><body>502 Bad Gateway</body></html>",
    b'{"id": "chatcmpl-1", "choices": [',
    b"[1, 2]",
    b'{"id": "x"}',
    b'{"choices": "nope"}',
    b'{"choices": ["nope"]}',
    b'{"choices": [{"index": 0, "message": "hello"}]}',
    b"",
])
def test_garbage_body_is_invalid_response(body: bytes) -> None:
    with pytest.raises(UpstreamError) as info:
        provider("groq").chat_response(body, "m")
    assert info.value.kind is ErrorKind.INVALID_RESPONSE
    assert info.value.client_status == 502
    assert info.value.message.startswith("groq: ")


def test_error_object_in_a_2xx_body_is_an_error() -> None:
    body = orjson.dumps({"error": {"message": "Rate limit reached", "type": "requests",
                                   "code": "rate_limit_exceeded"}})
    with pytest.raises(UpstreamError) as info:
        provider().chat_response(body, "m")
    assert info.value.kind is ErrorKind.RATE_LIMIT


def test_embeddings_response() -> None:
    body = {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
            "model": "e", "usage": {"prompt_tokens": 1, "total_tokens": 1}}
    assert provider().embeddings_response(orjson.dumps(body), "e") == body
    with pytest.raises(UpstreamError) as info:
        provider().embeddings_response(b'{"object": "list"}', "e")
    assert info.value.kind is ErrorKind.INVALID_RESPONSE


# -- errors by status -----------------------------------------------------------------------------
def _error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


def test_400_context_length_exceeded_is_context_window() -> None:
    body = _error_body("This model's maximum context length is 128000 tokens.", "invalid_request_error",
                       "context_length_exceeded", "messages")
    err = provider().error(400, CIMultiDict(), body)
    assert err.kind is ErrorKind.CONTEXT_WINDOW
    assert err.is_caller_error
    assert err.client_status == 400
    assert err.param == "messages"
    assert err.to_openai()["code"] == "context_length_exceeded"
    assert "maximum context length" in err.message


def test_plain_400_is_a_caller_error_with_its_param() -> None:
    err = provider().error(400, CIMultiDict(), _error_body("bad temperature", "invalid_request_error",
                                                           None, "temperature"))
    assert err.kind is ErrorKind.BAD_REQUEST
    assert err.client_status == 400 and err.param == "temperature"


def test_429_with_retry_after_ms() -> None:
    headers = CIMultiDict({"Retry-After-Ms": "1500", "Retry-After": "9"})
    err = provider().error(429, headers, _error_body("Rate limit reached", "requests", "rate_limit_exceeded"))
    assert err.kind is ErrorKind.RATE_LIMIT
    assert err.retry_after == pytest.approx(1.5)
    assert err.client_status == 429
    assert not err.is_caller_error


def test_429_with_retry_after_seconds() -> None:
    err = provider().error(429, CIMultiDict({"Retry-After": "3"}), b"{}")
    assert err.retry_after == pytest.approx(3.0)


def test_503_is_overloaded_and_reported_as_502() -> None:
    err = provider().error(503, CIMultiDict(), b"Service Unavailable")
    assert err.kind is ErrorKind.OVERLOADED
    assert err.client_status == 502
    assert "Service Unavailable" in err.message


def test_401_is_our_key_problem_not_the_callers() -> None:
    body = _error_body(f"Incorrect API key provided: {KEY[:3]}***", "invalid_request_error", "invalid_api_key")
    err = provider().error(401, CIMultiDict(), body)
    assert err.kind is ErrorKind.AUTH
    assert err.client_status == 502
    assert not err.is_caller_error
    assert err.to_openai()["type"] == "upstream_error"


def test_empty_error_body_still_has_a_message() -> None:
    err = provider("together").error(500, CIMultiDict(), b"")
    assert err.kind is ErrorKind.SERVER
    assert err.message == "together: upstream returned HTTP 500"


# -- streams --------------------------------------------------------------------------------------
def _chunk(content: str | None = None, finish: str | None = None, **extra) -> dict:
    delta = {"content": content} if content is not None else {}
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}


def _sse(*events: dict | str) -> bytes:
    out = b""
    for event in events:
        data = event.encode() if isinstance(event, str) else orjson.dumps(event)
        out += b"data: " + data + b"\n\n"
    return out


STREAM_CHUNKS = [_chunk(""), _chunk("Hel"), _chunk("lo, wörld 👋"), _chunk(finish="stop"),
                 {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
                  "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}]
STREAM = b": keep-alive\n\n" + _sse(*STREAM_CHUNKS, "[DONE]")


def _read(translator: OpenAIStream, pieces) -> list[dict]:
    out = []
    for piece in pieces:
        out.extend(translator.feed(piece))
    out.extend(translator.close())
    return out


def test_stream_fed_whole() -> None:
    assert _read(OpenAIStream("openai"), [STREAM]) == STREAM_CHUNKS


def test_stream_fed_one_byte_at_a_time_equals_fed_whole() -> None:
    bytewise = _read(OpenAIStream("openai"), [STREAM[i:i + 1] for i in range(len(STREAM))])
    assert bytewise == STREAM_CHUNKS


def test_stream_with_crlf_line_ends() -> None:
    assert _read(OpenAIStream("openai"), [STREAM.replace(b"\n", b"\r\n")]) == STREAM_CHUNKS


def test_done_without_finish_reason_is_a_complete_stream() -> None:
    chunks = _read(OpenAIStream("vllm"), [_sse(_chunk("a"), _chunk("b"), "[DONE]")])
    assert [c["choices"][0]["delta"]["content"] for c in chunks] == ["a", "b"]


def test_finish_reason_without_done_is_a_complete_stream() -> None:
    assert len(_read(OpenAIStream("ollama"), [_sse(_chunk("a"), _chunk(finish="length"))])) == 2


def test_events_after_done_are_ignored() -> None:
    assert _read(OpenAIStream("openai"), [_sse(_chunk("a"), "[DONE]", _chunk("late"))]) == [_chunk("a")]


@pytest.mark.parametrize("tail", [b"", b"data: {\"id\": \"chatcmpl-1\", \"cho", b"data: " + orjson.dumps(_chunk("c"))])
def test_truncated_stream_is_stream_cut(tail: bytes) -> None:
    translator = OpenAIStream("groq")
    assert len(translator.feed(_sse(_chunk("a"), _chunk("b")) + tail[:20])) == 2
    with pytest.raises(UpstreamError) as info:
        translator.close()
    assert info.value.kind in (ErrorKind.STREAM_CUT, ErrorKind.INVALID_RESPONSE)
    if not tail:
        assert info.value.kind is ErrorKind.STREAM_CUT
        assert info.value.client_status == 502


def test_empty_stream_is_stream_cut() -> None:
    with pytest.raises(UpstreamError) as info:
        OpenAIStream("openai").close()
    assert info.value.kind is ErrorKind.STREAM_CUT


@pytest.mark.parametrize(("error", "kind"), [
    ({"message": "The server had an error", "type": "server_error"}, ErrorKind.SERVER),
    ({"message": "Overloaded", "type": "overloaded_error"}, ErrorKind.OVERLOADED),
    ({"message": "Slow down", "type": "rate_limit_error"}, ErrorKind.RATE_LIMIT),
    ({"message": "Slow down", "type": "tokens", "code": "rate_limit_exceeded"}, ErrorKind.RATE_LIMIT),
    ({"message": "Too many requests", "code": 429}, ErrorKind.RATE_LIMIT),
    ({"message": "Bad gateway", "code": 502}, ErrorKind.SERVER),
    ("something broke", ErrorKind.SERVER),
])
def test_error_event_mid_stream_raises_its_kind(error, kind: ErrorKind) -> None:
    translator = OpenAIStream("openrouter")
    assert translator.feed(_sse(_chunk("partial"))) == [_chunk("partial")]
    with pytest.raises(UpstreamError) as info:
        translator.feed(_sse({"error": error}))
    assert info.value.kind is kind
    assert info.value.message.startswith("openrouter: ")


def test_error_event_split_across_feeds() -> None:
    data = _sse(_chunk("a"), {"error": {"message": "Overloaded", "type": "overloaded_error"}})
    translator = OpenAIStream("openai")
    with pytest.raises(UpstreamError) as info:
        for i in range(len(data)):
            translator.feed(data[i:i + 1])
    assert info.value.kind is ErrorKind.OVERLOADED


@pytest.mark.parametrize("event", [b"data: not json\n\n", b"data: [1, 2]\n\n", b'data: {"choices": [7]}\n\n',
                                   b'data: {"choices": [{"index": 0, "delta": "text"}]}\n\n'])
def test_garbage_stream_event_is_invalid_response(event: bytes) -> None:
    with pytest.raises(UpstreamError) as info:
        OpenAIStream("openai").feed(event)
    assert info.value.kind is ErrorKind.INVALID_RESPONSE


def test_chat_stream_factory() -> None:
    assert isinstance(provider("deepseek").chat_stream("deepseek-chat"), OpenAIStream)


# -- the SSE decoder ------------------------------------------------------------------------------
def test_sse_crlf_split_across_feeds() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n\r") == []
    assert decoder.feed(b"\n") == [(None, b"a")]
    assert decoder.close() == []


def test_sse_bare_cr_line_ends() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r\rdata: b\r") == [(None, b"a")]
    assert decoder.feed(b"\r") == []  # a lone CR may be half of CRLF: decided on the next read or close
    assert decoder.close() == [(None, b"b")]


def test_sse_comments_are_skipped() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b": ping\n\n:another\ndata: x\n: inside\n\n") == [(None, b"x")]


def test_sse_multi_line_data_and_event_name() -> None:
    decoder = SSEDecoder()
    events = decoder.feed(b"event: delta\ndata: line 1\ndata:line 2\ndata\nid: 7\nretry: 10\n\ndata: next\n\n")
    assert events == [("delta", b"line 1\nline 2\n"), (None, b"next")]


def test_sse_final_event_without_blank_line_on_close() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: first\n\nevent: end\ndata: last") == [(None, b"first")]
    assert decoder.pending
    assert decoder.close() == [("end", b"last")]
    assert not decoder.pending
    decoder = SSEDecoder()
    assert decoder.feed(b"data: last\n") == []
    assert decoder.close() == [(None, b"last")]


def test_sse_utf8_split_inside_a_character() -> None:
    data = "data: wörld 👋\n\n".encode()
    decoder = SSEDecoder()
    events = []
    for i in range(len(data)):
        events.extend(decoder.feed(data[i:i + 1]))
    assert events == [(None, "wörld 👋".encode())]


def test_sse_blank_lines_without_data_dispatch_nothing() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"\n\n\r\n\nevent: ping\n\n") == []
    assert decoder.close() == []
