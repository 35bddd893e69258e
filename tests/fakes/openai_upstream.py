"""A fake OpenAI-compatible vendor: OpenAI's exact wire format, scripted per test.

One aiohttp server stands in for any number of upstreams: upstream `name` lives under
`/{name}/v1/...`, so a router provider points at `fake.base_url(name)`. For each (upstream,
endpoint) a test queues behaviours; each request takes the next one, and when the queue is empty
the default (a plain success) answers. Every request is recorded (`fake.requests`, `fake.calls()`)
so tests can assert what the router sent; `check_chat_request` (from `support.vendor_schemas`)
validates a recorded chat body with the openai SDK's own param types. `fake.aborted` is set when a
behaviour is cut short because the router hung up (a cancelled handler or a failed write);
`fake.completed` counts behaviours that ran to the end (see `fakes.base`). A "refused" upstream is
not served here: use a free port nobody listens on.

Behaviours:
  Reply(...)            success; JSON, or an SSE stream when the request says `stream: true`
                        (`cut_after` / `error_after` / `malformed_after` / `stall_after` /
                        `chunk_delay_s` / `one_write` shape the stream; `delay_s` stalls before
                        the headers)
  Fail(status, ...)     an OpenAI error body with that status (+ optional Retry-After,
                        retry-after-ms, extra headers); `Fail(200)` is a 200 whose body is an error
  Html(status)          an HTML error page
  Truncated()           200 with a JSON body cut in half (the transfer itself is complete)
  Drop()                the connection closes before any response header
  Gate(open, then)      waits until the event `open` is set, then answers with `then`
  Embeddings(...)       an embeddings list (float or base64, as the request asks)

`fake.aborts` lists the upstream of every behaviour cut short by the router hanging up.
"""

from __future__ import annotations

import asyncio
import base64
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from support.vendor_schemas import check_chat_request as check_chat_request  # re-exported: tests import it here

from .base import Drop as Drop  # re-exported with the other behaviours
from .base import FakeVendor, json_response, send_body, split, vector, words

SECRET = "sk-SECRET-123"  # the provider key routers are configured with for the fake; must never leak
CHAT = "chat/completions"
EMBEDDINGS = "embeddings"

DEFAULT_USAGE = {
    "prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17,
    "prompt_tokens_details": {"cached_tokens": 4, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0,
                                  "rejected_prediction_tokens": 0},
}


@dataclass
class Received:
    """One request the fake received."""

    upstream: str
    endpoint: str
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or the raw bytes when the body is not JSON


def _dumps(obj: Any) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


@dataclass
class Reply:
    """A chat completion. `tool_calls` are `(name, arguments_json)` pairs; `n` copies the choice.

    In a stream, `text` is sent in `pieces` (default: split on spaces, keeping them), each tool call's
    arguments in `arg_pieces` fragments. `cut_after=N` stops after N `data:` events with no finish
    reason and no [DONE] (`abort=True` closes the socket mid-body, else the body ends cleanly);
    `error_after=N` sends an OpenAI error event after N events and ends; `malformed_after=N` sends a
    `data:` line that is not JSON after N events, then the rest; `stall_after=N` goes silent for
    `stall_s` after N events, then sends the rest. `one_write` sends the whole body (the error or
    garbage included) in one write, so the router reads content and fault together.

    Quirks of OpenAI-compatible vendors: `reasoning` is sent as `reasoning_content` (DeepSeek and
    others: whole, or in deltas before the text); `typed_calls=False` leaves `"type": "function"` out of tool
    calls (Mistral), `null_usage=True` puts `"usage": null` on every chunk even when usage was not
    asked for.
    """

    text: str | None = "Hello from the fake."
    tool_calls: list[tuple[str, str]] = field(default_factory=list)
    n: int = 1
    usage: dict | None = field(default_factory=lambda: dict(DEFAULT_USAGE))
    finish_reason: str | None = None
    model: str | None = None  # default: the model the request named
    pieces: list[str] | None = None
    arg_pieces: int = 3
    delay_s: float = 0.0  # before the response headers
    chunk_delay_s: float = 0.0
    cut_after: int | None = None
    abort: bool = True
    error_after: int | None = None
    malformed_after: int | None = None
    stall_after: int | None = None
    stall_s: float = 0.0
    one_write: bool = False
    typed_calls: bool = True
    null_usage: bool = False
    reasoning: str | None = None  # `reasoning_content`, as DeepSeek and other compatible servers send it
    error: dict = field(default_factory=lambda: {"message": "The server had an error while processing your request.",
                                                 "type": "server_error", "param": None, "code": None})

    def _finish(self) -> str:
        return self.finish_reason or ("tool_calls" if self.tool_calls else "stop")

    def _calls(self) -> list[dict]:
        typed = {"type": "function"} if self.typed_calls else {}
        return [{"id": f"call_{i}abc", **typed, "function": {"name": name, "arguments": args}}
                for i, (name, args) in enumerate(self.tool_calls)]

    def completion(self, model: str) -> dict:
        message: dict[str, Any] = {"role": "assistant", "content": self.text, "refusal": None, "annotations": []}
        if self.tool_calls:
            message["tool_calls"] = self._calls()
        if self.reasoning is not None:
            message["reasoning_content"] = self.reasoning
        choices = [{"index": i, "message": message, "logprobs": None, "finish_reason": self._finish()}
                   for i in range(self.n)]
        out = {"id": "chatcmpl-fake123", "object": "chat.completion", "created": int(time.time()), "model": model,
               "choices": choices, "service_tier": "default", "system_fingerprint": "fp_fake"}
        if self.usage is not None:
            out["usage"] = self.usage
        return out

    def events(self, model: str, include_usage: bool) -> list[bytes]:
        base = {"id": "chatcmpl-fake123", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": model, "service_tier": "default", "system_fingerprint": "fp_fake"}
        if include_usage or self.null_usage:
            base["usage"] = None

        def chunk(index: int, delta: dict, finish: str | None = None) -> bytes:
            choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            return _dumps({**base, "choices": [choice]})

        out: list[bytes] = []
        for i in range(self.n):
            out.append(chunk(i, {"role": "assistant", "content": "" if not self.tool_calls else None,
                                 "refusal": None}))
            if self.reasoning:
                out.extend(chunk(i, {"reasoning_content": p}) for p in words(self.reasoning))
            if self.text and not self.tool_calls:
                out.extend(chunk(i, {"content": p}) for p in self.pieces or words(self.text))
            for k, call in enumerate(self._calls()):
                fn = call["function"]
                head = {k: v for k, v in call.items() if k != "function"}
                out.append(chunk(i, {"tool_calls": [{"index": k, **head,
                                                     "function": {"name": fn["name"], "arguments": ""}}]}))
                out.extend(chunk(i, {"tool_calls": [{"index": k, "function": {"arguments": p}}]})
                           for p in split(fn["arguments"], self.arg_pieces) if p)
            out.append(chunk(i, {}, self._finish()))
        if include_usage and self.usage is not None:
            out.append(_dumps({**base, "choices": [], "usage": self.usage}))
        return out

    async def __call__(self, fake: FakeOpenAI, request: web.Request, received: Received) -> web.StreamResponse:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        body = received.body
        model = self.model or (body.get("model") if isinstance(body, dict) else None) or "gpt-4o-mini"
        if not (isinstance(body, dict) and body.get("stream") is True):
            return web.json_response(self.completion(model), dumps=lambda o: orjson.dumps(o).decode())
        options = body.get("stream_options") or {}
        events = self.events(model, options.get("include_usage") is True)
        tail = [b"data: [DONE]\n\n"]
        if self.cut_after is not None:
            events, tail = events[:self.cut_after], []
        elif self.error_after is not None:
            events, tail = events[:self.error_after], [_dumps({"error": self.error})]
        if self.malformed_after is not None:
            events.insert(self.malformed_after, MALFORMED_EVENT)
        pauses = {self.stall_after: self.stall_s} if self.stall_after is not None else None
        pieces = [*events, *tail]
        if self.one_write:
            pieces = [b"".join(pieces)]
        return await send_body(request, pieces, delay_s=self.chunk_delay_s, pauses=pauses,
                               abort=self.cut_after is not None and self.abort)


MALFORMED_EVENT = b'data: {"id": "chatcmpl-fake123", "choices": [{"delta": {"content": "oops\n\n'


@dataclass
class Fail:
    """An OpenAI error response."""

    status: int
    message: str = "The server is overloaded or not ready yet."
    type: str | None = None
    code: str | None = None
    param: str | None = None
    retry_after: str | None = None
    retry_after_ms: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    async def __call__(self, fake: FakeOpenAI, request: web.Request, received: Received) -> web.Response:
        etype = self.type or ("invalid_request_error" if self.status < 500 else "server_error")
        if self.status == 429 and self.type is None:
            etype = "requests"
        headers = dict(self.headers)
        if self.retry_after is not None:
            headers["retry-after"] = self.retry_after
        if self.retry_after_ms is not None:
            headers["retry-after-ms"] = self.retry_after_ms
        error = {"message": self.message, "type": etype, "param": self.param, "code": self.code}
        return json_response({"error": error}, self.status, headers)


HTML_PAGE = ("<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway"
             "</h1></center>\r\n<hr><center>cloudflare</center>\r\n" + "<!-- padding -->\r\n" * 200
             + "</body>\r\n</html>\r\n")


@dataclass
class Html:
    status: int = 502

    async def __call__(self, fake: FakeOpenAI, request: web.Request, received: Received) -> web.Response:
        return web.Response(status=self.status, text=HTML_PAGE, content_type="text/html")


@dataclass
class Truncated:
    """200 whose JSON body stops half-way (Content-Length matches, so the transfer is complete)."""

    async def __call__(self, fake: FakeOpenAI, request: web.Request, received: Received) -> web.Response:
        full = orjson.dumps(Reply().completion("gpt-4o-mini"))
        return web.Response(status=200, body=full[:len(full) // 2], content_type="application/json")


@dataclass
class Gate:
    """Hold the request (no header sent) until `open` is set, then answer with `then`."""

    open: asyncio.Event
    then: Any = field(default_factory=Reply)
    timeout_s: float = 10.0

    async def __call__(self, fake: FakeOpenAI, request: web.Request, received: Received) -> web.StreamResponse:
        async with asyncio.timeout(self.timeout_s):
            await self.open.wait()
        return await self.then(fake, request, received)


@dataclass
class Embeddings:
    dims: int = 4

    async def __call__(self, fake: FakeOpenAI, request: web.Request, received: Received) -> web.Response:
        body = received.body
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        data = []
        for i, _ in enumerate(inputs):
            value: Any = vector(i, self.dims)
            if body.get("encoding_format") == "base64":
                value = base64.b64encode(struct.pack(f"<{self.dims}f", *value)).decode()
            data.append({"object": "embedding", "index": i, "embedding": value})
        out = {"object": "list", "data": data, "model": body.get("model"),
               "usage": {"prompt_tokens": 3 * len(inputs), "total_tokens": 3 * len(inputs)}}
        return json_response(out)


class FakeOpenAI(FakeVendor):
    """The scripted server: queues per (upstream, endpoint); no request checks (see `check_chat_request`)."""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{upstream}/v1/{endpoint:.+}", self._handle)
        return app

    def base_url(self, upstream: str) -> str:
        return f"{self.url}/{upstream}/v1"

    def provider(self, upstream: str, **overrides: Any) -> dict:
        """Router config of an `openai`-type provider served here as `upstream` (no retries by default)."""
        return {"type": "openai", "base_url": self.base_url(upstream), "keys": [{"value": SECRET}],
                "max_retries": 0, **overrides}

    @property
    def aborts(self) -> list[str]:
        """The upstream of each behaviour cut short by a hang-up."""
        return [r.upstream for r in self.cut_short]

    def queue(self, upstream: str, *behaviours: Any, endpoint: str = CHAT) -> None:
        """Answer the next requests to `upstream`'s `endpoint` with these behaviours, in order."""
        self._queues[(upstream, endpoint)].extend(behaviours)

    def calls(self, upstream: str | None = None, endpoint: str | None = None) -> list[Received]:
        return [r for r in self.requests
                if (upstream is None or r.upstream == upstream) and (endpoint is None or r.endpoint == endpoint)]

    def queue_key(self, received: Received) -> tuple[str, str]:
        return received.upstream, received.endpoint

    def default(self, received: Received) -> Any:
        if received.endpoint == EMBEDDINGS:
            return Embeddings()
        if received.endpoint == CHAT:
            return Reply()
        return Fail(404, f"Invalid URL (POST /v1/{received.endpoint})", code="unknown_url")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        upstream, endpoint = request.match_info["upstream"], request.match_info["endpoint"]
        return await self.dispatch(request, Received(upstream, endpoint, request.method, request.path,
                                                     dict(request.headers), await self.read_body(request)))
