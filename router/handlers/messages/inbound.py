"""Anthropic Messages request -> canonical (OpenAI Chat Completions) request body.

The Messages face turns every request into the canonical body the pipeline routes, so Claude Code and
the anthropic SDK can reach any vendor. This is the reverse of `providers/anthropic_request.py` and
speaks its extension members, so nothing is lost when the vendor is Anthropic after all:
`cache_control` on parts, messages and tools, `thinking` as a member, and `reasoning_content` plus
signed `thinking_blocks` on assistant messages (replayed exactly).

Each member is mapped, dropped or refused. Dropped: it only tunes Anthropic's own behaviour (`top_k`,
`context_management`, a tool's `defer_loading` …), so the answer means the same without it; its name
goes to `Inbound.dropped`. Refused with a 400 naming it: losing it would change what the answer means
(Anthropic's server tools, MCP servers, block types with no Chat Completions shape). Every type is
checked as Anthropic checks it, so a bad request fails here with a `param` path, never deeper.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from ...errors import ApiError
from ..wire_checks import bad, kind_of, string

# Top-level members that are mapped (the rest, `mcp_servers` aside, are dropped and listed).
_MAPPED = frozenset({"model", "messages", "system", "max_tokens", "stream", "temperature", "top_p",
                     "stop_sequences", "metadata", "tools", "tool_choice", "thinking", "output_config"})
_TOOL_KEYS = frozenset({"type", "name", "description", "input_schema", "cache_control"})
_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_THINKING_TYPES = frozenset({"enabled", "disabled", "adaptive"})
_TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


@dataclass(slots=True)
class Inbound:
    body: dict  # canonical OpenAI chat body: model, messages, stream, and the mapped members
    dropped: list[str]  # members not carried that only tune the vendor (sorted, unique)


def to_canonical(body: dict) -> Inbound:
    """The canonical chat body for one Messages request body; invalid input raises a 400 `ApiError`."""
    if not isinstance(body, dict):
        raise bad("the request body must be a JSON object", None)
    dropped: set[str] = set()
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad("'model' must be a non-empty string", "model")
    if "messages" not in body:
        raise bad("'messages' is required", "messages")
    messages = _system_messages(body.get("system"), "system") + _messages(body["messages"], dropped)
    stream = body.get("stream", False)
    if not isinstance(stream, bool) and stream is not None:
        raise bad("'stream' must be a boolean", "stream")
    out: dict[str, Any] = {"model": model, "messages": messages, "stream": stream is True}
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise bad("'max_tokens' is required and must be a positive integer", "max_tokens")
    out["max_tokens"] = max_tokens
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise bad(f"'{name}' must be a number between 0 and 1", name)
            out[name] = value
    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise bad("'stop_sequences' must be an array of strings", "stop_sequences")
        if stop:
            out["stop"] = stop
    user = _user_id(body.get("metadata"))
    if user:
        out["user"] = user
    tools = _tools(body["tools"], dropped) if body.get("tools") is not None else []
    if tools:
        out["tools"] = tools
    _tool_choice(body.get("tool_choice"), bool(tools), out)
    if body.get("thinking") is not None:
        out["thinking"] = _thinking(body["thinking"])
    _output_config(body.get("output_config"), out, dropped)
    if body.get("mcp_servers"):  # an MCP server's tools run at Anthropic: without them the answer differs
        raise bad("'mcp_servers' (MCP connector) cannot be translated for other vendors", "mcp_servers")
    dropped.update(key for key in body if key not in _MAPPED)
    return Inbound(out, sorted(dropped))


def _user_id(metadata: Any) -> str | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise bad("'metadata' must be an object", "metadata")
    user = metadata.get("user_id")
    if user is not None and not isinstance(user, str):
        raise bad("'metadata.user_id' must be a string", "metadata.user_id")
    return user or None


def _cache_control(block: dict, param: str) -> dict | None:
    value = block.get("cache_control")
    if value is not None and not isinstance(value, dict):
        raise bad(f"'{param}.cache_control' must be an object", f"{param}.cache_control")
    return value or None


def _marked(part: dict, block: dict, param: str) -> dict:
    """`part` carrying the `cache_control` of `block`, when it has one."""
    cache_control = _cache_control(block, param)
    if cache_control:
        part["cache_control"] = cache_control
    return part


def _unsupported_block(kind: str, param: str) -> ApiError:
    return bad(f"'{param}': content blocks of type '{kind}' are not supported here or cannot be translated "
                "for other vendors", f"{param}.type")


# -- system -----------------------------------------------------------------------------------
def _text_part(block: dict, param: str) -> dict:
    return _marked({"type": "text", "text": string(block, "text", param)}, block, param)


def _system_messages(content: Any, param: str) -> list[dict]:
    """`system` (top level or a `role: system` message, as Claude Code sends): one canonical system message."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"role": "system", "content": content}] if content else []
    if not isinstance(content, list):
        raise bad(f"'{param}' must be a string or an array of text blocks", param)
    parts = []
    for j, block in enumerate(content):
        if kind_of(block, f"{param}.{j}") != "text":
            raise bad(f"'{param}.{j}' must be a text block", f"{param}.{j}.type")
        parts.append(_text_part(block, f"{param}.{j}"))
    return [{"role": "system", "content": parts}] if parts else []


# -- messages ---------------------------------------------------------------------------------
def _messages(messages: Any, dropped: set[str]) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise bad("'messages' must be a non-empty array", "messages")
    out: list[dict] = []
    for i, msg in enumerate(messages):
        param = f"messages.{i}"
        if not isinstance(msg, dict):
            raise bad(f"'{param}' must be an object", param)
        role, content = msg.get("role"), msg.get("content")
        if role not in ("user", "assistant", "system"):
            raise bad(f"'{param}.role' must be 'user', 'assistant' or 'system'", f"{param}.role")
        if not isinstance(content, str | list):
            raise bad(f"'{param}.content' must be a string or an array of content blocks", f"{param}.content")
        if role == "system":
            out.extend(_system_messages(content, f"{param}.content"))
        elif role == "user":
            out.extend(_user(content, param, dropped))
        else:
            out.append(_assistant(content, param))
    return out


def _user(content: str | list, param: str, dropped: set[str]) -> list[dict]:
    """Tool messages first (Chat Completions wants them right after the assistant's calls), then the rest."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not content:
        raise bad(f"'{param}.content' must not be empty", f"{param}.content")
    tools: list[dict] = []
    parts: list[dict] = []
    from_tools: list[dict] = []  # images and PDFs of tool results: a tool message holds text only
    for j, block in enumerate(content):
        where = f"{param}.content.{j}"
        kind = kind_of(block, where)
        if kind == "tool_result":
            tools.append(_tool_result(block, where, from_tools, dropped))
        elif kind == "document":
            parts.extend(_document(block, where, dropped))
        else:
            parts.append(_part(block, where))
    if from_tools or parts:
        tools.append({"role": "user", "content": from_tools + parts})
    return tools


def _part(block: dict, param: str) -> dict:
    """A text or image block as a content part; any other type is refused."""
    kind = kind_of(block, param)
    if kind == "text":
        return _text_part(block, param)
    if kind == "image":
        return _image(block, param)
    raise _unsupported_block(kind, param)


def _image(block: dict, param: str) -> dict:
    source = block.get("source")
    where = f"{param}.source"
    if not isinstance(source, dict):
        raise bad(f"'{where}' must be an object", where)
    kind = source.get("type")
    if kind == "base64":
        media_type = source.get("media_type")
        if not isinstance(media_type, str) or media_type not in _IMAGE_TYPES:
            raise bad(f"'{where}.media_type' must be one of {sorted(_IMAGE_TYPES)}", f"{where}.media_type")
        url = f"data:{media_type};base64,{string(source, 'data', where, empty=False)}"
    elif kind == "url":
        url = string(source, "url", where, empty=False)
    elif kind == "file":
        raise bad(f"'{where}': Files API images (file_id) cannot be translated for other vendors", where)
    else:
        raise bad(f"'{where}.type' must be 'base64' or 'url'", f"{where}.type")
    return _marked({"type": "image_url", "image_url": {"url": url}}, block, param)


def _document(block: dict, param: str, dropped: set[str]) -> list[dict]:
    """A PDF becomes a `file` part; a text document (or one made of content blocks) becomes text parts."""
    source = block.get("source")
    where = f"{param}.source"
    if not isinstance(source, dict):
        raise bad(f"'{where}' must be an object", where)
    title = block.get("title")
    if title is not None and not isinstance(title, str):
        raise bad(f"'{param}.title' must be a string", f"{param}.title")
    heading = f"# {title}\n\n" if title else ""
    kind = source.get("type")
    if kind == "base64":
        if source.get("media_type") != "application/pdf":
            raise bad(f"'{where}.media_type' must be 'application/pdf'", f"{where}.media_type")
        data = string(source, "data", where, empty=False)
        parts: list[dict] = [{"type": "file", "file": {"file_data": f"data:application/pdf;base64,{data}",
                                                       "filename": title or "document.pdf"}}]
    elif kind == "text":
        parts = [{"type": "text", "text": heading + string(source, "data", where)}]
    elif kind == "content":
        parts = _document_content(source.get("content"), f"{where}.content", heading)
    elif kind == "url":
        raise bad(f"'{where}': URL documents are not supported for translation; send the PDF as base64", where)
    elif kind == "file":
        raise bad(f"'{where}': Files API documents (file_id) cannot be translated for other vendors", where)
    else:
        raise bad(f"'{where}.type' must be 'base64', 'text' or 'content'", f"{where}.type")
    _marked(parts[-1], block, param)
    for key in ("citations", "context"):  # citations need Anthropic; `context` is metadata about the document
        if block.get(key) is not None:
            dropped.add(key)
    return parts


def _document_content(content: Any, param: str, heading: str) -> list[dict]:
    if isinstance(content, str):
        return [{"type": "text", "text": heading + content}]
    if not isinstance(content, list) or not content:
        raise bad(f"'{param}' must be a string or a non-empty array of text and image blocks", param)
    heads = [{"type": "text", "text": heading.rstrip()}] if heading else []
    return heads + [_part(item, f"{param}.{k}") for k, item in enumerate(content)]


def _tool_result(block: dict, param: str, from_tools: list[dict], dropped: set[str]) -> dict:
    tool_use_id = string(block, "tool_use_id", param, empty=False)
    is_error = block.get("is_error")
    if is_error is not None and not isinstance(is_error, bool):
        raise bad(f"'{param}.is_error' must be a boolean", f"{param}.is_error")
    cache_control = _cache_control(block, param)
    content = block.get("content")
    texts: list[str] = []
    media: list[dict] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for k, item in enumerate(content):
            where = f"{param}.content.{k}"
            kind = kind_of(item, where)
            if kind == "text":
                part = _text_part(item, where)
                texts.append(part["text"])
                cache_control = part.get("cache_control") or cache_control
            elif kind == "image":
                media.append(_image(item, where))
            elif kind == "document":
                for part in _document(item, where, dropped):
                    if part["type"] == "text":
                        texts.append(part["text"])
                    else:
                        media.append(part)
            elif kind == "tool_reference":  # Claude Code's ToolSearch: every tool is loaded already here
                texts.append(f"Tool loaded: {string(item, 'tool_name', where, empty=False)}")
            else:
                raise _unsupported_block(kind, where)
    elif content is not None:
        raise bad(f"'{param}.content' must be a string or an array of content blocks", f"{param}.content")
    text = "\n".join(texts)
    if is_error:
        text = f"Error: {text}" if text else "Error"
    msg: dict[str, Any] = {"role": "tool", "tool_call_id": tool_use_id, "content": text}
    if cache_control:
        msg["cache_control"] = cache_control  # a message-level mark: the translators put it on its last block
    if media:
        # Chat Completions tool messages hold text only: the images (and PDFs) of a result follow in a
        # user message after the tool messages, labelled with the call they came from.
        from_tools.append({"type": "text", "text": f"[attachments of tool result {tool_use_id}]"})
        from_tools.extend(media)
    return msg


def _assistant(content: str | list, param: str) -> dict:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[dict] = []
    calls: list[dict] = []
    reasoning: list[str] = []
    thinking_blocks: list[dict] = []
    for j, block in enumerate(content):
        where = f"{param}.content.{j}"
        kind = kind_of(block, where)
        if kind == "text":
            texts.append(_text_part(block, where))
        elif kind == "tool_use":
            calls.append(_tool_call(block, where))
        elif kind == "thinking":
            thinking = string(block, "thinking", where)
            signature = string(block, "signature", where) if "signature" in block else ""
            reasoning.append(thinking)
            thinking_blocks.append({"type": "thinking", "thinking": thinking, "signature": signature})
        elif kind == "redacted_thinking":
            thinking_blocks.append({"type": "redacted_thinking", "data": string(block, "data", where)})
        else:
            raise _unsupported_block(kind, where)
    msg: dict[str, Any] = {"role": "assistant"}
    if any("cache_control" in part for part in texts):
        msg["content"] = texts  # kept as parts so the cache marks stay where the client put them
    elif texts:
        msg["content"] = "".join(part["text"] for part in texts)
    else:
        msg["content"] = None if calls else ""
    if calls:
        msg["tool_calls"] = calls
    if reasoning:
        msg["reasoning_content"] = "".join(reasoning)
    if thinking_blocks:
        msg["thinking_blocks"] = thinking_blocks
    return msg


def _tool_call(block: dict, param: str) -> dict:
    call_id = string(block, "id", param, empty=False)
    name = string(block, "name", param, empty=False)
    arguments = block.get("input")
    if arguments is not None and not isinstance(arguments, dict):
        raise bad(f"'{param}.input' must be an object", f"{param}.input")
    text = orjson.dumps(arguments).decode() if arguments else "{}"
    return _marked({"id": call_id, "type": "function", "function": {"name": name, "arguments": text}}, block, param)


# -- tools and options ------------------------------------------------------------------------
def _tools(tools: Any, dropped: set[str]) -> list[dict]:
    if not isinstance(tools, list):
        raise bad("'tools' must be an array", "tools")
    out = []
    for i, tool in enumerate(tools):
        where = f"tools.{i}"
        if not isinstance(tool, dict):
            raise bad(f"'{where}' must be an object", where)
        kind = tool.get("type")
        if kind not in (None, "custom"):
            # Anthropic-defined tools (web search, bash, text editor, code execution, MCP toolsets …) run
            # at Anthropic or follow its own contracts: another vendor's answer would mean something else.
            raise bad(f"'{where}.type' {kind!r}: Anthropic's own tools cannot be translated for other "
                       "vendors; declare a custom tool with an input_schema instead", f"{where}.type")
        fn: dict[str, Any] = {"name": string(tool, "name", where, empty=False)}
        if tool.get("description") is not None:
            fn["description"] = string(tool, "description", where)
        schema = tool.get("input_schema")
        if schema is not None and not isinstance(schema, dict):
            raise bad(f"'{where}.input_schema' must be a JSON Schema object", f"{where}.input_schema")
        fn["parameters"] = schema or {"type": "object", "properties": {}}
        dropped.update(key for key in tool if key not in _TOOL_KEYS)  # defer_loading, strict, input_examples …
        out.append(_marked({"type": "function", "function": fn}, tool, where))
    return out


def _tool_choice(choice: Any, has_tools: bool, out: dict[str, Any]) -> None:
    if choice is None:
        return
    if not isinstance(choice, dict):
        raise bad("'tool_choice' must be an object", "tool_choice")
    kind = choice.get("type")
    if kind == "tool":
        value: Any = {"type": "function", "function": {"name": string(choice, "name", "tool_choice", empty=False)}}
    elif isinstance(kind, str) and kind in _TOOL_CHOICES:
        value = _TOOL_CHOICES[kind]
    else:
        raise bad("'tool_choice.type' must be 'auto', 'any', 'tool' or 'none'", "tool_choice.type")
    serial = choice.get("disable_parallel_tool_use")
    if serial is not None and not isinstance(serial, bool):
        raise bad("'disable_parallel_tool_use' must be a boolean", "tool_choice.disable_parallel_tool_use")
    if not has_tools:
        if kind in ("any", "tool"):
            raise bad(f"'tool_choice' of type '{kind}' needs 'tools'", "tool_choice")
        return  # auto or none without tools: nothing to say (Chat Completions refuses it without tools)
    out["tool_choice"] = value
    if serial and kind != "none":
        out["parallel_tool_calls"] = False


def _thinking(thinking: Any) -> dict:
    if not isinstance(thinking, dict):
        raise bad("'thinking' must be an object", "thinking")
    kind = thinking.get("type")
    if not isinstance(kind, str) or kind not in _THINKING_TYPES:
        raise bad("'thinking.type' must be 'enabled', 'disabled' or 'adaptive'", "thinking.type")
    budget = thinking.get("budget_tokens")
    if kind == "enabled" and (isinstance(budget, bool) or not isinstance(budget, int)):
        raise bad("'thinking.budget_tokens' must be an integer", "thinking.budget_tokens")
    return dict(thinking)


def _output_config(config: Any, out: dict[str, Any], dropped: set[str]) -> None:
    """`format` (structured output) changes the answer and is mapped; `effort` and the rest only tune."""
    if config is None:
        return
    if not isinstance(config, dict):
        raise bad("'output_config' must be an object", "output_config")
    fmt = config.get("format")
    if fmt is not None:
        if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
            raise bad("'output_config.format.type' must be 'json_schema'", "output_config.format.type")
        schema = fmt.get("schema")
        if not isinstance(schema, dict):
            raise bad("'output_config.format.schema' must be an object", "output_config.format.schema")
        out["response_format"] = {"type": "json_schema",
                                  "json_schema": {"name": "output", "schema": schema, "strict": True}}
    if any(key != "format" for key in config):
        dropped.add("output_config")
