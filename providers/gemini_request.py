"""OpenAI Chat Completions request -> Gemini `GenerateContentRequest` body (camelCase JSON).

Kept apart from `gemini.py` because it is most of the translation's surface: messages become
`contents` (roles `user`/`model`, consecutive same-role turns merged), system and developer
messages become `systemInstruction`, tool results become `functionResponse` parts whose function
name is recovered from the earlier tool call, tools become `functionDeclarations` with cleaned
schemas, and the generation parameters move into `generationConfig`.

Tool-call ids and thought signatures (see `encode_tool_call_id`): Gemini function calls carry no id
(or an optional one) and, on thinking models, an opaque `thoughtSignature` that must come back on the
same `functionCall` part in the next request or Gemini 3 answers 400. OpenAI clients only send back
what the OpenAI schema has room for, and the one field every client and SDK round-trips untouched is
the tool call `id` (it must, to pair tool results). So the signature rides inside the id:
`<base>__thought__<signature in base64url, unpadded>`. The alphabet stays `[A-Za-z0-9_-]`, which other
vendors (Anthropic's tool_use id pattern) also accept. Ids sent by Google's own OpenAI-compatible
endpoint convention (`tool_calls[].extra_content.google.thought_signature`) are read too.
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_to_bytes, urlparse

import orjson

from .errors import bad_request_error, unsupported_error
from .gemini_schema import clean_schema

SIGNATURE_MARK = "__thought__"
# Documented by Google for histories whose calls were not produced by Gemini (another vendor after a
# fallback, or calls the client wrote itself): it makes Gemini 3 skip signature validation.
DEFAULT_SIGNATURE_FALLBACK = "skip_thought_signature_validator"

_GEMINI_MAJOR = re.compile(r"gemini-(\d+)")
# OpenAI reasoning_effort -> Gemini 2.x thinkingBudget (tokens) and Gemini 3+ thinkingLevel.
_BUDGETS = {"none": 0, "minimal": 128, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 32768}
_LEVELS = {"none": "MINIMAL", "minimal": "MINIMAL", "low": "LOW", "medium": "MEDIUM", "high": "HIGH",
           "xhigh": "XHIGH"}


# -- tool call ids ---------------------------------------------------------------------------------
def synth_tool_call_id(response_id: str, candidate: int, index: int, name: str, arguments: str) -> str:
    """A deterministic id for a Gemini call without one: the same response gives the same id whether
    it arrived streamed or whole, and calls in different responses do not collide."""
    digest = hashlib.sha256(f"{response_id}|{candidate}|{index}|{name}|{arguments}".encode()).hexdigest()
    return f"call_{digest[:24]}_{index}"


def encode_tool_call_id(base: str, signature: str | None) -> str:
    """`base` alone, or `base__thought__<signature>` with the base64 signature made id-safe."""
    if not signature:
        return base
    safe = signature.replace("+", "-").replace("/", "_").rstrip("=")
    return f"{base}{SIGNATURE_MARK}{safe}"


def decode_tool_call_id(tool_call_id: str) -> tuple[str, str | None]:
    """(base id, thought signature in standard padded base64 or None). Accepts unmodified base64 too."""
    base, mark, safe = tool_call_id.partition(SIGNATURE_MARK)
    if not mark or not safe:
        return tool_call_id, None
    sig = safe.replace("-", "+").replace("_", "/")
    return base, sig + "=" * (-len(sig) % 4)


# -- the request body ------------------------------------------------------------------------------
def build_generate_body(body: Mapping[str, Any], model: str, provider: str,
                        options: Mapping[str, Any] | None = None) -> dict:
    """Translate an OpenAI chat request into a Gemini generateContent body.

    Legacy `functions`/`function_call` and `logprobs` were refused (or stripped) by the router from
    `GeminiProvider.capabilities`; they are not read here.
    """
    options = options or {}
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request_error(provider, "'messages' must be a non-empty list", "messages")

    fallback_sig = options.get("thought_signature_fallback", DEFAULT_SIGNATURE_FALLBACK)
    system_parts, contents = _contents(messages, provider, fallback_sig or None)
    out: dict[str, Any] = {}
    if not contents:
        if not system_parts:
            raise bad_request_error(provider, "no message has any content", "messages")
        contents, system_parts = [{"role": "user", "parts": system_parts}], []  # only a system prompt
    out["contents"] = contents
    if system_parts:
        out["systemInstruction"] = {"parts": system_parts}

    json_schema_passthrough = bool(options.get("json_schema_passthrough"))
    declarations = _declarations(body.get("tools"), provider, json_schema_passthrough)
    tool_config, declarations = _tool_config(body.get("tool_choice"), declarations, provider)
    if declarations:
        out["tools"] = [{"functionDeclarations": declarations}]
        if tool_config:
            out["toolConfig"] = {"functionCallingConfig": tool_config}

    generation = _generation_config(body, model, provider, json_schema_passthrough)
    if generation:
        out["generationConfig"] = generation
    safety = body.get("safety_settings", body.get("safetySettings", options.get("safety_settings")))
    if safety:
        out["safetySettings"] = safety
    cached = body.get("cached_content", body.get("cachedContent"))
    if cached:  # Gemini context caching (`cachedContents/...`) passes through
        out["cachedContent"] = cached
    return out


# -- messages --------------------------------------------------------------------------------------
def _contents(messages: list, provider: str, fallback_sig: str | None) -> tuple[list[dict], list[dict]]:
    system: list[dict] = []
    contents: list[dict] = []
    names: dict[str, str] = {}  # tool call id (full and base) -> function name

    def push(role: str, parts: list[dict]) -> None:
        if not parts:
            return
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})

    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise bad_request_error(provider, f"messages[{i}] must be an object", f"messages[{i}]")
        role = msg.get("role")
        if role in ("system", "developer"):
            system.extend({"text": t} for t in _texts(msg.get("content"), provider, i) if t)
        elif role == "user":
            push("user", _user_parts(msg.get("content"), provider, i))
        elif role == "assistant":
            push("model", _assistant_parts(msg, provider, i, names, fallback_sig))
        elif role == "tool":
            push("user", [_function_response(msg, provider, i, names)])
        else:
            raise bad_request_error(provider, f"unsupported message role {role!r}", f"messages[{i}].role")
    return system, contents


def _texts(content: Any, provider: str, i: int) -> list[str]:
    """Text of a string or a list of text parts (system, developer, tool and assistant messages)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type") in ("text", "refusal"):
                texts.append(str(part.get("text") or part.get("refusal") or ""))
            else:
                ptype = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise unsupported_error(provider, f"content part type {ptype!r} is not supported here",
                                        f"messages[{i}].content[{j}]")
        return texts
    raise bad_request_error(provider, "content must be a string or a list of parts", f"messages[{i}].content")


def _user_parts(content: Any, provider: str, i: int) -> list[dict]:
    if content is None or isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise bad_request_error(provider, "content must be a string or a list of parts", f"messages[{i}].content")
    parts: list[dict] = []
    for j, part in enumerate(content):
        param = f"messages[{i}].content[{j}]"
        ptype = part.get("type") if isinstance(part, dict) else None
        if ptype == "text":
            if part.get("text"):
                parts.append({"text": str(part["text"])})
        elif ptype == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str) or not url:
                raise bad_request_error(provider, "image_url.url is required", param)
            parts.append(_media_part(url, "image/jpeg", provider, param))
        elif ptype == "input_audio":
            audio = part.get("input_audio") or {}
            fmt = str(audio.get("format") or "wav")
            parts.append({"inlineData": {"mimeType": f"audio/{fmt}", "data": str(audio.get("data") or "")}})
        elif ptype == "file":
            file = part.get("file") or {}
            guessed = mimetypes.guess_type(str(file.get("filename") or ""))[0]
            if file.get("file_data"):
                data = str(file["file_data"])
                if data.startswith("data:"):
                    parts.append(_media_part(data, guessed or "application/pdf", provider, param))
                else:
                    parts.append({"inlineData": {"mimeType": guessed or "application/pdf", "data": data}})
            elif file.get("file_id"):
                fdata = {"fileUri": str(file["file_id"])}
                if guessed:
                    fdata["mimeType"] = guessed
                parts.append({"fileData": fdata})
            else:
                raise bad_request_error(provider, "file needs file_data or file_id", param)
        else:
            raise unsupported_error(provider, f"content part type {ptype!r} is not supported", param)
    return parts


def _media_part(url: str, default_mime: str, provider: str, param: str) -> dict:
    """A data URL becomes inline bytes; an https/gs URL a `fileData` reference Gemini fetches."""
    if url.startswith("data:"):
        header, comma, payload = url[5:].partition(",")
        if not comma:
            raise bad_request_error(provider, "malformed data URL", param)
        fields = header.split(";")
        mime = fields[0] or default_mime
        is_b64 = "base64" in fields[1:]
        data = payload if is_b64 else base64.b64encode(unquote_to_bytes(payload)).decode()
        return {"inlineData": {"mimeType": mime, "data": data}}
    scheme = urlparse(url).scheme
    if scheme not in ("http", "https", "gs"):
        raise bad_request_error(provider, f"unsupported URL scheme {scheme!r}", param)
    mime = mimetypes.guess_type(urlparse(url).path)[0] or default_mime
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def _assistant_parts(msg: dict, provider: str, i: int, names: dict[str, str],
                     fallback_sig: str | None) -> list[dict]:
    # reasoning_content is not sent back: Gemini keeps its reasoning state in thought signatures.
    parts = [{"text": t} for t in _texts(msg.get("content"), provider, i) if t]
    calls = msg.get("tool_calls") or []
    if not isinstance(calls, list):
        raise bad_request_error(provider, "tool_calls must be a list", f"messages[{i}].tool_calls")
    call_parts: list[dict] = []
    for j, call in enumerate(calls):
        param = f"messages[{i}].tool_calls[{j}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not fn.get("name"):
            raise bad_request_error(provider, "tool call needs function.name", param)
        call_id = str(call.get("id") or "")
        base, signature = decode_tool_call_id(call_id)
        extra = call.get("extra_content")
        if isinstance(extra, dict) and isinstance(extra.get("google"), dict):
            signature = extra["google"].get("thought_signature") or signature
        name = str(fn["name"])
        if call_id:
            names[call_id] = name
            names[base] = name
        part: dict[str, Any] = {"functionCall": {"name": name, "args": _arguments(fn.get("arguments"),
                                                                                 provider, param)}}
        if signature:
            part["thoughtSignature"] = signature
        call_parts.append(part)
    if call_parts and fallback_sig and not any("thoughtSignature" in p for p in call_parts):
        # Calls Gemini did not produce (or whose ids the client rewrote): only the first call of a
        # step carries a signature, so that is where the documented bypass value goes.
        call_parts[0]["thoughtSignature"] = fallback_sig
    return parts + call_parts


def _arguments(raw: Any, provider: str, param: str) -> dict:
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        return raw
    try:
        args = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError):
        raise bad_request_error(provider, "function.arguments is not valid JSON",
                                f"{param}.function.arguments") from None
    if not isinstance(args, dict):
        raise bad_request_error(provider, "function.arguments must be a JSON object", f"{param}.function.arguments")
    return args


def _function_response(msg: dict, provider: str, i: int, names: dict[str, str]) -> dict:
    call_id = str(msg.get("tool_call_id") or "")
    name = names.get(call_id) or names.get(decode_tool_call_id(call_id)[0]) or msg.get("name")
    if not name:
        raise bad_request_error(provider, f"tool message refers to unknown tool_call_id {call_id!r}",
                                f"messages[{i}].tool_call_id")
    text = "".join(_texts(msg.get("content"), provider, i))
    try:
        value: Any = orjson.loads(text) if text else ""
    except orjson.JSONDecodeError:
        value = text
    # Gemini wants an object; its convention for anything else is {"output": ...}.
    response = value if isinstance(value, dict) else {"output": value}
    return {"functionResponse": {"name": str(name), "response": response}}


# -- tools -----------------------------------------------------------------------------------------
def _declarations(tools: Any, provider: str, passthrough: bool) -> list[dict]:
    if not tools:
        return []
    if not isinstance(tools, list):
        raise bad_request_error(provider, "tools must be a list", "tools")
    out = []
    for j, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            ttype = tool.get("type") if isinstance(tool, dict) else None
            raise unsupported_error(provider, f"tool type {ttype!r} is not supported", f"tools[{j}].type")
        fn = tool.get("function")
        if not isinstance(fn, dict) or not fn.get("name"):
            raise bad_request_error(provider, "tool needs function.name", f"tools[{j}].function.name")
        decl: dict[str, Any] = {"name": str(fn["name"])}
        if fn.get("description"):
            decl["description"] = str(fn["description"])
        params = fn.get("parameters")
        if isinstance(params, dict) and params:
            if passthrough:  # standard JSON Schema, accepted by newer Gemini models as is
                decl["parametersJsonSchema"] = params
            else:
                cleaned = clean_schema(params)
                # Gemini rejects an OBJECT with no properties: a no-argument function has no schema.
                if cleaned.get("type") != "OBJECT" or cleaned.get("properties"):
                    decl["parameters"] = cleaned
        out.append(decl)
    return out


def _tool_config(choice: Any, decls: list[dict], provider: str) -> tuple[dict | None, list[dict]]:
    """OpenAI tool_choice -> functionCallingConfig (and, for allowed_tools/auto, a narrowed list)."""
    if choice is None or not decls:
        return None, decls
    if choice == "auto":
        return {"mode": "AUTO"}, decls
    if choice == "none":
        return {"mode": "NONE"}, decls
    if choice == "required":
        return {"mode": "ANY"}, decls
    if isinstance(choice, dict):
        if choice.get("type") == "function" and isinstance(choice.get("function"), dict):
            name = choice["function"].get("name")
            if name not in {d["name"] for d in decls}:
                raise bad_request_error(provider, f"tool_choice names unknown function {name!r}", "tool_choice")
            return {"mode": "ANY", "allowedFunctionNames": [name]}, decls
        if choice.get("type") == "allowed_tools" and isinstance(choice.get("allowed_tools"), dict):
            allowed = choice["allowed_tools"]
            wanted = [t.get("function", {}).get("name") for t in allowed.get("tools") or []
                      if isinstance(t, dict)]
            names = [n for n in wanted if isinstance(n, str)]
            if allowed.get("mode") == "required":
                return {"mode": "ANY", "allowedFunctionNames": names}, decls
            # allowedFunctionNames only applies to ANY: for auto, offer just the allowed functions.
            return {"mode": "AUTO"}, [d for d in decls if d["name"] in names]
    raise bad_request_error(provider, "unsupported tool_choice", "tool_choice")


# -- generation config -----------------------------------------------------------------------------
def _generation_config(body: Mapping[str, Any], model: str, provider: str, passthrough: bool) -> dict:
    cfg: dict[str, Any] = {}
    for src, dst in (("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK"),
                     ("seed", "seed"), ("presence_penalty", "presencePenalty"),
                     ("frequency_penalty", "frequencyPenalty")):
        if body.get(src) is not None:
            cfg[dst] = body[src]
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    if max_tokens is not None:
        cfg["maxOutputTokens"] = max_tokens
    stop = body.get("stop")
    if stop:
        cfg["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    n = body.get("n")
    if n is not None and n != 1:
        cfg["candidateCount"] = n

    fmt = body.get("response_format")
    if isinstance(fmt, dict):
        ftype = fmt.get("type")
        if ftype == "json_object":
            cfg["responseMimeType"] = "application/json"
        elif ftype == "json_schema":
            spec = fmt.get("json_schema") or {}
            schema = spec.get("schema") if isinstance(spec, dict) else None
            cfg["responseMimeType"] = "application/json"
            if isinstance(schema, dict) and schema:
                if passthrough:
                    cfg["responseJsonSchema"] = schema
                else:
                    cfg["responseSchema"] = clean_schema(schema, ordering=True)
        elif ftype not in (None, "text"):
            raise unsupported_error(provider, f"response_format type {ftype!r} is not supported",
                                    "response_format")

    thinking = _thinking_config(body, model, provider)
    if thinking:
        cfg["thinkingConfig"] = thinking
    return cfg


def _thinking_config(body: Mapping[str, Any], model: str, provider: str) -> dict | None:
    """reasoning_effort (or Anthropic-style `thinking`) -> thinkingConfig.

    Gemini 3 and later take a level, 2.x a token budget; sending the wrong one is a 400. Thoughts are
    only requested when the caller asked for reasoning, so plain clients see no extra field."""
    effort = body.get("reasoning_effort")
    if effort is not None:
        if effort not in _BUDGETS:
            raise bad_request_error(provider, f"unsupported reasoning_effort {effort!r}", "reasoning_effort")
        match = _GEMINI_MAJOR.search(model)
        if match and int(match.group(1)) >= 3:
            cfg: dict[str, Any] = {"thinkingLevel": _LEVELS[effort]}
        else:
            cfg = {"thinkingBudget": _BUDGETS[effort]}
        if effort != "none":
            cfg["includeThoughts"] = True
        return cfg
    thinking = body.get("thinking")
    if isinstance(thinking, dict):
        if thinking.get("type") == "disabled":
            return {"thinkingBudget": 0}
        if thinking.get("type") == "enabled":
            cfg = {"includeThoughts": True}
            if isinstance(thinking.get("budget_tokens"), int):
                cfg["thinkingBudget"] = thinking["budget_tokens"]
            return cfg
    return None
