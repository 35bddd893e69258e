"""A fake Anthropic Messages API: `POST /{upstream}/v1/messages`, scripted per test.

Point a router provider at `fake.base_url(name)` (`fake.provider(name)` gives the whole config).
Every request must carry `x-api-key` (one of `fake.keys`, else 401 `authentication_error`) and
`anthropic-version: 2023-06-01`, and its body must validate against the anthropic SDK's
`MessageCreateParams` types (lazy iterables forced, unknown members refused: the same check as the
provider tests', `support.vendor_schemas`) and the API rules
those types cannot express: `max_tokens` present, non-empty text blocks, a `thinking` budget below
`max_tokens`, every `tool_result` answering a `tool_use` of the assistant turn just before it and
every `tool_use` answered before the next assistant turn, every replayed thinking block signed by
this fake, and (with thinking on) a final assistant turn that used a tool opening with a thinking
block. A failing request is answered 400
`invalid_request_error` and recorded in `fake.problems` (see `fakes.base`).

Behaviours:
  Message(...)   a `message`: JSON, or when the request says `stream: true` the SSE events
                 (`event:` + `data:` lines, `ping`s included); `stream=Stream(cut_after=...)` or
                 `error_after` break it
  Fail(status)   an Anthropic error body (type from the status: 529 -> overloaded_error, ...)
Content blocks for `Message(content=[...])`: `text`, `tool_use`, `thinking`, `redacted`, and the blocks
of a server tool run at Anthropic, `server_tool_use` and `web_search_result`. Streamed tool input starts
with an empty `input_json_delta`, as Anthropic's does, and a tool called without input sends only that.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
import pydantic
from aiohttp import web
from anthropic._constants import ANTHROPIC_API_VERSION
from support.vendor_schemas import ANTHROPIC_EVENT, ANTHROPIC_MESSAGE, anthropic_request_problems

from .base import FakeVendor, Received, Stream, VendorRejected, json_response, next_id, signature, split
from .openai_upstream import SECRET

VERSION = "2023-06-01"
# The versions the fake answers: the one the router's translator sends, and the one the installed
# anthropic SDK sends (relayed as it is when the Messages face forwards a request).
VERSIONS = frozenset({VERSION, ANTHROPIC_API_VERSION})
DEFAULT_USAGE = {"input_tokens": 21, "cache_creation_input_tokens": 30, "cache_read_input_tokens": 100,
                 "output_tokens": 9}
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
                403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                429: "rate_limit_error", 500: "api_error", 503: "api_error", 504: "timeout_error",
                529: "overloaded_error"}


# -- content blocks -------------------------------------------------------------------------------
def text(value: str) -> dict:
    return {"type": "text", "text": value}


def tool_use(name: str, arguments: dict, id: str | None = None) -> dict:
    return {"type": "tool_use", "id": id or f"toolu_01Fake{next_id():04d}", "name": name, "input": arguments}


def thinking(value: str, sig: str | None = None) -> dict:
    return {"type": "thinking", "thinking": value, "signature": sig or signature("claude")}


def server_tool_use(name: str, arguments: dict, id: str | None = None) -> dict:
    """A server tool's call (web search, web fetch, code execution): Anthropic runs it itself."""
    return {"type": "server_tool_use", "id": id or f"srvtoolu_01Fake{next_id():04d}", "name": name,
            "input": arguments}


def web_search_result(tool_use_id: str, *pages: tuple[str, str]) -> dict:
    """The `web_search_tool_result` block answering `tool_use_id`: one result per (url, title)."""
    return {"type": "web_search_tool_result", "tool_use_id": tool_use_id, "content": [
        {"type": "web_search_result", "url": url, "title": title, "encrypted_content": signature("page"),
         "page_age": "April 30, 2025"} for url, title in pages]}


def redacted(data: str | None = None) -> dict:
    return {"type": "redacted_thinking", "data": data or signature("redacted")}


def error_body(status: int, etype: str | None = None, message: str | None = None) -> dict:
    etype = etype or _ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": etype, "message": message or f"fake {etype}"},
            "request_id": f"req_fake{next_id()}"}


def _frame(event: dict) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


# -- behaviours ------------------------------------------------------------------------------------
@dataclass
class Message:
    """A successful reply. Streams split text, thinking and tool arguments into `pieces` deltas."""

    content: list[dict] = field(default_factory=lambda: [text("Hello from Claude.")])
    stop_reason: str | None = None  # default: tool_use when a tool was used, else end_turn
    stop_sequence: str | None = None
    usage: dict = field(default_factory=lambda: dict(DEFAULT_USAGE))
    model: str | None = None  # default: the requested model
    pieces: int = 3
    delay_s: float = 0.0
    stream: Stream = field(default_factory=Stream)
    error_after: int | None = None  # stream: an `error` event after this many events
    error: dict = field(default_factory=lambda: {"type": "overloaded_error", "message": "Overloaded"})

    def message(self, model: str) -> dict:
        reason = self.stop_reason or ("tool_use" if any(b["type"] == "tool_use" for b in self.content)
                                      else "end_turn")
        return {"id": f"msg_01Fake{next_id():06d}", "type": "message", "role": "assistant", "model": model,
                "content": self.content, "stop_reason": reason, "stop_sequence": self.stop_sequence,
                "usage": self.usage}

    def events(self, whole: dict) -> list[dict]:
        usage = whole["usage"]
        start = {**whole, "content": [], "stop_reason": None, "stop_sequence": None,
                 "usage": {**usage, "output_tokens": 1}}
        out: list[dict] = [{"type": "message_start", "message": start}, {"type": "ping"}]
        for i, block in enumerate(whole["content"]):
            kind = block["type"]
            opening = {"text": {"type": "text", "text": ""},
                       "thinking": {"type": "thinking", "thinking": "", "signature": ""},
                       "tool_use": {**block, "input": {}},
                       "server_tool_use": {**block, "input": {}}}.get(kind, block)
            out.append({"type": "content_block_start", "index": i, "content_block": opening})
            if kind == "text":
                deltas = [{"type": "text_delta", "text": p} for p in split(block["text"], self.pieces)]
            elif kind == "thinking":
                deltas = [{"type": "thinking_delta", "thinking": p} for p in split(block["thinking"], self.pieces)]
                deltas.append({"type": "signature_delta", "signature": block["signature"]})
            elif kind in ("tool_use", "server_tool_use"):
                pieces = split(orjson.dumps(block["input"]).decode(), self.pieces) if block["input"] else []
                deltas = [{"type": "input_json_delta", "partial_json": p} for p in ["", *pieces]]
            else:
                deltas = []
            out += [{"type": "content_block_delta", "index": i, "delta": d} for d in deltas]
            out.append({"type": "content_block_stop", "index": i})
            if i == 0:
                out.append({"type": "ping"})
        out.append({"type": "message_delta", "delta": {"stop_reason": whole["stop_reason"],
                                                       "stop_sequence": whole["stop_sequence"]},
                    "usage": {"output_tokens": usage["output_tokens"]}})
        out.append({"type": "message_stop"})
        return out

    async def __call__(self, fake: FakeAnthropic, request: web.Request, received: Received) -> web.StreamResponse:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        whole = self.message(self.model or received.body["model"])
        for block in self.content:  # what the fake issued, so replays can be checked
            if block["type"] == "thinking":
                fake.signatures.add(block["signature"])
            elif block["type"] == "redacted_thinking":
                fake.signatures.add(block["data"])
        fake.vet(ANTHROPIC_MESSAGE, whole, "reply")
        if not received.stream:
            return json_response(whole)
        events = self.events(whole)
        for event in events:
            if event["type"] != "ping":  # not in the SDK's event union, which skips it too
                fake.vet(ANTHROPIC_EVENT, event, "stream event")
        error = None
        if self.error_after is not None:
            events = events[:self.error_after]
            error = _frame({"type": "error", "error": self.error})
        return await self.stream.send(fake, request, [_frame(e) for e in events], error)


@dataclass
class Fail:
    """An Anthropic error response."""

    status: int
    type: str | None = None
    message: str | None = None
    retry_after: str | None = None

    async def __call__(self, fake: FakeAnthropic, request: web.Request, received: Received) -> web.Response:
        body = error_body(self.status, self.type, self.message)
        headers = {"request-id": body["request_id"]}
        if self.retry_after is not None:
            headers["retry-after"] = self.retry_after
        return json_response(body, self.status, headers)


# -- the server ------------------------------------------------------------------------------------
class FakeAnthropic(FakeVendor):
    def __init__(self, keys: tuple[str, ...] = (SECRET,)) -> None:
        super().__init__()
        self.keys = set(keys)
        self.signatures: set[str] = set()  # thinking signatures and redacted data issued so far

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{upstream}/v1/{endpoint:.+}", self._handle)
        return app

    def base_url(self, upstream: str) -> str:
        return f"{self.url}/{upstream}"

    def provider(self, upstream: str, **overrides: Any) -> dict:
        """Router config of an `anthropic` provider served here as `upstream` (no retries by default)."""
        return {"type": "anthropic", "base_url": self.base_url(upstream), "keys": [{"value": SECRET}],
                "max_retries": 0, **overrides}

    def default(self, received: Received) -> Message:
        return Message()

    def vet(self, adapter: pydantic.TypeAdapter, obj: Any, what: str) -> None:
        """Record a scripted reply that is not a real Anthropic shape (a bug in the test, not the router)."""
        try:
            adapter.validate_python(obj)
        except pydantic.ValidationError as exc:
            self.problems.append(f"scripted {what} is not valid Anthropic: {exc}")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await self.read_body(request)
        stream = isinstance(body, dict) and body.get("stream") is True
        headers = {k.lower(): v for k, v in request.headers.items()}
        received = Received(request.match_info["upstream"], request.path, dict(request.query), headers, body,
                            stream=stream)
        if request.method != "POST" or request.match_info["endpoint"] != "messages":
            self.requests.append(received)
            self.problems.append(f"unexpected {request.method} {request.path}")
            return json_response(error_body(404, message=f"Not found: {request.path}"), 404)
        return await self.dispatch(request, received)

    # -- what the real API would refuse ---------------------------------------------------------
    async def check(self, request: web.Request, received: Received) -> None:
        headers = received.headers
        if headers.get("x-api-key") not in self.keys:
            raise VendorRejected("bad x-api-key", json_response(
                error_body(401, message="invalid x-api-key"), 401))
        if headers.get("anthropic-version") not in VERSIONS:
            _reject(f"anthropic-version header is {headers.get('anthropic-version')!r}, not one of {sorted(VERSIONS)}")
        if not headers.get("content-type", "").startswith("application/json"):
            _reject("content-type is not application/json")
        problems = anthropic_request_problems(received.body, received.stream)
        if problems:
            _reject("; ".join(problems))
        body = received.body
        max_tokens = body.get("max_tokens")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            _reject("max_tokens: Field required (a positive integer)")
        thinking_on = (body.get("thinking") or {}).get("type") in ("enabled", "adaptive")
        budget = (body.get("thinking") or {}).get("budget_tokens")
        if budget is not None and not 1024 <= budget < max_tokens:
            _reject("thinking.budget_tokens: must be >= 1024 and less than max_tokens")
        self._check_turns(body["messages"], thinking_on)

    def _check_turns(self, messages: list[dict], thinking_on: bool) -> None:
        pending: set[str] = set()
        last_assistant = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
        for i, msg in enumerate(messages):
            blocks = msg["content"] if isinstance(msg["content"], list) else [text(msg["content"])]
            for block in blocks:
                if block.get("type") == "text" and not block.get("text", "").strip():
                    _reject(f"messages.{i}: text content blocks must contain non-whitespace text")
                if block.get("type") in ("thinking", "redacted_thinking"):
                    sig = block.get("signature") if block["type"] == "thinking" else block.get("data")
                    if sig not in self.signatures:
                        _reject(f"messages.{i}.content: Invalid `signature` in `{block['type']}` block")
            results = {b["tool_use_id"] for b in blocks if b.get("type") == "tool_result"}
            if msg["role"] == "user":
                if results - pending:
                    _reject(f"messages.{i}: unexpected `tool_use_id` found in `tool_result` blocks: "
                            f"{sorted(results - pending)}. Each `tool_result` block must have a corresponding "
                            "`tool_use` block in the previous message.")
                if pending - results:
                    _reject(f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately "
                            f"after: {sorted(pending - results)}")
                pending = set()
                continue
            if pending:
                _reject(f"messages.{i}: `tool_use` ids without `tool_result`: {sorted(pending)}")
            pending = {b["id"] for b in blocks if b.get("type") == "tool_use"}
            if (thinking_on and pending and i == last_assistant
                    and blocks[0].get("type") not in ("thinking", "redacted_thinking")):
                _reject(f"messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
                        f"`{blocks[0].get('type')}`. When `thinking` is enabled, a final `assistant` message "
                        "must start with a thinking block.")


def _reject(problem: str) -> None:
    raise VendorRejected(problem, json_response(error_body(400, message=problem), 400))
