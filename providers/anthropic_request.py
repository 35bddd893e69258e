"""Canonical (OpenAI) chat request -> Anthropic Messages API request body.

Kept apart from `anthropic.py` because this direction carries most of the rules: Anthropic wants a
top-level `system`, strictly alternating user/assistant turns, tool results as `tool_result` blocks
in a user turn, tool arguments as parsed objects, and a `max_tokens` on every request. OpenAI
parameters Anthropic has no equivalent for (logprobs, seed, penalties, ...) were refused or stripped
by the router from `AnthropicProvider.capabilities`; content Anthropic cannot take (audio input, OpenAI
file ids, non-function tools) is rejected here with `UNSUPPORTED` naming where it is.

Reasoning replay convention (shared with the response side): an assistant message may carry
`thinking_blocks`, a list of `{"type": "thinking", "thinking", "signature"}` and
`{"type": "redacted_thinking", "data"}` objects exactly as this provider returned them. They are
replayed first in that assistant turn, which Anthropic requires for tool use with thinking on.
`reasoning_content` alone is never replayed: unsigned thinking would be rejected by the API.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

import orjson

from .errors import ErrorKind, UpstreamError

# A forced tool emulating `response_format: json_schema` (options.structured_output: tool) is named
# with this prefix so the response side can recognise it without request state.
JSON_TOOL_PREFIX = "json_output__"
DEFAULT_MAX_TOKENS = 4096
MIN_THINKING_BUDGET = 1024
THINKING_BUDGETS: dict[str, int] = {
    "minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32000, "max": 32000,
}
_ADAPTIVE_EFFORT = {"minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "xhigh",
                    "max": "max"}
_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_JSON_OBJECT_INSTRUCTION = ("Respond only with a single valid JSON object. Do not add any text before or "
                            "after it and do not wrap it in a code fence.")
_SERVICE_TIERS = {"auto": "auto", "priority": "auto", "default": "standard_only"}
_TOOL_NAME_BAD = re.compile(r"[^a-zA-Z0-9_-]")


def bad_request(message: str, param: str = "messages") -> UpstreamError:
    return UpstreamError(ErrorKind.BAD_REQUEST, message, param=param, code="invalid_request")


def unsupported(message: str, param: str) -> UpstreamError:
    return UpstreamError(ErrorKind.UNSUPPORTED, message, param=param, code="unsupported_parameter")


def build_body(body: Mapping[str, Any], model: str, stream: bool, options: Mapping[str, Any]) -> dict:
    """The Anthropic `/v1/messages` body for one canonical chat request (raises `UpstreamError`).

    `n` is ignored: the router makes one call per choice for a provider without native `n`.
    """
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' must be a non-empty array")
    system, turns = _convert_messages(messages)
    if not turns:
        raise bad_request("'messages' must contain at least one user or assistant message")

    out: dict[str, Any] = {"model": model, "messages": turns}
    max_tokens = _max_tokens(body, options)
    _sampling(body, out)

    tools = _convert_tools(body.get("tools"))
    tool_choice = _tool_choice(body.get("tool_choice"), tools)
    thinking = _thinking(body, options, out)
    json_tool = _response_format(body.get("response_format"), options, system, out,
                                 forced_tool_allowed=thinking is None or thinking.get("type") == "disabled")
    if json_tool is not None:
        tools = [*(tools or []), json_tool]
        tool_choice = {"type": "tool", "name": json_tool["name"]}
    if tools:
        out["tools"] = tools
        if body.get("parallel_tool_calls") is False and (tool_choice or {}).get("type") != "none":
            tool_choice = {**(tool_choice or {"type": "auto"}), "disable_parallel_tool_use": True}
        if tool_choice is not None:
            out["tool_choice"] = tool_choice

    if system:
        if any("cache_control" in block for block in system):
            out["system"] = system
        else:
            out["system"] = "\n\n".join(block["text"] for block in system)

    out["max_tokens"] = _sent_max_tokens(max_tokens, thinking, options)

    user = body.get("safety_identifier") or body.get("user")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    tier = _SERVICE_TIERS.get(body.get("service_tier") or "")
    if tier:
        out["service_tier"] = tier
    if isinstance(body.get("cache_control"), dict):  # Anthropic automatic caching, passed through
        out["cache_control"] = body["cache_control"]
    if stream:
        out["stream"] = True
    return out


def output_limit(body: Mapping[str, Any], options: Mapping[str, Any]) -> int | None:
    """The `max_tokens` Anthropic would be sent for this request (thinking included): the most it
    may bill as output. None when the request cannot be translated (the call reports why)."""
    try:
        return _sent_max_tokens(_max_tokens(body, options), _thinking(body, options, {}), options)
    except UpstreamError:
        return None


def _sent_max_tokens(max_tokens: int | None, thinking: dict | None, options: Mapping[str, Any]) -> int:
    budget = thinking.get("budget_tokens") if thinking else None
    if isinstance(budget, int) and not isinstance(budget, bool):
        # Anthropic requires max_tokens > budget_tokens. The client's limit (or the default) is then
        # what remains for the visible answer, the convention of the AI SDK.
        if max_tokens is None:
            return budget + _default_max_tokens(options)
        if max_tokens <= budget:
            return budget + max_tokens
    return max_tokens if max_tokens is not None else _default_max_tokens(options)


# -- scalar parameters ------------------------------------------------------------------------
def _default_max_tokens(options: Mapping[str, Any]) -> int:
    value = options.get("default_max_tokens", DEFAULT_MAX_TOKENS)
    return value if isinstance(value, int) and value > 0 else DEFAULT_MAX_TOKENS


def _max_tokens(body: Mapping[str, Any], options: Mapping[str, Any]) -> int | None:
    for param in ("max_completion_tokens", "max_tokens"):
        value = body.get(param)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad_request(f"'{param}' must be a non-negative integer", param)
        return value
    return None


def _number(body: Mapping[str, Any], param: str, low: float, high: float) -> float | None:
    value = body.get(param)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise bad_request(f"'{param}' must be a number between {low:g} and {high:g} for Anthropic models",
                          param)
    return value


def _sampling(body: Mapping[str, Any], out: dict[str, Any]) -> None:
    temperature = _number(body, "temperature", 0, 1)  # Anthropic's range is 0..1, not OpenAI's 0..2
    if temperature is not None:
        out["temperature"] = temperature
    top_p = _number(body, "top_p", 0, 1)
    if top_p is not None:
        out["top_p"] = top_p
    top_k = body.get("top_k")
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
            raise bad_request("'top_k' must be a non-negative integer", "top_k")
        out["top_k"] = top_k
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise bad_request("'stop' must be a string or an array of strings", "stop")
        stop = [s for s in stop if s]
        if stop:
            out["stop_sequences"] = stop


def _thinking(body: Mapping[str, Any], options: Mapping[str, Any], out: dict[str, Any]) -> dict | None:
    """`thinking` from an Anthropic-shaped `thinking` member or from OpenAI's `reasoning_effort`."""
    thinking = body.get("thinking")
    if thinking is not None:
        if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "disabled", "adaptive"):
            raise bad_request("'thinking' must be {type: enabled|disabled|adaptive, ...}", "thinking")
        budget = thinking.get("budget_tokens")
        if thinking["type"] == "enabled" and (isinstance(budget, bool) or not isinstance(budget, int)):
            raise bad_request("'thinking.budget_tokens' must be an integer", "thinking")
        out["thinking"] = dict(thinking)
        return out["thinking"]
    effort = body.get("reasoning_effort")
    if effort is None or effort == "none":
        return None
    budgets = {**THINKING_BUDGETS, **(options.get("thinking_budgets") or {})}
    if effort not in budgets:
        raise bad_request(f"unknown reasoning_effort '{effort}'", "reasoning_effort")
    if options.get("thinking_mode") == "adaptive":  # models that only accept adaptive thinking
        out["thinking"] = {"type": "adaptive"}
        out.setdefault("output_config", {})["effort"] = _ADAPTIVE_EFFORT.get(effort, "high")
    else:
        out["thinking"] = {"type": "enabled", "budget_tokens": max(MIN_THINKING_BUDGET, int(budgets[effort]))}
    return out["thinking"]


def _response_format(fmt: Any, options: Mapping[str, Any], system: list[dict], out: dict[str, Any],
                     forced_tool_allowed: bool) -> dict | None:
    """Apply `response_format`; returns the synthetic JSON tool when emulating with a forced tool."""
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        system.append({"type": "text", "text": _JSON_OBJECT_INSTRUCTION})
        return None
    if kind != "json_schema" or not isinstance(fmt.get("json_schema"), dict):
        raise bad_request("'response_format' must be text, json_object or json_schema", "response_format")
    spec = fmt["json_schema"]
    schema = spec.get("schema")
    if not isinstance(schema, dict):
        raise bad_request("'response_format.json_schema.schema' must be an object", "response_format")
    if options.get("structured_output") == "tool" and forced_tool_allowed:
        if schema.get("type") != "object":
            raise unsupported("tool-emulated structured output needs an object schema", "response_format")
        name = _TOOL_NAME_BAD.sub("_", str(spec.get("name") or "response"))
        tool = {"name": (JSON_TOOL_PREFIX + name)[:64], "input_schema": schema,
                "description": spec.get("description") or "Return the answer as this JSON object."}
        return tool
    out.setdefault("output_config", {})["format"] = {"type": "json_schema", "schema": schema}
    return None


# -- tools ------------------------------------------------------------------------------------
def _convert_tools(tools: Any) -> list[dict] | None:
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise bad_request("'tools' must be an array", "tools")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise bad_request(f"tools[{i}] must be an object", "tools")
        if tool.get("type", "function") != "function":
            raise unsupported(f"tools[{i}]: only function tools are supported by Anthropic models, not "
                              f"{tool.get('type')!r} (no server tools: web search, code execution …)", "tools")
        fn = tool.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise bad_request(f"tools[{i}].function.name is required", "tools")
        schema = fn.get("parameters")
        if schema is None:
            schema = {"type": "object", "properties": {}}
        elif not isinstance(schema, dict):
            raise bad_request(f"tools[{i}].function.parameters must be a JSON Schema object", "tools")
        elif "type" not in schema:
            schema = {"type": "object", **schema}
        converted: dict[str, Any] = {"name": fn["name"], "input_schema": schema}
        if fn.get("description"):
            converted["description"] = fn["description"]
        if fn.get("strict") is True:
            converted["strict"] = True
        cache_control = tool.get("cache_control") or fn.get("cache_control")
        if cache_control:
            converted["cache_control"] = cache_control
        out.append(converted)
    return out


def _tool_choice(choice: Any, tools: list[dict] | None) -> dict | None:
    """OpenAI `tool_choice` -> Anthropic; `allowed_tools` narrows `tools` in place."""
    if choice is None:
        return None
    if choice == "auto":
        return {"type": "auto"} if tools else None
    if choice == "none":
        return {"type": "none"} if tools else None
    if not tools:
        raise bad_request("'tool_choice' needs 'tools'", "tool_choice")
    if choice == "required":
        return {"type": "any"}
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if not isinstance(name, str) or not name:
            raise bad_request("'tool_choice.function.name' is required", "tool_choice")
        return {"type": "tool", "name": name}
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        allowed = choice.get("allowed_tools") or {}
        names = {(t.get("function") or {}).get("name") for t in allowed.get("tools") or [] if isinstance(t, dict)}
        tools[:] = [t for t in tools if t["name"] in names]
        if not tools:
            raise bad_request("'tool_choice.allowed_tools' names no declared tool", "tool_choice")
        return {"type": "any"} if allowed.get("mode") == "required" else {"type": "auto"}
    raise bad_request("unsupported 'tool_choice' value", "tool_choice")


# -- messages ---------------------------------------------------------------------------------
def _convert_messages(messages: list[Any]) -> tuple[list[dict], list[dict]]:
    """(system text blocks, alternating Anthropic turns)."""
    system: list[dict] = []
    turns: list[dict] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise bad_request(f"messages[{i}] must be an object")
        role = msg.get("role")
        if role in ("system", "developer"):
            blocks = _text_only(msg.get("content"), i)
            _apply_message_cache_control(msg, blocks)
            system.extend(blocks)
            continue
        if role == "user":
            blocks = _user_blocks(msg.get("content"), i)
        elif role == "assistant":
            blocks = _assistant_blocks(msg, i)
        elif role == "tool":
            blocks, role = [_tool_result(msg, i)], "user"
        else:
            raise bad_request(f"messages[{i}].role '{role}' is not supported")
        _apply_message_cache_control(msg, blocks)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:  # Anthropic needs strict alternation: merge
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:  # tool results must open their user turn, before any text
        if turn["role"] == "user":
            turn["content"].sort(key=lambda block: block["type"] != "tool_result")
    return system, turns


def _apply_message_cache_control(msg: dict, blocks: list[dict]) -> None:
    """A message-level `cache_control` marks the message's last block (LiteLLM's convention)."""
    if isinstance(msg.get("cache_control"), dict) and blocks:
        blocks[-1]["cache_control"] = msg["cache_control"]


def _text_block(text: Any, part: Mapping[str, Any], where: str) -> dict | None:
    if not isinstance(text, str):
        raise bad_request(f"{where}: text must be a string")
    if not text.strip():  # Anthropic rejects empty and whitespace-only text blocks
        return None
    block: dict[str, Any] = {"type": "text", "text": text}
    if part.get("cache_control"):
        block["cache_control"] = part["cache_control"]
    return block


def _text_only(content: Any, i: int) -> list[dict]:
    if content is None:
        return []
    if isinstance(content, str):
        block = _text_block(content, {}, f"messages[{i}]")
        return [block] if block else []
    if not isinstance(content, list):
        raise bad_request(f"messages[{i}].content must be a string or an array of parts")
    blocks = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") not in ("text", "refusal"):
            raise bad_request(f"messages[{i}].content[{j}] must be a text part")
        block = _text_block(part.get("text", part.get("refusal")), part, f"messages[{i}].content[{j}]")
        if block:
            blocks.append(block)
    return blocks


def _user_blocks(content: Any, i: int) -> list[dict]:
    if content is None or isinstance(content, str):
        return _text_only(content, i)
    if not isinstance(content, list):
        raise bad_request(f"messages[{i}].content must be a string or an array of parts")
    blocks = []
    for j, part in enumerate(content):
        where = f"messages[{i}].content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            block = _text_block(part.get("text"), part, where)
        elif kind == "image_url":
            block = _image_block(part, where)
        elif kind == "file":
            block = _document_block(part, where)
        elif kind == "input_audio":
            raise unsupported(f"{where}: audio input is not supported by Anthropic models", "messages")
        else:
            raise bad_request(f"{where}: unsupported content part type '{kind}'")
        if block:
            blocks.append(block)
    return blocks


def _data_url(url: str, where: str) -> tuple[str, str]:
    """(media type, base64 data) of a `data:<type>;base64,<data>` URL."""
    header, sep, data = url.partition(",")
    if not sep or not header.endswith(";base64"):
        raise bad_request(f"{where}: data URLs must be base64-encoded")
    media_type = header[5:].split(";", 1)[0].strip().lower()
    return ("image/jpeg" if media_type == "image/jpg" else media_type), data


def _image_block(part: Mapping[str, Any], where: str) -> dict:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise bad_request(f"{where}: image_url.url is required")
    if url.startswith("data:"):
        media_type, data = _data_url(url, where)
        if media_type not in _IMAGE_TYPES:
            raise bad_request(f"{where}: image type '{media_type}' is not supported (jpeg, png, gif, webp)")
        source: dict[str, Any] = {"type": "base64", "media_type": media_type, "data": data}
    elif url.startswith(("https://", "http://")):
        source = {"type": "url", "url": url}
    else:
        raise bad_request(f"{where}: image_url.url must be an http(s) or data: URL")
    block: dict[str, Any] = {"type": "image", "source": source}
    if part.get("cache_control"):
        block["cache_control"] = part["cache_control"]
    return block


def _document_block(part: Mapping[str, Any], where: str) -> dict:
    file = part.get("file")
    if not isinstance(file, dict):
        raise bad_request(f"{where}: 'file' must be an object")
    if file.get("file_id"):
        raise unsupported(f"{where}: OpenAI file ids cannot be sent to Anthropic", "messages")
    data_url = file.get("file_data")
    if not isinstance(data_url, str) or not data_url.startswith("data:"):
        raise bad_request(f"{where}: file.file_data must be a base64 data: URL")
    media_type, data = _data_url(data_url, where)
    if media_type == "application/pdf":
        source: dict[str, Any] = {"type": "base64", "media_type": media_type, "data": data}
    elif media_type == "text/plain":
        try:
            text = base64.b64decode(data, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise bad_request(f"{where}: file data is not base64-encoded UTF-8 text") from None
        source = {"type": "text", "media_type": "text/plain", "data": text}
    else:
        raise unsupported(f"{where}: file type '{media_type}' is not supported (pdf, text)", "messages")
    block: dict[str, Any] = {"type": "document", "source": source}
    if isinstance(file.get("filename"), str) and file["filename"]:
        block["title"] = file["filename"]
    if part.get("cache_control"):
        block["cache_control"] = part["cache_control"]
    return block


def _assistant_blocks(msg: Mapping[str, Any], i: int) -> list[dict]:
    blocks = _replayed_thinking(msg.get("thinking_blocks"), i)
    content = msg.get("content")
    if content is None and isinstance(msg.get("refusal"), str):
        content = msg["refusal"]
    blocks.extend(_text_only(content, i))
    tool_calls = msg.get("tool_calls") or []
    if not isinstance(tool_calls, list):
        raise bad_request(f"messages[{i}].tool_calls must be an array")
    for j, call in enumerate(tool_calls):
        blocks.append(_tool_use(call, f"messages[{i}].tool_calls[{j}]"))
    return blocks


def _replayed_thinking(items: Any, i: int) -> list[dict]:
    if not items:
        return []
    if not isinstance(items, list):
        raise bad_request(f"messages[{i}].thinking_blocks must be an array")
    blocks = []
    for item in items:
        if not isinstance(item, dict):
            raise bad_request(f"messages[{i}].thinking_blocks entries must be objects")
        if item.get("type") == "thinking" and isinstance(item.get("signature"), str) and item["signature"]:
            blocks.append({"type": "thinking", "thinking": item.get("thinking") or "",
                           "signature": item["signature"]})
        elif item.get("type") == "redacted_thinking" and isinstance(item.get("data"), str):
            blocks.append({"type": "redacted_thinking", "data": item["data"]})
        # an unsigned thinking block cannot be replayed (the API rejects it): it is left out
    return blocks


def _tool_use(call: Any, where: str) -> dict:
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict) or not isinstance(call.get("id"), str) or not isinstance(fn.get("name"), str):
        raise bad_request(f"{where} needs 'id' and 'function.name'")
    arguments = fn.get("arguments")
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        parsed: Any = {}
    elif isinstance(arguments, dict):
        parsed = arguments
    else:
        try:
            parsed = orjson.loads(arguments)
        except (orjson.JSONDecodeError, TypeError):
            raise bad_request(f"{where}.function.arguments is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise bad_request(f"{where}.function.arguments must be a JSON object")
    block = {"type": "tool_use", "id": call["id"], "name": fn["name"], "input": parsed}
    if call.get("cache_control"):
        block["cache_control"] = call["cache_control"]
    return block


def _tool_result(msg: Mapping[str, Any], i: int) -> dict:
    tool_call_id = msg.get("tool_call_id")
    if not isinstance(tool_call_id, str) or not tool_call_id:
        raise bad_request(f"messages[{i}].tool_call_id is required")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_call_id}
    content = msg.get("content")
    if isinstance(content, str):
        if content:
            block["content"] = content
    elif isinstance(content, list):
        parts = _user_blocks(content, i)
        if parts:
            block["content"] = parts
    elif content is not None:
        raise bad_request(f"messages[{i}].content must be a string or an array of parts")
    return block
