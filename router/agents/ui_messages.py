"""UIMessages (Vercel AI SDK) in, OpenAI chat messages out, as the SDK's `convertToModelMessages` does.

- `system`: its text parts, joined, as one system message.
- `user`: text parts as text; `file` parts as `image_url` (image media types) or `file` (a `data:`
  URL) parts; anything else (data, sources, reasoning) dropped.
- `assistant`: split at every `step-start`; each block is one assistant message (its text and a
  tool call per tool part that has its input), followed by one `tool` message per tool part with
  an output (`output-available`) or an error (`output-error`, the error text as the result). Tool
  parts without a result are dropped (an orphan call would make the provider refuse the request).
  Tool parts: `tool-<name>` (v5+), `dynamic-tool`, and the legacy `tool-invocation` forms.
- `tool` (legacy role): its tool results as `tool` messages.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..errors import ApiError

ROLES = ("system", "user", "assistant", "tool")
_DONE_STATES = ("output-available", "output-error", "result")


def _bad(param: str, message: str) -> ApiError:
    return ApiError(400, message, param=param, code="invalid_value")


def validate(messages: Any) -> list[dict[str, Any]]:
    """The request's `messages`: a non-empty array of `{id?, role, parts}` (400 naming the member)."""
    if not isinstance(messages, list) or not messages:
        raise _bad("messages", "'messages' must be a non-empty array of UIMessages {id, role, parts}")
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise _bad(where, f"'{where}' must be an object {{id, role, parts}}")
        if message.get("role") not in ROLES:
            raise _bad(f"{where}.role", f"'{where}.role' must be one of {list(ROLES)}")
        if "id" in message and not isinstance(message["id"], str):
            raise _bad(f"{where}.id", f"'{where}.id' must be a string")
        parts = message.get("parts")
        if not isinstance(parts, list):
            raise _bad(f"{where}.parts", f"'{where}.parts' must be an array of parts")
        for j, part in enumerate(parts):
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise _bad(f"{where}.parts[{j}]", f"'{where}.parts[{j}]' must be an object with a string 'type'")
    return messages


def _json(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _tool_part(part: dict[str, Any]) -> dict[str, Any] | None:
    """A tool part as {id, name, input, state, output, error}, whichever UIMessage version wrote it."""
    kind = part["type"]
    if kind == "tool-invocation" and isinstance(part.get("toolInvocation"), dict):
        inv = part["toolInvocation"]
        return {"id": inv.get("toolCallId"), "name": inv.get("toolName"), "input": inv.get("args"),
                "state": inv.get("state"), "output": inv.get("result"), "error": None}
    if kind in ("tool-invocation", "tool-result"):  # the flattened form of the Odeus OpenAPI page
        state = "result" if kind == "tool-result" or "result" in part else "call"
        return {"id": part.get("toolCallId"), "name": part.get("toolName"), "input": part.get("args"),
                "state": state, "output": part.get("result"), "error": None}
    if kind == "dynamic-tool" or kind.startswith("tool-"):
        name = part.get("toolName") if kind == "dynamic-tool" else kind[len("tool-"):]
        return {"id": part.get("toolCallId"), "name": name, "input": part.get("input", part.get("rawInput")),
                "state": part.get("state"), "output": part.get("output"), "error": part.get("errorText")}
    return None


def _user_content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    content: list[dict[str, Any]] = []
    for part in parts:
        kind = part["type"]
        if kind == "text" and isinstance(part.get("text"), str):
            content.append({"type": "text", "text": part["text"]})
        elif kind == "file":
            url = part.get("url") or part.get("data")
            media = part.get("mediaType") or part.get("mimeType") or ""
            name = part.get("filename") or part.get("name")
            if not isinstance(url, str) or not url:
                continue
            if media.startswith("image/"):
                content.append({"type": "image_url", "image_url": {"url": url}})
            elif url.startswith("data:"):
                content.append({"type": "file", "file": {"file_data": url, "filename": name or "file"}})
            else:
                content.append({"type": "text", "text": f"[file {name or ''} ({media or 'unknown type'}): {url}]"})
    if all(p["type"] == "text" for p in content):
        return "\n".join(p["text"] for p in content)
    return content


def _assistant(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    blocks: list[list[dict[str, Any]]] = [[]]
    for part in parts:
        if part["type"] == "step-start":
            if blocks[-1]:
                blocks.append([])
            continue
        blocks[-1].append(part)
    for block in blocks:
        text = "".join(p.get("text", "") for p in block if p["type"] == "text" and isinstance(p.get("text"), str))
        calls, results = [], []
        for part in block:
            tool = _tool_part(part)
            if tool is None or not isinstance(tool["id"], str) or not tool["name"]:
                continue
            if tool["state"] not in _DONE_STATES:
                continue  # no result: drop the call (as `ignoreIncompleteToolCalls`)
            calls.append({"id": tool["id"], "type": "function",
                          "function": {"name": tool["name"], "arguments": _json(tool["input"] or {})}})
            result = f"Error: {tool['error']}" if tool["state"] == "output-error" else _json(tool["output"])
            results.append({"role": "tool", "tool_call_id": tool["id"], "content": result})
        if not text and not calls:
            continue
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            message["tool_calls"] = calls
        out.append(message)
        out.extend(results)
    return out


def to_openai(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation as OpenAI chat messages (see the module doc)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message["role"]
        parts = message["parts"]
        if role == "system":
            text = "\n".join(p["text"] for p in parts if p["type"] == "text" and isinstance(p.get("text"), str))
            if text:
                out.append({"role": "system", "content": text})
        elif role == "user":
            content = _user_content(parts)
            if content:
                out.append({"role": "user", "content": content})
        elif role == "assistant":
            out.extend(_assistant(parts))
        else:
            for part in parts:
                tool = _tool_part(part)
                if tool is not None and isinstance(tool["id"], str) and tool["state"] in _DONE_STATES:
                    out.append({"role": "tool", "tool_call_id": tool["id"], "content": _json(tool["output"])})
    if not out:
        raise _bad("messages", "'messages' holds no text, file or tool content to send to the model")
    return out
