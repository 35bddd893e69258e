"""Canonical answer -> the OpenAI Response object: output items, usage and the echoed request.

Shared by the whole answer (`to_response`) and the event stream (`outbound.ResponseEvents`), so a
streamed Response ends exactly as the non-streamed one would. Output order is OpenAI's: a `reasoning`
item, the assistant `message`, then one `function_call` per call. Item ids derive from the response id
and the item's place (`msg_<tail>_1`), so both paths name them alike and they are unique per response.
A call to a function the request offered inside a `namespace` carries that `namespace` again: the
inbound side flattened it, and Codex runs a namespaced tool only when the call names its namespace.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from providers.base import tool_arguments

from .thinking import seal, thinking_blocks

# Canonical finish reasons that leave a Response incomplete, and why (`incomplete_details.reason`).
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def _count(data: Any, key: str) -> int:
    value = data.get(key) if isinstance(data, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def responses_usage(usage: Any) -> dict:
    """Canonical usage -> Responses usage (`input_tokens` includes the cached and cache-written ones,
    as the canonical `prompt_tokens` does)."""
    prompt = usage.get("prompt_tokens_details") if isinstance(usage, Mapping) else None
    completion = usage.get("completion_tokens_details") if isinstance(usage, Mapping) else None
    input_tokens, output_tokens = _count(usage, "prompt_tokens"), _count(usage, "completion_tokens")
    return {"input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": _count(prompt, "cached_tokens"),
                                     "cache_write_tokens": _count(prompt, "cache_creation_tokens")},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": _count(completion, "reasoning_tokens")},
            "total_tokens": _count(usage, "total_tokens") or input_tokens + output_tokens}


def item_id(prefix: str, response_id: str, index: int) -> str:
    return f"{prefix}_{response_id.partition('_')[2] or response_id}_{index}"


def namespaces(request: Mapping[str, Any]) -> dict[str, str]:
    """Function name -> the namespace the request offered it in."""
    out: dict[str, str] = {}
    for tool in request.get("tools") or () if isinstance(request.get("tools"), list) else ():
        if isinstance(tool, dict) and tool.get("type") == "namespace" and isinstance(tool.get("name"), str):
            for member in tool.get("tools") or () if isinstance(tool.get("tools"), list) else ():
                if isinstance(member, dict) and isinstance(member.get("name"), str):
                    out[member["name"]] = tool["name"]
    return out


def finish_status(finish_reason: Any) -> tuple[str, dict | None]:
    """`status` and `incomplete_details` for a canonical finish reason."""
    reason = INCOMPLETE.get(finish_reason) if isinstance(finish_reason, str) else None
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


# -- items ------------------------------------------------------------------------------------
def reasoning_item(id: str, text: str, encrypted: str | None) -> dict:
    summary = [{"type": "summary_text", "text": text}] if text else []
    return {"id": id, "type": "reasoning", "summary": summary, "encrypted_content": encrypted}


def message_item(id: str, content: list[dict], status: str = "completed") -> dict:
    return {"id": id, "type": "message", "status": status, "role": "assistant", "content": content}


def text_part(text: str = "", annotations: list[dict] | None = None) -> dict:
    return {"type": "output_text", "text": text, "annotations": annotations or []}


def call_item(id: str, call_id: str, name: str, arguments: str, namespace: str | None,
              status: str = "completed") -> dict:
    item = {"id": id, "type": "function_call", "status": status, "call_id": call_id, "name": name,
            "arguments": arguments}
    if namespace:
        item["namespace"] = namespace
    return item


def annotations(items: Any) -> list[dict]:
    """Canonical `url_citation` annotations in the Responses shape (other kinds have none there)."""
    out = []
    for item in items if isinstance(items, list) else ():
        cited = item.get("url_citation") if isinstance(item, dict) and item.get("type") == "url_citation" else None
        if isinstance(cited, dict) and isinstance(cited.get("url"), str):
            title = cited.get("title")
            out.append({"type": "url_citation", "start_index": _count(cited, "start_index"),
                        "end_index": _count(cited, "end_index"), "url": cited["url"],
                        "title": title if isinstance(title, str) else ""})
    return out


def reasoning_text(message: Mapping[str, Any]) -> str:
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        return reasoning
    return "".join(b["thinking"] for b in thinking_blocks(message.get("thinking_blocks")) if b["type"] == "thinking")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # text parts, as a few providers answer
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


# -- the Response -----------------------------------------------------------------------------
def response_object(request: Mapping[str, Any], *, response_id: str, model: str, created_at: int, status: str,
                    output: list[dict], usage: dict | None = None, incomplete_details: dict | None = None,
                    error: dict | None = None) -> dict:
    """A Response with the members of the request it echoes (their defaults when not sent)."""
    def given(key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        value = request.get(key)
        return value if isinstance(value, kind) and not (kind is not bool and isinstance(value, bool)) else default

    text = given("text", dict, {})
    reasoning = given("reasoning", dict, {})
    truncation = request.get("truncation")
    return {
        "id": response_id, "object": "response", "created_at": created_at, "status": status,
        "error": error, "incomplete_details": incomplete_details,
        "instructions": given("instructions", str, None),
        "max_output_tokens": given("max_output_tokens", int, None),
        "model": model, "output": output,
        "parallel_tool_calls": given("parallel_tool_calls", bool, True),
        "previous_response_id": given("previous_response_id", str, None),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "store": given("store", bool, True),
        "temperature": given("temperature", (int, float), None),
        "text": {**text, "format": text.get("format") if isinstance(text.get("format"), dict) else {"type": "text"}},
        "tool_choice": given("tool_choice", (str, dict), "auto"),
        "tools": given("tools", list, []),
        "top_p": given("top_p", (int, float), None),
        "truncation": truncation if truncation in ("auto", "disabled") else "disabled",
        "usage": usage,
        "user": given("user", str, None),
        "metadata": given("metadata", dict, {}),
    }


def to_response(completion: dict, *, response_id: str, model: str, request: dict, created_at: int) -> dict:
    """A canonical `chat.completion` as a Response; `model` is the one the client asked for."""
    choices = completion.get("choices") if isinstance(completion, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    status, incomplete = finish_status(choice.get("finish_reason"))
    output: list[dict] = []
    reasoning, sealed = reasoning_text(message), seal(message.get("thinking_blocks"))
    if reasoning or sealed:
        output.append(reasoning_item(item_id("rs", response_id, 0), reasoning, sealed))
    parts = []
    text = _text(message.get("content"))
    if text:
        parts.append(text_part(text, annotations(message.get("annotations"))))
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        parts.append({"type": "refusal", "refusal": refusal})
    if parts:
        output.append(message_item(item_id("msg", response_id, len(output)), parts))
    spaces = namespaces(request)
    for call in message.get("tool_calls") or () if isinstance(message.get("tool_calls"), list) else ():
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict):
            name = fn.get("name") if isinstance(fn.get("name"), str) else ""
            call_id = call.get("id") if isinstance(call.get("id"), str) and call["id"] else item_id(
                "call", response_id, len(output))
            output.append(call_item(item_id("fc", response_id, len(output)), call_id, name,
                                    tool_arguments(fn.get("arguments")), spaces.get(name)))
    if status == "incomplete" and output and output[-1]["type"] != "reasoning":
        output[-1]["status"] = "incomplete"  # the item the limit cut
    usage = completion.get("usage") if isinstance(completion, dict) else None
    return response_object(request, response_id=response_id, model=model, created_at=created_at, status=status,
                           output=output, usage=responses_usage(usage) if isinstance(usage, dict) else None,
                           incomplete_details=incomplete)
