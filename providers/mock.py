"""The built-in offline provider (`type: mock`): deterministic answers in OpenAI's exact wire format.

It lets the router run with no vendor key (demos, tests, benchmarks) while exercising the real
path: the router builds an `HttpRequest` with the OpenAI translator, the transport plays out the
`LocalReply` of `serve_local` (delays, stream parts, dropped connections) instead of opening a socket,
and the bytes are parsed back by the OpenAI translator. So the mock tests the router, not itself.

The model name chooses the behaviour:
  `echo` (and any unknown name)  answers the last user message's text
  `lorem`                        lorem ipsum exactly `max_completion_tokens`/`max_tokens` (default 32,
                                 at most 65536) tokens long
  `fail-<status>`                always that HTTP status with an OpenAI error body (429/503: `retry-after: 0`)
  `drop`                         the connection closes before any header
Tools, tool results, `n`, `response_format`, `stop` and max tokens are honoured on top (see `_answer`).
It declares every capability but `logprobs`: its choices always carry `"logprobs": null`, so a request
for them is refused by the router rather than answered without them. Other sampling hints (seed,
penalties, logit_bias, verbosity) are accepted and have no effect on its deterministic answers.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from .base import Capabilities, HttpRequest, LocalReply, ProviderSettings
from .mock_content import (
    apply_stop,
    last_user_text,
    lorem,
    schema_instance,
    split_tokens,
    tool_results_reply,
    truncate_tokens,
)
from .openai import OpenAIProvider
from .tokens import count_messages, count_text, encoding_for

LOCAL_URL = "local://mock"
DEFAULT_LOREM_TOKENS = 32
MAX_LOREM_TOKENS = 65536  # a larger max_tokens still gets this much (finish_reason "length")
MAX_EMBEDDING_DIMENSIONS = 16384
_FINGERPRINT = "fp_mock"
_JSON = {"content-type": "application/json"}
_SSE = {"content-type": "text/event-stream", "cache-control": "no-cache"}
# status -> (OpenAI error type, code, message)
_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Simulated bad request from the mock provider."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided (simulated)."),
    403: ("invalid_request_error", "permission_denied", "You are not allowed to use this model (simulated)."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist (simulated)."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for the mock model (simulated)."),
    500: ("server_error", None, "The mock server had an error while processing your request (simulated)."),
    503: ("server_error", None, "The mock model is overloaded, please try again later (simulated)."),
}


@dataclass(frozen=True, slots=True)
class MockOptions:
    """`providers.<name>.options` of a mock provider (all optional)."""

    latency_ms: float = 0.0  # before the first byte
    chunk_latency_ms: float = 0.0  # between stream parts
    failure_rate: float = 0.0  # share of requests answered with `failure_status`, 0..1
    failure_status: int = 503
    seed: int = 0  # seeds the failure sequence, so runs are repeatable
    embedding_dimensions: int = 16
    chunk_tokens: int = 4  # tokens per streamed content/arguments delta

    @classmethod
    def parse(cls, options: Mapping[str, Any], where: str) -> MockOptions:
        """Validate the config mapping; errors name the config path, as `switchboard check` prints them."""
        known = cls.__dataclass_fields__
        values: dict[str, Any] = {}
        for key, value in (options or {}).items():
            path = f"{where}.options.{key}"
            if key not in known:
                raise ValueError(f"{path}: unknown mock option (expected one of {', '.join(sorted(known))})")
            integer = key in ("failure_status", "seed", "embedding_dimensions", "chunk_tokens")
            if isinstance(value, bool) or not isinstance(value, int if integer else int | float):
                raise ValueError(f"{path}: must be {'an integer' if integer else 'a number'}")
            values[key] = value
        opts = cls(**values)
        checks = [("latency_ms", opts.latency_ms >= 0), ("chunk_latency_ms", opts.chunk_latency_ms >= 0),
                  ("failure_rate", 0 <= opts.failure_rate <= 1),
                  ("failure_status", 400 <= opts.failure_status <= 599),
                  ("embedding_dimensions", 1 <= opts.embedding_dimensions <= MAX_EMBEDDING_DIMENSIONS),
                  ("chunk_tokens", opts.chunk_tokens >= 1)]
        for key, ok in checks:
            if not ok:
                raise ValueError(f"{where}.options.{key}: out of range ({getattr(opts, key)!r})")
        return opts


class _BadRequest(Exception):
    """The request is invalid the way OpenAI would reject it with a 400."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


@dataclass(slots=True)
class _Answer:
    """One choice: text or tool calls, and why it ended."""

    content: str | None
    tool_calls: list[dict] | None
    finish_reason: str


class MockProvider(OpenAIProvider):
    """Offline, deterministic, OpenAI-wire-exact; parsed back by the inherited OpenAI translator."""

    type: ClassVar[str] = "mock"
    local: ClassVar[bool] = True
    default_base_url: ClassVar[str | None] = LOCAL_URL
    capabilities = Capabilities(logprobs=False, thinking=False, cache_marks=False)

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        self.base_url = LOCAL_URL  # requests never leave the process, whatever base_url says
        # `drop_params` is an option of every provider, read by the base class, not a mock option.
        mock_options = {k: v for k, v in settings.options.items() if k != "drop_params"}
        self.options = MockOptions.parse(mock_options, f"providers.{settings.name}")
        self._rng = random.Random(self.options.seed)

    # -- the fake vendor ---------------------------------------------------------------------
    def serve_local(self, request: HttpRequest) -> LocalReply:
        """Answer a request built by `chat_request`/`embeddings_request` as OpenAI would."""
        try:
            body = orjson.loads(request.body or b"")
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            reply = _error_reply(400, "We could not parse the JSON body of your request.")
        else:
            model = body.get("model") if isinstance(body.get("model"), str) else "echo"
            reply = self._failure(model) or self._serve(request.url, body, model)
        reply.first_byte_delay_s = self.options.latency_ms / 1000.0
        reply.part_delay_s = self.options.chunk_latency_ms / 1000.0
        return reply

    def _failure(self, model: str) -> LocalReply | None:
        if model == "drop":
            return LocalReply(drop_connection=True)
        if model.startswith("fail-") and model[5:].isdigit() and 400 <= int(model[5:]) <= 599:
            return _error_reply(int(model[5:]))
        if self.options.failure_rate > 0 and self._rng.random() < self.options.failure_rate:
            return _error_reply(self.options.failure_status)
        return None

    def _serve(self, url: str, body: dict, model: str) -> LocalReply:
        try:
            if url.endswith("/chat/completions"):
                return self._chat(body, model)
            if url.endswith("/embeddings"):
                return self._embeddings(body, model)
            return _error_reply(404, f"Unknown endpoint {url}.", code="unknown_url")
        except _BadRequest as exc:
            return _error_reply(400, exc.message, param=exc.param)
        except Exception as exc:  # like a real server: a bug here is a 500, never a crashed transport
            return _error_reply(500, f"The mock provider failed: {type(exc).__name__}.")

    # -- chat ---------------------------------------------------------------------------------
    def _chat(self, body: dict, model: str) -> LocalReply:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _BadRequest("messages", "'messages' must be a non-empty array.")
        n = _int_param(body, "n", 1, 1, 128)
        limit_key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
        limit = _int_param(body, limit_key, None, 1, 1 << 31)
        answers = [self._answer(body, model, messages, limit) for _ in range(n)]
        completion_tokens = sum(_completion_tokens(a, model) for a in answers)
        prompt_tokens = count_messages(messages, model, body.get("tools"))
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
        }
        head = {"id": f"chatcmpl-mock-{os.urandom(12).hex()}", "object": "chat.completion",
                "created": int(time.time()), "model": model, "service_tier": "default",
                "system_fingerprint": _FINGERPRINT}
        if body.get("stream"):
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
            parts = self._stream_parts(head, answers, usage if include_usage else None, model)
            return LocalReply(200, dict(_SSE), parts)
        choices = [{"index": i, "message": _message(a), "logprobs": None, "finish_reason": a.finish_reason}
                   for i, a in enumerate(answers)]
        completion = {**head, "choices": choices, "usage": usage}
        return LocalReply(200, dict(_JSON), [orjson.dumps(completion)])

    def _answer(self, body: dict, model: str, messages: list, limit: int | None) -> _Answer:
        """Tool calls when tools are offered and no tool result is pending, else text.

        Text is the tool results after a tool turn, lorem for `lorem`, otherwise the echo; then
        `response_format` turns it into JSON, `stop` cuts it, and max tokens cuts it with `length`.
        """
        calls = _tool_calls(body, messages)
        if calls:
            return _Answer(None, calls, "tool_calls")
        last = messages[-1]
        finish = "stop"
        if isinstance(last, dict) and last.get("role") in ("tool", "function"):
            text = tool_results_reply(messages)
        elif model == "lorem":
            text = lorem(min(limit or DEFAULT_LOREM_TOKENS, MAX_LOREM_TOKENS), model)
            finish = "length" if limit else "stop"  # the answer ran into the cap
        else:
            text = last_user_text(messages)
        fmt = body.get("response_format")
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            spec = fmt.get("json_schema")
            schema = spec.get("schema") if isinstance(spec, dict) else None
            text = orjson.dumps(schema_instance(schema if isinstance(schema, dict) else {"type": "object"}),
                                option=orjson.OPT_NON_STR_KEYS).decode()
        elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
            text = orjson.dumps({"answer": text}).decode()
        text, stopped = apply_stop(text, body.get("stop"))
        if stopped:
            return _Answer(text, None, "stop")
        if limit is not None:
            text, cut = truncate_tokens(text, limit, model)
            if cut:
                finish = "length"
        return _Answer(text, None, finish)

    def _stream_parts(self, head: dict, answers: list[_Answer], usage: dict | None,
                      model: str) -> list[bytes]:
        """One SSE event per part, in OpenAI's chunk format, ending with the usage chunk and [DONE]."""
        base = {**head, "object": "chat.completion.chunk"}
        if usage is not None:
            base["usage"] = None  # OpenAI marks every chunk but the last when usage is requested
        size = self.options.chunk_tokens

        def event(index: int, delta: dict, finish: str | None = None) -> bytes:
            choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            return b"data: " + orjson.dumps({**base, "choices": [choice]}) + b"\n\n"

        parts: list[bytes] = []
        for i, answer in enumerate(answers):
            if answer.tool_calls:
                for k, call in enumerate(answer.tool_calls):
                    fn = call["function"]
                    first = {"index": k, "id": call["id"], "type": "function",
                             "function": {"name": fn["name"], "arguments": ""}}
                    delta = {"role": "assistant", "content": None, "refusal": None} if k == 0 else {}
                    parts.append(event(i, {**delta, "tool_calls": [first]}))
                    parts.extend(event(i, {"tool_calls": [{"index": k, "function": {"arguments": piece}}]})
                                 for piece in split_tokens(fn["arguments"], size, model))
            else:
                parts.append(event(i, {"role": "assistant", "content": "", "refusal": None}))
                parts.extend(event(i, {"content": piece})
                             for piece in split_tokens(answer.content or "", size, model))
            parts.append(event(i, {}, answer.finish_reason))
        if usage is not None:
            parts.append(b"data: " + orjson.dumps({**base, "choices": [], "usage": usage}) + b"\n\n")
        parts.append(b"data: [DONE]\n\n")
        return parts

    # -- embeddings ---------------------------------------------------------------------------
    def _embeddings(self, body: dict, model: str) -> LocalReply:
        """Unit vectors from a hash of each input's tokens: equal inputs embed equally, across runs."""
        dims = _int_param(body, "dimensions", self.options.embedding_dimensions, 1, MAX_EMBEDDING_DIMENSIONS)
        fmt = body.get("encoding_format") or "float"
        if fmt not in ("float", "base64"):
            raise _BadRequest("encoding_format", "'encoding_format' must be 'float' or 'base64'.")
        enc = encoding_for(model)
        data, total = [], 0
        for index, item in enumerate(_embedding_inputs(body.get("input"))):
            tokens = enc.encode_ordinary(item) if isinstance(item, str) else item
            total += len(tokens)
            packed = _unit_vector(",".join(map(str, tokens)).encode(), dims)
            vector: Any = (base64.b64encode(packed).decode() if fmt == "base64"
                           else list(struct.unpack(f"<{dims}f", packed)))
            data.append({"object": "embedding", "index": index, "embedding": vector})
        out = {"object": "list", "data": data, "model": model,
               "usage": {"prompt_tokens": total, "total_tokens": total}}
        return LocalReply(200, dict(_JSON), [orjson.dumps(out)])


# -- helpers ----------------------------------------------------------------------------------------
def _error_reply(status: int, message: str | None = None, *, code: str | None = None,
                 param: str | None = None) -> LocalReply:
    """An OpenAI-shaped error body; 429/503 say `retry-after: 0` so retries do not stall tests."""
    etype, default_code, default_message = _ERRORS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None,
                 f"Simulated HTTP {status} from the mock provider."))
    headers = dict(_JSON)
    if status in (429, 503):
        headers["retry-after"] = "0"
    error = {"message": message or default_message, "type": etype, "param": param,
             "code": code or default_code}
    return LocalReply(status, headers, [orjson.dumps({"error": error})])


def _int_param(body: dict, key: str, default: Any, low: int, high: int) -> Any:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _BadRequest(key, f"'{key}' must be an integer between {low} and {high}.")
    return value


def _function_tools(tools: Any) -> list[dict]:
    """The request's function tools as `{name, parameters}` (custom tools are not supported)."""
    out = []
    for tool in tools if isinstance(tools, list) else []:
        fn = tool.get("function") if isinstance(tool, dict) else None
        if (isinstance(fn, dict) and isinstance(fn.get("name"), str)
                and tool.get("type", "function") == "function"):
            out.append({"name": fn["name"], "parameters": fn.get("parameters")})
    return out


def _tool_name(ref: Any) -> Any:
    return ref.get("function", {}).get("name") if isinstance(ref, dict) else None


def _tool_calls(body: dict, messages: list) -> list[dict] | None:
    """Calls to the forced tool, or the first tool (two with `parallel_tool_calls: true`)."""
    tools = _function_tools(body.get("tools"))
    choice = body.get("tool_choice", "auto")
    last = messages[-1]
    if not tools or choice == "none" or (isinstance(last, dict) and last.get("role") in ("tool", "function")):
        return None
    forced = False
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        allowed = choice.get("allowed_tools")
        refs = allowed.get("tools") if isinstance(allowed, dict) else None
        names = {_tool_name(t) for t in refs} if isinstance(refs, list) else set()
        tools = [t for t in tools if t["name"] in names]
        if not tools:
            raise _BadRequest("tool_choice", "'tool_choice.allowed_tools' names no tool from 'tools'.")
    elif isinstance(choice, dict):
        name = _tool_name(choice)
        tools = [t for t in tools if t["name"] == name]
        if not tools:
            raise _BadRequest("tool_choice", f"Tool choice '{name}' is not one of the provided tools.")
        forced = True
    count = 2 if body.get("parallel_tool_calls") is True and not forced else 1
    calls = []
    for tool in tools[:count]:
        params = tool["parameters"] if isinstance(tool["parameters"], dict) else {"type": "object"}
        args = schema_instance(params)
        calls.append({"id": f"call_{os.urandom(12).hex()}", "type": "function",
                      "function": {"name": tool["name"], "arguments": orjson.dumps(
                          args if isinstance(args, dict) else {}, option=orjson.OPT_NON_STR_KEYS).decode()}})
    return calls


def _message(answer: _Answer) -> dict:
    message: dict[str, Any] = {"role": "assistant", "content": answer.content, "refusal": None,
                               "annotations": []}
    if answer.tool_calls:
        message["tool_calls"] = answer.tool_calls
    return message


def _completion_tokens(answer: _Answer, model: str) -> int:
    if answer.tool_calls:
        return sum(count_text(c["function"]["name"], model) + count_text(c["function"]["arguments"], model)
                   for c in answer.tool_calls)
    return count_text(answer.content or "", model)


def _embedding_inputs(value: Any) -> list[str | list[int]]:
    """OpenAI's four input shapes as a list of strings and token arrays; anything else is a 400."""
    def is_tokens(v: Any) -> bool:
        return isinstance(v, list) and bool(v) and all(type(t) is int for t in v)

    if isinstance(value, str) and value:
        return [value]
    if is_tokens(value):
        return [value]
    if isinstance(value, list) and value and all((isinstance(v, str) and v) or is_tokens(v) for v in value):
        return value
    raise _BadRequest("input", "'input' must be a non-empty string, array of strings, array of tokens "
                               "or array of token arrays.")


def _unit_vector(key: bytes, dims: int) -> bytes:
    """A deterministic unit vector as little-endian float32 (OpenAI's base64 layout)."""
    rng = random.Random(int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little"))
    values = [rng.gauss(0.0, 1.0) for _ in range(dims)]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return struct.pack(f"<{dims}f", *(v / norm for v in values))
