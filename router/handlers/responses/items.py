"""Responses input items -> canonical chat messages (the conversation half of `inbound.py`).

A Responses conversation is a flat list of items where Chat Completions has messages: one model
turn is a `reasoning` item, a `message` and `function_call` items side by side, and each result is a
`function_call_output` of its own. So consecutive calls (and the assistant message right before them)
become one assistant message with `tool_calls`; reasoning rides on the next assistant message as
`reasoning_content`, with the exact `thinking_blocks` when its `encrypted_content` is one we sealed
(`thinking.py`), or on the turn just before when it is our sealed item repeated after that turn's
items (a streamed turn whose blocks came late, see `outbound.ResponseEvents`); images and files of
a tool's output follow the tool messages in a user message, since a tool message holds text only
(as the Messages face does).

`item_reference` is resolved against the items seen before it (the `previous_response_id` history,
then this input): the referenced item is converted again at the reference's place. A reference to
anything else is refused: the items of other stored responses are not looked up here. Item types
that record OpenAI's hosted tools (web search, computer, MCP …) have no Chat Completions shape and
are refused with their path. Fields the Chat shape has no place for (`id`, `status`, `phase`, a call's
`namespace` or `caller`) are accepted and not carried.
"""

from __future__ import annotations

from typing import Any

from providers.base import tool_arguments

from ..wire_checks import bad, kind_of, string
from .thinking import unseal

_ROLES = {"user": "user", "system": "system", "developer": "system", "assistant": "assistant"}
_DETAILS = frozenset({"auto", "low", "high", "original"})
_AUDIO_FORMATS = frozenset({"mp3", "wav"})
_USER_PARTS = frozenset({"input_text", "input_image", "input_file", "input_audio"})
_ASSISTANT_PARTS = frozenset({"output_text", "input_text", "refusal"})
_TOOL_OUTPUT_PARTS = frozenset({"input_text", "input_image", "input_file"})


def item_type(item: Any, where: str) -> str:
    """An item's type; `message` for the SDK's easy input messages (`{role, content}` without one)."""
    if not isinstance(item, dict):
        raise bad(f"'{where}' must be an object", where)
    kind = item.get("type")
    if kind is None:
        if "role" in item:
            return "message"
        if "id" in item:
            return "item_reference"
    if not isinstance(kind, str):
        raise bad(f"'{where}.type' must be a string", f"{where}.type")
    return kind


# -- content parts ----------------------------------------------------------------------------
def _marked(part: dict, source: dict, where: str) -> dict:
    """`prompt_cache_breakpoint` (an explicit end of a cached prefix) as the canonical cache mark."""
    breakpoint_ = source.get("prompt_cache_breakpoint")
    if breakpoint_ is not None:
        if not isinstance(breakpoint_, dict):
            raise bad(f"'{where}.prompt_cache_breakpoint' must be an object", f"{where}.prompt_cache_breakpoint")
        part["cache_control"] = {"type": "ephemeral"}
    return part


def _part(part: Any, where: str, allowed: frozenset[str], context: str) -> dict:
    """One content part as a canonical part: text, image_url, file or input_audio."""
    kind = kind_of(part, where)
    if kind not in allowed:
        raise bad(f"'{where}': parts of type '{kind}' are not allowed in {context} (allowed: "
                  f"{', '.join(sorted(allowed))})", f"{where}.type")
    if kind in ("input_text", "output_text"):
        return _marked({"type": "text", "text": string(part, "text", where)}, part, where)
    if kind == "refusal":
        return {"type": "text", "text": string(part, "refusal", where)}
    if kind == "input_image":
        return _marked(_image(part, where), part, where)
    if kind == "input_file":
        return _marked(_file(part, where), part, where)
    audio = part.get("input_audio")
    if not isinstance(audio, dict):
        raise bad(f"'{where}.input_audio' must be an object", f"{where}.input_audio")
    data = string(audio, "data", f"{where}.input_audio", empty=False)
    if not isinstance(audio.get("format"), str) or audio["format"] not in _AUDIO_FORMATS:
        raise bad(f"'{where}.input_audio.format' must be 'mp3' or 'wav'", f"{where}.input_audio.format")
    return {"type": "input_audio", "input_audio": {"data": data, "format": audio["format"]}}


def _image(part: dict, where: str) -> dict:
    if part.get("file_id") is not None:
        raise bad(f"'{where}.file_id': Files API images cannot be translated for other vendors; send "
                  "'image_url' (a URL or a base64 data URL)", f"{where}.file_id")
    url = string(part, "image_url", where, empty=False)
    image: dict[str, Any] = {"url": url}
    detail = part.get("detail")
    if detail is not None:
        if not isinstance(detail, str) or detail not in _DETAILS:
            raise bad(f"'{where}.detail' must be one of {sorted(_DETAILS)}", f"{where}.detail")
        image["detail"] = detail
    return {"type": "image_url", "image_url": image}


def _file(part: dict, where: str) -> dict:
    for key in ("file_id", "file_url"):
        if part.get(key) is not None:
            raise bad(f"'{where}.{key}': files by id or URL cannot be translated for other vendors; send "
                      "'file_data' (a base64 data URL)", f"{where}.{key}")
    data = string(part, "file_data", where, empty=False)
    if not data.startswith("data:"):
        raise bad(f"'{where}.file_data' must be a base64 data URL (data:<media type>;base64,…)", f"{where}.file_data")
    file: dict[str, Any] = {"file_data": data}
    if part.get("filename") is not None:
        file["filename"] = string(part, "filename", where)
    return {"type": "file", "file": file}


def _parts(content: Any, where: str, allowed: frozenset[str], context: str) -> list[dict]:
    if not isinstance(content, list):
        raise bad(f"'{where}' must be a string or an array of content parts", where)
    return [_part(part, f"{where}[{j}]", allowed, context) for j, part in enumerate(content)]


# -- the conversation -------------------------------------------------------------------------
class Conversation:
    """Folds items, in order, into canonical messages (`messages`, complete after `close()`)."""

    __slots__ = ("_assistant", "_attachments", "_blocks", "_reasoning", "_seen", "messages")

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self._assistant: dict | None = None  # the assistant message function calls may still join
        self._reasoning: list[str] = []  # summaries waiting for the next assistant message
        self._blocks: list[dict] = []  # thinking blocks likewise
        self._attachments: list[dict] = []  # media of tool outputs, sent after the tool messages
        self._seen: dict[str, dict] = {}  # item id -> item, for item_reference

    def add(self, item: Any, where: str) -> None:
        kind = item_type(item, where)
        if kind == "item_reference":
            ref = string(item, "id", where, empty=False)
            if ref not in self._seen:
                raise bad(f"'{where}': item_reference '{ref}' names no earlier item of this conversation; only "
                          "items of the previous_response_id chain or of this input can be referenced", f"{where}.id")
            item = self._seen[ref]
            kind = item_type(item, where)
        if kind == "message":
            self._message(item, where)
        elif kind == "function_call":
            self._call(item, where)
        elif kind == "function_call_output":
            self._output(item, where)
        elif kind == "reasoning":
            self._reason(item, where)
        else:
            raise bad(f"'{where}': input items of type '{kind}' are not supported here or cannot be translated "
                      "for other vendors", f"{where}.type")
        if isinstance(item.get("id"), str) and item["id"]:
            self._seen[item["id"]] = item

    def close(self) -> list[dict]:
        self._flush()
        return self.messages

    # -- items ------------------------------------------------------------------------------
    def _message(self, item: dict, where: str) -> None:
        role = _ROLES.get(item["role"]) if isinstance(item.get("role"), str) else None
        if role is None:
            raise bad(f"'{where}.role' must be 'user', 'system', 'developer' or 'assistant'", f"{where}.role")
        content = item.get("content")
        if role == "assistant":
            texts = [content] if isinstance(content, str) else [
                part["text"] for part in _parts(content, f"{where}.content", _ASSISTANT_PARTS, "assistant messages")]
            self._open_assistant({"role": "assistant", "content": "".join(texts)})
            return
        self._flush()
        self._drop_reasoning()
        if isinstance(content, str):
            self.messages.append({"role": role, "content": content})
            return
        if role == "system":
            parts = _parts(content, f"{where}.content", frozenset({"input_text"}), "system and developer messages")
        else:
            parts = _parts(content, f"{where}.content", _USER_PARTS, "user messages")
            if not parts:
                raise bad(f"'{where}.content' must not be empty", f"{where}.content")
        self.messages.append({"role": role, "content": parts})

    def _call(self, item: dict, where: str) -> None:
        call_id = string(item, "call_id", where, empty=False)
        name = string(item, "name", where, empty=False)
        arguments = string(item, "arguments", where)
        call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": tool_arguments(arguments)}}
        if self._assistant is None:
            self._open_assistant({"role": "assistant", "content": None})
        assert self._assistant is not None
        self._assistant.setdefault("tool_calls", []).append(call)

    def _output(self, item: dict, where: str) -> None:
        call_id = string(item, "call_id", where, empty=False)
        output = item.get("output")
        self._assistant = None
        self._drop_reasoning()
        msg: dict[str, Any] = {"role": "tool", "tool_call_id": call_id}
        if isinstance(output, str):
            msg["content"] = output
            self.messages.append(msg)
            return
        parts = _parts(output, f"{where}.output", _TOOL_OUTPUT_PARTS, "function call outputs")
        msg["content"] = "\n".join(part["text"] for part in parts if part["type"] == "text")
        if any("cache_control" in part for part in parts if part["type"] == "text"):
            msg["cache_control"] = {"type": "ephemeral"}  # a message-level mark, as the translators read it
        media = [part for part in parts if part["type"] != "text"]
        if media:
            self._attachments.append({"type": "text", "text": f"[attachments of tool result {call_id}]"})
            self._attachments.extend(media)
        self.messages.append(msg)

    def _reason(self, item: dict, where: str) -> None:
        texts = self._reasoning_texts(item, "summary", "summary_text", where)
        if not texts:
            texts = self._reasoning_texts(item, "content", "reasoning_text", where)
        encrypted = item.get("encrypted_content")
        if encrypted is not None and not isinstance(encrypted, str):
            raise bad(f"'{where}.encrypted_content' must be a string", f"{where}.encrypted_content")
        blocks = unseal(encrypted) or []  # OpenAI's own encrypted reasoning means nothing elsewhere
        turn = self._assistant
        if blocks and turn is not None and "thinking_blocks" not in turn and not self._reasoning:
            # Our reasoning item repeated after its turn's items (see `outbound.ResponseEvents`): it is that turn's.
            turn["thinking_blocks"] = blocks
            if texts and "reasoning_content" not in turn:
                turn["reasoning_content"] = "\n\n".join(texts)
            return
        self._assistant = None  # reasoning opens a new turn: calls after it do not join the message before
        self._reasoning.extend(text for text in texts if text)
        self._blocks.extend(blocks)

    @staticmethod
    def _reasoning_texts(item: dict, key: str, kind: str, where: str) -> list[str]:
        parts = item.get(key)
        if parts is None:
            return []
        if not isinstance(parts, list):
            raise bad(f"'{where}.{key}' must be an array", f"{where}.{key}")
        texts = []
        for j, part in enumerate(parts):
            here = f"{where}.{key}[{j}]"
            if kind_of(part, here) != kind:
                raise bad(f"'{here}.type' must be '{kind}'", f"{here}.type")
            texts.append(string(part, "text", here))
        return texts

    # -- helpers ----------------------------------------------------------------------------
    def _open_assistant(self, msg: dict) -> None:
        self._flush()
        if self._reasoning:
            msg["reasoning_content"] = "\n\n".join(self._reasoning)
        if self._blocks:
            msg["thinking_blocks"] = self._blocks
        self._reasoning, self._blocks = [], []
        self.messages.append(msg)
        self._assistant = msg

    def _drop_reasoning(self) -> None:
        """Reasoning not followed by an assistant turn has nothing to ride on (a vendor wants it in one)."""
        self._reasoning, self._blocks = [], []

    def _flush(self) -> None:
        """End of a run of tool messages: their images and files follow in one user message."""
        self._assistant = None
        if self._attachments:
            self.messages.append({"role": "user", "content": self._attachments})
            self._attachments = []
