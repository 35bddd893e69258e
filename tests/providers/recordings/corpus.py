"""The replay corpus: real vendor responses, and what each one says in OpenAI terms.

Every `<vendor>/<name>.json` file beside this module is one HTTP exchange recorded against a live
vendor API (where each came from is in PROVENANCE.md and in the file's `source`). A file holds:

* `provider_type`, `model`, `stream`: how to replay it (the Switchboard provider type, the model that
  was asked for, whether the response is a stream); `covers`: what the exchange exercises;
  `recorded`: the `Date` of the vendor's response, where the source kept it;
* `request`: method, URL and, where the source kept it and it is small, the exact body sent;
* `response`: the status, the headers that matter for translation (content type, error type,
  retry hints) and the body exactly as the vendor sent it, as UTF-8 text in `body` or, for binary
  AWS event streams, as base64 in `body_base64`; `body_sha256` is checked on load.

`load()` reads them all. `expected(rec)` reads a recording the way a client of the vendor's own API
would, with parsers of its own (SSE and AWS event-stream framing included, checksums verified) and
the documented meaning of each vendor's fields, and says what the OpenAI-side answer must hold: the
text, the reasoning, the tool calls (ids where the vendor gives them, names, parsed arguments), the
finish reason in OpenAI's vocabulary and the token usage. It never calls a translator, so a test that
compares a translation with it compares two independent readings of the same bytes.

`Collected.from_completion` / `Collected.from_chunks` read the OpenAI side (a `chat.completion`, or the
`chat.completion.chunk`s of a stream) into the same shape, and `mismatches` compares the two.

`read_patterns(rec)` gives a body as several sequences of network reads (always joining back to the
exact bytes), `awkward_cuts(rec)` the offsets where a read boundary hurts most, and
`cut_before_end(rec)` an event boundary before a stream's finish, to replay a stream cut short.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import random
import re
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent

# Vendor finish vocabularies -> OpenAI's (stop | length | tool_calls | content_filter).
ANTHROPIC_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
                    "tool_use": "tool_calls", "refusal": "content_filter"}
BEDROCK_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
                  "guardrail_intervened": "content_filter", "content_filtered": "content_filter"}
GEMINI_FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter", "RECITATION": "content_filter",
                 "BLOCKLIST": "content_filter", "PROHIBITED_CONTENT": "content_filter", "SPII": "content_filter"}
COHERE_FINISH = {"COMPLETE": "stop", "STOP_SEQUENCE": "stop", "MAX_TOKENS": "length", "TOOL_CALL": "tool_calls"}
# OpenAI-compatible servers that answer with a reason outside OpenAI's set (Together's "eos").
OPENAI_COMPAT_FINISH = {"eos": "stop", "end_turn": "stop", "tool_use": "tool_calls"}
OPENAI_FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter", "function_call"})


@dataclass(frozen=True)
class Recording:
    name: str  # "<vendor dir>/<file stem>"
    vendor: str
    provider_type: str
    model: str
    stream: bool
    covers: tuple[str, ...]
    source: dict
    request: dict
    status: int
    headers: dict[str, str]
    body: bytes
    notes: tuple[str, ...] = ()

    @property
    def is_error(self) -> bool:
        return self.status >= 400

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "application/json")

    @property
    def family(self) -> str:
        """The wire format: openai (every OpenAI-compatible preset), anthropic, gemini, bedrock, cohere."""
        return self.provider_type if self.provider_type in ("anthropic", "gemini", "bedrock", "cohere") else "openai"

    def __str__(self) -> str:
        return self.name


def load() -> list[Recording]:
    """Every recording of the corpus, sorted by name; a body whose checksum does not match fails."""
    out = []
    for path in sorted(ROOT.glob("*/*.json")):
        data = json.loads(path.read_text("utf-8"))
        resp = data["response"]
        body = (resp["body"].encode("utf-8") if "body" in resp else base64.b64decode(resp["body_base64"]))
        if hashlib.sha256(body).hexdigest() != resp["body_sha256"]:
            raise ValueError(f"{path}: body does not match its sha256")
        name = f"{path.parent.name}/{path.stem}"
        if data["name"] != name:
            raise ValueError(f"{path}: file is named {name!r} but says {data['name']!r}")
        out.append(Recording(name=name, vendor=data["vendor"], provider_type=data["provider_type"],
                             model=data["model"], stream=data["stream"], covers=tuple(data["covers"]),
                             source=data["source"], request=data["request"], status=resp["status"],
                             headers=dict(resp["headers"]), body=body, notes=tuple(data.get("notes", ()))))
    return out


# -- framing, parsed here (not with the translators' decoders) --------------------------------------
def sse_events(body: bytes) -> list[tuple[str | None, str]]:
    """(event name, data) of each SSE event, per the WHATWG rules: CRLF/CR/LF line ends, `:` comments,
    multi-line data joined with newlines, an unterminated last event dropped."""
    text = body.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    events = []
    name: str | None = None
    data: list[str] | None = None
    for line in text.split("\n"):
        if line == "":
            if data is not None:
                events.append((name, "\n".join(data)))
            name, data = None, None
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if key == "event":
            name = value
        elif key == "data":
            data = [*(data or []), value]
    return events


def sse_json(body: bytes) -> list[tuple[str | None, Any]]:
    return [(name, json.loads(data)) for name, data in sse_events(body) if data.strip() and data != "[DONE]"]


def eventstream_frames(body: bytes) -> list[tuple[dict[str, Any], bytes]]:
    """The frames of an `application/vnd.amazon.eventstream` body: (headers, payload), both CRCs checked."""
    frames = []
    pos = 0
    while pos < len(body):
        total, headers_len, prelude_crc = struct.unpack_from(">III", body, pos)
        if zlib.crc32(body[pos:pos + 8]) != prelude_crc:
            raise ValueError(f"event-stream prelude checksum mismatch at byte {pos}")
        frame = body[pos:pos + total]
        if len(frame) != total or zlib.crc32(frame[:-4]) != struct.unpack(">I", frame[-4:])[0]:
            raise ValueError(f"event-stream message checksum mismatch at byte {pos}")
        headers: dict[str, Any] = {}
        hpos = 12
        while hpos < 12 + headers_len:
            name_len = frame[hpos]
            key = frame[hpos + 1:hpos + 1 + name_len].decode()
            hpos += 1 + name_len
            htype = frame[hpos]
            hpos += 1
            if htype == 7:  # string
                (vlen,) = struct.unpack_from(">H", frame, hpos)
                headers[key] = frame[hpos + 2:hpos + 2 + vlen].decode()
                hpos += 2 + vlen
            elif htype == 6:  # bytes
                (vlen,) = struct.unpack_from(">H", frame, hpos)
                headers[key] = frame[hpos + 2:hpos + 2 + vlen]
                hpos += 2 + vlen
            else:
                raise ValueError(f"event-stream header type {htype} is not used by Bedrock chat streams")
        frames.append((headers, frame[12 + headers_len:-4]))
        pos += total
    return frames


def frame_boundaries(body: bytes) -> list[int]:
    """Byte offsets at which event-stream frames start (0 excluded)."""
    out, pos = [], 0
    while pos < len(body):
        pos += struct.unpack_from(">I", body, pos)[0]
        if pos < len(body):
            out.append(pos)
    return out


# -- the ways a body is cut into network reads ------------------------------------------------------
def awkward_cuts(rec: Recording) -> list[int]:
    """Offsets where a read boundary hurts most: around every SSE line end (between the two newlines of
    an event end, and just before them), after `data` and `data:`, inside every multi-byte UTF-8
    character; for an AWS event stream, around and inside every frame's prelude and headers."""
    body = rec.body
    cuts: set[int] = set()
    if rec.content_type.startswith("application/vnd.amazon.eventstream"):
        for start in [0, *frame_boundaries(body)]:
            cuts.update(start + d for d in (-1, 1, 2, 4, 8, 11, 12, 13, 20))
    else:
        for i, byte in enumerate(body):
            if byte in (0x0A, 0x0D):
                cuts.update((i, i + 1))
            elif 0x80 <= byte <= 0xBF:  # a UTF-8 continuation byte: cut before it
                cuts.add(i)
        for marker in (b"data:", b"event:"):
            pos = body.find(marker)
            while pos != -1:
                cuts.update((pos + 2, pos + len(marker)))
                pos = body.find(marker, pos + 1)
    return sorted(c for c in cuts if 0 < c < len(body))


def pieces(body: bytes, cuts: list[int]) -> list[bytes]:
    edges = [0, *cuts, len(body)]
    return [body[a:b] for a, b in itertools.pairwise(edges) if b > a]


def read_patterns(rec: Recording) -> dict[str, list[bytes]]:
    """The body as several sequences of reads: whole, tiny fixed-size reads, seeded random reads and
    reads cut at the awkward offsets. Every pattern joins back to the exact body."""
    body = rec.body
    step = 1 if len(body) <= 6000 else 5
    rng = random.Random(rec.name)
    random_cuts, pos = [], 0
    while True:
        pos += rng.randint(1, 97)
        if pos >= len(body):
            break
        random_cuts.append(pos)
    patterns = {
        "whole": [body],
        f"{step}-byte reads": [body[i:i + step] for i in range(0, len(body), step)],
        "random reads": pieces(body, random_cuts),
        "awkward reads": pieces(body, awkward_cuts(rec)),
    }
    for name, parts in patterns.items():
        if b"".join(parts) != body:
            raise AssertionError(f"{rec}: {name} do not join back to the body")
    return patterns


FINISH_MARKERS = {"openai": rb'"finish_reason":"', "anthropic": rb'"stop_reason":"', "gemini": rb'"finishReason"',
                  "cohere": b"message-end", "bedrock": b"messageStop"}


def cut_before_end(rec: Recording) -> int:
    """An offset at an event (SSE) or frame (event stream) boundary, as near the middle of the body as
    possible but before the event that finishes the answer: the bytes before it are whole events and
    the answer's end is missing (0 when the first event already finishes it)."""
    body = rec.body
    if rec.content_type.startswith("application/vnd.amazon.eventstream"):
        ends = frame_boundaries(body)
    else:
        ends = [m.end() for m in re.finditer(rb"(?:\r\n|\r|\n)(?:\r\n|\r|\n)", body)]
    marker = FINISH_MARKERS[rec.family]
    ends = [e for e in ends if marker not in body[:e]]
    return min(ends, key=lambda e: abs(e - len(body) // 2)) if ends else 0


# -- the OpenAI-side answer, as the recording says it must be ---------------------------------------
@dataclass
class ToolCall:
    id: str | None  # None: the vendor gives none (the translator makes one up)
    name: str
    arguments: Any  # parsed JSON


@dataclass
class Expected:
    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish: str | None = None
    usage: dict | None = None  # {"prompt_tokens", "completion_tokens", "cached_tokens"}; None: not reported


class Between:
    """A count the recording bounds but does not fix: equal to any int in [low, high]."""

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Between):
            return (self.low, self.high) == (other.low, other.high)
        return isinstance(other, int) and self.low <= other <= self.high

    def __hash__(self) -> int:
        return hash((self.low, self.high))

    def __repr__(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}..{self.high}"


def _usage(prompt: int, completion: int, cached: int | Between) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "cached_tokens": cached}


def _args(raw: Any) -> Any:
    """Tool arguments as parsed JSON: a string is JSON text ("" meaning no arguments), else the object."""
    if isinstance(raw, str):
        return json.loads(raw) if raw.strip() else {}
    return {} if raw is None else raw


def expected(rec: Recording) -> Expected:
    if rec.is_error:
        raise ValueError(f"{rec}: an error recording has no answer")
    reader = {"openai": _openai, "anthropic": _anthropic, "gemini": _gemini, "bedrock": _bedrock,
              "cohere": _cohere}[rec.family]
    return reader(rec)


# OpenAI-compatible ---------------------------------------------------------------------------------
def _content_parts(content: Any) -> tuple[str, str]:
    """(text, reasoning) of a message/delta `content`: a string, or Mistral's list of typed chunks."""
    if content is None:
        return "", ""
    if isinstance(content, str):
        return content, ""
    text, reasoning = [], []
    for chunk in content:
        if chunk.get("type") == "text":
            text.append(chunk.get("text") or "")
        elif chunk.get("type") == "thinking":
            reasoning.extend(part.get("text") or "" for part in chunk.get("thinking") or [])
    return "".join(text), "".join(reasoning)


def _openai_usage(usage: dict | None) -> dict | None:
    if not usage:
        return None
    details = usage.get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens", usage.get("prompt_cache_hit_tokens", 0)) or 0
    return _usage(usage["prompt_tokens"], usage["completion_tokens"], cached)


def _openai_finish(reason: str | None) -> str | None:
    return OPENAI_COMPAT_FINISH.get(reason, reason) if reason else None


def _openai(rec: Recording) -> Expected:
    out = Expected()
    if not rec.stream:
        data = json.loads(rec.body)
        choice = data["choices"][0]
        message = choice["message"]
        out.text, out.reasoning = _content_parts(message.get("content"))
        out.reasoning += message.get("reasoning_content") or ""
        out.tool_calls = [ToolCall(c["id"], c["function"]["name"], _args(c["function"]["arguments"]))
                          for c in message.get("tool_calls") or []]
        out.finish = _openai_finish(choice.get("finish_reason"))
        out.usage = _openai_usage(data.get("usage"))
        return out
    text, reasoning = [], []
    calls: dict[int, dict] = {}
    for _name, chunk in sse_json(rec.body):
        if chunk.get("usage"):
            out.usage = _openai_usage(chunk["usage"])
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            t, r = _content_parts(delta.get("content"))
            text.append(t)
            reasoning.extend((r, delta.get("reasoning_content") or ""))
            for call in delta.get("tool_calls") or []:
                slot = calls.setdefault(call["index"], {"id": None, "name": "", "arguments": ""})
                slot["id"] = call.get("id") or slot["id"]
                fn = call.get("function") or {}
                slot["name"] += fn.get("name") or ""
                slot["arguments"] += fn.get("arguments") or ""
            if choice.get("finish_reason"):
                out.finish = _openai_finish(choice["finish_reason"])
    out.text, out.reasoning = "".join(text), "".join(reasoning)
    out.tool_calls = [ToolCall(c["id"], c["name"], _args(c["arguments"])) for _, c in sorted(calls.items())]
    return out


# Anthropic -----------------------------------------------------------------------------------------
def _anthropic_usage(usage: dict) -> dict:
    read = usage.get("cache_read_input_tokens") or 0
    write = usage.get("cache_creation_input_tokens") or 0
    return _usage((usage.get("input_tokens") or 0) + read + write, usage.get("output_tokens") or 0, read)


def _anthropic(rec: Recording) -> Expected:
    out = Expected()
    if not rec.stream:
        data = json.loads(rec.body)
        for block in data["content"]:
            if block["type"] == "text":
                out.text += block["text"]
            elif block["type"] == "thinking":
                out.reasoning += block["thinking"]
            elif block["type"] == "tool_use":
                out.tool_calls.append(ToolCall(block["id"], block["name"], block["input"]))
        out.finish = ANTHROPIC_FINISH[data["stop_reason"]]
        out.usage = _anthropic_usage(data["usage"])
        return out
    usage: dict = {}
    blocks: dict[int, dict] = {}
    order: list[int] = []
    for _name, event in sse_json(rec.body):
        kind = event["type"]
        if kind == "message_start":
            usage.update({k: v for k, v in event["message"]["usage"].items() if v is not None})
        elif kind == "content_block_start":
            blocks[event["index"]] = {**event["content_block"], "json": ""}
            order.append(event["index"])
            start = event["content_block"]
            if start["type"] == "text":
                out.text += start.get("text") or ""
            elif start["type"] == "thinking":
                out.reasoning += start.get("thinking") or ""
        elif kind == "content_block_delta":
            delta, block = event["delta"], blocks[event["index"]]
            if delta["type"] == "text_delta":
                out.text += delta["text"]
            elif delta["type"] == "thinking_delta":
                out.reasoning += delta["thinking"]
            elif delta["type"] == "input_json_delta":
                block["json"] += delta["partial_json"]
        elif kind == "message_delta":
            usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
            out.finish = ANTHROPIC_FINISH[event["delta"]["stop_reason"]]
    for index in order:
        block = blocks[index]
        if block["type"] == "tool_use":
            args = json.loads(block["json"]) if block["json"] else (block.get("input") or {})
            out.tool_calls.append(ToolCall(block["id"], block["name"], args))
    out.usage = _anthropic_usage(usage)
    return out


# Gemini --------------------------------------------------------------------------------------------
def _gemini(rec: Recording) -> Expected:
    out = Expected()
    responses = [event for _name, event in sse_json(rec.body)] if rec.stream else [json.loads(rec.body)]
    reason = None
    meta = None
    for response in responses:
        if "usageMetadata" in response:
            meta = response["usageMetadata"]
        for cand in response.get("candidates") or []:
            for part in (cand.get("content") or {}).get("parts") or []:
                if "functionCall" in part:
                    call = part["functionCall"]
                    out.tool_calls.append(ToolCall(call.get("id"), call["name"], call.get("args") or {}))
                elif part.get("thought") is True:
                    out.reasoning += part.get("text") or ""
                else:
                    out.text += part.get("text") or ""
            reason = cand.get("finishReason") or reason
    out.finish = GEMINI_FINISH.get(reason, "stop")
    if out.finish == "stop" and out.tool_calls:
        out.finish = "tool_calls"
    if meta is not None:
        prompt = (meta.get("promptTokenCount") or 0) + (meta.get("toolUsePromptTokenCount") or 0)
        completion = (meta.get("candidatesTokenCount") or 0) + (meta.get("thoughtsTokenCount") or 0)
        out.usage = _usage(prompt, completion, meta.get("cachedContentTokenCount") or 0)
    return out


# Bedrock Converse ----------------------------------------------------------------------------------
def _bedrock_usage(usage: dict) -> dict:
    read = usage.get("cacheReadInputTokens") or 0
    write = usage.get("cacheWriteInputTokens") or 0
    return _usage(usage["inputTokens"] + read + write, usage["outputTokens"], read)


def _bedrock(rec: Recording) -> Expected:
    out = Expected()
    if not rec.stream:
        data = json.loads(rec.body)
        for block in data["output"]["message"]["content"]:
            if "text" in block:
                out.text += block["text"]
            elif "citationsContent" in block:  # cited text: part of the answer
                out.text += "".join(c.get("text") or "" for c in block["citationsContent"].get("content") or [])
            elif "toolUse" in block:
                use = block["toolUse"]
                out.tool_calls.append(ToolCall(use["toolUseId"], use["name"], use.get("input") or {}))
            elif "reasoningContent" in block:
                out.reasoning += (block["reasoningContent"].get("reasoningText") or {}).get("text") or ""
        out.finish = BEDROCK_FINISH[data["stopReason"]]
        out.usage = _bedrock_usage(data["usage"])
        return out
    tools: dict[int, dict] = {}
    for headers, payload in eventstream_frames(rec.body):
        if headers.get(":message-type") != "event":
            raise ValueError(f"{rec}: a {headers.get(':message-type')} frame in a success recording")
        event, data = headers[":event-type"], json.loads(payload)
        if event == "contentBlockStart" and "toolUse" in (data.get("start") or {}):
            use = data["start"]["toolUse"]
            tools[data["contentBlockIndex"]] = {"id": use["toolUseId"], "name": use["name"], "input": ""}
        elif event == "contentBlockDelta":
            delta = data["delta"]
            if "text" in delta:
                out.text += delta["text"]
            elif "toolUse" in delta:
                tools[data["contentBlockIndex"]]["input"] += delta["toolUse"].get("input") or ""
            elif "reasoningContent" in delta:
                out.reasoning += delta["reasoningContent"].get("text") or ""
        elif event == "messageStop":
            out.finish = BEDROCK_FINISH[data["stopReason"]]
        elif event == "metadata":
            out.usage = _bedrock_usage(data["usage"])
    out.tool_calls = [ToolCall(t["id"], t["name"], _args(t["input"])) for _, t in sorted(tools.items())]
    return out


# Cohere v2 -----------------------------------------------------------------------------------------
def _cohere_usage(usage: dict) -> dict:
    """What Cohere bills (`billed_units`), else its raw token counts.

    Cohere's `cached_tokens` counts raw prompt tokens, and the billed input can be far smaller than
    the raw one (the model's own preamble is not billed), so which billed tokens were cached is not
    known: at least the overlap (cached + billed - raw), at most min(cached, billed)."""
    billed, tokens = usage.get("billed_units") or {}, usage.get("tokens") or {}
    prompt = int(billed.get("input_tokens", tokens.get("input_tokens")) or 0)
    completion = int(billed.get("output_tokens", tokens.get("output_tokens")) or 0)
    cached = int(usage.get("cached_tokens") or 0)
    raw = int(tokens.get("input_tokens", prompt) or 0)
    return _usage(prompt, completion, Between(max(0, min(cached + prompt - raw, prompt)), min(cached, prompt)))


def _cohere(rec: Recording) -> Expected:
    out = Expected()
    plan = ""
    if not rec.stream:
        data = json.loads(rec.body)
        message = data["message"]
        for item in message.get("content") or []:
            if item["type"] == "text":
                out.text += item["text"]
            elif item["type"] == "thinking":
                out.reasoning += item["thinking"]
        plan = message.get("tool_plan") or ""
        out.tool_calls = [ToolCall(c["id"], c["function"]["name"], _args(c["function"]["arguments"]))
                          for c in message.get("tool_calls") or []]
        out.finish = COHERE_FINISH[data["finish_reason"]]
        out.usage = _cohere_usage(data["usage"])
    else:
        calls: dict[int, dict] = {}
        for _name, event in sse_json(rec.body):
            kind, delta = event["type"], event.get("delta") or {}
            message = delta.get("message") or {}
            if kind == "content-delta":
                content = message["content"]
                out.text += content.get("text") or ""
                out.reasoning += content.get("thinking") or ""
            elif kind == "tool-plan-delta":
                plan += message.get("tool_plan") or ""
            elif kind == "tool-call-start":
                call = message["tool_calls"]
                calls[event["index"]] = {"id": call["id"], "name": call["function"]["name"],
                                         "arguments": call["function"].get("arguments") or ""}
            elif kind == "tool-call-delta":
                calls[event["index"]]["arguments"] += message["tool_calls"]["function"].get("arguments") or ""
            elif kind == "message-end":
                out.finish = COHERE_FINISH[delta["finish_reason"]]
                out.usage = _cohere_usage(delta["usage"])
        out.tool_calls = [ToolCall(c["id"], c["name"], _args(c["arguments"])) for _, c in sorted(calls.items())]
    if not out.reasoning:  # the tool plan is the model's reasoning before its calls
        out.reasoning = plan
    return out


# -- the OpenAI side, read back ---------------------------------------------------------------------
@dataclass
class Collected:
    text: str
    reasoning: str
    tool_calls: list[ToolCall]
    finish: str | None
    usage: dict | None
    raw_content: Any = None  # the message content as sent (a string, or whatever else came through)

    @staticmethod
    def _usage(usage: dict | None) -> dict | None:
        if not usage:
            return None
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
        return _usage(usage["prompt_tokens"], usage["completion_tokens"], cached)

    @classmethod
    def from_completion(cls, completion: dict) -> Collected:
        choice = completion["choices"][0]
        message = choice["message"]
        content = message.get("content")
        calls = [ToolCall(c["id"], c["function"]["name"], _args(c["function"]["arguments"]))
                 for c in message.get("tool_calls") or []]
        return cls(text=content if isinstance(content, str) else "", reasoning=message.get("reasoning_content") or "",
                   tool_calls=calls, finish=choice.get("finish_reason"), usage=cls._usage(completion.get("usage")),
                   raw_content=content)

    @classmethod
    def from_chunks(cls, chunks: list[dict]) -> Collected:
        text, reasoning, raw = [], [], []
        calls: dict[int, dict] = {}
        finish = usage = None
        for chunk in chunks:
            if chunk.get("usage"):
                usage = cls._usage(chunk["usage"])
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                content = delta.get("content")
                if content is not None:
                    raw.append(content)
                    text.append(content if isinstance(content, str) else "")
                reasoning.append(delta.get("reasoning_content") or "")
                for call in delta.get("tool_calls") or []:
                    slot = calls.setdefault(call["index"], {"id": None, "name": "", "arguments": ""})
                    slot["id"] = call.get("id") or slot["id"]
                    fn = call.get("function") or {}
                    slot["name"] += fn.get("name") or ""
                    slot["arguments"] += fn.get("arguments") or ""
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
        tool_calls = [ToolCall(c["id"], c["name"], _args(c["arguments"])) for _, c in sorted(calls.items())]
        return cls(text="".join(text), reasoning="".join(reasoning), tool_calls=tool_calls, finish=finish,
                   usage=usage, raw_content=raw)


def mismatches(got: Collected, want: Expected) -> list[str]:
    """How a translation differs from the recording's own reading (empty: it agrees)."""
    problems = []
    if got.text != want.text:
        problems.append(f"text: got {got.text[:120]!r}, recorded {want.text[:120]!r}")
    if got.reasoning != want.reasoning:
        problems.append(f"reasoning: got {got.reasoning[:120]!r}, recorded {want.reasoning[:120]!r}")
    got_calls = [(c.name, c.arguments) for c in got.tool_calls]
    want_calls = [(c.name, c.arguments) for c in want.tool_calls]
    if got_calls != want_calls:
        problems.append(f"tool calls: got {got_calls}, recorded {want_calls}")
    ids = [c.id for c in got.tool_calls]
    if any(not isinstance(i, str) or not i for i in ids) or len(set(ids)) != len(ids):
        problems.append(f"tool call ids must be distinct non-empty strings: {ids}")
    for g, w in zip(got.tool_calls, want.tool_calls, strict=False):
        if w.id is not None and g.id != w.id:
            problems.append(f"tool call id: got {g.id!r}, recorded {w.id!r}")
    if got.finish != want.finish:
        problems.append(f"finish_reason: got {got.finish!r}, recorded {want.finish!r}")
    if got.finish not in OPENAI_FINISH_REASONS:
        problems.append(f"finish_reason {got.finish!r} is not one of OpenAI's")
    if want.usage is not None and got.usage != want.usage:
        problems.append(f"usage: got {got.usage}, recorded {want.usage}")
    return problems
