"""Usage details the pricer prices apart reach the canonical usage, stream and non-stream alike.

One-hour cache writes (Anthropic `cache_creation.ephemeral_1h_input_tokens`, Bedrock `cacheDetails` with
`ttl: "1h"`) become `prompt_tokens_details.cache_creation_1h_tokens`, a part of `cache_creation_tokens`
(as router/pricing.py `_counts` reads it); Gemini's per-modality counts become `audio_tokens` /
`image_tokens` in the prompt and completion details.
"""

from __future__ import annotations

import orjson

from providers import ProviderSettings, create_provider
from providers.anthropic_stream import openai_usage
from providers.bedrock import converse_usage
from providers.eventstream import event_frame
from providers.gemini_response import usage_from


def provider(kind: str):
    return create_provider(ProviderSettings(name=kind, type=kind))


def sse(*events: tuple[str, dict]) -> bytes:
    return b"".join(f"event: {name}\ndata: ".encode() + orjson.dumps(e) + b"\n\n" for name, e in events)


# -- Anthropic ---------------------------------------------------------------------------------------
ANTHROPIC_USAGE = {"input_tokens": 1500, "cache_creation_input_tokens": 10000, "cache_read_input_tokens": 2000,
                   "output_tokens": 500,
                   "cache_creation": {"ephemeral_5m_input_tokens": 4000, "ephemeral_1h_input_tokens": 6000}}
ANTHROPIC_WANT = {"prompt_tokens": 13500, "completion_tokens": 500, "total_tokens": 14000,
                  "prompt_tokens_details": {"cached_tokens": 2000, "cache_creation_tokens": 10000,
                                            "cache_creation_1h_tokens": 6000}}


def test_anthropic_one_hour_writes() -> None:
    assert openai_usage(ANTHROPIC_USAGE) == ANTHROPIC_WANT
    five_minutes = {**ANTHROPIC_USAGE, "cache_creation": {"ephemeral_5m_input_tokens": 10000,
                                                          "ephemeral_1h_input_tokens": 0}}
    assert "cache_creation_1h_tokens" not in openai_usage(five_minutes)["prompt_tokens_details"]


def test_anthropic_one_hour_writes_body_and_stream() -> None:
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
               "content": [{"type": "text", "text": "Hi"}], "stop_reason": "end_turn", "usage": ANTHROPIC_USAGE}
    assert provider("anthropic").chat_response(orjson.dumps(message), "m")["usage"] == ANTHROPIC_WANT
    start = {**message, "content": [], "stop_reason": None, "usage": {**ANTHROPIC_USAGE, "output_tokens": 1}}
    stream = sse(("message_start", {"type": "message_start", "message": start}),
                 ("content_block_start", {"type": "content_block_start", "index": 0,
                                          "content_block": {"type": "text", "text": ""}}),
                 ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                          "delta": {"type": "text_delta", "text": "Hi"}}),
                 ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                 ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                    "usage": {"output_tokens": 500}}),
                 ("message_stop", {"type": "message_stop"}))
    translator = provider("anthropic").chat_stream("m")
    chunks = translator.feed(stream) + translator.close()
    assert [c["usage"] for c in chunks if c.get("usage")] == [ANTHROPIC_WANT]


# -- Bedrock -----------------------------------------------------------------------------------------
BEDROCK_USAGE = {"inputTokens": 3000, "outputTokens": 400, "totalTokens": 15400, "cacheReadInputTokens": 0,
                 "cacheWriteInputTokens": 12000,
                 "cacheDetails": [{"ttl": "5m", "inputTokens": 5000}, {"ttl": "1h", "inputTokens": 7000}]}
BEDROCK_WANT = {"prompt_tokens": 15000, "completion_tokens": 400, "total_tokens": 15400,
                "prompt_tokens_details": {"cached_tokens": 0, "cache_creation_tokens": 12000,
                                          "cache_creation_1h_tokens": 7000}}


def test_bedrock_one_hour_writes() -> None:
    assert converse_usage(BEDROCK_USAGE) == BEDROCK_WANT
    assert "cache_creation_1h_tokens" not in converse_usage(
        {**BEDROCK_USAGE, "cacheDetails": [{"ttl": "5m", "inputTokens": 12000}]})["prompt_tokens_details"]


def test_bedrock_one_hour_writes_in_the_stream_metadata() -> None:
    stream = b"".join(event_frame(name, orjson.dumps(payload)) for name, payload in [
        ("messageStart", {"role": "assistant"}),
        ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}}),
        ("contentBlockStop", {"contentBlockIndex": 0}),
        ("messageStop", {"stopReason": "end_turn"}),
        ("metadata", {"usage": BEDROCK_USAGE, "metrics": {"latencyMs": 100}})])
    translator = create_provider(ProviderSettings(name="bedrock", type="bedrock", region="us-east-1")).chat_stream("m")
    chunks = translator.feed(stream) + translator.close()
    assert [c["usage"] for c in chunks if c.get("usage")] == [BEDROCK_WANT]


# -- Gemini ------------------------------------------------------------------------------------------
def test_gemini_modalities() -> None:
    usage = usage_from({
        "promptTokenCount": 12000, "candidatesTokenCount": 1590, "thoughtsTokenCount": 10, "totalTokenCount": 13600,
        "promptTokensDetails": [{"modality": "AUDIO", "tokenCount": 9000}, {"modality": "TEXT", "tokenCount": 1742},
                                {"modality": "IMAGE", "tokenCount": 1258}],
        "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": 1290},
                                    {"modality": "TEXT", "tokenCount": 300}]})
    assert usage is not None
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0, "audio_tokens": 9000, "image_tokens": 1258}
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 10, "image_tokens": 1290}
    text_only = usage_from({"promptTokenCount": 10, "candidatesTokenCount": 2,
                            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 10}]})
    assert text_only is not None
    assert text_only["prompt_tokens_details"] == {"cached_tokens": 0}


def test_gemini_modalities_reach_the_completion() -> None:
    body = {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 12000, "candidatesTokenCount": 300,
                              "promptTokensDetails": [{"modality": "AUDIO", "tokenCount": 10000},
                                                      {"modality": "TEXT", "tokenCount": 2000}]}}
    usage = provider("gemini").chat_response(orjson.dumps(body), "gemini-2.5-flash")["usage"]
    assert usage["prompt_tokens_details"]["audio_tokens"] == 10000
