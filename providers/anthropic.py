"""Anthropic Messages API behind the OpenAI Chat Completions schema.

Three modules, one provider: `anthropic_request` builds the `/v1/messages` body from a canonical
request, `anthropic_stream` translates the SSE stream (and holds the finish-reason, usage and error
mappings both paths share), and this module ties them into a `Provider` and translates non-stream
bodies and HTTP errors.

Conventions a client can rely on:

* **Reasoning.** A response carries the thinking text in `message.reasoning_content` and the exact
  blocks, signatures included, in `message.thinking_blocks`
  (`[{type: "thinking", thinking, signature} | {type: "redacted_thinking", data}]`, LiteLLM's
  shape). Send the assistant message back with `thinking_blocks` and they are replayed first in
  that turn, so multi-turn tool use with thinking on works. Streams send `reasoning_content` deltas
  and, just before the finish chunk, one `thinking_blocks` delta with every block of the message.
  `reasoning_effort` maps to `thinking: {type: enabled, budget_tokens}` (or, with
  `options.thinking_mode: adaptive`, to adaptive thinking plus `output_config.effort`); an
  Anthropic-shaped `thinking` member in the request is used as is.
* **Usage.** `prompt_tokens` = input + cache reads + cache writes; `prompt_tokens_details` has
  `cached_tokens` (reads) and `cache_creation_tokens` (writes, priced at the write rate).
* **Server tools.** Anthropic's server tools (web search, web fetch, code execution …) run at
  Anthropic and answer with `server_tool_use` and `*_tool_result` blocks, which have no Chat
  Completions shape and must never look like client tool calls. A request that enables one (a
  `tools` entry whose type is not `function`) is refused with a 400 naming it. A response that holds
  such blocks all the same (a server tool type that reached Anthropic another way) has them skipped,
  stream and non-stream alike, and keeps the text blocks around them (their citations included, see
  **Citations**); the web searches of its usage are relayed as `usage.server_tool_use`, for billing.
* **Citations.** The `citations` of text blocks (of documents, search results and web search
  results) come back spanning the block's text in the content: those of a URL as `url_citation`s in
  `message.annotations`, the others as `document_citation`s in `message.document_citations` (see
  `citations.py`). Streams send them in one delta just before the finish chunk.
* **Tools without parameters** come back with `arguments: "{}"`, never an empty text (see
  `base.tool_arguments`).
* **Structured output.** `response_format: json_schema` uses native `output_config.format`; with
  `options.structured_output: tool` (models without native support) a forced tool named
  `json_output__<schema name>` is used instead and its input comes back as the message content.

Provider `options`: `default_max_tokens` (4096), `structured_output` (`native` | `tool`),
`thinking_mode` (`budget` | `adaptive`), `thinking_budgets` (effort -> tokens), and `drop_params`, which
every provider takes (see `capabilities.py`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from .anthropic_request import JSON_TOOL_PREFIX, build_body, output_limit
from .anthropic_stream import AnthropicStream, classify_error, finish_reason, openai_usage
from .base import (
    MESSAGES_DIALECT,
    MESSAGES_HEADERS,
    Capabilities,
    HttpRequest,
    Provider,
    ProviderSettings,
    StreamTranslator,
    invalid_response,
    load_json,
    tool_arguments,
)
from .citations import anthropic_citation, citation_members, citations_over
from .errors import UpstreamError, kind_for_status, parse_retry_after

ANTHROPIC_VERSION = "2023-06-01"
_OPTION_CHOICES = {"structured_output": ("native", "tool"), "thinking_mode": ("budget", "adaptive")}


class AnthropicProvider(Provider):
    """Translator for `type: anthropic` providers (api.anthropic.com or a compatible endpoint)."""

    type: ClassVar[str] = "anthropic"
    default_base_url: ClassVar[str | None] = "https://api.anthropic.com"
    capabilities = Capabilities(embeddings=False, n=False, logprobs=False, seed=False, penalties=False,
                                logit_bias=False, openai_only=False, verbosity=False, legacy_functions=False)

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        for option, choices in _OPTION_CHOICES.items():
            value = settings.options.get(option)
            if value is not None and value not in choices:
                raise ValueError(f"providers.{settings.name}.options.{option}: must be one of {choices}")
        # A base_url configured with the version path ("…/v1") is accepted as well as the bare host.
        root = self.base_url[:-3] if self.base_url.endswith("/v1") else self.base_url
        self._url = f"{root}/v1/messages"
        self._static_headers = {"content-type": "application/json", "anthropic-version": ANTHROPIC_VERSION,
                                **settings.headers}

    # -- requests ---------------------------------------------------------------------------
    def chat_request(self, body: dict, model: str, api_key: str | None, stream: bool) -> HttpRequest:
        """Canonical chat request -> `POST /v1/messages`; invalid or unsupported input raises."""
        payload = build_body(body, model, stream, self.settings.options)
        headers = dict(self._static_headers)
        if api_key:
            headers["x-api-key"] = api_key
        return HttpRequest("POST", self._url, headers, orjson.dumps(payload))

    def speaks(self, dialect: str) -> bool:
        return dialect == MESSAGES_DIALECT

    def native_request(self, dialect: str, body: dict, model: str, api_key: str | None, stream: bool,
                       headers: Mapping[str, str]) -> HttpRequest:
        """A Messages request forwarded as the client wrote it: the model set to the deployment's, the
        client's `anthropic-version` and `anthropic-beta` kept, our key in place of the client's."""
        out = dict(self._static_headers)
        out.update({k: v for k, v in headers.items() if k in MESSAGES_HEADERS})
        if api_key:
            out["x-api-key"] = api_key
        return HttpRequest("POST", self._url, out, orjson.dumps({**body, "model": model, "stream": stream}),
                           dialect=dialect)

    def output_limit(self, body: dict, model: str) -> int | None:
        """Anthropic is always sent a `max_tokens` (the default one when the request has none),
        and a thinking budget is added to it."""
        return output_limit(body, self.settings.options)

    # -- responses --------------------------------------------------------------------------
    def chat_response(self, body: bytes, model: str) -> dict:
        """Anthropic `message` -> OpenAI `chat.completion`."""
        data = load_json(self.name, body)
        if not isinstance(data, dict):
            raise invalid_response(self.name, "expected a JSON object")
        if data.get("type") == "error":
            raise classify_error(self.name, data.get("error"))
        content = data.get("content")
        if data.get("type") != "message" or not isinstance(content, list):
            raise invalid_response(self.name, "expected a 'message' with a 'content' array")
        return translate_message(data, model)

    def chat_stream(self, model: str) -> StreamTranslator:
        return AnthropicStream(self.name, model)

    # -- errors -----------------------------------------------------------------------------
    def error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        """`{"type": "error", "error": {"type", "message"}}` -> UpstreamError, by error type first."""
        retry_after = parse_retry_after(headers)
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        err = data.get("error") if isinstance(data, dict) else None
        if not isinstance(err, dict):
            text = body[:200].decode("utf-8", "replace").strip()
            message = f"non-JSON error body: {text}" if text else f"upstream returned HTTP {status}"
            return UpstreamError(kind_for_status(status), f"{self.name}: {message}", upstream_status=status,
                                 retry_after=retry_after)
        return classify_error(self.name, err, status, retry_after)


def translate_message(data: Mapping[str, Any], model: str) -> dict:
    """The body of an Anthropic `message` as an OpenAI `chat.completion` (one choice)."""
    texts: list[str] = []
    tool_calls: list[dict] = []
    reasoning: list[str] = []
    thinking_blocks: list[dict] = []
    citations: list[dict] = []
    json_tool = False
    for block in data["content"]:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            start = sum(map(len, texts))  # the block's place in the content: its citations' span
            texts.append(block.get("text") or "")
            citations += citations_over(anthropic_citation, block.get("citations"), start, start + len(texts[-1]))
        elif kind == "tool_use":
            arguments = tool_arguments(block.get("input"))
            if str(block.get("name", "")).startswith(JSON_TOOL_PREFIX):
                json_tool = True
                texts.append(arguments)
            else:
                tool_calls.append({"id": block.get("id"), "type": "function",
                                   "function": {"name": block.get("name"), "arguments": arguments}})
        elif kind == "thinking":
            reasoning.append(block.get("thinking") or "")
            thinking_blocks.append({"type": "thinking", "thinking": block.get("thinking") or "",
                                    "signature": block.get("signature") or ""})
        elif kind == "redacted_thinking":
            thinking_blocks.append({"type": "redacted_thinking", "data": block.get("data") or ""})
        # server tool blocks (server_tool_use, *_tool_result) are not client tool calls: skipped (module doc)
    stop_reason = data.get("stop_reason")
    message: dict[str, Any] = {"role": "assistant",
                               "content": "".join(texts) if texts or not tool_calls else None,
                               "refusal": None}
    details = data.get("stop_details")
    if stop_reason == "refusal" and isinstance(details, dict) and details.get("explanation"):
        message["refusal"] = details["explanation"]
    if tool_calls:
        message["tool_calls"] = tool_calls
    message.update(citation_members(citations))
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if thinking_blocks:
        message["thinking_blocks"] = thinking_blocks
    out: dict[str, Any] = {
        "id": data.get("id") or "chatcmpl-anthropic", "object": "chat.completion",
        "created": int(time.time()), "model": data.get("model") or model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": finish_reason(stop_reason, json_tool)}],
    }
    if isinstance(data.get("usage"), dict):
        out["usage"] = openai_usage(data["usage"])
    return out
