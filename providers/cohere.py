"""Cohere v2: `POST /v2/chat` (stream and non-stream) and `POST /v2/embed`.

Cohere's v2 chat is close to OpenAI's (roles, `tool_calls` with JSON-string arguments, OpenAI-shaped
function tools), so the translation is mostly renaming: `top_p` -> `p`, `stop` -> `stop_sequences`,
`tool_choice` -> `REQUIRED`/`NONE`, `response_format.json_schema` -> `json_object` + `json_schema`.
What does not map is declared in `CohereProvider.capabilities` and refused (or stripped) by the router
before it gets here: `n > 1` (fanned out), `logprobs` (Cohere's are per-token ids, not OpenAI's shape),
`logit_bias`, legacy functions and OpenAI-only features (`verbosity` is accepted and ignored). Assistant
text that accompanies tool calls goes to Cohere's `tool_plan`, and a returned `tool_plan` comes back as
`reasoning_content`, which is what it is.
A `finish_reason` of `ERROR`/`TIMEOUT` is a failure, never a finished answer. A tool call without
arguments (empty or `null`) comes back with `"{}"` (`base.tool_arguments`), and usage is the billed
units, with `cached_tokens` only where Cohere's raw cached count must cover billed tokens (`cohere_usage`).
Citations of `documents` and tool results (`message.citations`, the stream's `citation-start` events)
come back one per source, as `message.annotations` (a document with a `url`) or `document_citations`
(see `citations.py`); a stream sends them in one delta just before its finish chunk.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from functools import partial
from typing import Any, ClassVar

import orjson

from .base import (
    Capabilities,
    HttpRequest,
    Provider,
    ProviderSettings,
    SingleChoiceStream,
    StreamTranslator,
    _read_error_body,
    chat_completion,
    embedding_list,
    invalid_response,
    load_json,
    tool_arguments,
)
from .citations import StreamCitations, cohere_citations, cohere_message_citations, with_citations
from .cohere_embed import billed_input_tokens, embed_body, float_embeddings
from .errors import (
    ErrorKind,
    UpstreamError,
    bad_request_error,
    is_context_window,
    kind_for_status,
    parse_retry_after,
    unsupported_error,
)
from .sse import SSEDecoder

FINISH_REASONS = {"COMPLETE": "stop", "STOP_SEQUENCE": "stop", "MAX_TOKENS": "length", "TOOL_CALL": "tool_calls"}

# Cohere-only statuses: 498 invalid token (our key is bad), 499 request cancelled (not by us: treat
# as a dropped connection, which is worth a retry), 501 feature not available for this model.
_STATUS_KINDS = {402: ErrorKind.AUTH, 498: ErrorKind.AUTH, 499: ErrorKind.CONNECT, 501: ErrorKind.UNSUPPORTED}

# reasoning_effort -> Cohere `thinking` (reasoning models think by default; "none" turns it off).
_THINKING = {"none": {"type": "disabled"}, "minimal": {"type": "disabled"},
             "low": {"type": "enabled", "token_budget": 1024},
             "medium": {"type": "enabled", "token_budget": 4096},
             "high": {"type": "enabled"}}

# Cohere-specific members a caller may send through the OpenAI-shaped body unchanged.
_PASSTHROUGH = ("safety_mode", "documents", "citation_options", "priority", "strict_tools")


_unsupported = partial(unsupported_error, "cohere")
_bad_request = partial(bad_request_error, "cohere")


class CohereProvider(Provider):
    type: ClassVar[str] = "cohere"
    default_base_url: ClassVar[str | None] = "https://api.cohere.com"
    capabilities = Capabilities(n=False, logprobs=False, logit_bias=False, openai_only=False, legacy_functions=False,
                                cache_marks=False)

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        if self.base_url.endswith("/v2"):  # accept a base URL given with the version
            self.base_url = self.base_url[:-3]
        self._static_headers = {"content-type": "application/json", **settings.headers}

    def _headers(self, api_key: str | None, accept: str) -> dict[str, str]:
        headers = {**self._static_headers, "accept": accept}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        return headers

    # -- requests ---------------------------------------------------------------------------
    def chat_request(self, body: dict, model: str, api_key: str | None, stream: bool) -> HttpRequest:
        out = build_chat(body, model)
        out["stream"] = stream
        return HttpRequest("POST", f"{self.base_url}/v2/chat",
                           self._headers(api_key, "text/event-stream" if stream else "application/json"),
                           orjson.dumps(out))

    def embeddings_request(self, body: dict, model: str, api_key: str | None) -> HttpRequest:
        raw = body.get("input")
        texts = [raw] if isinstance(raw, str) else raw
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise _unsupported("'input' must be a string or a list of strings (token arrays are not supported)",
                               "input")
        out = {"model": model, **embed_body(body, texts)}
        return HttpRequest("POST", f"{self.base_url}/v2/embed", self._headers(api_key, "application/json"),
                           orjson.dumps(out))

    # -- responses --------------------------------------------------------------------------
    def chat_response(self, body: bytes, model: str) -> dict:
        data = load_json(self.name, body)
        if not isinstance(data, dict) or not isinstance(data.get("message"), dict):
            raise invalid_response(self.name, "missing 'message'")
        finish = _finish_reason(self.name, data.get("finish_reason"), None)
        msg = data["message"]
        text: list[str] = []
        reasoning: list[str] = []
        for item in msg.get("content") or []:
            if not isinstance(item, dict):
                continue
            if item.get("type", "text") == "text" and isinstance(item.get("text"), str):
                text.append(item["text"])
            elif item.get("type") == "thinking" and isinstance(item.get("thinking"), str):
                reasoning.append(item["thinking"])
        if not reasoning and isinstance(msg.get("tool_plan"), str) and msg["tool_plan"]:
            reasoning.append(msg["tool_plan"])
        tool_calls = []
        for call in msg.get("tool_calls") or []:
            fn = call.get("function") or {}
            tool_calls.append({"id": call.get("id") or f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                               "function": {"name": fn.get("name") or "",
                                            "arguments": tool_arguments(fn.get("arguments"))}})
        usage = cohere_usage(data["usage"]) if isinstance(data.get("usage"), dict) else None
        return with_citations(chat_completion(model, text, tool_calls, reasoning, finish, usage, data.get("id")),
                              cohere_message_citations(msg))

    def chat_stream(self, model: str) -> StreamTranslator:
        return CohereStream(self.name, model)

    def embeddings_response(self, body: bytes, model: str, headers: Mapping[str, str] | None = None) -> dict:
        data = load_json(self.name, body)
        embeddings = float_embeddings(data)
        if embeddings is None:
            raise invalid_response(self.name, "missing float 'embeddings'")
        return embedding_list(model, embeddings, billed_input_tokens(data))

    # -- errors -----------------------------------------------------------------------------
    def error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        message, code, _param, _etype = _read_error_body(body)
        kind = _STATUS_KINDS.get(status) or kind_for_status(status)
        if kind is ErrorKind.BAD_REQUEST and is_context_window(message, code):
            kind = ErrorKind.CONTEXT_WINDOW
        return UpstreamError(kind, f"{self.name}: {message or f'upstream returned HTTP {status}'}",
                             upstream_status=status, code=code,
                             retry_after=parse_retry_after({k.lower(): v for k, v in headers.items()}))


# -- request translation ----------------------------------------------------------------------
def build_chat(body: dict, model: str) -> dict:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad_request("'messages' must be a non-empty list", "messages")
    out: dict[str, Any] = {"model": model, "messages": [_message(m, i) for i, m in enumerate(messages)]}

    tools = [_tool(t, i) for i, t in enumerate(body.get("tools") or [])]
    choice = body.get("tool_choice")
    if tools:
        if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
            allowed = choice.get("allowed_tools") or {}
            keep = {(t.get("function") or {}).get("name") for t in allowed.get("tools") or [] if isinstance(t, dict)}
            tools = [t for t in tools if t["function"]["name"] in keep]
            choice = "required" if allowed.get("mode") == "required" else "auto"
        if isinstance(choice, dict) and choice.get("type") == "function":
            # Cohere cannot name a tool: offer only that one and require a call.
            name = (choice.get("function") or {}).get("name")
            tools = [t for t in tools if t["function"]["name"] == name]
            if not tools:
                raise _bad_request(f"tool_choice names unknown tool {name!r}", "tool_choice")
            choice = "required"
        if choice == "required":
            out["tool_choice"] = "REQUIRED"
        elif choice == "none":
            out["tool_choice"] = "NONE"
        elif choice not in (None, "auto"):
            raise _bad_request(f"unknown tool_choice {choice!r}", "tool_choice")
        out["tools"] = tools
        if any((t.get("function") or {}).get("strict") for t in body.get("tools") or [] if isinstance(t, dict)):
            out["strict_tools"] = True

    response_format = body.get("response_format")
    if isinstance(response_format, dict):
        rtype = response_format.get("type")
        if rtype == "json_object":
            out["response_format"] = {"type": "json_object"}
        elif rtype == "json_schema":
            schema = (response_format.get("json_schema") or {}).get("schema")
            out["response_format"] = {"type": "json_object", **({"json_schema": schema} if schema else {})}
        elif rtype not in (None, "text"):
            raise _unsupported(f"response_format type {rtype!r} is not supported", "response_format")

    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None:
        out["max_tokens"] = max_tokens
    stop = body.get("stop")
    if stop:
        stops = [stop] if isinstance(stop, str) else [s for s in stop if isinstance(s, str) and s]
        if stops:
            out["stop_sequences"] = stops
    for src, dst in (("temperature", "temperature"), ("top_p", "p"), ("top_k", "k"), ("seed", "seed"),
                     ("frequency_penalty", "frequency_penalty"), ("presence_penalty", "presence_penalty")):
        if body.get(src) is not None:
            out[dst] = body[src]
    effort = body.get("reasoning_effort")
    if isinstance(body.get("thinking"), dict):
        out["thinking"] = body["thinking"]
    elif effort is not None:
        if effort not in _THINKING:
            raise _bad_request(f"unknown reasoning_effort {effort!r}", "reasoning_effort")
        out["thinking"] = dict(_THINKING[effort])
    for name in _PASSTHROUGH:
        if body.get(name) is not None:
            out[name] = body[name]
    return out


def _message(msg: Any, i: int) -> dict:
    where = f"messages[{i}]"
    if not isinstance(msg, dict):
        raise _bad_request("each message must be an object", where)
    role = msg.get("role")
    content = msg.get("content")
    if role in ("system", "developer"):
        return {"role": "system", "content": _text(content, where)}
    if role == "user":
        return {"role": "user", "content": _user_content(content, where)}
    if role == "assistant":
        out: dict[str, Any] = {"role": "assistant"}
        text = _text(content, where) if content is not None else ""
        calls = msg.get("tool_calls") or []
        if calls:
            out["tool_calls"] = [_tool_call(c, f"{where}.tool_calls[{j}]") for j, c in enumerate(calls)]
            plan = text or msg.get("reasoning_content")
            if isinstance(plan, str) and plan:
                out["tool_plan"] = plan
        else:
            refusal = msg.get("refusal")
            out["content"] = text or (refusal if isinstance(refusal, str) else "")
        return out
    if role == "tool":
        call_id = msg.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise _bad_request("tool message without 'tool_call_id'", f"{where}.tool_call_id")
        return {"role": "tool", "tool_call_id": call_id, "content": _text(content, where) or ""}
    if role == "function":
        raise _unsupported("the deprecated 'function' role is not supported; use 'tool'", f"{where}.role")
    raise _bad_request(f"unknown message role {role!r}", f"{where}.role")


def _text(content: Any, where: str) -> str:
    """Text-only content (system, assistant, tool): parts are joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _bad_request("message content must be a string or a list of parts", f"{where}.content")
    texts = []
    for k, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "input_text"):
            texts.append(str(part.get("text") or ""))
        elif kind == "refusal":
            texts.append(str(part.get("refusal") or ""))
        else:
            raise _unsupported(f"content part type {kind!r} is not supported in this message",
                               f"{where}.content[{k}]")
    return "".join(texts)


def _user_content(content: Any, where: str) -> str | list[dict]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _bad_request("message content must be a string or a list of parts", f"{where}.content")
    parts: list[dict] = []
    for k, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "input_text"):
            parts.append({"type": "text", "text": str(part.get("text") or "")})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str) or not url:
                raise _bad_request("image_url needs a 'url'", f"{where}.content[{k}].image_url")
            out: dict[str, Any] = {"url": url}
            if isinstance(image, dict) and image.get("detail") in ("auto", "low", "high"):
                out["detail"] = image["detail"]
            parts.append({"type": "image_url", "image_url": out})
        else:
            raise _unsupported(f"content part type {kind!r} is not supported by Cohere", f"{where}.content[{k}]")
    return parts


def _tool_call(call: Any, param: str) -> dict:
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict) or not fn.get("name") or not call.get("id"):
        raise _bad_request("tool call needs 'id' and 'function.name'", param)
    arguments = fn.get("arguments")
    if not isinstance(arguments, str):
        arguments = orjson.dumps(arguments if arguments is not None else {}).decode()
    return {"id": str(call["id"]), "type": "function", "function": {"name": fn["name"], "arguments": arguments}}


def _tool(tool: Any, i: int) -> dict:
    if not isinstance(tool, dict) or tool.get("type", "function") != "function":
        raise _unsupported("only 'function' tools are supported", f"tools[{i}].type")
    fn = tool.get("function") or {}
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        raise _bad_request("tool needs a 'function.name'", f"tools[{i}].function.name")
    parameters = fn.get("parameters")
    out: dict[str, Any] = {"name": name,
                           "parameters": parameters if isinstance(parameters, dict) else
                           {"type": "object", "properties": {}}}
    if isinstance(fn.get("description"), str) and fn["description"]:
        out["description"] = fn["description"]
    return {"type": "function", "function": out}


# -- responses --------------------------------------------------------------------------------
def cohere_usage(usage: Mapping[str, Any]) -> dict:
    """Billed units when present (what the invoice counts), else raw token counts.

    Cohere's `cached_tokens` ("prompt tokens that hit the inference cache") counts *raw* tokens, the
    scale of `tokens.input_tokens`, which includes the prompt template and tool definitions Cohere
    adds and does not bill; `billed_units.input_tokens` counts only the caller's tokens. OpenAI's
    `cached_tokens` is a part of `prompt_tokens` (the billed figure), so only the cached tokens that
    are certainly billed ones are reported: cached + billed - raw, at least 0 (the overlap left
    when every unbilled raw token is one of the cached ones). Capping the raw figure at the billed
    one instead reported every prompt token as cached on nearly every call; without the raw input
    count the two cannot be related and nothing is reported as cached.
    """
    billed = usage.get("billed_units") or {}
    tokens = usage.get("tokens") or {}

    def count(source: Mapping[str, Any], key: str) -> int | None:
        value = source.get(key)
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    raw_prompt = count(tokens, "input_tokens")
    prompt = count(billed, "input_tokens")
    if prompt is None:
        prompt = raw_prompt or 0
    completion = count(billed, "output_tokens")
    if completion is None:
        completion = count(tokens, "output_tokens") or 0
    result: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                              "total_tokens": prompt + completion}
    cached = count(usage, "cached_tokens")
    if cached is not None:
        overlap = cached + prompt - raw_prompt if raw_prompt is not None else 0
        result["prompt_tokens_details"] = {"cached_tokens": max(0, min(overlap, prompt))}
    return result


def _finish_reason(provider: str, reason: Any, error: Any) -> str:
    finish = FINISH_REASONS.get(str(reason))
    if finish is not None:
        return finish
    detail = f" ({error})" if error else ""
    if reason == "TIMEOUT":
        raise UpstreamError(ErrorKind.TIMEOUT, f"{provider}: generation timed out upstream{detail}",
                            code="upstream_timeout")
    if reason == "ERROR":
        raise UpstreamError(ErrorKind.SERVER, f"{provider}: generation failed upstream{detail}",
                            code="upstream_error")
    if reason is None:
        raise invalid_response(provider, "missing 'finish_reason'")
    return "stop"


class CohereStream(SingleChoiceStream):
    """Cohere v2 SSE events -> OpenAI chunks; `message-end` carries the finish reason and usage."""

    __slots__ = ("_cites", "_created", "_decoder", "_finished", "_id", "_model", "_provider", "_started", "_tools")

    def __init__(self, provider: str, model: str) -> None:
        super().__init__()
        self._provider = provider
        self._model = model
        self._decoder = SSEDecoder()
        self._id = f"chatcmpl-{uuid.uuid4().hex}"
        self._created = int(time.time())
        self._started = False
        self._finished = False
        self._tools: dict[int, int] = {}  # Cohere tool-call index -> OpenAI index
        self._cites = StreamCitations()  # content items by index: where each starts in the content

    def _feed(self, data: bytes, out: list[dict]) -> None:
        self._events(self._decoder.feed(data), out)

    def _chunk(self, delta: dict, finish: str | None = None) -> dict:
        """Every chunk is made here, so the content sent so far, where citations are placed, is counted here."""
        self._cites.count(delta)
        return super()._chunk(delta, finish)

    def _close(self, out: list[dict]) -> None:
        self._events(self._decoder.close(), out)
        if not self._finished:
            raise UpstreamError(ErrorKind.STREAM_CUT, f"{self._provider}: stream ended before message-end",
                                code="stream_truncated")

    def _events(self, events: list[tuple[str | None, bytes]], chunks: list[dict]) -> None:
        for name, data in events:
            if data == b"[DONE]" or not data.strip():
                continue
            try:
                event = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise invalid_response(self._provider, "stream event is not JSON") from None
            if not isinstance(event, dict):
                raise invalid_response(self._provider, "stream event is not a JSON object")
            if self._finished:
                continue
            self._event(event.get("type") or name, event, chunks)

    def _event(self, kind: str | None, event: dict, chunks: list[dict]) -> None:
        delta = event.get("delta") if isinstance(event.get("delta"), dict) else {}
        message = delta.get("message") if isinstance(delta.get("message"), dict) else {}
        if kind == "message-start":
            if isinstance(event.get("id"), str):
                self._id = event["id"]
            self._start(chunks)
        elif kind == "content-delta":
            content = message.get("content") if isinstance(message.get("content"), dict) else {}
            if content.get("text"):
                self._start(chunks)
                chunks.append(self._chunk({"content": content["text"]}))
            elif content.get("thinking"):
                self._start(chunks)
                chunks.append(self._chunk({"reasoning_content": content["thinking"]}))
        elif kind == "tool-plan-delta":
            if isinstance(message.get("tool_plan"), str) and message["tool_plan"]:
                self._start(chunks)
                chunks.append(self._chunk({"reasoning_content": message["tool_plan"]}))
        elif kind == "tool-call-start":
            call = message.get("tool_calls") if isinstance(message.get("tool_calls"), dict) else {}
            fn = call.get("function") or {}
            index = self._tools.setdefault(event.get("index", len(self._tools)), len(self._tools))
            self._start(chunks)
            chunks.append(self._chunk({"tool_calls": [{
                "index": index, "id": call.get("id") or f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                "function": {"name": fn.get("name") or "", "arguments": fn.get("arguments") or ""}}]}))
        elif kind == "tool-call-delta":
            call = message.get("tool_calls") if isinstance(message.get("tool_calls"), dict) else {}
            fragment = (call.get("function") or {}).get("arguments")
            key = event.get("index", len(self._tools) - 1)
            if key not in self._tools:
                raise invalid_response(self._provider, "tool-call-delta for a call that never started")
            if fragment:
                chunks.append(self._chunk({"tool_calls": [{"index": self._tools[key],
                                                           "function": {"arguments": fragment}}]}))
        elif kind == "message-end":
            finish = _finish_reason(self._provider, delta.get("finish_reason"), delta.get("error"))
            self._start(chunks)
            self._finished = True
            self._cites.flush(self._chunk, chunks)
            chunks.append(self._chunk({}, finish))
            if isinstance(delta.get("usage"), dict):
                chunks.append(self._usage_chunk(cohere_usage(delta["usage"])))
        elif event.get("error") or kind == "error":
            err = event.get("error") or event.get("message") or "stream error"
            raise UpstreamError(ErrorKind.SERVER, f"{self._provider}: {err}", code="upstream_error")
        elif kind == "content-start":
            self._cites.open(event.get("index"))
        elif kind == "citation-start":  # its span is in its content item, which started earlier
            citation = message.get("citations")
            if isinstance(citation, dict):
                self._cites.add(cohere_citations(citation, self._cites.start(citation.get("content_index")) or 0))
        # content-end, tool-call-end, citation-end, debug: nothing for the client
