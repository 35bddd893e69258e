"""OpenAI Chat Completions and Embeddings, and every OpenAI-compatible vendor (via presets).

The canonical format *is* OpenAI's, so this translator is nearly a passthrough: it sets the vendor
model, asks for usage at the end of streams, and checks what comes back (a 2xx body that is not a
chat completion, an error event mid-stream and a stream cut short are all failures, never success).

What OpenAI-compatible vendors do differently from OpenAI is made right on the way back, for every
preset alike: a tool call without `"type": "function"` (Mistral) gets it, tool-call arguments that are
empty or `null` become `"{}"` (`base.tool_arguments`; streams: `base.StreamedArguments`), a
`"usage": null` member on a stream chunk is dropped (OpenAI's chunks carry none unless the client asked
for usage; the usage chunk that ends a stream keeps its counts), content sent as a list of typed chunks
(Mistral's reasoning models: `thinking` and `text`) becomes string content and `reasoning_content`, a
finish reason outside OpenAI's vocabulary (Together's `eos`) becomes OpenAI's (`FINISH_REASONS`; one
that says the generation failed is an upstream error, `FAILED_FINISH`), and a finish repeated to carry
the usage (OpenRouter) is relayed once, its usage in a chunk of its own.

Usage is OpenAI's shape already, except where a preset says `reasoning_outside_completion` (xAI and
Perplexity count reasoning apart from `completion_tokens`): there the reasoning is folded in, as OpenAI
counts it (`completion_tokens` includes `completion_tokens_details.reasoning_tokens`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import ClassVar

import orjson

from .base import (
    RESPONSES_DIALECT,
    Capabilities,
    HttpRequest,
    Provider,
    StreamTranslator,
    invalid_response,
    load_json,
    tool_arguments,
)
from .errors import ErrorKind, UpstreamError, is_context_window, kind_for_status
from .openai_responses import ResponsesStream, response_to_completion
from .sse import SSEDecoder


@dataclass(frozen=True, slots=True)
class Preset:
    """An OpenAI-compatible vendor: where it lives and how it wants the key."""

    base_url: str
    auth: str = "bearer"  # bearer | api-key | none
    stream_usage_option: bool = True  # accepts `stream_options.include_usage`
    embeddings: bool = True
    # `completion_tokens` leave the reasoning out (xAI: in `completion_tokens_details.reasoning_tokens`;
    # Perplexity: in a top-level `reasoning_tokens`), where OpenAI counts it in: see `usage_with_reasoning`.
    reasoning_outside_completion: bool = False


PRESETS: dict[str, Preset] = {
    "openai": Preset("https://api.openai.com/v1"),
    "groq": Preset("https://api.groq.com/openai/v1", embeddings=False),
    "mistral": Preset("https://api.mistral.ai/v1", stream_usage_option=False),
    "deepseek": Preset("https://api.deepseek.com/v1", embeddings=False),
    "together": Preset("https://api.together.xyz/v1"),
    "xai": Preset("https://api.x.ai/v1", embeddings=False, reasoning_outside_completion=True),
    "fireworks": Preset("https://api.fireworks.ai/inference/v1"),
    "openrouter": Preset("https://openrouter.ai/api/v1", embeddings=False),
    "perplexity": Preset("https://api.perplexity.ai", stream_usage_option=False, embeddings=False,
                         reasoning_outside_completion=True),
    "cerebras": Preset("https://api.cerebras.ai/v1", embeddings=False),
    "ollama": Preset("http://127.0.0.1:11434/v1"),
    "vllm": Preset("http://127.0.0.1:8000/v1"),
    "lmstudio": Preset("http://127.0.0.1:1234/v1"),
}


class OpenAIProvider(Provider):
    """The canonical format itself: every capability (a preset without embeddings narrows its instance's),
    but no Anthropic-style `thinking` (OpenAI's reasoning is asked for with `reasoning_effort`)."""

    type: ClassVar[str] = "openai"
    capabilities = Capabilities(thinking=False, cache_marks=False)

    def __init__(self, settings) -> None:
        preset = PRESETS.get(settings.type, PRESETS["openai"])
        self.preset = preset
        self.default_base_url = preset.base_url
        super().__init__(settings)
        if not preset.embeddings:
            self.capabilities = replace(self.capabilities, embeddings=False)
        self._static_headers = {"content-type": "application/json", **settings.headers}
        # Whether this endpoint serves the Responses API too: OpenAI's own does; a compatible server
        # behind `type: openai` usually does not, unless `options.responses_api: true` says so.
        served = settings.options.get("responses_api")
        if served is not None and not isinstance(served, bool):
            raise ValueError(f"providers.{settings.name}.options.responses_api: must be true or false")
        self.responses_api = served if served is not None else (
            settings.type == "openai" and self.base_url == preset.base_url)

    # -- requests ---------------------------------------------------------------------------
    def _headers(self, api_key: str | None) -> dict[str, str]:
        headers = dict(self._static_headers)
        if api_key:
            if self.preset.auth == "api-key":
                headers["api-key"] = api_key
            elif self.preset.auth == "bearer":
                headers["authorization"] = f"Bearer {api_key}"
        return headers

    def _url(self, model: str, endpoint: str) -> str:
        return f"{self.base_url}/{endpoint}"

    def chat_request(self, body: dict, model: str, api_key: str | None, stream: bool) -> HttpRequest:
        out = dict(body)
        out["model"] = model
        messages = _short_tool_ids(body.get("messages"))
        if messages is not None:
            out["messages"] = messages
        if stream:
            out["stream"] = True
            if self.preset.stream_usage_option:
                out["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        else:
            out.pop("stream", None)
            out.pop("stream_options", None)
        return HttpRequest("POST", self._url(model, "chat/completions"), self._headers(api_key),
                           orjson.dumps(out))

    def speaks(self, dialect: str) -> bool:
        """OpenAI itself serves Responses (see `responses_api`); other servers are reached through Chat."""
        return dialect == RESPONSES_DIALECT and self.responses_api

    def native_request(self, dialect: str, body: dict, model: str, api_key: str | None, stream: bool,
                       headers: Mapping[str, str]) -> HttpRequest:
        """A Responses request forwarded as the client wrote it, with only the model and stream set."""
        return HttpRequest("POST", self._url(model, "responses"), self._headers(api_key),
                           orjson.dumps({**body, "model": model, "stream": stream}), dialect=dialect)

    def native_response(self, dialect: str, body: bytes, model: str) -> dict:
        return response_to_completion(self.name, body, model)

    def native_stream(self, dialect: str, model: str) -> StreamTranslator:
        return ResponsesStream(self.name, model)

    def embeddings_request(self, body: dict, model: str, api_key: str | None) -> HttpRequest:
        if not self.capabilities.embeddings:
            return super().embeddings_request(body, model, api_key)
        out = dict(body)
        out["model"] = model
        return HttpRequest("POST", self._url(model, "embeddings"), self._headers(api_key), orjson.dumps(out))

    # -- responses --------------------------------------------------------------------------
    def chat_response(self, body: bytes, model: str) -> dict:
        data = load_json(self.name, body)
        if not isinstance(data, dict):
            raise invalid_response(self.name, "expected a JSON object")
        if "error" in data and "choices" not in data:
            raise error_from_object(self.name, data["error"])
        if not isinstance(data.get("choices"), list):
            raise invalid_response(self.name, "missing 'choices'")
        if not _choices_ok(data["choices"], "message"):
            raise invalid_response(self.name, "each choice must be an object with a 'message' object")
        for choice in data["choices"]:
            message = choice.get("message")
            if isinstance(message, dict) and isinstance(message.get("content"), list):
                _split_content(message, none_if_no_text=bool(message.get("tool_calls")))
            if choice.get("finish_reason"):
                choice["finish_reason"] = finish_reason(self.name, choice["finish_reason"])
            for call in _tool_calls(message):
                if call.get("type") is None:
                    call["type"] = "function"
                fn = call.get("function")
                if isinstance(fn, dict):
                    fn["arguments"] = tool_arguments(fn.get("arguments"))
        if self.preset.reasoning_outside_completion and isinstance(data.get("usage"), dict):
            data["usage"] = usage_with_reasoning(data["usage"])
        data.setdefault("object", "chat.completion")
        return data

    def chat_stream(self, model: str) -> StreamTranslator:
        return OpenAIStream(self.name, reasoning_outside_completion=self.preset.reasoning_outside_completion)

    def embeddings_response(self, body: bytes, model: str, headers: Mapping[str, str] | None = None) -> dict:
        data = load_json(self.name, body)
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise invalid_response(self.name, "missing 'data'")
        data.setdefault("object", "list")
        return data


class OpenAIStream(StreamTranslator):
    """OpenAI SSE: `data: {chunk}` events ending with `data: [DONE]`.

    `reasoning_outside_completion` is the preset's (usage counts reasoning apart: folded in here).
    """

    __slots__ = ("_decoder", "_done", "_failure", "_finished", "_finished_choices", "_fold_reasoning", "_provider")

    def __init__(self, provider: str, *, reasoning_outside_completion: bool = False) -> None:
        super().__init__()
        self._provider = provider
        self._decoder = SSEDecoder()
        self._done = False
        self._finished = False
        self._finished_choices: set[object] = set()  # indices of the choices whose finish was relayed
        self._fold_reasoning = reasoning_outside_completion
        self._failure: UpstreamError | None = None  # a finish that says the generation failed

    def _feed(self, data: bytes, out: list[dict]) -> None:
        self._events(self._decoder.feed(data), out)

    def _close(self, out: list[dict]) -> None:
        self._events(self._decoder.close(), out)
        if not self._done and not self._finished:
            raise UpstreamError(ErrorKind.STREAM_CUT,
                                f"{self._provider}: stream ended before a finish reason or [DONE]",
                                code="stream_truncated")

    def _events(self, events: list[tuple[str | None, bytes]], chunks: list[dict]) -> None:
        for _event, data in events:
            if data == b"[DONE]":
                self._done = True
                continue
            if self._done:
                continue
            try:
                chunk = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise invalid_response(self._provider, "stream event is not JSON") from None
            if not isinstance(chunk, dict):
                raise invalid_response(self._provider, "stream event is not a JSON object")
            if chunk.get("error"):
                raise error_from_object(self._provider, chunk["error"])
            if "usage" in chunk and chunk["usage"] is None:
                del chunk["usage"]
            if self._fold_reasoning and isinstance(chunk.get("usage"), dict):
                chunk["usage"] = usage_with_reasoning(chunk["usage"])
            choices = chunk.get("choices")
            emptied = False
            if choices:
                if not _choices_ok(choices, "delta"):
                    raise invalid_response(self._provider, "each chunk choice must be an object with a 'delta' object")
                kept = [choice for choice in choices if self._choice(choice)] if self._needs_care(choices) else choices
                if len(kept) < len(choices):
                    chunk["choices"] = kept
                    emptied = not kept and "usage" not in chunk
            if not emptied:
                chunks.append(chunk)
            if self._failure is not None:  # after the chunk: the text it carried is part of what was sent
                raise self._failure

    def _needs_care(self, choices: list[dict]) -> bool:
        """False for the common chunk, one plain text delta: nothing in `_choice` applies to it."""
        if len(choices) != 1 or self._finished_choices:
            return True
        choice = choices[0]
        if choice.get("finish_reason"):
            return True
        delta = choice.get("delta")
        return bool(delta) and (delta.get("tool_calls") is not None or isinstance(delta.get("content"), list))

    def _choice(self, choice: dict) -> bool:
        """Make one chunk choice OpenAI's; False when it is a repeat of a finish already relayed.
        (`_needs_care` lets a chunk skip this: a new rule here is a new case there.)

        OpenRouter sends its finish chunk twice, the second time with the usage; relayed as it is, a
        client would see the choice finish twice. A choice that comes after its own finish with
        nothing in its delta is that repeat and is dropped (its chunk's usage is kept); one with
        content is kept, since dropping it would lose part of the answer.
        """
        index = choice.get("index", 0)
        delta = choice.get("delta")
        if index in self._finished_choices and not _has_content(delta):
            return False
        if isinstance(delta, dict) and isinstance(delta.get("content"), list):
            _split_content(delta, none_if_no_text=True)
        if choice.get("finish_reason"):
            try:
                choice["finish_reason"] = finish_reason(self._provider, choice["finish_reason"])
            except UpstreamError as exc:
                self._failure = exc
                choice["finish_reason"] = None
                return _has_content(delta)
            self._finished = True
            self._finished_choices.add(index)
        for call in _tool_calls(delta):
            if call.get("id") and call.get("type") is None:  # a call's first fragment
                call["type"] = "function"
        return True


OPENAI_FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter", "function_call"})
# Finish reasons outside OpenAI's vocabulary that OpenAI-compatible servers send, and OpenAI's word for
# each: Together (and Hugging Face TGI) end with `eos` / `eos_token` / `stop_sequence`, Mistral with
# `model_length` when the context is full, and servers that relay Anthropic models use its reasons.
FINISH_REASONS: dict[str, str] = {
    "eos": "stop",
    "eos_token": "stop",
    "stop_sequence": "stop",
    "end_turn": "stop",
    "max_tokens": "length",
    "model_length": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# Finish reasons that say the generation broke off (Mistral's, OpenRouter's and Fireworks' `error`,
# DeepSeek's `insufficient_system_resource`, vLLM's `abort`): no OpenAI reason means that, and "stop"
# would pass a cut-off answer as a whole one, so they are upstream failures (retried or fallen back on
# like any other; mid-stream, an error after the text already sent).
FAILED_FINISH: dict[str, ErrorKind] = {
    "error": ErrorKind.SERVER,
    "abort": ErrorKind.SERVER,
    "insufficient_system_resource": ErrorKind.OVERLOADED,
}


def finish_reason(provider: str, reason: object) -> str:
    """A vendor's finish reason in OpenAI's words (OpenAI's own as they are), or `UpstreamError` for
    one that says the generation failed. A reason in no table is newer than it: the turn did end."""
    if isinstance(reason, str):
        if reason in OPENAI_FINISH_REASONS:
            return reason
        if reason in FINISH_REASONS:
            return FINISH_REASONS[reason]
        if reason in FAILED_FINISH:
            raise UpstreamError(FAILED_FINISH[reason], f"{provider}: the generation failed (finish_reason {reason!r})",
                                code=reason)
    return "stop"


def _text_of(value: object) -> str:
    """The text of a content chunk's body: a string, or a list of `{"type": "text", "text"}` parts."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(p["text"] for p in value
                       if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str))
    return ""


def _split_content(message: dict, *, none_if_no_text: bool) -> None:
    """Content sent as a list of typed chunks (Mistral's reasoning models) -> OpenAI's string content,
    the `thinking` chunks appended to `reasoning_content`, in place, for a message or a stream delta.

    Clients read content as a string, so a text chunk inside a list would otherwise be lost to them.
    Chunks of any other type (`reference` ids, images) carry no answer text and are left out. With no
    text chunk at all the content is None when `none_if_no_text` (a delta that is all thinking, a
    message that is all tool calls), else "".
    """
    text: list[str] = []
    reasoning: list[str] = []
    for chunk in message["content"]:
        kind = chunk.get("type") if isinstance(chunk, dict) else None
        if kind == "text":
            text.append(_text_of(chunk.get("text")))
        elif kind == "thinking":
            reasoning.append(_text_of(chunk.get("thinking")))
    message["content"] = "".join(text) if text or not none_if_no_text else None
    if reasoning:
        before = message.get("reasoning_content")
        message["reasoning_content"] = (before if isinstance(before, str) else "") + "".join(reasoning)


def _has_content(delta: object) -> bool:
    """True when a delta carries anything but its role (a repeated finish chunk carries nothing)."""
    return isinstance(delta, dict) and any(value for key, value in delta.items() if key != "role")


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def usage_with_reasoning(usage: dict) -> dict:
    """The usage of a vendor that counts reasoning apart from `completion_tokens`, in OpenAI's terms:
    `completion_tokens` includes the reasoning and `completion_tokens_details.reasoning_tokens` says how
    much of it is reasoning (what the pricer reads: reasoning is billed as output, at its own price where
    a model has one). Only the presets marked `reasoning_outside_completion` get this, so OpenAI's own
    counts are never added twice.

    Perplexity reports a top-level `reasoning_tokens` outside both `completion_tokens` and
    `total_tokens`; it moves into the details. xAI reports it in the details, outside
    `completion_tokens` but inside `total_tokens`: when the total already shows completion_tokens
    holding the reasoning (the vendor moved to OpenAI's convention), nothing is added.

    Perplexity's `citation_tokens` (the cited sources it read, billed as output at their own price) are
    folded the same way, as `completion_tokens_details.citation_tokens`, and its `num_search_queries`
    become `server_tool_use.web_search_requests`, the name the pricer reads for any vendor's web searches.
    """
    usage = _with_searches(usage)
    completion, prompt, total = (_count(usage.get(k)) for k in ("completion_tokens", "prompt_tokens", "total_tokens"))
    details = usage.get("completion_tokens_details")
    details = details if isinstance(details, dict) else {}
    top = _count(usage.get("reasoning_tokens"))
    reasoning = top if top is not None else _count(details.get("reasoning_tokens"))
    citations = _count(usage.get("citation_tokens")) or 0
    if completion is None or not (reasoning or citations):
        return usage
    if top is None and prompt is not None and total is not None and total < prompt + completion + (reasoning or 0):
        reasoning = 0  # xAI-style figures whose total shows the reasoning is inside completion_tokens already
        if not citations:
            return usage
    out = {k: v for k, v in usage.items() if k not in ("reasoning_tokens", "citation_tokens")}
    out["completion_tokens"] = completion + (reasoning or 0) + citations
    out["completion_tokens_details"] = {**details}
    if reasoning:
        out["completion_tokens_details"]["reasoning_tokens"] = reasoning
    if citations:
        out["completion_tokens_details"]["citation_tokens"] = citations
    if prompt is not None:
        out["total_tokens"] = max(total or 0, prompt + out["completion_tokens"])
    return out


def _with_searches(usage: dict) -> dict:
    """Perplexity's `num_search_queries` as `server_tool_use.web_search_requests` (see above)."""
    searches = _count(usage.get("num_search_queries"))
    if not searches:
        return usage
    out = {k: v for k, v in usage.items() if k != "num_search_queries"}
    out["server_tool_use"] = {"web_search_requests": searches}
    return out


def _tool_calls(message: object) -> list[dict]:
    """The tool-call objects of a message or delta (nothing when it has none or they are malformed)."""
    calls = message.get("tool_calls") if isinstance(message, dict) else None
    return [c for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []


def _choices_ok(choices: object, member: str) -> bool:
    """True when `choices` is a list of objects whose `message`/`delta` is an object (or absent)."""
    if not isinstance(choices, list):
        return False
    for c in choices:  # noqa: SIM110 - a loop, not all() over a generator: it runs for every stream chunk
        if not isinstance(c, dict) or not isinstance(c.get(member) or {}, dict):
            return False
    return True


MAX_TOOL_CALL_ID = 40  # OpenAI rejects longer tool-call ids


def _short_id(call_id: object) -> object:
    if isinstance(call_id, str) and len(call_id) > MAX_TOOL_CALL_ID:
        return "call_" + hashlib.sha256(call_id.encode()).hexdigest()[:32]
    return call_id


def _short_tool_ids(messages: object) -> list | None:
    """Messages with over-long tool-call ids (another vendor's, e.g. Gemini's with a thought signature
    inside) mapped to short stable ones, consistently in the call and its result; None if none are long."""
    if not isinstance(messages, list):
        return None
    for m in messages:  # the common case, no tool calls at all: one cheap pass over the roles
        if not isinstance(m, dict) or m.get("role") == "tool" or m.get("tool_calls"):
            break
    else:
        return None
    long_ids = any(
        (isinstance(m, dict) and (
            (m.get("role") == "tool" and _short_id(m.get("tool_call_id")) != m.get("tool_call_id"))
            or any(isinstance(c, dict) and _short_id(c.get("id")) != c.get("id") for c in m.get("tool_calls") or ())))
        for m in messages)
    if not long_ids:
        return None
    out = []
    for m in messages:
        if isinstance(m, dict) and m.get("role") == "tool" and "tool_call_id" in m:
            m = {**m, "tool_call_id": _short_id(m["tool_call_id"])}
        elif isinstance(m, dict) and isinstance(m.get("tool_calls"), list):
            m = {**m, "tool_calls": [{**c, "id": _short_id(c.get("id"))} if isinstance(c, dict) else c
                                     for c in m["tool_calls"]]}
        out.append(m)
    return out


def error_from_object(provider: str, err: object) -> UpstreamError:
    """An OpenAI `error` object that arrived inside a 2xx body or a stream event."""
    if not isinstance(err, dict):
        return UpstreamError(ErrorKind.SERVER, f"{provider}: {err}", code="upstream_error")
    status = err.get("status") or err.get("code")
    kind = kind_for_status(status) if isinstance(status, int) else ErrorKind.SERVER
    etype = err.get("type") or ""
    if "rate_limit" in str(etype) or err.get("code") == "rate_limit_exceeded":
        kind = ErrorKind.RATE_LIMIT
    elif "overloaded" in str(etype):
        kind = ErrorKind.OVERLOADED
    elif kind is ErrorKind.BAD_REQUEST and is_context_window(err.get("message"), err.get("code"), etype):
        kind = ErrorKind.CONTEXT_WINDOW
    message = err.get("message") or "upstream error"
    code = err.get("code")
    return UpstreamError(kind, f"{provider}: {message}", code=str(code) if code else (etype or None),
                         upstream_status=status if isinstance(status, int) else None)


class AzureOpenAIProvider(OpenAIProvider):
    """Azure OpenAI: deployment URLs, `api-version`, `api-key` header."""

    type: ClassVar[str] = "azure"
    default_api_version: ClassVar[str] = "2024-10-21"

    def __init__(self, settings) -> None:
        super().__init__(settings)
        self.preset = Preset(self.base_url, auth="api-key")
        self.api_version = settings.api_version or self.default_api_version

    def _url(self, model: str, endpoint: str) -> str:
        deployment = self.settings.deployments.get(model, model)
        return f"{self.base_url}/openai/deployments/{deployment}/{endpoint}?api-version={self.api_version}"
