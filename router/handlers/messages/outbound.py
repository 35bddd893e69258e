"""Canonical answers -> Anthropic Messages answers: a `Message` object, or Anthropic's event stream.

The other half of the Messages face (`inbound.py` is the request side): whichever vendor served, the
client gets what the Anthropic API would have sent, so the anthropic SDK's accumulator and Claude
Code's own stream reader fold it without knowing. Thinking comes first, then the text, then one
`tool_use` block per call; `thinking_blocks` give the exact signatures (see
`providers/anthropic_request.py` for the replay convention); usage is Anthropic's split, where
`input_tokens` leaves out the cache reads and writes that the canonical `prompt_tokens` includes.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import orjson

STOP_REASONS: dict[str, str] = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                                "content_filter": "refusal"}


def stop_reason(finish_reason: Any, has_tool_use: bool) -> str:
    """Canonical `finish_reason` -> Anthropic `stop_reason` (an answer holding tool calls is `tool_use`)."""
    reason = STOP_REASONS.get(finish_reason, "end_turn") if isinstance(finish_reason, str) else "end_turn"
    return "tool_use" if has_tool_use and reason == "end_turn" else reason


def _count(data: Any, key: str) -> int:
    value = data.get(key) if isinstance(data, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def anthropic_usage(usage: dict | None) -> dict:
    """Canonical usage -> Anthropic usage, whose `input_tokens` excludes the cache reads and writes."""
    details = usage.get("prompt_tokens_details") if isinstance(usage, Mapping) else None
    read = _count(details, "cached_tokens")
    written = _count(details, "cache_creation_tokens")
    return {"input_tokens": max(0, _count(usage, "prompt_tokens") - read - written),
            "output_tokens": _count(usage, "completion_tokens"),
            "cache_read_input_tokens": read, "cache_creation_input_tokens": written}


def message_id(completion_id: Any) -> str:
    """`msg_` + the tail of the canonical id (`chatcmpl-abc` -> `msg_abc`), or a new one."""
    if isinstance(completion_id, str) and completion_id:
        if completion_id.startswith("msg_"):
            return completion_id
        tail = completion_id.partition("-")[2] or completion_id
        return "msg_" + tail
    return "msg_" + uuid.uuid4().hex


def _tool_id(call_id: Any) -> str:
    return call_id if isinstance(call_id, str) and call_id else "toolu_" + uuid.uuid4().hex[:24]


def _tool_input(arguments: Any) -> dict:
    """The parsed arguments of a call; `{}` for none, or for text that is not a JSON object."""
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # text parts, as a few providers answer
        return "".join(p.get("text") or "" for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _thinking_blocks(message: Mapping[str, Any]) -> list[dict]:
    blocks = []
    for item in message.get("thinking_blocks") or ():
        if not isinstance(item, dict):
            continue
        if item.get("type") == "thinking":
            blocks.append({"type": "thinking", "thinking": str(item.get("thinking") or ""),
                           "signature": str(item.get("signature") or "")})
        elif item.get("type") == "redacted_thinking":
            blocks.append({"type": "redacted_thinking", "data": str(item.get("data") or "")})
    reasoning = message.get("reasoning_content")
    if not blocks and isinstance(reasoning, str) and reasoning:
        blocks.append({"type": "thinking", "thinking": reasoning, "signature": ""})  # unsigned: never replayed
    return blocks


def to_message(completion: dict, model: str) -> dict:
    """A canonical `chat.completion` as an Anthropic `Message`; `model` is the one the client asked for."""
    choices = completion.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    finish = choice.get("finish_reason")
    content = _thinking_blocks(message)
    text = _text(message.get("content"))
    refusal = message.get("refusal") if isinstance(message.get("refusal"), str) else ""
    if not text and refusal and finish != "content_filter":
        text = refusal  # a model's refusal (OpenAI) is its answer; a filter's explanation is stop_details
    if text:
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or ():
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict):
            content.append({"type": "tool_use", "id": _tool_id(call.get("id")), "name": str(fn.get("name") or ""),
                            "input": _tool_input(fn.get("arguments"))})
    reason = stop_reason(finish, any(block["type"] == "tool_use" for block in content))
    out: dict[str, Any] = {"id": message_id(completion.get("id")), "type": "message", "role": "assistant",
                           "model": model, "content": content, "stop_reason": reason, "stop_sequence": None,
                           "usage": anthropic_usage(completion.get("usage"))}
    if reason == "refusal" and refusal:
        out["stop_details"] = {"type": "refusal", "explanation": refusal}
    return out


def _event(kind: str, data: dict) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class MessageEvents:
    """Canonical `chat.completion.chunk`s -> Anthropic's SSE events, for one streamed answer.

    `message_start` and one `ping` go out with the first chunk; content blocks follow with increasing
    indexes, one open at a time (a change of kind closes the open one): `thinking` from
    `reasoning_content`, `text` from `content`, one `tool_use` per canonical call index, its
    arguments as `input_json_delta` pieces. A call that streams no argument text gets no piece: the
    start's `input: {}` stands, which is what the anthropic SDK and Claude Code fold it to (and what
    Anthropic itself sends, save an empty piece). The finish reason and the usage are held for the
    `message_delta` that `finish()` sends with the cumulative usage, before `message_stop`.

    The canonical `thinking_blocks` delta (whole, just before the finish) carries the signature: it
    is sent as a `signature_delta` when the thinking block is still open, and lost otherwise (the
    block was closed by text or a tool call; its replay then goes unsigned, which the Anthropic
    translator leaves out).
    """

    __slots__ = ("_done", "_finish", "_id", "_index", "_input_tokens", "_model", "_open", "_open_tool",
                 "_refusal", "_signed", "_started", "_tools", "_usage")

    def __init__(self, model: str, input_tokens: int = 0) -> None:
        self._model = model
        self._input_tokens = input_tokens
        self._id = ""
        self._started = False
        self._done = False
        self._index = -1  # the last block opened
        self._open: str | None = None  # "thinking" | "text" | "tool_use" while a block is open
        self._open_tool: int | None = None  # canonical call index of the open tool_use block
        self._tools: dict[int, int] = {}  # canonical call index -> block index
        self._signed = False
        self._finish: Any = None
        self._usage: dict | None = None
        self._refusal = ""

    def batch(self, chunks: list[dict]) -> bytes:
        """The events for these chunks (b"" when none is due yet)."""
        if self._done:
            return b""
        out: list[bytes] = []
        for chunk in chunks:
            if not isinstance(chunk, dict):
                continue
            self._start(chunk.get("id"), out)
            if isinstance(chunk.get("usage"), dict):
                self._usage = chunk["usage"]
            for choice in chunk.get("choices") or ():
                if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                    continue  # a Messages answer has one choice
                finish = choice.get("finish_reason")
                if isinstance(choice.get("delta"), dict):
                    self._delta(choice["delta"], finish, out)
                if finish:
                    self._finish = finish
        return b"".join(out)

    def finish(self) -> bytes:
        """End of the stream: close the open block, then `message_delta` and `message_stop`."""
        if self._done:
            return b""
        self._done = True
        out: list[bytes] = []
        self._start(None, out)
        self._close(out)
        reason = stop_reason(self._finish, bool(self._tools))
        delta: dict[str, Any] = {"stop_reason": reason, "stop_sequence": None}
        if reason == "refusal" and self._refusal:
            delta["stop_details"] = {"type": "refusal", "explanation": self._refusal}
        # cumulative, as Anthropic's: without a usage chunk only the (required) output count, and the
        # client keeps message_start's input estimate
        usage = anthropic_usage(self._usage) if self._usage is not None else {"output_tokens": 0}
        out.append(_event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
        out.append(_event("message_stop", {"type": "message_stop"}))
        return b"".join(out)

    def fail(self, error: dict) -> bytes:
        """One `error` event (`error` is Anthropic's `{type, message}`); the stream ends with it."""
        self._done = True
        return _event("error", {"type": "error", "error": error})

    # -- internals --------------------------------------------------------------------------
    def _start(self, chunk_id: Any, out: list[bytes]) -> None:
        if self._started:
            return
        self._started = True
        self._id = message_id(chunk_id)
        usage = {"input_tokens": max(0, self._input_tokens), "output_tokens": 0,
                 "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        out.append(_event("message_start", {"type": "message_start", "message": {
            "id": self._id, "type": "message", "role": "assistant", "model": self._model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": usage}}))
        out.append(_event("ping", {"type": "ping"}))

    def _delta(self, delta: dict, finish: Any, out: list[bytes]) -> None:
        reasoning = delta.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            self._open_block("thinking", {"type": "thinking", "thinking": "", "signature": ""}, out)
            self._piece({"type": "thinking_delta", "thinking": reasoning}, out)
        content = delta.get("content")
        if isinstance(content, str) and content:
            self._text(content, out)
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            if finish == "content_filter":  # a filter's explanation (Anthropic's stop_details), not model text
                self._refusal += refusal
            else:
                self._text(refusal, out)
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                if isinstance(call, dict):
                    self._tool_call(call, out)
        blocks = delta.get("thinking_blocks")
        if isinstance(blocks, list):
            self._signature(blocks, out)

    def _text(self, text: str, out: list[bytes]) -> None:
        self._open_block("text", {"type": "text", "text": ""}, out)
        self._piece({"type": "text_delta", "text": text}, out)

    def _tool_call(self, call: dict, out: list[bytes]) -> None:
        index = call.get("index")
        if isinstance(index, bool) or not isinstance(index, int):
            index = self._open_tool if self._open_tool is not None else len(self._tools)
        fn = call.get("function") if isinstance(call.get("function"), dict) else {}
        if index not in self._tools:
            self._open_block("tool_use", {"type": "tool_use", "id": _tool_id(call.get("id")),
                                          "name": str(fn.get("name") or ""), "input": {}}, out)
            self._tools[index] = self._index
            self._open_tool = index
        arguments = fn.get("arguments")
        if isinstance(arguments, str) and arguments:
            # A piece for a call whose block a later call closed (no vendor is known to interleave
            # calls) still goes to that block's index, which the SDK accumulators fold by.
            out.append(_event("content_block_delta", {"type": "content_block_delta", "index": self._tools[index],
                                                      "delta": {"type": "input_json_delta",
                                                                "partial_json": arguments}}))

    def _signature(self, blocks: list, out: list[bytes]) -> None:
        if self._open != "thinking" or self._signed:
            return
        signatures = [b.get("signature") for b in blocks if isinstance(b, dict) and b.get("type") == "thinking"]
        if signatures and isinstance(signatures[-1], str) and signatures[-1]:
            self._signed = True
            self._piece({"type": "signature_delta", "signature": signatures[-1]}, out)

    def _open_block(self, kind: str, block: dict, out: list[bytes]) -> None:
        if self._open == kind and kind != "tool_use":
            return
        self._close(out)
        self._index += 1
        self._open = kind
        self._signed = False
        out.append(_event("content_block_start", {"type": "content_block_start", "index": self._index,
                                                  "content_block": block}))

    def _piece(self, delta: dict, out: list[bytes]) -> None:
        out.append(_event("content_block_delta", {"type": "content_block_delta", "index": self._index,
                                                  "delta": delta}))

    def _close(self, out: list[bytes]) -> None:
        if self._open is not None:
            out.append(_event("content_block_stop", {"type": "content_block_stop", "index": self._index}))
            self._open = None
            self._open_tool = None
