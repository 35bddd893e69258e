"""OpenAI Responses request -> canonical (OpenAI Chat Completions) request body.

The Responses face turns every `POST /v1/responses` into the canonical body the pipeline routes, so
Codex, the OpenAI Agents SDK and `client.responses.*` reach any vendor. The conversation (input items,
after the `previous_response_id` history) is folded into messages by `items.py`; this module maps the
top-level members, the tools and the tool choice.

Each member is mapped, dropped or refused, as on the Messages face. Dropped: it only tunes OpenAI's own
service (`include`, `prompt_cache_key`, `service_tier`, `truncation` …) or is one of OpenAI's hosted
tools (`web_search`, `file_search`, `mcp` …), which run at OpenAI: the model is simply not offered
it; its name goes to `Inbound.dropped`. Refused with a 400 naming it: losing it would change what the
answer means (`background`, `conversation`, `prompt`, a `tool_choice` forcing a hosted tool).
`metadata`, `store` and `previous_response_id` are checked here but read by the face. A namespace of
tools (Codex groups its sub-agent tools so) is flattened into plain functions under their own names;
the outbound side puts the namespace back on the calls (`outbound.py`), which Codex needs to run them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...errors import ApiError
from ..wire_checks import bad, kind_of, string
from .items import Conversation, item_type

# Members read here (the face reads `store`, `previous_response_id` and `metadata`); a member not
# named here and not None is dropped and listed.
_READ = frozenset({"model", "input", "instructions", "stream", "max_output_tokens", "temperature", "top_p",
                   "parallel_tool_calls", "user", "safety_identifier", "metadata", "reasoning", "text", "tools",
                   "tool_choice", "store", "previous_response_id", "background", "conversation", "prompt"})
_FUNCTION_KEYS = frozenset({"type", "name", "description", "parameters", "strict"})
_EFFORTS = frozenset({"none", "minimal", "low", "medium", "high", "xhigh", "max"})
_VERBOSITY = frozenset({"low", "medium", "high"})
_CHOICES = frozenset({"auto", "none", "required"})


@dataclass(slots=True)
class Inbound:
    body: dict  # canonical OpenAI chat body: model, messages, stream, and the mapped members
    dropped: list[str]  # members not carried that only tune the vendor (sorted, unique)
    input_items: list[dict]  # this request's input as a list of items, for `input_items` listings


def to_canonical(body: dict, history: list[dict] | None = None) -> Inbound:
    """The canonical chat body for one Responses request; `history` is the items of the earlier turns
    (`previous_response_id`: their input and output items, in order). Invalid input raises a 400."""
    if not isinstance(body, dict):
        raise bad("the request body must be a JSON object", None)
    dropped: set[str] = set()
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad("'model' must be a non-empty string", "model")
    _refuse(body)
    raw = body.get("input")
    items = input_items(raw)
    given = [{"role": "user", "content": raw}] if isinstance(raw, str) else raw or []  # strings stay strings
    messages = _instructions(body.get("instructions")) + _conversation(history, given)
    if not any(msg["role"] != "system" for msg in messages):
        raise bad("'input' must hold at least one message or item", "input")
    out: dict[str, Any] = {"model": model, "messages": messages, "stream": _flag(body, "stream") is True}
    _scalars(body, out)
    tools, names = _tools(body.get("tools"), dropped)
    if tools:
        out["tools"] = tools
        parallel = _flag(body, "parallel_tool_calls")
        if parallel is not None:
            out["parallel_tool_calls"] = parallel
    _tool_choice(body.get("tool_choice"), names, out, dropped)
    _reasoning(body.get("reasoning"), out, dropped)
    _text(body.get("text"), out, dropped)
    dropped.update(key for key, value in body.items() if key not in _READ and value is not None)
    return Inbound(out, sorted(dropped), items)


def input_items(value: Any) -> list[dict]:
    """`input` as a list of items: a string is one user message; messages get their `type`, and their
    string content becomes one text part, as `GET /v1/responses/{id}/input_items` lists them."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}]
    if not isinstance(value, list):
        raise bad("'input' must be a string or an array of input items", "input")
    items = []
    for i, item in enumerate(value):
        if item_type(item, f"input[{i}]") == "message":
            item = {**item, "type": "message"}
            if isinstance(item.get("content"), str):
                kind = "output_text" if item.get("role") == "assistant" else "input_text"
                part: dict[str, Any] = {"type": kind, "text": item["content"]}
                if kind == "output_text":
                    part["annotations"] = []
                item["content"] = [part]
        items.append(item)
    return items


def _refuse(body: dict) -> None:
    background = body.get("background")
    if background is not None and not isinstance(background, bool):
        raise bad("'background' must be a boolean", "background")
    if background:
        raise bad("'background' responses are not supported here; send the request without it (stream it if "
                  "it is long)", "background")
    for key, what in (("conversation", "Conversations API state"), ("prompt", "stored prompt templates")):
        if body.get(key) is not None:
            raise bad(f"'{key}': {what} live at OpenAI and cannot be used with other vendors", key)
    if body.get("store") is not None and not isinstance(body["store"], bool):
        raise bad("'store' must be a boolean", "store")
    previous = body.get("previous_response_id")
    if previous is not None and (not isinstance(previous, str) or not previous):
        raise bad("'previous_response_id' must be a non-empty string", "previous_response_id")
    metadata = body.get("metadata")
    if metadata is not None and (not isinstance(metadata, dict)
                                 or not all(isinstance(v, str) for v in metadata.values())):
        raise bad("'metadata' must be an object of strings", "metadata")


def _instructions(value: Any) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, str):
        raise bad("'instructions' must be a string", "instructions")
    return [{"role": "system", "content": value}] if value else []


def _conversation(history: list[dict] | None, items: list[dict]) -> list[dict]:
    conversation = Conversation()
    for i, item in enumerate(history or ()):
        try:
            conversation.add(item, f"previous_response_id[{i}]")
        except ApiError as err:  # a stored item the client never sent: name the member it came by
            raise bad(f"the conversation stored for 'previous_response_id' cannot be continued: {err.message}",
                      "previous_response_id") from None
    for i, item in enumerate(items):
        conversation.add(item, f"input[{i}]")
    return conversation.close()


def _flag(body: dict, key: str) -> bool | None:
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise bad(f"'{key}' must be a boolean", key)
    return value


def _number(body: dict, key: str, high: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= high:
        raise bad(f"'{key}' must be a number between 0 and {high:g}", key)
    return value


def _scalars(body: dict, out: dict[str, Any]) -> None:
    limit = body.get("max_output_tokens")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise bad("'max_output_tokens' must be a positive integer", "max_output_tokens")
        out["max_completion_tokens"] = limit
    for key, high in (("temperature", 2), ("top_p", 1)):
        value = _number(body, key, high)
        if value is not None:
            out[key] = value
    for key in ("user", "safety_identifier"):
        value = body.get(key)
        if value is not None and not isinstance(value, str):
            raise bad(f"'{key}' must be a string", key)
        if value:
            out[key] = value


# -- tools ------------------------------------------------------------------------------------
def _tools(tools: Any, dropped: set[str]) -> tuple[list[dict], set[str]]:
    """Canonical function tools (namespaces flattened) and their names; hosted tools are dropped."""
    if tools is None:
        return [], set()
    if not isinstance(tools, list):
        raise bad("'tools' must be an array", "tools")
    out: list[dict] = []
    names: set[str] = set()
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        kind = kind_of(tool, where)
        if kind == "function":
            out.append(_function(tool, where, names, dropped))
        elif kind == "namespace":
            string(tool, "name", where, empty=False)
            inner = tool.get("tools")
            if not isinstance(inner, list):
                raise bad(f"'{where}.tools' must be an array", f"{where}.tools")
            for j, member in enumerate(inner):
                here = f"{where}.tools[{j}]"
                member_kind = kind_of(member, here)
                if member_kind == "function":
                    out.append(_function(member, here, names, dropped))
                elif member_kind == "custom":
                    dropped.add("custom")
                else:
                    raise bad(f"'{here}.type' must be 'function' or 'custom'", f"{here}.type")
        else:  # web_search, file_search, code_interpreter, mcp, custom …: run at OpenAI or by its grammar
            dropped.add(kind)
    return out, names


def _function(tool: dict, where: str, names: set[str], dropped: set[str]) -> dict:
    name = string(tool, "name", where, empty=False)
    if name in names:
        raise bad(f"'{where}.name': the function name '{name}' is offered twice", f"{where}.name")
    names.add(name)
    fn: dict[str, Any] = {"name": name}
    if tool.get("description") is not None:
        fn["description"] = string(tool, "description", where)
    parameters = tool.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise bad(f"'{where}.parameters' must be a JSON Schema object", f"{where}.parameters")
    fn["parameters"] = parameters or {"type": "object", "properties": {}}
    strict = tool.get("strict")
    if strict is not None:
        if not isinstance(strict, bool):
            raise bad(f"'{where}.strict' must be a boolean", f"{where}.strict")
        fn["strict"] = strict
    dropped.update(key for key, value in tool.items() if key not in _FUNCTION_KEYS and value is not None)
    return {"type": "function", "function": fn}


def _tool_choice(choice: Any, names: set[str], out: dict[str, Any], dropped: set[str]) -> None:
    if choice is None:
        return
    if isinstance(choice, str):
        if choice not in _CHOICES:
            raise bad("'tool_choice' must be 'auto', 'none', 'required' or an object", "tool_choice")
        value: Any = choice
    else:
        kind = kind_of(choice, "tool_choice")
        if kind == "function":
            name = string(choice, "name", "tool_choice", empty=False)
            if name not in names:
                raise bad(f"'tool_choice.name': no function tool named '{name}' is offered", "tool_choice.name")
            value = {"type": "function", "function": {"name": name}}
        elif kind == "allowed_tools":
            # The subset is not carried (every function stays offered); the mode is.
            mode = choice.get("mode")
            if mode not in ("auto", "required"):
                raise bad("'tool_choice.mode' must be 'auto' or 'required'", "tool_choice.mode")
            value = mode
            dropped.add("allowed_tools")
        else:
            raise bad(f"'tool_choice' forces the hosted tool '{kind}', which runs at OpenAI and cannot be used "
                      "with other vendors", "tool_choice")
    if not names:
        if value not in ("auto", "none"):
            raise bad("'tool_choice' needs a function tool in 'tools' (hosted tools are not offered to other "
                      "vendors)", "tool_choice")
        return  # Chat Completions refuses a tool_choice without tools; auto or none says nothing then
    out["tool_choice"] = value


# -- reasoning and text -----------------------------------------------------------------------
def _reasoning(reasoning: Any, out: dict[str, Any], dropped: set[str]) -> None:
    if reasoning is None:
        return
    if not isinstance(reasoning, dict):
        raise bad("'reasoning' must be an object", "reasoning")
    effort = reasoning.get("effort")
    if effort is not None:
        if not isinstance(effort, str) or effort not in _EFFORTS:
            raise bad(f"'reasoning.effort' must be one of {sorted(_EFFORTS)}", "reasoning.effort")
        out["reasoning_effort"] = effort
    for key, value in reasoning.items():
        if key != "effort" and value is not None:  # summary, generate_summary, context …
            dropped.add("reasoning.summary" if key == "generate_summary" else f"reasoning.{key}")


def _text(text: Any, out: dict[str, Any], dropped: set[str]) -> None:
    if text is None:
        return
    if not isinstance(text, dict):
        raise bad("'text' must be an object", "text")
    fmt = text.get("format")
    if fmt is not None:
        kind = kind_of(fmt, "text.format")
        if kind == "json_schema":
            schema = fmt.get("schema")
            if not isinstance(schema, dict):
                raise bad("'text.format.schema' must be a JSON Schema object", "text.format.schema")
            spec: dict[str, Any] = {"name": string(fmt, "name", "text.format", empty=False), "schema": schema}
            if fmt.get("description") is not None:
                spec["description"] = string(fmt, "description", "text.format")
            strict = fmt.get("strict")
            if strict is not None:
                if not isinstance(strict, bool):
                    raise bad("'text.format.strict' must be a boolean", "text.format.strict")
                spec["strict"] = strict
            out["response_format"] = {"type": "json_schema", "json_schema": spec}
        elif kind == "json_object":
            out["response_format"] = {"type": "json_object"}
        elif kind != "text":
            raise bad("'text.format.type' must be 'text', 'json_schema' or 'json_object'", "text.format.type")
    verbosity = text.get("verbosity")
    if verbosity is not None:
        if not isinstance(verbosity, str) or verbosity not in _VERBOSITY:
            raise bad("'text.verbosity' must be 'low', 'medium' or 'high'", "text.verbosity")
        out["verbosity"] = verbosity
    dropped.update(f"text.{key}" for key, value in text.items() if key not in ("format", "verbosity")
                   and value is not None)
