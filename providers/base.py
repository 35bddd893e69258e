"""The provider contract: one interface, pure translation, no I/O.

A provider turns the canonical (OpenAI-shaped) request into the vendor's HTTP request, the vendor's
response into a canonical response, a vendor stream into canonical chunks, and a vendor error into
an `UpstreamError`. It never opens a socket: `router/upstream.py` does all network I/O, timeouts and
retries, so a provider is tested by feeding it bytes and reading what comes out.

Canonical shapes are plain dicts in the OpenAI Chat Completions / Embeddings format: a request body
as the client sent it (router-only members such as `fallbacks` removed), a `chat.completion` or
`chat.completion.chunk` object, an embeddings `list` object.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson

from .capabilities import Capabilities, drop_params, unsupported_error
from .errors import ErrorKind, UpstreamError, is_context_window, kind_for_status, parse_retry_after

# Wire dialects a face speaks that a vendor may speak too (`Provider.speaks`).
MESSAGES_DIALECT = "anthropic.messages"  # Anthropic's Messages API
MESSAGES_HEADERS = ("anthropic-version", "anthropic-beta")  # the client's, forwarded in that dialect
RESPONSES_DIALECT = "openai.responses"  # OpenAI's Responses API


@dataclass(slots=True)
class HttpRequest:
    """What to send to the vendor. `url` may use the `local://` scheme for in-process providers."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None = None
    dialect: str | None = None  # set: a face's own dialect, whose answer goes to the client as sent


@dataclass(slots=True)
class LocalReply:
    """What an in-process provider (`mock`) answers; the router's transport plays it out in time.

    `parts` are the body's bytes in the order they are sent, with `part_delay_s` between them.
    `drop_connection` makes the transport behave as if the socket closed before any header.
    """

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    parts: list[bytes] = field(default_factory=list)
    first_byte_delay_s: float = 0.0
    part_delay_s: float = 0.0
    drop_connection: bool = False


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """The part of a provider's configuration a translator needs (no secrets: keys come per call)."""

    name: str
    type: str
    base_url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    api_version: str | None = None
    region: str | None = None
    project: str | None = None
    deployments: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)


class StreamTranslator:
    """Stateful: fed the raw bytes of a vendor stream, returns canonical chunks.

    `feed` may raise `UpstreamError` when the vendor sends an error event mid-stream. `close` is
    called at end of input and raises `UpstreamError(STREAM_CUT)` when the stream ended without its
    terminator or finish reason (a truncated stream must never pass as a success).

    A translator never loses chunks: one network read may hold content and then an error event (or
    garbage), and the router decides between failing over and relaying by whether content was read
    before the failure. So when an error follows chunks within one `feed`, `feed` returns those
    chunks and holds the error back; `check`, every later `feed` and `close` raise it. An error
    before any chunk of a read is raised at once. Subclasses call `super().__init__()` and implement
    `_feed` and `_close`, appending each chunk to `out` as soon as it is made (never collecting into
    a list of their own first), so that whatever preceded a failure is in `out` when it raises.

    Every translator's output passes through `StreamedArguments` here, so a tool call that streamed
    no argument text ends with `"{}"` whatever the vendor (see `tool_arguments`).
    """

    __slots__ = ("_arguments", "_held")

    def __init__(self) -> None:
        self._held: Exception | None = None
        self._arguments = StreamedArguments()

    def feed(self, data: bytes) -> list[dict]:
        if self._held is not None:
            raise self._held
        out: list[dict] = []
        try:
            self._feed(data, out)
        except Exception as exc:
            if not out:
                raise
            self._held = exc
        self._arguments.complete(out)
        return out

    def close(self) -> list[dict]:
        """The chunks of the end of input. An error here is not held back: there is no later call
        to raise it from, and the only chunks it can cost are those of a final event that was never
        terminated (which the SSE standard discards at end of input anyway)."""
        if self._held is not None:
            raise self._held
        out: list[dict] = []
        self._close(out)
        self._arguments.complete(out)
        return out

    def check(self) -> None:
        """Raise the error held back by the last `feed` (its chunks were returned first), if any.

        The router calls it after the chunks of a read, so a vendor that sends an error event and
        then keeps the connection open fails now rather than at the next read or the idle timeout.
        """
        if self._held is not None:
            raise self._held

    def _feed(self, data: bytes, out: list[dict]) -> None:
        raise NotImplementedError

    def _close(self, out: list[dict]) -> None:
        raise NotImplementedError


def tool_arguments(value: Any) -> str:
    """A finished tool call's OpenAI `arguments`: always the text of a JSON object.

    Clients run `json.loads(arguments)` on it and expect an object, while vendors send nothing at all,
    an empty text or `null` for a tool that takes no parameters; all of those become `"{}"`. Text is
    otherwise kept as the vendor sent it, and a parsed input (Anthropic, Bedrock, Gemini) is dumped.
    Every non-stream translator builds its tool calls' arguments with this; streams get the same rule
    from `StreamedArguments`.
    """
    if isinstance(value, str):
        return "{}" if value.strip() in ("", "null") else value
    if value is None:
        return "{}"
    return orjson.dumps(value).decode()


class StreamedArguments:
    """The stream side of `tool_arguments`, applied by `StreamTranslator` to every chunk it returns.

    A streamed call's arguments are the concatenation of its deltas, so a call that received no
    argument text by its choice's finish chunk would reach the client as `""`. This remembers, per
    (choice, call index), whether any argument text arrived, and just before a finish chunk adds an
    argument delta `"{}"` for each call of that choice still without one (into the finish chunk's own
    delta when the call starts there), so a client accumulating the deltas ends with `"{}"`.
    """

    __slots__ = ("_calls",)

    def __init__(self) -> None:
        self._calls: dict[tuple[int, int], bool] = {}  # (choice, call index) -> argument text seen

    def complete(self, chunks: list[dict]) -> None:
        i = 0
        while i < len(chunks):
            chunk = chunks[i]
            fillers: list[dict] = []
            for choice in chunk.get("choices") or ():
                if not isinstance(choice, dict):
                    continue
                delta = choice.get("delta")
                calls = delta.get("tool_calls") if isinstance(delta, dict) else None
                if calls:
                    self._note(choice.get("index", 0), calls)
                if choice.get("finish_reason") and self._calls:
                    fillers += self._finish(chunk, choice.get("index", 0), calls or [])
            chunks[i:i] = fillers
            i += len(fillers) + 1

    def _note(self, choice: int, calls: list) -> None:
        for call in calls:
            index = call.get("index") if isinstance(call, dict) else None
            if not isinstance(index, int):
                continue
            fn = call.get("function")
            if not isinstance(fn, dict):  # not a function call (a custom tool's `input`): nothing to fill
                self._calls[(choice, index)] = True
                continue
            text = fn.get("arguments")
            if isinstance(text, str) and text.strip():
                self._calls[(choice, index)] = True
            else:
                self._calls.setdefault((choice, index), False)

    def _finish(self, chunk: dict, choice: int, calls: list) -> list[dict]:
        """The filler chunks for `choice`, which `chunk` finishes; its calls are forgotten."""
        empty = [index for (c, index), seen in self._calls.items() if c == choice and not seen]
        for key in [key for key in self._calls if key[0] == choice]:
            del self._calls[key]
        fillers = []
        for index in empty:
            here = next((c for c in calls if isinstance(c, dict) and c.get("index") == index), None)
            if here is not None:  # the call starts in the finish chunk itself
                fn = here.get("function")
                here["function"] = {**(fn if isinstance(fn, dict) else {}), "arguments": "{}"}
                continue
            head = {k: v for k, v in chunk.items() if k not in ("choices", "usage")}
            fillers.append({**head, "choices": [{
                "index": choice, "delta": {"tool_calls": [{"index": index, "function": {"arguments": "{}"}}]},
                "finish_reason": None, "logprobs": None}]})
        return fillers


class SingleChoiceStream(StreamTranslator):
    """A translator whose output is the one-choice chunks of one completion.

    Subclasses set `_id`, `_created` and `_model` (the same in every chunk) and `_started` (False until
    the role chunk went out).
    """

    __slots__ = ()
    _id: str
    _created: int
    _model: str
    _started: bool

    def _chunk(self, delta: dict, finish: str | None = None) -> dict:
        return {"id": self._id, "object": "chat.completion.chunk", "created": self._created, "model": self._model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}

    def _usage_chunk(self, usage: dict) -> dict:
        """The chunk with the usage and no choice that ends a stream (`stream_options.include_usage`)."""
        return {"id": self._id, "object": "chat.completion.chunk", "created": self._created, "model": self._model,
                "choices": [], "usage": usage}

    def _start(self, chunks: list[dict]) -> None:
        """Send the role chunk, once, before anything else."""
        if not self._started:
            self._started = True
            chunks.append(self._chunk({"role": "assistant", "content": ""}))


class Provider:
    """Base class of every wire format. Subclasses set `type`, `default_base_url`, `capabilities`.

    `capabilities` is declared on the class; an instance may narrow it (an OpenAI-compatible preset
    without embeddings). The router reads it from the instance (see `capabilities.py`).
    """

    type: ClassVar[str] = ""
    default_base_url: ClassVar[str | None] = None
    capabilities: Capabilities = Capabilities()
    local: ClassVar[bool] = False  # True: answered in process through `serve_local`

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self.base_url = (settings.base_url or self.default_base_url or "").rstrip("/")
        self.drop_params = drop_params(settings.options, f"providers.{settings.name}.options")

    # -- chat -------------------------------------------------------------------------------
    def chat_request(self, body: dict, model: str, api_key: str | None, stream: bool) -> HttpRequest:
        raise NotImplementedError

    def chat_response(self, body: bytes, model: str) -> dict:
        raise NotImplementedError

    def chat_stream(self, model: str) -> StreamTranslator:
        raise NotImplementedError

    def output_limit(self, body: dict, model: str) -> int | None:
        """The most output tokens (reasoning included) this request lets the vendor bill, as the
        request would be sent; None when the request sets no bound. Never raises."""
        value = body.get("max_completion_tokens") or body.get("max_tokens")
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None

    # -- a face's own dialect ---------------------------------------------------------------
    def speaks(self, dialect: str) -> bool:
        """Whether this vendor's API is `dialect` (a face's wire format, e.g. "anthropic.messages"), so
        a request in it can be forwarded as it is instead of translated twice."""
        return False

    def native_request(self, dialect: str, body: dict, model: str, api_key: str | None, stream: bool,
                       headers: Mapping[str, str]) -> HttpRequest:
        """A request already in the vendor's own dialect, forwarded with only the model (and the stream
        flag) set: every member kept, `headers` (the client's dialect headers) forwarded. Only called
        when `speaks(dialect)`; the answer is relayed as the vendor sends it."""
        raise NotImplementedError

    def native_response(self, dialect: str, body: bytes, model: str) -> dict:
        """A whole answer in `dialect`, read as the canonical `chat.completion` (for accounting and the
        cache; the client gets the bytes). The vendor's chat reader by default: its own dialect."""
        return self.chat_response(body, model)

    def native_stream(self, dialect: str, model: str) -> StreamTranslator:
        """The reader of a stream in `dialect` (see `native_response`)."""
        return self.chat_stream(model)

    # -- embeddings -------------------------------------------------------------------------
    def embeddings_request(self, body: dict, model: str, api_key: str | None) -> HttpRequest:
        """Only reached for a provider without `capabilities.embeddings` when the router did not refuse first."""
        raise unsupported_error(self.name, "model", "embeddings")

    def embeddings_response(self, body: bytes, model: str, headers: Mapping[str, str] | None = None) -> dict:
        """`headers` are the vendor's response headers (some report token counts only there)."""
        raise NotImplementedError

    # -- errors -----------------------------------------------------------------------------
    def error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        """Classify a non-2xx vendor response. The default reads OpenAI-style error bodies."""
        message, code, param, etype = _read_error_body(body)
        kind = kind_for_status(status)
        if kind is ErrorKind.BAD_REQUEST and is_context_window(message, code, etype):
            kind = ErrorKind.CONTEXT_WINDOW
        elif kind is ErrorKind.BAD_REQUEST and code == "content_filter":
            kind = ErrorKind.CONTENT_POLICY
        if not message:
            message = f"upstream returned HTTP {status}"
        return UpstreamError(kind, f"{self.name}: {message}", upstream_status=status, code=code or etype,
                             param=param, retry_after=parse_retry_after(headers))

    # -- in-process providers ---------------------------------------------------------------
    def serve_local(self, request: HttpRequest) -> LocalReply:
        raise NotImplementedError


def _read_error_body(body: bytes) -> tuple[str | None, str | None, str | None, str | None]:
    """(message, code, param, type) from `{"error": {...}}`, `{"error": "..."}`, `{"message": ...}` or
    `{"detail": ...}` (Mistral, and FastAPI servers: a string, or a list of `{"loc", "msg"}`)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body[:200].decode("utf-8", "replace").strip()
        return (f"non-JSON error body: {text}" if text else None), None, None, None
    if isinstance(data, list) and data and isinstance(data[0], dict):  # Gemini-style list wrapper
        data = data[0]
    if not isinstance(data, dict):
        return None, None, None, None
    err = data.get("error", data)
    if isinstance(err, str):
        return err, None, None, None
    if not isinstance(err, dict):
        return None, None, None, None
    message = _message_text(err.get("message")) or _message_text(err.get("detail"))
    code = err.get("code")
    return (
        message,
        str(code) if code is not None else None,
        err.get("param") if isinstance(err.get("param"), str) else None,
        err.get("type") if isinstance(err.get("type"), str) else None,
    )


def _message_text(value: object) -> str | None:
    """The text of an error's `message` or `detail`: a string as it is; a validation list (`[{"loc",
    "msg"}]`) as each `msg` joined, so no field's complaint is dropped; an object wrapping one
    (Mistral's 422 `{"message": {"detail": [...]}}`) by its `detail`."""
    if isinstance(value, dict):
        value = value.get("detail")
    if isinstance(value, str):
        return value or None
    if not isinstance(value, list):
        return None
    parts = [item["msg"] for item in value if isinstance(item, dict) and isinstance(item.get("msg"), str)]
    return "; ".join(parts) or None


def invalid_response(provider: str, detail: str) -> UpstreamError:
    """A 2xx body that does not parse as the wire format promises."""
    return UpstreamError(ErrorKind.INVALID_RESPONSE, f"{provider}: invalid upstream response: {detail}",
                         code="invalid_upstream_response")


def load_json(provider: str, body: bytes) -> Any:
    """Parse a vendor body, turning garbage (HTML, truncated JSON) into an `INVALID_RESPONSE` error."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise invalid_response(provider, f"body is not JSON ({exc.msg})") from None


def json_body(obj: Any) -> bytes:
    return orjson.dumps(obj)


def chat_completion(model: str, text: list[str], tool_calls: list[dict], reasoning: list[str], finish: str | None,
                    usage: dict | None, completion_id: str | None = None) -> dict:
    """A one-choice `chat.completion` from the text parts, tool calls and reasoning parts of a vendor reply.

    The content is None only when the reply is tool calls and no text; `completion_id` defaults to a fresh one.
    """
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not tool_calls else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    result: dict[str, Any] = {
        "id": completion_id or f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion",
        "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}]}
    if usage is not None:
        result["usage"] = usage
    return result


def cached_prompt_usage(uncached: int, read: int, written: int, written_1h: int, completion: int) -> dict:
    """OpenAI usage for a vendor whose input count leaves cache reads and writes out (Anthropic,
    Bedrock): the prompt is all three. Reads are `cached_tokens`; writes are `cache_creation_tokens`, so
    billing prices them at the write rate rather than twice or not at all; the part of the writes kept
    for an hour (dearer than the default five minutes) is `cache_creation_1h_tokens`, present only when
    there is one. The pricer reads it as a part of the writes, so it stays in `cache_creation_tokens` too.
    """
    prompt = uncached + read + written
    details = {"cached_tokens": read, "cache_creation_tokens": written}
    if written_1h:
        details["cache_creation_1h_tokens"] = min(written_1h, written)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": details}


def embedding_list(model: str, vectors: list, prompt_tokens: int) -> dict:
    """The embeddings `list` object: one `embedding` per vector, in input order."""
    return {"object": "list", "model": model,
            "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}}
