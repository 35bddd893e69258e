"""Canonical (OpenAI) request -> Bedrock Converse / InvokeModel request bodies.

Split from `bedrock.py` to keep both readable. Converse is strict where OpenAI is lax, and most
"Bedrock 400s behind a gateway" reports come from that gap, so this module normalises on the way:
roles must alternate (consecutive tool results and user text merge into one user turn), blank text
blocks are rejected (skipped here), a toolSpec needs a non-empty name and no empty description
(LiteLLM #24668), toolUse/toolResult blocks in the history need a `toolConfig` even when the
caller sent no tools (one is synthesised from the names), and tool-call ids must match
`[a-zA-Z0-9_.:-]{1,64}` (ids minted by another vendor before a fallback are sanitised the same way
in the call and in its result).
"""

from __future__ import annotations

import base64
import binascii
import re
from functools import partial
from typing import Any

import orjson

from .cohere_embed import embed_body
from .errors import bad_request_error, unsupported_error

# The tool that emulates `response_format` (Converse has no JSON mode): forced, and its input is
# returned as the message content. A fixed name lets the response side recognise it statelessly.
JSON_TOOL = "switchboard_json_output"

_TOOL_NAME_RE = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_TOOL_ID_BAD = re.compile(r"[^a-zA-Z0-9_.:-]")
_DATA_URL_RE = re.compile(r"data:([\w.+-]+/[\w.+-]+)(?:;[^,]*)?;base64,(.*)", re.DOTALL)
_IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif",
                  "image/webp": "webp"}
_DOCUMENT_FORMATS = {"application/pdf": "pdf", "text/csv": "csv", "application/msword": "doc",
                     "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
                     "application/vnd.ms-excel": "xls",
                     "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
                     "text/html": "html", "text/plain": "txt", "text/markdown": "md"}

# reasoning_effort -> Claude `thinking.budget_tokens` (Anthropic's minimum budget is 1024).
_THINKING_BUDGETS = {"low": 1024, "medium": 4096, "high": 16384}
_NO_REASONING = ("none", "minimal")
_ANSWER_ROOM = 4096  # maxTokens beyond the thinking budget when the request sets none

unsupported = partial(unsupported_error, "bedrock")
bad_request = partial(bad_request_error, "bedrock")


def build_converse(body: dict, model_id: str) -> dict:
    """The Converse request body (modelId goes in the URL, not here).

    Parameters Converse cannot honour (`BedrockProvider.capabilities`) were refused or stripped by the
    router; `n` is ignored (the router makes one call per choice), and so is `verbosity`.
    """
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' must be a non-empty list", "messages")
    system, turns = _messages(messages)
    out: dict[str, Any] = {"messages": turns}
    if system:
        out["system"] = system

    inference: dict[str, Any] = {}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None:
        inference["maxTokens"] = max_tokens
    if body.get("temperature") is not None:
        inference["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        inference["topP"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        stops = [stop] if isinstance(stop, str) else [s for s in stop if isinstance(s, str) and s]
        if stops:
            inference["stopSequences"] = stops

    extra: dict[str, Any] = {}
    claude = "anthropic.claude" in model_id
    if body.get("top_k") is not None:
        if "amazon.nova" in model_id:
            extra["inferenceConfig"] = {"topK": body["top_k"]}
        else:
            extra["top_k"] = body["top_k"]
    thinking = _reasoning(body, model_id, claude, inference, extra)

    tool_config = _tool_config(body, turns, forced_allowed=not thinking)
    if tool_config:
        out["toolConfig"] = tool_config
    if inference:
        out["inferenceConfig"] = inference
    if extra:
        out["additionalModelRequestFields"] = extra
    return out


# -- messages ---------------------------------------------------------------------------------
def _messages(messages: list) -> tuple[list[dict], list[dict]]:
    system: list[dict] = []
    turns: list[dict] = []

    def add(role: str, blocks: list[dict]) -> None:
        if not blocks:
            return
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})

    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise bad_request("each message must be an object", f"messages[{i}]")
        role = msg.get("role")
        where = f"messages[{i}]"
        if role in ("system", "developer"):
            system.extend(_content_blocks(msg.get("content"), where, text_only=True))
            _message_cache_point(msg, system)
        elif role == "user":
            blocks = _content_blocks(msg.get("content"), where)
            _message_cache_point(msg, blocks)
            add("user", blocks)
        elif role == "assistant":
            blocks = _content_blocks(msg.get("content"), where, text_only=True)
            for j, call in enumerate(msg.get("tool_calls") or []):
                blocks.append({"toolUse": _tool_use(call, f"{where}.tool_calls[{j}]")})
            _message_cache_point(msg, blocks)
            add("assistant", blocks)
        elif role == "tool":
            call_id = msg.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise bad_request("tool message without 'tool_call_id'", f"{where}.tool_call_id")
            texts = [b for b in _content_blocks(msg.get("content"), where, text_only=True) if "text" in b]
            result = {"toolUseId": tool_id(call_id), "content": texts or [{"text": ""}]}
            add("user", [{"toolResult": result}])
        elif role == "function":
            raise unsupported("the deprecated 'function' role is not supported; use 'tool'", f"{where}.role")
        else:
            raise bad_request(f"unknown message role {role!r}", f"{where}.role")
    if not turns:
        raise bad_request("no user or assistant message with content", "messages")
    return system, turns


def _content_blocks(content: Any, where: str, *, text_only: bool = False) -> list[dict]:
    """OpenAI message content -> Converse blocks. Blank text is dropped (Converse rejects it)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content.strip() else []
    if not isinstance(content, list):
        raise bad_request("message content must be a string or a list of parts", f"{where}.content")
    blocks: list[dict] = []
    for k, part in enumerate(content):
        param = f"{where}.content[{k}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "input_text") or (kind == "refusal" and text_only):
            text = part.get("text") if kind != "refusal" else part.get("refusal")
            if isinstance(text, str) and text.strip():
                blocks.append({"text": text})
        elif text_only:
            raise unsupported(f"content part type {kind!r} is not supported in this message", param)
        elif kind == "image_url":
            blocks.append({"image": _image(part.get("image_url"), param)})
        elif kind == "file":
            blocks.append({"document": _document(part.get("file"), param, k)})
        else:
            raise unsupported(f"content part type {kind!r} is not supported by the Converse API", param)
        cache = part.get("cache_control") if isinstance(part, dict) else None
        if cache and blocks:
            blocks.append(_cache_point(cache))
    return blocks


def _message_cache_point(msg: dict, blocks: list[dict]) -> None:
    """`cache_control` on the message itself marks the end of that message."""
    cache = msg.get("cache_control")
    if cache and blocks and "cachePoint" not in blocks[-1]:
        blocks.append(_cache_point(cache))


def _cache_point(cache: Any) -> dict:
    point: dict[str, Any] = {"type": "default"}
    if isinstance(cache, dict) and cache.get("ttl") in ("5m", "1h"):
        point["ttl"] = cache["ttl"]
    return {"cachePoint": point}


def _data_url(url: Any, param: str) -> tuple[str, str]:
    match = _DATA_URL_RE.fullmatch(url.strip()) if isinstance(url, str) else None
    if not match:
        raise unsupported("only base64 data: URLs are supported (Converse cannot fetch URLs)", param)
    mime, data = match.group(1).lower(), re.sub(r"\s+", "", match.group(2))
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request("data URL is not valid base64", param) from None
    return mime, data


def _image(image_url: Any, param: str) -> dict:
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if isinstance(url, str) and not url.startswith("data:"):
        raise unsupported("image URLs are not supported by the Converse API; send a base64 data: URL",
                          "messages")
    mime, data = _data_url(url, param)
    fmt = _IMAGE_FORMATS.get(mime)
    if fmt is None:
        raise unsupported(f"image type {mime} is not supported (png, jpeg, gif, webp)", param)
    return {"format": fmt, "source": {"bytes": data}}


def _document(file: Any, param: str, position: int) -> dict:
    if not isinstance(file, dict) or not file.get("file_data"):
        raise unsupported("only inline 'file_data' files are supported (no file ids)", param)
    mime, data = _data_url(file["file_data"], param)
    fmt = _DOCUMENT_FORMATS.get(mime)
    if fmt is None:
        raise unsupported(f"document type {mime} is not supported", param)
    # Converse document names: alphanumerics, single spaces, hyphens, parentheses, square brackets.
    stem = str(file.get("filename") or f"document {position + 1}").rsplit(".", 1)[0]
    name = re.sub(r"\s+", " ", re.sub(r"[^A-Za-z0-9\s\-()\[\]]", " ", stem)).strip() or f"document {position + 1}"
    return {"format": fmt, "name": name[:200], "source": {"bytes": data}}


def tool_id(call_id: str) -> str:
    """A tool-call id Converse accepts; deterministic so a call and its result still match."""
    return _TOOL_ID_BAD.sub("_", call_id)[:64] or "call"


def _tool_use(call: Any, param: str) -> dict:
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict) or not fn.get("name") or not call.get("id"):
        raise bad_request("tool call needs 'id' and 'function.name'", param)
    arguments = fn.get("arguments") or "{}"
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) else arguments
    except orjson.JSONDecodeError:
        raise bad_request("tool call 'arguments' is not valid JSON", f"{param}.function.arguments") from None
    if not isinstance(parsed, dict):
        parsed = {"value": parsed}
    return {"toolUseId": tool_id(str(call["id"])), "name": fn["name"], "input": parsed}


# -- tools ------------------------------------------------------------------------------------
def _tool_spec(name: str, description: Any, parameters: Any) -> dict:
    schema = dict(parameters) if isinstance(parameters, dict) else {}
    schema.setdefault("type", "object")
    if schema["type"] == "object":
        schema.setdefault("properties", {})
    spec: dict[str, Any] = {"name": name, "inputSchema": {"json": schema}}
    if isinstance(description, str) and description.strip():
        spec["description"] = description
    return {"toolSpec": spec}


def _tool_config(body: dict, turns: list[dict], *, forced_allowed: bool) -> dict | None:
    tools_in = body.get("tools") or []
    choice = body.get("tool_choice")
    history_names = [b["toolUse"]["name"] for t in turns for b in t["content"] if "toolUse" in b]
    has_tool_blocks = bool(history_names) or any("toolResult" in b for t in turns for b in t["content"])

    tools: list[dict] = []
    names: list[str] = []
    for i, tool in enumerate(tools_in):
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise unsupported("only 'function' tools are supported", f"tools[{i}].type")
        fn = tool.get("function") or {}
        name = fn.get("name")
        if not isinstance(name, str) or not _TOOL_NAME_RE.fullmatch(name):
            raise bad_request("tool names must match [a-zA-Z0-9_-]{1,64}", f"tools[{i}].function.name")
        tools.append(_tool_spec(name, fn.get("description"), fn.get("parameters")))
        names.append(name)
        if tool.get("cache_control"):
            tools.append(_cache_point(tool["cache_control"]))

    tool_choice: dict | None = None
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        allowed = choice.get("allowed_tools") or {}
        keep = {(t.get("function") or {}).get("name") for t in allowed.get("tools") or [] if isinstance(t, dict)}
        tools = [t for t in tools if "toolSpec" not in t or t["toolSpec"]["name"] in keep]
        names = [n for n in names if n in keep]
        choice = "required" if allowed.get("mode") == "required" else "auto"
    if choice == "none":
        tools, names = [], []
    elif choice == "required":
        tool_choice = {"any": {}}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if not name:
            raise bad_request("tool_choice.function.name is required", "tool_choice")
        tool_choice = {"tool": {"name": name}}
    elif choice not in (None, "auto"):
        raise bad_request(f"unknown tool_choice {choice!r}", "tool_choice")

    response_format = body.get("response_format") or {}
    rtype = response_format.get("type") if isinstance(response_format, dict) else None
    if rtype in ("json_schema", "json_object"):
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if rtype == "json_schema" else None
        description = spec.get("description") or "Give the final answer by calling this tool with JSON " \
                                                  "that matches its input schema."
        tools.append(_tool_spec(JSON_TOOL, description, schema or {"type": "object"}))
        if forced_allowed and tool_choice is None:  # Claude forbids forced tools while thinking
            tool_choice = {"any": {}} if names else {"tool": {"name": JSON_TOOL}}
    elif rtype not in (None, "text"):
        raise unsupported(f"response_format type {rtype!r} is not supported", "response_format")

    if has_tool_blocks:  # Converse insists on a toolConfig whenever the history holds tool blocks
        known = set(names) | {JSON_TOOL}
        for name in dict.fromkeys(history_names):
            if name not in known:
                tools.append(_tool_spec(name, None, None))
                known.add(name)
        if not any("toolSpec" in t for t in tools):
            tools.append(_tool_spec("noop", "Unused placeholder.", None))
    if not any("toolSpec" in t for t in tools):
        return None
    config: dict[str, Any] = {"tools": tools}
    if tool_choice is not None:
        config["toolChoice"] = tool_choice
    return config


# -- reasoning --------------------------------------------------------------------------------
def output_limit(body: dict, model_id: str) -> int | None:
    """The most output Converse may bill for this request: the request's own limit, or, for Claude
    with `reasoning_effort` and no limit, the thinking budget plus the room added for the answer."""
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
        return limit
    effort = body.get("reasoning_effort")
    if "anthropic.claude" in model_id and effort in _THINKING_BUDGETS and not isinstance(body.get("thinking"), dict):
        return _THINKING_BUDGETS[effort] + _ANSWER_ROOM
    return None


def _reasoning(body: dict, model_id: str, claude: bool, inference: dict, extra: dict) -> bool:
    """Map `reasoning_effort` (or an Anthropic-style `thinking`) to the model family's field.

    Returns True when Claude thinking is on (which rules out forced tool choice)."""
    thinking = body.get("thinking")
    effort = body.get("reasoning_effort")
    if claude and isinstance(thinking, dict):
        extra["thinking"] = thinking
        return thinking.get("type") == "enabled"
    if effort is None:
        return False
    if effort in _NO_REASONING:
        return False
    if effort not in _THINKING_BUDGETS:
        raise bad_request(f"unknown reasoning_effort {effort!r}", "reasoning_effort")
    if claude:
        budget = _THINKING_BUDGETS[effort]
        max_tokens = inference.get("maxTokens")
        if max_tokens is None:
            inference["maxTokens"] = budget + _ANSWER_ROOM
        elif max_tokens <= budget:
            budget = max_tokens - 1
            if budget < 1024:
                raise bad_request("max_tokens must exceed 1024 to use reasoning_effort with Claude",
                                  "max_tokens")
        extra["thinking"] = {"type": "enabled", "budget_tokens": budget}
        return True
    if "amazon.nova" in model_id:
        extra["reasoningConfig"] = {"type": "enabled", "maxReasoningEffort": effort}
        return False
    if "openai.gpt-oss" in model_id or "deepseek" in model_id:
        extra["reasoning_effort"] = effort
        return False
    raise unsupported(f"reasoning_effort is not supported for {model_id}", "reasoning_effort")


# -- embeddings -------------------------------------------------------------------------------
def embedding_family(model_id: str) -> str:
    if "cohere.embed" in model_id:
        return "cohere"
    if "titan-embed" in model_id:
        return "titan"
    raise unsupported(f"embeddings are supported for Titan and Cohere models, not {model_id}", "model")


def build_embeddings(body: dict, model_id: str) -> dict:
    """InvokeModel body for Titan (one text per call) or Cohere on Bedrock (a batch)."""
    family = embedding_family(model_id)
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise unsupported("'input' must be a string or a list of strings (token arrays are not supported)",
                          "input")
    if family == "titan":
        if len(texts) != 1:
            raise unsupported("Titan embeddings take one input per request; send a single string "
                              "(or use a Cohere embedding model for batches)", "input")
        payload: dict[str, Any] = {"inputText": texts[0]}
        if body.get("dimensions") is not None:
            payload["dimensions"] = body["dimensions"]
        return payload
    return embed_body(body, texts)
