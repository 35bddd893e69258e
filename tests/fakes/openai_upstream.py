"""A fake OpenAI-compatible vendor: OpenAI's exact wire format, scripted per test.

One aiohttp server stands in for any number of upstreams: upstream `name` lives under
`/{name}/v1/...`, so a router provider points at `fake.base_url(name)`. For each (upstream,
endpoint) a test queues behaviours; each request takes the next one, and when the queue is empty
the default (a plain success) answers. The endpoint is the path after `/v1/`: `CHAT`
("chat/completions", what `fake.queue(name, ...)` fills by default), `EMBEDDINGS`, `RESPONSES`
("responses"); queue for another with `fake.queue(name, ..., endpoint=RESPONSES)`. Any behaviour
below answers any endpoint (`Fail(429)` queued for `RESPONSES` is OpenAI's 429 there too), though
`Reply` writes chat completions and `ResponsesReply` Responses. Every request is recorded
(`fake.requests`, `fake.calls()`) so tests can assert what the router sent.

Checks: chat bodies are not checked on arrival; `check_chat_request` (from `support.vendor_schemas`)
validates a recorded chat body with the openai SDK's own param types. Responses bodies are checked on
arrival: one that fails the SDK's `ResponseCreateParams` (`check_responses_request`), or that replays a
`reasoning` item whose `encrypted_content` this fake did not issue (`fake.encrypted` holds those it
did), is answered 400 `invalid_request_error`, as OpenAI answers, and recorded in `fake.problems` (the
`fake_openai` fixture does not assert that list empty: a test that must see no refusal checks it). A
scripted `ResponsesReply` that is not a valid `Response` or stream event is recorded there too and the
request fails (500).

`fake.aborted` is set when a behaviour is cut short because the router hung up (a cancelled handler
or a failed write); `fake.completed` counts behaviours that ran to the end (see `fakes.base`). A
"refused" upstream is not served here: use a free port nobody listens on.

Behaviours:
  Reply(...)            success; JSON, or an SSE stream when the request says `stream: true`
                        (`cut_after` / `error_after` / `malformed_after` / `stall_after` /
                        `chunk_delay_s` / `one_write` shape the stream; `delay_s` stalls before
                        the headers)
  ResponsesReply(...)   a Responses API success: a `Response`, or its typed event stream
                        (`event:` + `data:` frames) when the request says `stream: true`; text,
                        function calls, a reasoning item, `status="incomplete"`, `error_after`
                        (a `response.failed` event), `stream=Stream(cut_after=...)` for a cut
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
import copy
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import pydantic
from aiohttp import web
from openai.types.responses import Response
from openai.types.responses.response_usage import InputTokensDetails
from support.vendor_schemas import OPENAI_RESPONSE_EVENT, check_responses_request
from support.vendor_schemas import check_chat_request as check_chat_request  # re-exported: tests import it here

from .base import Drop as Drop  # re-exported with the other behaviours
from .base import FakeVendor, Stream, VendorRejected, json_response, next_id, send_body, split, vector, words

SECRET = "sk-SECRET-123"  # the provider key routers are configured with for the fake; must never leak
CHAT = "chat/completions"
EMBEDDINGS = "embeddings"
RESPONSES = "responses"

DEFAULT_USAGE = {
    "prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17,
    "prompt_tokens_details": {"cached_tokens": 4, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0,
                                  "rejected_prediction_tokens": 0},
}

# Responses usage: 12 input tokens (4 cached), 5 output. `cache_write_tokens` only where the installed
# SDK's type requires it.
_CACHE_WRITE = ({"cache_write_tokens": 0} if InputTokensDetails.model_fields.get("cache_write_tokens")
                and InputTokensDetails.model_fields["cache_write_tokens"].is_required() else {})
DEFAULT_RESPONSES_USAGE = {
    "input_tokens": 12, "input_tokens_details": {"cached_tokens": 4, **_CACHE_WRITE},
    "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 17,
}
ENCRYPTED_INCLUDE = "reasoning.encrypted_content"


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



def _error(message: str, etype: str = "invalid_request_error", param: str | None = None,
           code: str | None = None) -> dict:
    return {"error": {"message": message, "type": etype, "param": param, "code": code}}


def _frame(event: dict) -> bytes:
    return f"event: {event['type']}\n".encode() + b"data: " + orjson.dumps(event) + b"\n\n"


@dataclass
class ResponsesReply:
    """A Responses API answer (`POST /v1/responses`): a `Response`, or its event stream.

    Output items, in order: a `reasoning` item when `reasoning` is set (its text the one summary part,
    none when empty; an `encrypted_content` issued by the fake when the request's `include` asks for
    "reasoning.encrypted_content"), a `message` with one `output_text` part when `text` is not None,
    then one `function_call` per `tool_calls` `(name, arguments_json)`. Ids: `resp_fake…`, `rs_fake…`,
    `msg_fake…`, `fc_fake…`, call ids `call_fake…`. `status="incomplete"` ends with
    `incomplete_details.reason = incomplete_reason` (the message item incomplete too) and, streamed,
    `response.incomplete`. `model` defaults to the request's; request settings (instructions, tools,
    tool_choice, text, temperature, ...) are echoed as OpenAI echoes them.

    Streamed (`stream: true`): `response.created`, `response.in_progress`, per item
    `response.output_item.added`, its part / delta / done events (text in `pieces`, default split on
    spaces; arguments in `arg_pieces` fragments; the reasoning summary by words), and
    `response.output_item.done`, then `response.completed` (or `.incomplete`); `sequence_number` counts
    from 0. `error_after=N` sends a `response.failed` (with `error`) after N events and ends;
    `stream=Stream(cut_after=N, ...)` cuts the body (see `fakes.base.Stream`). Every body and event is
    validated with the openai SDK's types before it is sent.
    """

    text: str | None = "Hello from the fake."
    tool_calls: list[tuple[str, str]] = field(default_factory=list)
    reasoning: str | None = None
    usage: dict | None = field(default_factory=lambda: copy.deepcopy(DEFAULT_RESPONSES_USAGE))
    status: str = "completed"  # or "incomplete"
    incomplete_reason: str = "max_output_tokens"  # or "content_filter"
    model: str | None = None  # default: the model the request named
    pieces: list[str] | None = None
    arg_pieces: int = 3
    delay_s: float = 0.0  # before the response headers
    error_after: int | None = None
    error: dict = field(default_factory=lambda: {"code": "server_error",
                                                 "message": "The server had an error while processing your request."})
    stream: Stream = field(default_factory=Stream)

    def response(self, fake: FakeOpenAI, body: dict) -> dict:
        """The whole `Response` (what a non-streamed request gets, and `response.completed` carries)."""
        n = next_id()
        incomplete = self.status == "incomplete"
        output: list[dict] = []
        if self.reasoning is not None:
            item: dict[str, Any] = {"id": f"rs_fake{n}", "type": "reasoning",
                                    "summary": [{"type": "summary_text", "text": self.reasoning}] if self.reasoning
                                    else []}
            if ENCRYPTED_INCLUDE in (body.get("include") or []):
                item["encrypted_content"] = fake.issue_encrypted()
            output.append(item)
        if self.text is not None:
            output.append({"id": f"msg_fake{n}", "type": "message", "role": "assistant",
                           "status": "incomplete" if incomplete else "completed",
                           "content": [{"type": "output_text", "text": self.text, "annotations": [], "logprobs": []}]})
        output.extend({"id": f"fc_fake{n}_{i}", "type": "function_call", "status": "completed",
                       "call_id": f"call_fake{n}_{i}", "name": name, "arguments": args}
                      for i, (name, args) in enumerate(self.tool_calls))
        reasoning = body.get("reasoning") or {}
        tools = [{"description": None, "strict": True, **t} if t.get("type") == "function" else t
                 for t in body.get("tools") or []]
        return {
            "id": f"resp_fake{n}", "object": "response", "created_at": int(time.time()),
            "status": self.status, "background": False, "error": None,
            "incomplete_details": {"reason": self.incomplete_reason} if incomplete else None,
            "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": body.get("max_tool_calls"), "model": self.model or body.get("model") or "gpt-4o-mini",
            "output": output, "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
            "service_tier": "default", "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0), "text": body.get("text") or {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"), "tools": tools, "top_logprobs": 0,
            "top_p": body.get("top_p", 1.0), "truncation": body.get("truncation", "disabled"),
            "usage": self.usage, "user": body.get("user"), "metadata": body.get("metadata") or {},
        }

    def events(self, whole: dict) -> list[dict]:
        """The stream of `whole`, without sequence numbers (`error_after` not applied)."""
        pending = {**whole, "status": "in_progress", "output": [], "usage": None, "incomplete_details": None}
        out: list[dict] = [{"type": "response.created", "response": pending},
                           {"type": "response.in_progress", "response": pending}]
        for index, item in enumerate(whole["output"]):
            at = {"item_id": item["id"], "output_index": index}
            kind = item["type"]
            if kind == "reasoning":
                out.append({"type": "response.output_item.added", "output_index": index,
                            "item": {"id": item["id"], "type": "reasoning", "summary": []}})
                for k, part in enumerate(item["summary"]):
                    empty, where = {"type": "summary_text", "text": ""}, {**at, "summary_index": k}
                    out.append({"type": "response.reasoning_summary_part.added", **where, "part": empty})
                    out.extend({"type": "response.reasoning_summary_text.delta", **where, "delta": p}
                               for p in words(part["text"]) if p)
                    out.append({"type": "response.reasoning_summary_text.done", **where, "text": part["text"]})
                    out.append({"type": "response.reasoning_summary_part.done", **where, "part": part})
            elif kind == "message":
                out.append({"type": "response.output_item.added", "output_index": index,
                            "item": {**item, "status": "in_progress", "content": []}})
                for k, part in enumerate(item["content"]):
                    where = {**at, "content_index": k}
                    out.append({"type": "response.content_part.added", **where, "part": {**part, "text": ""}})
                    out.extend({"type": "response.output_text.delta", **where, "delta": p, "logprobs": []}
                               for p in self.pieces or words(part["text"]) if p)
                    out.append({"type": "response.output_text.done", **where, "text": part["text"], "logprobs": []})
                    out.append({"type": "response.content_part.done", **where, "part": part})
            else:  # function_call
                out.append({"type": "response.output_item.added", "output_index": index,
                            "item": {**item, "status": "in_progress", "arguments": ""}})
                out.extend({"type": "response.function_call_arguments.delta", **at, "delta": p}
                           for p in split(item["arguments"], self.arg_pieces) if p)
                out.append({"type": "response.function_call_arguments.done", **at, "arguments": item["arguments"]})
            out.append({"type": "response.output_item.done", "output_index": index, "item": item})
        out.append({"type": f"response.{whole['status']}", "response": whole})
        return out

    async def __call__(self, fake: FakeOpenAI, request: web.Request, received: Received) -> web.StreamResponse:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        body = received.body if isinstance(received.body, dict) else {}
        whole = self.response(fake, body)
        fake.vet(Response.model_validate, whole, "Response")
        if body.get("stream") is not True:
            return json_response(whole)
        events = self.events(whole)
        failed = None
        if self.error_after is not None:
            events = events[:self.error_after]
            failed = {"type": "response.failed",
                      "response": {**whole, "status": "failed", "error": self.error, "usage": None}}
        for number, event in enumerate([*events, *([failed] if failed else [])]):
            event["sequence_number"] = number
            fake.vet(OPENAI_RESPONSE_EVENT.validate_python, event, f"{event['type']} event")
        return await self.stream.send(fake, request, [_frame(e) for e in events],
                                      _frame(failed) if failed else None)

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
    """The scripted server: queues per (upstream, endpoint); Responses requests checked (chat ones are not:
    see `check_chat_request`)."""

    def __init__(self) -> None:
        super().__init__()
        self.encrypted: set[str] = set()  # the reasoning `encrypted_content` this fake issued

    def issue_encrypted(self) -> str:
        """A new opaque `encrypted_content`, remembered: only these are accepted back."""
        value = f"gAAAAfake{next_id():06d}" + base64.b64encode(b"fake reasoning state").decode()
        self.encrypted.add(value)
        return value

    def vet(self, validate: Any, obj: Any, what: str) -> None:
        """Fail (and record) a scripted reply that is not a real OpenAI shape: a bug in the test."""
        try:
            validate(obj)
        except pydantic.ValidationError as exc:
            self.problems.append(f"scripted {what} is not valid OpenAI: {exc}")
            raise AssertionError(self.problems[-1]) from exc

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
        """Answer the next requests to `upstream`'s `endpoint` (`CHAT`, `EMBEDDINGS`, `RESPONSES`) with
        these behaviours, in order."""
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
        if received.endpoint == RESPONSES:
            return ResponsesReply()
        return Fail(404, f"Invalid URL (POST /v1/{received.endpoint})", code="unknown_url")

    async def check(self, request: web.Request, received: Received) -> None:
        """Refuse, as OpenAI does, a Responses request its types reject or that replays foreign reasoning."""
        if received.endpoint != RESPONSES or request.method != "POST":
            return
        try:
            check_responses_request(received.body)
        except ValueError as exc:  # pydantic's ValidationError included
            raise VendorRejected(f"invalid Responses request: {exc}", json_response(_error(str(exc)), 400)) from exc
        items = received.body.get("input")
        for i, item in enumerate(items if isinstance(items, list) else []):
            if item.get("type") != "reasoning" or item.get("encrypted_content") is None:
                continue
            if item["encrypted_content"] not in self.encrypted:
                message = f"The encrypted content for item {item.get('id')} could not be verified."
                raise VendorRejected(f"input[{i}]: foreign encrypted_content", json_response(
                    _error(message, param=f"input[{i}].encrypted_content", code="invalid_encrypted_content"), 400))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        upstream, endpoint = request.match_info["upstream"], request.match_info["endpoint"]
        return await self.dispatch(request, Received(upstream, endpoint, request.method, request.path,
                                                     dict(request.headers), await self.read_body(request)))
