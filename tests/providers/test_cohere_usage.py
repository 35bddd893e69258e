"""Cohere usage -> OpenAI usage: billed units, and cached tokens only when some are certainly billed.

Cohere's `usage.cached_tokens` (the cohere SDK's `Usage.cached_tokens`, "prompt tokens that hit the
inference cache") counts raw tokens, the scale of `tokens.input_tokens`, which includes the prompt
template and tool definitions Cohere adds and does not bill. `prompt_tokens` is the billed input, and
OpenAI's `cached_tokens` is a part of it, so only the overlap that must exist (cached + billed - raw)
is reported. Capping the raw figure at the billed one instead made every prompt token "cached".
"""

from __future__ import annotations

import orjson
import pydantic
import pytest
from openai.types.chat import ChatCompletion
from support.openai_chunks import assemble, feed

from providers.base import ProviderSettings
from providers.cohere import CohereProvider

try:
    from cohere.v2.types import V2ChatResponse, V2ChatStreamResponse
except ImportError:  # pragma: no cover
    V2ChatResponse = V2ChatStreamResponse = None

MODEL = "command-a-03-2025"


def provider() -> CohereProvider:
    return CohereProvider(ProviderSettings(name="cohere", type="cohere"))


def reply(usage: dict) -> bytes:
    body = {"id": "c14c80c3-18eb-4519-9460-6c92edd8cfb4", "finish_reason": "COMPLETE",
            "message": {"role": "assistant", "content": [{"type": "text", "text": "Hello!"}]}, "usage": usage}
    if V2ChatResponse is not None:
        pydantic.TypeAdapter(V2ChatResponse).validate_python(body)
    return orjson.dumps(body)


def stream(usage: dict) -> bytes:
    events = [
        {"type": "message-start", "id": "c14c80c3-18eb-4519-9460-6c92edd8cfb4", "delta": {"message": {
            "role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}},
        {"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}},
        {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "Hello!"}}}},
        {"type": "content-end", "index": 0},
        {"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": usage}},
    ]
    if V2ChatStreamResponse is not None:
        adapter = pydantic.TypeAdapter(V2ChatStreamResponse)
        for event in events:
            assert adapter.validate_python(event).type == event["type"]
    return b"".join(b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events)


def usage_both_ways(usage: dict) -> dict:
    """The OpenAI usage of a reply and of a stream with this Cohere usage; they must agree."""
    whole = provider().chat_response(reply(usage), MODEL)
    ChatCompletion.model_validate(whole)
    streamed = assemble(feed(provider().chat_stream(MODEL), stream(usage)))["usage"]
    assert streamed == whole["usage"]
    return whole["usage"]


@pytest.mark.parametrize(("usage", "cached"), [
    # the template and tools are cached, the caller's few billed tokens are not certainly
    ({"billed_units": {"input_tokens": 62, "output_tokens": 17},
      "tokens": {"input_tokens": 1002, "output_tokens": 60}, "cached_tokens": 896}, 0),
    ({"billed_units": {"input_tokens": 12, "output_tokens": 40},
      "tokens": {"input_tokens": 500, "output_tokens": 40}, "cached_tokens": 384}, 0),
    ({"billed_units": {"input_tokens": 12, "output_tokens": 40},
      "tokens": {"input_tokens": 500, "output_tokens": 40}, "cached_tokens": 0}, 0),
    # a long conversation sent again: most of its billed tokens were cached
    ({"billed_units": {"input_tokens": 9000, "output_tokens": 40},
      "tokens": {"input_tokens": 9600, "output_tokens": 40}, "cached_tokens": 9500}, 8900),
    # raw counts only: prompt_tokens and cached_tokens are on the same scale
    ({"tokens": {"input_tokens": 500, "output_tokens": 40}, "cached_tokens": 384}, 384),
    # no raw input count: cached raw tokens cannot be placed within the billed ones
    ({"billed_units": {"input_tokens": 12, "output_tokens": 40}, "cached_tokens": 384}, 0),
])
def test_cached_tokens_are_the_billed_ones_only(usage: dict, cached: int) -> None:
    out = usage_both_ways(usage)
    assert out["prompt_tokens_details"] == {"cached_tokens": cached}
    assert out["prompt_tokens"] == (usage.get("billed_units") or usage["tokens"])["input_tokens"]


def test_no_cached_tokens_reported_means_no_details() -> None:
    out = usage_both_ways({"billed_units": {"input_tokens": 30, "output_tokens": 20},
                           "tokens": {"input_tokens": 95, "output_tokens": 20}})
    assert out == {"prompt_tokens": 30, "completion_tokens": 20, "total_tokens": 50}
