"""Request validation: cheap, hand-written checks that name the offending field.

Only what the router itself relies on, and the documented types and ranges of OpenAI's parameters,
are checked; unknown members pass through to the vendor untouched.
"""

from __future__ import annotations

from typing import Any

import orjson

from .errors import ApiError

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def _bad(param: str, message: str) -> ApiError:
    return ApiError(400, message, param=param, code="invalid_type" if "must be" in message else "invalid_value")


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise ApiError(400, "request body is empty; expected a JSON object", code="invalid_json")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
                       code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object", code="invalid_json")
    return body


def _number(body: dict, name: str, lo: float | None = None, hi: float | None = None, integer: bool = False) -> None:
    value = body.get(name)
    if value is None:
        return
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, int if integer else int | float):
        raise _bad(name, f"'{name}' must be {kind}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        rng = f"between {lo} and {hi}" if lo is not None and hi is not None else (
            f">= {lo}" if lo is not None else f"<= {hi}")
        raise _bad(name, f"'{name}' must be {rng}, got {value}")


def _typed(body: dict, name: str, types: type | tuple[type, ...], label: str) -> None:
    value = body.get(name)
    if value is not None and not isinstance(value, types):
        raise _bad(name, f"'{name}' must be {label}")


def _model(body: dict) -> str:
    model = body.get("model")
    if model is None:
        raise ApiError(400, "'model' is required", param="model", code="missing_required_parameter")
    if not isinstance(model, str) or not model.strip():
        raise _bad("model", "'model' must be a non-empty string")
    return model


def _fallbacks(body: dict) -> list[str] | None:
    fallbacks = body.get("fallbacks")
    if fallbacks is None:
        return None
    if not isinstance(fallbacks, list) or not all(isinstance(f, str) and f for f in fallbacks):
        raise _bad("fallbacks", "'fallbacks' must be an array of model names")
    if len(fallbacks) > 10:
        raise _bad("fallbacks", "'fallbacks' may name at most 10 models")
    return fallbacks


# The typed scalar parameters of a chat request: (member, checker, checker arguments).
_CHAT_PARAMS: tuple[tuple[str, Any, tuple], ...] = (
    ("temperature", _number, (0, 2)),
    ("top_p", _number, (0, 1)),
    ("n", _number, (1, 128, True)),
    ("max_tokens", _number, (1, None, True)),
    ("max_completion_tokens", _number, (1, None, True)),
    ("presence_penalty", _number, (-2, 2)),
    ("frequency_penalty", _number, (-2, 2)),
    ("top_logprobs", _number, (0, 20, True)),
    ("seed", _number, (None, None, True)),
    *((name, _typed, (bool, "a boolean")) for name in ("stream", "logprobs", "parallel_tool_calls", "store")),
    *((name, _typed, (dict, "an object")) for name in ("stream_options", "logit_bias", "metadata")),
    *((name, _typed, (str, "a string"))
      for name in ("user", "reasoning_effort", "prompt_cache_key", "safety_identifier", "service_tier")),
)


def validate_chat(body: dict[str, Any]) -> tuple[str, list[str] | None]:
    """Check a chat completion request; return (model, request fallbacks)."""
    model = _model(body)
    messages = body.get("messages")
    if messages is None:
        raise ApiError(400, "'messages' is required", param="messages", code="missing_required_parameter")
    if not isinstance(messages, list):
        raise _bad("messages", "'messages' must be an array")
    if not messages:
        raise _bad("messages", "'messages' must contain at least one message")
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise _bad(where, f"'{where}' must be an object")
        role = msg.get("role")
        if not isinstance(role, str) or role not in _ROLES:
            raise _bad(f"{where}.role", f"'{where}.role' must be one of {sorted(_ROLES)}")
        content = msg.get("content")
        if content is not None and not isinstance(content, str | list):
            raise _bad(f"{where}.content", f"'{where}.content' must be a string or an array of parts")
        if isinstance(content, list) and not all(isinstance(p, dict) and isinstance(p.get("type"), str)
                                                 for p in content):
            raise _bad(f"{where}.content", f"each part of '{where}.content' must be an object with a 'type'")
        if role == "tool" and not isinstance(msg.get("tool_call_id"), str):
            raise _bad(f"{where}.tool_call_id", f"'{where}.tool_call_id' must be a string")
        if msg.get("tool_calls") is not None and not isinstance(msg["tool_calls"], list):
            raise _bad(f"{where}.tool_calls", f"'{where}.tool_calls' must be an array")
    for name, check, args in _CHAT_PARAMS:  # in this order, so the first bad member is the one reported
        if body.get(name) is not None:
            check(body, name, *args)
    stop = body.get("stop")
    if stop is not None and not (isinstance(stop, str) or (
            isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) for s in stop))):
        raise _bad("stop", "'stop' must be a string or an array of at most 4 strings")
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _bad("tools", "'tools' must be an array")
        for i, tool in enumerate(tools):
            fn = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(tool, dict) or (tool.get("type") == "function" and not (
                    isinstance(fn, dict) and isinstance(fn.get("name"), str))):
                raise _bad(f"tools[{i}]", f"'tools[{i}]' must be {{type: function, function: {{name, ...}}}}")
    choice = body.get("tool_choice")
    if choice is not None and not (choice in ("none", "auto", "required") or isinstance(choice, dict)):
        raise _bad("tool_choice", "'tool_choice' must be 'none', 'auto', 'required' or an object")
    fmt = body.get("response_format")
    if fmt is not None:
        if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object", "json_schema"):
            raise _bad("response_format", "'response_format.type' must be text, json_object or json_schema")
        if fmt["type"] == "json_schema" and not isinstance(fmt.get("json_schema"), dict):
            raise _bad("response_format", "'response_format.json_schema' must be an object")
    return model, _fallbacks(body)


def validate_embeddings(body: dict[str, Any]) -> tuple[str, list[str] | None]:
    """Check an embeddings request; return (model, request fallbacks)."""
    model = _model(body)
    data = body.get("input")
    if data is None:
        raise ApiError(400, "'input' is required", param="input", code="missing_required_parameter")
    ok = isinstance(data, str) or (isinstance(data, list) and data and (
        all(isinstance(x, str) for x in data)
        or all(isinstance(x, int) and not isinstance(x, bool) for x in data)
        or all(isinstance(x, list) and x and all(isinstance(t, int) for t in x) for x in data)))
    if not ok:
        raise _bad("input", "'input' must be a string, an array of strings or an array of token arrays")
    if isinstance(data, list) and len(data) > 2048:
        raise _bad("input", "'input' may hold at most 2048 items")
    fmt = body.get("encoding_format")
    if fmt is not None and fmt not in ("float", "base64"):
        raise _bad("encoding_format", "'encoding_format' must be 'float' or 'base64'")
    _number(body, "dimensions", 1, None, integer=True)
    _typed(body, "user", str, "a string")
    return model, _fallbacks(body)
