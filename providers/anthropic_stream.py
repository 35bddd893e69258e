"""Anthropic Messages SSE stream -> OpenAI `chat.completion.chunk` objects, plus the pieces of the
response mapping that the stream and the non-stream paths share (finish reasons, usage, errors).

Anthropic sends `event:` + `data:` pairs: `message_start`, then per content block
`content_block_start` / `content_block_delta`* / `content_block_stop`, then `message_delta` (stop
reason, cumulative usage) and `message_stop`; `ping` may come anywhere and `error` may arrive
mid-stream. We route on the JSON `type` (identical to the event name) and emit:

* a first chunk `delta: {role: assistant, content: ""}` at `message_start`;
* `content` deltas for text, `reasoning_content` deltas for thinking;
* `tool_calls` deltas whose `index` counts tool_use blocks in order (not Anthropic's block index):
  the first fragment carries id/type/name and `arguments: ""`, later ones argument pieces (a tool
  without parameters streams no piece, or an empty one: it ends with `"{}"`, see
  `base.StreamedArguments`);
* nothing for server tool blocks (`server_tool_use` and the `*_tool_result` blocks, see
  `anthropic.py`): only `tool_use` blocks are client tool calls;
* one `thinking_blocks` delta holding every thinking and redacted block of the message, signatures
  included, just before the finish chunk, so a client can replay them exactly (see
  `anthropic_request`). Sent once and whole because the openai SDK's stream accumulator
  (`client.chat.completions.stream`) cannot merge a second list delta without `index` members;
* one delta, for the same reason, with the citations of the text blocks (`citations_delta` events,
  and any a block opens with) as `annotations` and `document_citations`, each over its block's span of
  the content (see `citations.py`), just before the finish chunk as well;
* the finish chunk at `message_delta`, and a usage chunk with `choices: []` at `message_stop`
  (always, whatever `stream_options` said: the router needs it for accounting and may drop it).

A stream that ends before `message_stop` raises `STREAM_CUT` from `close()`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

import orjson

from .anthropic_request import JSON_TOOL_PREFIX
from .base import SingleChoiceStream, cached_prompt_usage, invalid_response
from .citations import StreamCitations, anthropic_citation
from .errors import ErrorKind, UpstreamError, is_context_window, kind_for_status
from .sse import SSEDecoder

FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop",
    "max_tokens": "length", "model_context_window_exceeded": "length",
    "tool_use": "tool_calls", "refusal": "content_filter",
}

_ERROR_KINDS: dict[str, ErrorKind] = {
    "invalid_request_error": ErrorKind.BAD_REQUEST,
    "authentication_error": ErrorKind.AUTH,
    "permission_error": ErrorKind.AUTH,
    "billing_error": ErrorKind.AUTH,  # our key's account cannot pay: a provider problem, fall back
    "not_found_error": ErrorKind.NOT_FOUND,
    "request_too_large": ErrorKind.TOO_LARGE,
    "rate_limit_error": ErrorKind.RATE_LIMIT,
    "api_error": ErrorKind.SERVER,
    "overloaded_error": ErrorKind.OVERLOADED,
    "timeout_error": ErrorKind.TIMEOUT,
}
_CONTENT_POLICY = re.compile(r"content filtering policy|usage policy", re.I)
# Anthropic names the failing field first ("temperature: Input should be ..."): map it back to ours.
_PARAMS = {"messages": "messages", "system": "messages", "max_tokens": "max_tokens",
           "temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "stop_sequences": "stop",
           "tools": "tools", "tool_choice": "tool_choice", "thinking": "reasoning_effort",
           "output_config": "response_format", "metadata": "user"}
_PARAM_PREFIX = re.compile(r"^([a-z_]+)(?:\.|:)")


def finish_reason(stop_reason: Any, json_tool: bool = False) -> str:
    """Anthropic `stop_reason` -> OpenAI `finish_reason` (a forced JSON tool ends as `stop`)."""
    reason = FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"
    return "stop" if json_tool and reason == "tool_calls" else reason


def _count(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def openai_usage(usage: Mapping[str, Any]) -> dict:
    """Anthropic usage -> OpenAI usage.

    Anthropic's `input_tokens` excludes cached tokens, so the prompt is input + cache reads + cache
    writes (`base.cached_prompt_usage`); `cache_creation.ephemeral_1h_input_tokens`, the writes kept
    for an hour, are billed at their own rate and so reported apart as well.
    """
    by_ttl = usage.get("cache_creation")
    one_hour = _count(by_ttl, "ephemeral_1h_input_tokens") if isinstance(by_ttl, Mapping) else 0
    out: dict[str, Any] = cached_prompt_usage(
        _count(usage, "input_tokens"), _count(usage, "cache_read_input_tokens"),
        _count(usage, "cache_creation_input_tokens"), one_hour, _count(usage, "output_tokens"))
    details = usage.get("output_tokens_details")
    if isinstance(details, dict) and isinstance(details.get("thinking_tokens"), int):
        out["completion_tokens_details"] = {"reasoning_tokens": details["thinking_tokens"]}
    searches = usage.get("server_tool_use")
    if isinstance(searches, dict) and _count(searches, "web_search_requests"):
        out["server_tool_use"] = {"web_search_requests": _count(searches, "web_search_requests")}  # billed per search
    return out


def classify_error(provider: str, err: Any, status: int | None = None,
                   retry_after: float | None = None) -> UpstreamError:
    """An Anthropic `error` object (`{type, message}`) from a body or a stream event -> UpstreamError."""
    etype = err.get("type") if isinstance(err, dict) else None
    message = err.get("message") if isinstance(err, dict) else None
    if not isinstance(message, str) or not message:
        message = f"upstream returned HTTP {status}" if status else "upstream error"
    kind = _ERROR_KINDS.get(etype) if isinstance(etype, str) else None
    if kind is None:
        kind = kind_for_status(status) if status else ErrorKind.SERVER
    param = None
    if kind is ErrorKind.BAD_REQUEST:
        if is_context_window(message, etype):
            kind = ErrorKind.CONTEXT_WINDOW
        elif _CONTENT_POLICY.search(message):
            kind = ErrorKind.CONTENT_POLICY
        match = _PARAM_PREFIX.match(message)
        param = _PARAMS.get(match.group(1)) if match else None
    return UpstreamError(kind, f"{provider}: {message}", upstream_status=status,
                         code=etype if isinstance(etype, str) else None, param=param, retry_after=retry_after)


class _Block:
    """What we remember about one open Anthropic content block."""

    __slots__ = ("args_sent", "input", "json_tool", "kind", "signature", "thinking", "tool_index")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.tool_index = -1
        self.json_tool = False
        self.args_sent = False
        self.input: Any = None
        self.thinking: list[str] = []
        self.signature: list[str] = []


class AnthropicStream(SingleChoiceStream):
    """Stateful translator of one Anthropic stream (fed raw bytes, returns OpenAI chunks)."""

    __slots__ = ("_blocks", "_cites", "_created", "_decoder", "_finished", "_id", "_json_tool", "_model",
                 "_provider", "_started", "_stopped", "_thinking_blocks", "_tools", "_usage")

    def __init__(self, provider: str, model: str) -> None:
        super().__init__()
        self._provider = provider
        self._model = model
        self._decoder = SSEDecoder()
        self._id = "chatcmpl-anthropic"
        self._created = int(time.time())
        self._blocks: dict[int, _Block] = {}
        self._thinking_blocks: list[dict] = []  # sent whole with the finish (see module doc)
        self._cites = StreamCitations(anthropic_citation)  # likewise the citations
        self._tools = 0
        self._json_tool = False
        self._usage: dict[str, Any] = {}
        self._started = False
        self._finished = False
        self._stopped = False

    def _feed(self, data: bytes, out: list[dict]) -> None:
        self._events(self._decoder.feed(data), out)

    def _close(self, out: list[dict]) -> None:
        try:
            self._events(self._decoder.close(), out)
        except UpstreamError as exc:
            # an event cut in half at end of input is a truncated stream, not a garbled one
            if exc.kind is not ErrorKind.INVALID_RESPONSE or self._stopped:
                raise
        if not self._stopped:
            raise UpstreamError(ErrorKind.STREAM_CUT,
                                f"{self._provider}: stream ended before message_stop",
                                code="stream_truncated")

    # -- events -----------------------------------------------------------------------------
    def _events(self, events: list[tuple[str | None, bytes]], chunks: list[dict]) -> None:
        for name, data in events:
            if self._stopped:
                break
            try:
                event = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise invalid_response(self._provider, f"stream event '{name}' is not JSON") from None
            if not isinstance(event, dict):
                raise invalid_response(self._provider, "stream event is not a JSON object")
            kind = event.get("type") or name
            handler = _HANDLERS.get(kind)
            if handler is not None:  # ping and event types added later are ignored
                handler(self, event, chunks)

    def _on_message_start(self, event: dict, chunks: list[dict]) -> None:
        message = event.get("message")
        if not isinstance(message, dict):
            raise invalid_response(self._provider, "message_start without a message")
        if isinstance(message.get("id"), str):
            self._id = message["id"]
        if isinstance(message.get("model"), str) and message["model"]:
            self._model = message["model"]
        if isinstance(message.get("usage"), dict):
            self._usage.update({k: v for k, v in message["usage"].items() if v is not None})
        self._start(chunks)

    def _on_block_start(self, event: dict, chunks: list[dict]) -> None:
        self._start(chunks)
        block = event.get("content_block") or {}
        state = _Block(str(block.get("type")))
        self._blocks[event.get("index", -1)] = state
        if state.kind == "text":  # its citations span its text, which starts here
            self._cites.open(event.get("index", -1), block.get("citations"))
        if state.kind == "text" and block.get("text"):
            chunks.append(self._chunk({"content": block["text"]}))
        elif state.kind == "thinking" and block.get("thinking"):
            state.thinking.append(block["thinking"])
            chunks.append(self._chunk({"reasoning_content": block["thinking"]}))
        elif state.kind == "redacted_thinking":
            self._thinking_blocks.append({"type": "redacted_thinking", "data": block.get("data", "")})
        elif state.kind == "tool_use":
            state.input = block.get("input")
            name = block.get("name") or ""
            if name.startswith(JSON_TOOL_PREFIX):
                state.json_tool = self._json_tool = True
                return
            state.tool_index = self._tools
            self._tools += 1
            chunks.append(self._chunk({"tool_calls": [{
                "index": state.tool_index, "id": block.get("id"), "type": "function",
                "function": {"name": name, "arguments": ""}}]}))

    def _on_block_delta(self, event: dict, chunks: list[dict]) -> None:
        state = self._blocks.get(event.get("index", -1))
        delta = event.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            chunks.append(self._chunk({"content": delta["text"]}))
        elif kind == "thinking_delta" and delta.get("thinking"):
            if state is not None:
                state.thinking.append(delta["thinking"])
            chunks.append(self._chunk({"reasoning_content": delta["thinking"]}))
        elif kind == "signature_delta" and state is not None:
            state.signature.append(delta.get("signature") or "")
        elif kind == "input_json_delta":
            self._on_input_json(state, delta.get("partial_json"), chunks)
        elif kind == "citations_delta":
            self._cites.cite(event.get("index", -1), delta.get("citation"))

    def _on_input_json(self, state: _Block | None, piece: Any, chunks: list[dict]) -> None:
        """A piece of a tool_use block's input; a server tool's input is no client tool call's."""
        if state is None or state.kind != "tool_use" or not piece:
            return
        state.args_sent = True
        if state.json_tool:
            chunks.append(self._chunk({"content": piece}))
        else:
            chunks.append(self._chunk({"tool_calls": [{"index": state.tool_index,
                                                       "function": {"arguments": piece}}]}))

    def _on_block_stop(self, event: dict, chunks: list[dict]) -> None:
        state = self._blocks.pop(event.get("index", -1), None)
        self._cites.close(event.get("index", -1))
        if state is None:
            return
        if state.kind == "thinking":
            self._thinking_blocks.append({"type": "thinking", "thinking": "".join(state.thinking),
                                          "signature": "".join(state.signature)})
        elif state.kind == "tool_use" and not state.args_sent and state.input:
            # input given whole in content_block_start and never streamed
            arguments = orjson.dumps(state.input).decode()
            if state.json_tool:
                chunks.append(self._chunk({"content": arguments}))
            else:
                chunks.append(self._chunk({"tool_calls": [{"index": state.tool_index,
                                                           "function": {"arguments": arguments}}]}))

    def _on_message_delta(self, event: dict, chunks: list[dict]) -> None:
        self._start(chunks)
        if isinstance(event.get("usage"), dict):  # cumulative: later values replace earlier ones
            self._usage.update({k: v for k, v in event["usage"].items() if v is not None})
        delta = event.get("delta") or {}
        if "stop_reason" in delta and not self._finished:
            self._finished = True
            self._flush_thinking(chunks)
            self._cites.flush(self._chunk, chunks)
            out: dict[str, Any] = {}
            details = delta.get("stop_details")
            if delta.get("stop_reason") == "refusal" and isinstance(details, dict) and details.get("explanation"):
                out["refusal"] = details["explanation"]
            chunks.append(self._chunk(out, finish_reason(delta.get("stop_reason"), self._json_tool)))

    def _on_message_stop(self, event: dict, chunks: list[dict]) -> None:
        self._start(chunks)
        if not self._finished:
            self._finished = True
            self._flush_thinking(chunks)
            self._cites.flush(self._chunk, chunks)
            chunks.append(self._chunk({}, "stop"))
        self._stopped = True
        if self._usage:  # none reported: no made-up zeros, so the router estimates instead
            chunks.append(self._usage_chunk(openai_usage(self._usage)))

    def _flush_thinking(self, chunks: list[dict]) -> None:
        if self._thinking_blocks:
            chunks.append(self._chunk({"thinking_blocks": self._thinking_blocks}))
            self._thinking_blocks = []

    def _chunk(self, delta: dict, finish: str | None = None) -> dict:
        """Every chunk is made here, so the content sent so far, where citations are placed, is counted here."""
        self._cites.count(delta)
        return super()._chunk(delta, finish)

    def _on_error(self, event: dict, chunks: list[dict]) -> None:
        raise classify_error(self._provider, event.get("error"))


_HANDLERS = {
    "message_start": AnthropicStream._on_message_start,
    "content_block_start": AnthropicStream._on_block_start,
    "content_block_delta": AnthropicStream._on_block_delta,
    "content_block_stop": AnthropicStream._on_block_stop,
    "message_delta": AnthropicStream._on_message_delta,
    "message_stop": AnthropicStream._on_message_stop,
    "error": AnthropicStream._on_error,
}
