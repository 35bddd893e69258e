"""A fake Cohere v2 API: `POST /v2/chat` (JSON or SSE) and `POST /v2/embed`, scripted per test.

Streams are Cohere's SSE: an `event: <type>` line and a `data: {...}` line per event (message-start,
content-*, tool-plan-delta, tool-call-*, message-end). Errors are Cohere's `{"id", "message"}` bodies
with its statuses (including 498/499). Auth is `Authorization: Bearer <key>` (401 otherwise).

Every received body is validated against the cohere SDK's own request types, strictly: the parameters
of `RawV2Client.chat` / `.embed`, the SDK's literal enums (its forward-compatible `Any` arm dropped),
and no unknown keys on any message, part or tool (the SDK models allow extras, so they are hunted for;
the provider tests' check too, `support.vendor_schemas`).
On top, the conversation rule Cohere enforces: every assistant tool call is answered by a `tool`
message with its id. A body that fails gets Cohere's 400 and lands in `fake.problems`. The fake's own
replies and stream events are validated with the SDK's response types, so they cannot drift.

For each endpoint (`chat`, `embed`) a test queues behaviours; each request takes the next one, else the
default (`Reply()` / `Embed()`) answers. Every request is recorded in `fake.requests`.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
import pydantic
from aiohttp import web
from cohere.types import EmbedByTypeResponse
from cohere.v2.types import V2ChatResponse, V2ChatStreamResponse
from support.vendor_schemas import cohere_chat_problems, cohere_embed_problems

from .base import FakeVendor, VendorRejected, json_response, send_body, split, vector, words

API_KEY = "co-SECRET-cohere-api-key"  # the Cohere key routers get; must never leak
MODEL = "command-a-03-2025"
EMBED_MODEL = "embed-v4.0"
DEFAULT_USAGE = {"billed_units": {"input_tokens": 12, "output_tokens": 5},
                 "tokens": {"input_tokens": 80, "output_tokens": 5}}
_STREAM_EVENT = pydantic.TypeAdapter(V2ChatStreamResponse)


# -- validation -----------------------------------------------------------------------------------
def chat_problems(body: Any) -> list[str]:
    """Everything Cohere would reject in a `/v2/chat` body."""
    problems = cohere_chat_problems(body)
    if problems:
        return problems
    pending: set[str] = set()
    for i, msg in enumerate(body["messages"]):
        if msg["role"] == "tool":
            if msg["tool_call_id"] not in pending:
                problems.append(f"messages[{i}]: tool result for unknown call {msg['tool_call_id']!r}")
            pending.discard(msg["tool_call_id"])
            continue
        if pending:
            problems.append(f"messages[{i}]: tool calls {sorted(pending)} were never answered")
        pending = {c.get("id") for c in msg.get("tool_calls") or []} if msg["role"] == "assistant" else set()
    return problems


# -- behaviours -----------------------------------------------------------------------------------
@dataclass
class Received:
    endpoint: str
    headers: dict[str, str]
    body: Any


def _sse(event: dict) -> bytes:
    _STREAM_EVENT.validate_python(event)  # the fake's own events must be what the SDK parses
    return f"event: {event['type']}\n".encode() + b"data: " + orjson.dumps(event) + b"\n\n"


@dataclass
class Reply:
    """A Cohere chat answer; SSE events when the request says `stream: true`.

    `tool_calls` are `(name, arguments_json)` pairs (ids `<name>_<i>abc`), `tool_plan` is the text Cohere
    sends with them. A stream's `tool-call-start` carries `arguments: ""` and the arguments follow in
    `tool-call-delta`s: none for empty arguments (a tool without parameters). `finish_reason` defaults
    to TOOL_CALL/COMPLETE; ERROR/TIMEOUT send `error`. In a stream, `cut_after=N` ends after N events
    (`abort` closes the socket, else the body ends cleanly), and `pause_s` waits before the last event
    sent (so the ones ahead reach the router in an earlier read).
    """

    text: str | None = "Hello from Cohere."
    tool_calls: list[tuple[str, str]] = field(default_factory=list)
    tool_plan: str | None = None
    finish_reason: str | None = None
    usage: dict = field(default_factory=lambda: {k: dict(v) for k, v in DEFAULT_USAGE.items()})
    error: str | None = None
    cut_after: int | None = None
    abort: bool = True
    delay_s: float = 0.0
    pause_s: float = 0.0

    def _finish(self) -> str:
        return self.finish_reason or ("TOOL_CALL" if self.tool_calls else "COMPLETE")

    def _calls(self) -> list[dict]:
        return [{"id": f"{name}_{i}abc", "type": "function", "function": {"name": name, "arguments": args}}
                for i, (name, args) in enumerate(self.tool_calls)]

    def body(self) -> dict:
        message: dict[str, Any] = {"role": "assistant"}
        if self.text and not self.tool_calls:
            message["content"] = [{"type": "text", "text": self.text}]
        if self.tool_calls:
            message["tool_calls"] = self._calls()
            if self.tool_plan:
                message["tool_plan"] = self.tool_plan
        out = {"id": str(uuid.uuid4()), "finish_reason": self._finish(), "message": message, "usage": self.usage}
        V2ChatResponse.model_validate(out)
        return out

    def events(self) -> list[bytes]:
        out = [_sse({"type": "message-start", "id": str(uuid.uuid4()), "delta": {"message": {
            "role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}})]
        if self.tool_calls:
            if self.tool_plan:
                out += [_sse({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": p}}})
                        for p in split(self.tool_plan, 2)]
            for i, call in enumerate(self._calls()):
                start = {**call, "function": {"name": call["function"]["name"], "arguments": ""}}
                out.append(_sse({"type": "tool-call-start", "index": i, "delta": {"message": {"tool_calls": start}}}))
                out += [_sse({"type": "tool-call-delta", "index": i, "delta": {"message": {"tool_calls": {
                    "function": {"arguments": f}}}}}) for f in split(call["function"]["arguments"], 3) if f]
                out.append(_sse({"type": "tool-call-end", "index": i}))
        elif self.text:
            out.append(_sse({"type": "content-start", "index": 0, "delta": {"message": {"content": {
                "type": "text", "text": ""}}}}))
            out += [_sse({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": p}}}})
                    for p in words(self.text)]
            out.append(_sse({"type": "content-end", "index": 0}))
        end: dict[str, Any] = {"finish_reason": self._finish(), "usage": self.usage}
        if self.error:
            end["error"] = self.error
        out.append(_sse({"type": "message-end", "delta": end}))
        return out

    async def __call__(self, fake: FakeCohere, request: web.Request, rec: Received) -> web.StreamResponse:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if rec.body.get("stream") is not True:
            return json_response(self.body())
        events = self.events()
        if self.cut_after is not None:
            events = events[:self.cut_after]
        pauses = {len(events) - 1: self.pause_s} if self.pause_s else None  # before the last event sent
        return await send_body(request, events, pauses=pauses, abort=self.cut_after is not None and self.abort)


@dataclass
class Fail:
    """A Cohere error: `{"id", "message"}` with the status (plus Retry-After when given)."""

    status: int
    message: str = "internal server error, this has been reported to our developers"
    retry_after: str | None = None

    async def __call__(self, fake: FakeCohere, request: web.Request, rec: Received) -> web.Response:
        return error(self.status, self.message, self.retry_after)


@dataclass
class Embed:
    """`/v2/embed` by type: one float vector per text, billed input tokens in `meta`."""

    dims: int = 4
    tokens_per_text: int = 3

    async def __call__(self, fake: FakeCohere, request: web.Request, rec: Received) -> web.Response:
        texts = rec.body["texts"]
        dims = rec.body.get("output_dimension") or self.dims
        vectors = [vector(i, dims) for i, _ in enumerate(texts)]
        out = {"id": str(uuid.uuid4()), "response_type": "embeddings_by_type", "embeddings": {"float": vectors},
               "texts": texts, "meta": {"api_version": {"version": "2"},
                                        "billed_units": {"input_tokens": self.tokens_per_text * len(texts)}}}
        EmbedByTypeResponse.model_validate(out)
        return json_response(out)


def error(status: int, message: str, retry_after: str | None = None) -> web.Response:
    headers = {"retry-after": retry_after} if retry_after is not None else None
    return json_response({"id": str(uuid.uuid4()), "message": message}, status, headers)


# -- the server -----------------------------------------------------------------------------------
class FakeCohere(FakeVendor):
    """The scripted server: `await fake.start()`, point a provider at `fake.provider()`, `await fake.close()`."""

    def __init__(self, api_key: str = API_KEY) -> None:
        super().__init__()
        self.api_key = api_key

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v2/{endpoint:chat|embed}", self._handle)
        return app

    def provider(self, **overrides: Any) -> dict:
        """Router config of a `cohere` provider served here (no retries by default)."""
        return {"type": "cohere", "base_url": self.url, "keys": [{"value": self.api_key}], "max_retries": 0,
                **overrides}

    def queue(self, *behaviours: Any, endpoint: str = "chat") -> None:
        self._queues[endpoint].extend(behaviours)

    def calls(self, endpoint: str | None = None) -> list[Received]:
        return [r for r in self.requests if endpoint is None or r.endpoint == endpoint]

    def queue_key(self, rec: Received) -> str:
        return rec.endpoint

    def default(self, rec: Received) -> Any:
        return Reply() if rec.endpoint == "chat" else Embed()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        rec = Received(request.match_info["endpoint"], dict(request.headers), await self.read_body(request))
        return await self.dispatch(request, rec)

    async def check(self, request: web.Request, rec: Received) -> None:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            raise VendorRejected("bad api key", error(401, "invalid api token"), record=False)
        if isinstance(rec.body, bytes):
            raise VendorRejected("body is not JSON", error(
                400, "invalid request: could not parse the request body as JSON"), record=False)
        problems = chat_problems(rec.body) if rec.endpoint == "chat" else cohere_embed_problems(rec.body)
        if problems:
            raise VendorRejected("; ".join(problems), error(400, "invalid request: " + "; ".join(problems)))
