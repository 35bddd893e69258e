"""OpenAI Chat Completions and Embeddings, and every OpenAI-compatible vendor (via presets).

The canonical format *is* OpenAI's, so this translator is nearly a passthrough: it sets the vendor
model, asks for usage at the end of streams, and checks what comes back (a 2xx body that is not a
chat completion, an error event mid-stream and a stream cut short are all failures, never success).

What OpenAI-compatible vendors do differently from OpenAI is made right on the way back, for every
preset alike: a tool call without `"type": "function"` (Mistral) gets it, tool-call arguments that are
empty or `null` become `"{}"` (`base.tool_arguments`; streams: `base.StreamedArguments`), and a
`"usage": null` member on a stream chunk is dropped (OpenAI's chunks carry none unless the client asked
for usage; the usage chunk that ends a stream keeps its counts).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import ClassVar

import orjson

from .base import Capabilities, HttpRequest, Provider, StreamTranslator, invalid_response, load_json, tool_arguments
from .errors import ErrorKind, UpstreamError, kind_for_status
from .sse import SSEDecoder


@dataclass(frozen=True, slots=True)
class Preset:
    """An OpenAI-compatible vendor: where it lives and how it wants the key."""

    base_url: str
    auth: str = "bearer"  # bearer | api-key | none
    stream_usage_option: bool = True  # accepts `stream_options.include_usage`
    embeddings: bool = True


PRESETS: dict[str, Preset] = {
    "openai": Preset("https://api.openai.com/v1"),
    "groq": Preset("https://api.groq.com/openai/v1", embeddings=False),
    "mistral": Preset("https://api.mistral.ai/v1", stream_usage_option=False),
    "deepseek": Preset("https://api.deepseek.com/v1", embeddings=False),
    "together": Preset("https://api.together.xyz/v1"),
    "xai": Preset("https://api.x.ai/v1", embeddings=False),
    "fireworks": Preset("https://api.fireworks.ai/inference/v1"),
    "openrouter": Preset("https://openrouter.ai/api/v1", embeddings=False),
    "perplexity": Preset("https://api.perplexity.ai", stream_usage_option=False, embeddings=False),
    "cerebras": Preset("https://api.cerebras.ai/v1", embeddings=False),
    "ollama": Preset("http://127.0.0.1:11434/v1"),
    "vllm": Preset("http://127.0.0.1:8000/v1"),
    "lmstudio": Preset("http://127.0.0.1:1234/v1"),
}


class OpenAIProvider(Provider):
    """The canonical format itself: every capability (a preset without embeddings narrows its instance's)."""

    type: ClassVar[str] = "openai"
    capabilities = Capabilities()

    def __init__(self, settings) -> None:
        preset = PRESETS.get(settings.type, PRESETS["openai"])
        self.preset = preset
        self.default_base_url = preset.base_url
        super().__init__(settings)
        if not preset.embeddings:
            self.capabilities = replace(self.capabilities, embeddings=False)
        self._static_headers = {"content-type": "application/json", **settings.headers}

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
            for call in _tool_calls(choice.get("message")):
                if call.get("type") is None:
                    call["type"] = "function"
                fn = call.get("function")
                if isinstance(fn, dict):
                    fn["arguments"] = tool_arguments(fn.get("arguments"))
        data.setdefault("object", "chat.completion")
        return data

    def chat_stream(self, model: str) -> StreamTranslator:
        return OpenAIStream(self.name)

    def embeddings_response(self, body: bytes, model: str, headers: Mapping[str, str] | None = None) -> dict:
        data = load_json(self.name, body)
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise invalid_response(self.name, "missing 'data'")
        data.setdefault("object", "list")
        return data


class OpenAIStream(StreamTranslator):
    """OpenAI SSE: `data: {chunk}` events ending with `data: [DONE]`."""

    __slots__ = ("_decoder", "_done", "_finished", "_provider")

    def __init__(self, provider: str) -> None:
        super().__init__()
        self._provider = provider
        self._decoder = SSEDecoder()
        self._done = False
        self._finished = False

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
            choices = chunk.get("choices")
            if choices:
                if not _choices_ok(choices, "delta"):
                    raise invalid_response(self._provider, "each chunk choice must be an object with a 'delta' object")
                for choice in choices:
                    if choice.get("finish_reason"):
                        self._finished = True
                    for call in _tool_calls(choice.get("delta")):
                        if call.get("id") and call.get("type") is None:  # a call's first fragment
                            call["type"] = "function"
            chunks.append(chunk)


def _tool_calls(message: object) -> list[dict]:
    """The tool-call objects of a message or delta (nothing when it has none or they are malformed)."""
    calls = message.get("tool_calls") if isinstance(message, dict) else None
    return [c for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []


def _choices_ok(choices: object, member: str) -> bool:
    """True when `choices` is a list of objects whose `message`/`delta` is an object (or absent)."""
    return isinstance(choices, list) and all(
        isinstance(c, dict) and isinstance(c.get(member) or {}, dict) for c in choices)


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
