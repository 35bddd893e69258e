"""Vendor errors are classified by one shared rule, whatever the wire format.

A prompt longer than the model accepts is CONTEXT_WINDOW (routing can fall back on it to a model with a
larger window), recognised by `errors.is_context_window` from the code or the wording each vendor uses;
an output bound or a field that is too long stays a plain bad request. The OpenAI-style error reader
also knows the `detail` bodies of Mistral and FastAPI servers.
"""

from __future__ import annotations

import orjson
import pytest

from providers import ErrorKind, ProviderSettings, UpstreamError, create_provider
from providers.errors import is_context_window
from providers.openai import OpenAIStream

CONTEXT_MESSAGES = [
    "This model's maximum context length is 1048565 tokens. However, you requested 1250025 tokens.",  # DeepSeek
    "This endpoint's maximum context length is 200000 tokens. However, you requested about 2500021 tokens.",
    "The total length of all messages is too long.",  # Perplexity
    "The model returned the following errors: Input Tokens Exceeded: Number of input tokens exceeds maximum length.",
    "Input is too long for requested model.",  # Bedrock
    "prompt is too long: 3333404 tokens > 200000 maximum",  # Anthropic
    "input length and `max_tokens` exceed context limit: 199000 + 21333 > 200000",  # Anthropic
    "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",  # Gemini
    "too many tokens: size limit exceeded by 1123 tokens.",  # Cohere
    "This model's maximum prompt length is 131072 but the request contains 200000 tokens.",  # xAI
    "Prompt contains 40000 tokens, too large for model with 32768 maximum context length",  # Mistral
    "Your input exceeds the context window of this model.",  # OpenAI
]
NOT_CONTEXT_MESSAGES = [
    "max_tokens is too large: 100000. This model supports at most 4096 completion tokens.",
    "The maximum tokens you requested exceeds the model limit of 8192.",
    "tools.0.function.name: String should have at most 64 characters; name too long",
    "texts exceeds the maximum input array length of 96",
    "Invalid value for 'temperature'.",
]


@pytest.mark.parametrize("message", CONTEXT_MESSAGES)
def test_context_window_wordings(message: str) -> None:
    assert is_context_window(message)


@pytest.mark.parametrize("message", NOT_CONTEXT_MESSAGES)
def test_other_bad_requests_are_not_context_window(message: str) -> None:
    assert not is_context_window(message)


def test_context_window_codes() -> None:
    assert is_context_window(None, None, "context_length_exceeded")
    assert is_context_window("Bad request", 400, "too_many_prompt_tokens")
    assert not is_context_window("Bad request", 400, "invalid_request_error")


def provider(kind: str):
    options = {"region": "us-east-1"} if kind == "bedrock" else {}
    return create_provider(ProviderSettings(name=kind, type=kind, options=options))


def error_body(kind: str, message: str) -> tuple[dict[str, str], bytes]:
    """A 400 as `kind` sends it, saying `message` with the vendor's generic bad-request code."""
    if kind == "anthropic":
        body = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    elif kind == "bedrock":
        return {"x-amzn-errortype": "ValidationException"}, orjson.dumps({"message": message})
    elif kind == "gemini":
        body = {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}
    elif kind == "cohere":
        body = {"id": "e1", "message": message}
    else:
        body = {"error": {"message": message, "type": "invalid_request_error", "code": "invalid_request_error"}}
    return {}, orjson.dumps(body)


@pytest.mark.parametrize("kind", ["openai", "deepseek", "openrouter", "mistral", "anthropic", "bedrock", "gemini",
                                  "cohere"])
@pytest.mark.parametrize("message", [CONTEXT_MESSAGES[0], CONTEXT_MESSAGES[3], CONTEXT_MESSAGES[5],
                                     CONTEXT_MESSAGES[7], CONTEXT_MESSAGES[8]])
def test_every_wire_format_shares_the_rule(kind: str, message: str) -> None:
    headers, body = error_body(kind, message)
    err = provider(kind).error(400, headers, body)
    assert err.kind is ErrorKind.CONTEXT_WINDOW and err.client_status == 400
    headers, body = error_body(kind, NOT_CONTEXT_MESSAGES[1])
    assert provider(kind).error(400, headers, body).kind is ErrorKind.BAD_REQUEST


def test_context_window_error_event_in_a_stream() -> None:
    event = {"error": {"message": CONTEXT_MESSAGES[1], "code": 400}}
    with pytest.raises(UpstreamError) as info:
        OpenAIStream("openrouter").feed(b"data: " + orjson.dumps(event) + b"\n\n")
    assert info.value.kind is ErrorKind.CONTEXT_WINDOW


# -- `detail` bodies ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("status", "body", "message"), [
    (401, {"detail": "Invalid API Key"}, "Invalid API Key"),
    (422, {"detail": [{"loc": ["body", "messages"], "msg": "Field required", "type": "missing"},
                      {"loc": ["body", "model"], "msg": "Input should be a valid string", "type": "string_type"}]},
     "Field required; Input should be a valid string"),
    (422, {"object": "error", "message": {"detail": [{"loc": ["body", "messages"], "msg": "Field required"}]},
           "type": "invalid_request_message_error", "param": None, "code": None}, "Field required"),
])
def test_detail_bodies_keep_their_message(status: int, body: dict, message: str) -> None:
    err = provider("mistral").error(status, {}, orjson.dumps(body))
    assert err.message == f"mistral: {message}"


def test_detail_context_window_is_recognised() -> None:
    body = orjson.dumps({"detail": CONTEXT_MESSAGES[10]})
    assert provider("vllm").error(400, {}, body).kind is ErrorKind.CONTEXT_WINDOW
