"""Schemathesis fuzzing of the router, from its own `/openapi.json`, on the built-in mock provider.

The router runs with `router.app.build_app` on a free loopback port in a background event loop and
schemathesis sends it cases generated from `router.openapi_spec.SPEC` (what `/openapi.json` serves).
Checks: no 5xx except the documented 502/504 (on the Anthropic Messages face, its 500/504/529, and
only for an upstream failure), status codes, content types, headers and bodies as documented (every
SSE event too, and each face's event order), every error body in its face's shape (OpenAI's;
Anthropic's on the Messages routes), and bodies the schema calls invalid rejected with a 4xx. The
stored-response operations (`/v1/responses/{id}...`) get, besides generated ids (a 404), ids of
responses stored for the purpose. Deterministic (fixed seed, derandomized) and bounded (~30 fuzzed
cases per operation plus the examples and coverage phases; ~30 s).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import schemathesis
from aiohttp import web
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from schemathesis.generation.meta import TestPhase
from schemathesis.generation.modes import GenerationMode

from router.app import build_app
from router.config import parse_config
from router.openapi_spec import SPEC

MAX_EXAMPLES = 30
CLIENT_KEY = "sk-fuzz-client"
ADMIN_TOKEN = "fuzz-admin-token"
# Auth on (a client key for the proxy routes, the admin token for the admin API and usage, each sent
# by schemathesis per the operation's security scheme) and a response cache, so the cache headers
# and the auth, admin and usage routes are fuzzed too.
CONFIG = {
    "providers": {"demo": {"type": "mock", "models": ["echo", "lorem"], "max_retries": 0}},
    "models": {"fast": "demo/echo"},
    "auth": {"admin_token": ADMIN_TOKEN, "keys": [{"name": "fuzz", "key": CLIENT_KEY}]},
    "cache": {"backend": "memory"},
}
# Model names that reach the mock: served, and each documented upstream failure (502, 504, 429).
ROUTED_MODELS = ["demo/echo", "fast", "echo", "demo/lorem", "demo/fail-503", "demo/fail-504", "demo/fail-429",
                 "demo/drop", "demo/fail-400"]
LOREM_MAX_TOKENS = 256  # the mock writes exactly max_tokens of lorem; keep it small
STREAMED_PATHS = ("/v1/messages", "/v1/responses")  # besides the chat completions paths
# The request members each face documents: any other name is unknown, dropped and named in
# `x-switchboard-dropped`, whatever it is (control characters, commas, non-ASCII): requests get such names.
KNOWN_MEMBERS = {path: frozenset(SPEC["components"]["schemas"][name]["properties"])
                 for path, name in (("/v1/messages", "AnthropicMessagesRequest"),
                                    ("/v1/responses", "ResponsesRequest"))}
UNKNOWN_NAMES = [None, "top_k", "a, b", "line\r\nbreak", "\x00", "é"]  # None: no unknown member
_COVERAGE_NAMES = itertools.cycle(UNKNOWN_NAMES)
_NAME_CHARS = st.characters(max_codepoint=0x7F) | st.characters(codec="utf-8")  # ASCII controls often
# A stored response's input items, with ids the `after` query can name.
STORED_INPUT = [{"id": f"msg_fuzz_{i}", "type": "message", "role": "user", "content": f"turn {i}"} for i in range(3)]
UNKNOWN_RESPONSE = "resp_not_stored"
_ROUTER: dict[str, Any] = {}  # the running router's `url`, and the response `kept` for retrieval (`_stored`)


class RouterThread:
    """The router on 127.0.0.1:<free port>, in its own event loop on a daemon thread."""

    def __init__(self, config: dict) -> None:
        self._config = config
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="router", daemon=True)
        self.port = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        runner = web.AppRunner(build_app(parse_config(self._config)), access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = runner.addresses[0][1]
            self._ready.set()
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(timeout=15):
            raise RuntimeError("router did not start within 15 s")
        if self._error is not None:
            raise RuntimeError("router failed to start") from self._error

    def stop(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=15)
        assert not self._thread.is_alive(), "router thread did not stop within 15 s"


@pytest.fixture(scope="module")
def router_url() -> Iterator[str]:
    server = RouterThread(CONFIG)
    server.start()
    _ROUTER["url"] = f"http://127.0.0.1:{server.port}"
    try:
        yield _ROUTER["url"]
    finally:
        _ROUTER.clear()
        server.stop()


def _schemathesis_config() -> schemathesis.Config:
    return schemathesis.Config.from_dict({
        "seed": 20240601,
        "max-stream-events": 100_000,  # read every stream to its end: the check needs the last event
        # No unknown headers or query parameters in negative cases: HTTP servers ignore those, as this one does.
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "mode": "all",
                       "allow-extra-parameters": False},
        "auth": {"openapi": {"bearerAuth": {"bearer": CLIENT_KEY}, "adminToken": {"bearer": ADMIN_TOKEN}}},
        "phases": {"stateful": {"enabled": False}},
        "checks": {
            "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "502", "504"]},
            # A schema-valid body may still be refused by the vendor (a tool_choice naming no tool, ...).
            "positive_data_acceptance": {"enabled": False},
        },
        # The Messages face answers the upstream failures the OpenAI face calls 502/503 with Anthropic's
        # 500 `api_error` / 529 `overloaded_error`; `_anthropic_shape` holds them to upstream failures.
        "operations": [{"include-operation-id": "createMessage", "checks": {
            "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "500", "504", "529"]}}}],
    })


# The document under test is the one `GET /openapi.json` serves (tests/router/test_openapi_spec.py
# checks that the two are equal); loading it here lets pytest collect one test per operation.
schema = schemathesis.openapi.from_dict(SPEC, config=_schemathesis_config())


@schema.hook
def flatmap_body(context, body):
    """Point generated requests at models the mock serves (and make some chat requests streams), add an
    unknown member of any name to some Messages and Responses requests, and point a `previous_response_id`
    at a stored response or at none (`UNKNOWN_RESPONSE`, a 404).

    Only a schema-valid `model` or `previous_response_id` is replaced and only a boolean or absent
    `stream` is set, so a case generated to be invalid stays invalid.
    """
    if not (isinstance(body, dict) and isinstance(body.get("model"), str) and body["model"].strip()):
        return st.just(body)  # a missing or invalid model is what this case is testing
    models = st.sampled_from([*ROUTED_MODELS, None])
    path = context.operation.path if context.operation is not None else ""
    chat = path.endswith("/chat/completions") or path in STREAMED_PATHS
    streams = st.sampled_from([None, True]) if chat and body.get("stream") in (None, True, False) else st.none()
    fallbacks = body.get("fallbacks")
    if isinstance(fallbacks, list) and 0 < len(fallbacks) <= 10 and all(isinstance(f, str) and f for f in fallbacks):
        chains = st.lists(st.sampled_from(ROUTED_MODELS), min_size=len(fallbacks), max_size=len(fallbacks))
    else:
        chains = st.none()
    previous = body.get("previous_response_id")
    continues = st.sampled_from([True, False]) if isinstance(previous, str) and previous else st.none()
    known = KNOWN_MEMBERS.get(path)
    unknown = st.sampled_from(UNKNOWN_NAMES) | st.text(_NAME_CHARS, min_size=1, max_size=8).filter(
        lambda name: name not in known) if known else st.none()
    return st.tuples(models, streams, chains, continues, unknown).map(lambda pick: _with_model(body, *pick))


def _with_model(body: dict, model: str | None, stream: bool | None, fallbacks: list[str] | None,
                stored: bool | None = None, unknown: str | None = None) -> dict:
    body = dict(body)
    if unknown is not None:
        body[unknown] = True
    if stored is not None:
        body["previous_response_id"] = _stored(fresh=False) if stored else UNKNOWN_RESPONSE
    if stream is not None:
        body["stream"] = stream
    if fallbacks is not None:
        body["fallbacks"] = fallbacks
    if model == "demo/lorem":
        caps = [body.get(k) for k in ("max_tokens", "max_completion_tokens", "max_output_tokens")]
        if any(isinstance(c, int) and c > LOREM_MAX_TOKENS for c in caps):
            model = "demo/echo"
    if model is not None:
        body["model"] = model
    return body


def _stored_id() -> str:
    """The id of a new stored response of the fuzz key (its input: `STORED_INPUT`)."""
    request = urllib.request.Request(
        f"{_ROUTER['url']}/v1/responses", method="POST",
        data=orjson.dumps({"model": "demo/echo", "input": STORED_INPUT}),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {CLIENT_KEY}"})
    with urllib.request.urlopen(request, timeout=15) as response:
        return orjson.loads(response.read())["id"]


def _stored(fresh: bool) -> str:
    """A stored response's id: a new one (`fresh`: for deletion), else the one kept for retrieval."""
    if fresh:
        return _stored_id()
    if "kept" not in _ROUTER:
        _ROUTER["kept"] = _stored_id()
    return _ROUTER["kept"]


@schema.hook
def map_case(context, case):
    """On `POST /v1/responses`: a generated `previous_response_id` is dropped (with a string `input` where
    none was sent, so a valid case stays valid): it is looked up (a 404) before the body is checked, so it
    would hide every other member's checks, and the coverage phase sets it on almost every case. The ids
    `flatmap_body` sets stay, and so does one that is invalid itself. The coverage phase's valid model
    names (which `flatmap_body` does not see) become `demo/echo`, so its cases reach the renderer, and its
    valid cases get the `UNKNOWN_NAMES` in turn."""
    body = case.body
    if case.operation.path != "/v1/responses" or not isinstance(body, dict):
        return case
    body = dict(body)
    previous = body.get("previous_response_id")
    if isinstance(previous, str) and previous and previous not in (_ROUTER.get("kept"), UNKNOWN_RESPONSE):
        del body["previous_response_id"]
        if body.get("input") is None:
            body["input"] = "Hello"
    model = body.get("model")
    if case.meta is not None and case.meta.phase.name == TestPhase.COVERAGE and isinstance(model, str) \
            and model.strip():
        body["model"] = "demo/echo"
        if case.meta.generation.mode == GenerationMode.POSITIVE:
            name = next(_COVERAGE_NAMES)
            if name is not None and name not in KNOWN_MEMBERS["/v1/responses"]:
                body[name] = True
    case.body = body
    return case


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    """A stored response's id for the `/v1/responses/{id}` operations, half the time (a generated id is a 404)."""
    operation = context.operation
    if operation is None or not operation.path.startswith("/v1/responses/") or not isinstance(path_parameters, dict):
        return st.just(path_parameters)
    fresh = operation.method.lower() == "delete"
    return st.booleans().map(lambda use: {**path_parameters, "id": _stored(fresh)} if use else path_parameters)


@schema.hook
def flatmap_query(context, query):
    """`after` naming one of the stored input items, some of the time."""
    operation = context.operation
    if operation is None or not operation.path.endswith("/input_items") or not isinstance(query, dict) \
            or "after" not in query:
        return st.just(query)
    ids = [None, *(item["id"] for item in STORED_INPUT)]
    return st.sampled_from(ids).map(lambda after: {**query, "after": after} if after else query)


_SCHEMAS = {name: Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": SPEC["components"]})
            for name in ("Error", "ChatCompletionChunk", "StreamErrorEvent", "AnthropicError")}


def _anthropic(case) -> bool:
    return "Anthropic" in (case.operation.definition.raw.get("tags") or ())


def _openai_error_shape(ctx, response, case) -> bool | None:
    """Every 4xx/5xx is `{"error": {message, type, param, code}, "extra_fields"?}`, never a traceback."""
    text = response.text
    assert "Traceback" not in text
    if response.status_code < 400:
        return None
    if _anthropic(case):  # every error of a Messages path, a method it does not serve included
        return _anthropic_shape(response)
    if case.path == "/mcp":  # MCP clients read JSON-RPC errors (a batch: one per message that needs an answer)
        body = orjson.loads(response.content)
        for answer in body if isinstance(body, list) else [body]:
            assert answer["jsonrpc"] == "2.0"
            assert "result" in answer or (isinstance(answer["error"]["code"], int) and answer["error"]["message"])
        return True
    body = orjson.loads(response.content)
    errors = sorted(_SCHEMAS["Error"].iter_errors(body), key=str)
    assert not errors, f"error body is not OpenAI-shaped: {errors[0].message}"
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return True


def _anthropic_shape(response) -> bool:
    """A Messages route's error is `{"type": "error", "error": {type, message}}`; a 5xx there is an upstream
    failure, naming its attempts (the router's own 500 would not: it is still a server error)."""
    body = orjson.loads(response.content)
    errors = sorted(_SCHEMAS["AnthropicError"].iter_errors(body), key=str)
    assert not errors, f"error body is not Anthropic-shaped: {errors[0].message}"
    assert body["error"]["message"]
    if response.status_code >= 500:
        attempts = response.headers.get("x-switchboard-attempts", ["0"])[0]
        assert int(attempts) >= 1, f"a {response.status_code} no upstream attempt explains: {body['error']}"
    return True


def _sse_events(ctx, response, case) -> bool | None:
    """A 200 stream: chunks as documented, routing head first, full extra_fields last, then [DONE]."""
    if not response.headers.get("content-type", [""])[0].startswith("text/event-stream"):
        return None
    if case.operation.path.startswith("/agent/"):
        return _ui_stream_events(response)
    if _anthropic(case):
        return _message_events(response)
    if case.operation.path == "/v1/responses":
        return _response_events(response)
    events = [block.removeprefix("data: ") for block in response.text.split("\n\n") if block]
    assert events, "empty stream"
    if events[-1] == "[DONE]":
        chunks = [orjson.loads(e) for e in events[:-1]]
        assert chunks, "a stream of nothing but [DONE]"
        for chunk in chunks:
            errors = list(_SCHEMAS["ChatCompletionChunk"].iter_errors(chunk))
            assert not errors, f"stream chunk does not match ChatCompletionChunk: {errors[0].message}"
        assert set(chunks[0]["extra_fields"]) >= {"provider", "model"}
        assert "attempts" in chunks[-1]["extra_fields"]
    else:
        final = orjson.loads(events[-1])
        errors = list(_SCHEMAS["StreamErrorEvent"].iter_errors(final))
        assert not errors, f"stream ended without [DONE] and without an error event: {events[-1][:200]}"
    return True


def _ui_stream_events(response) -> bool:
    """An agent stream is the AI SDK UI message stream (router/agents/ui_stream.py; tests/agents/ check it
    chunk by chunk with the `ai` package): typed chunks, `start` first, `finish` last, then [DONE]."""
    assert response.headers.get("x-vercel-ai-ui-message-stream", [""])[0] == "v1"
    events = [block.removeprefix("data: ") for block in response.text.split("\n\n") if block.startswith("data: ")]
    assert events and events[-1] == "[DONE]", "a UI stream must end with [DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert all(isinstance(c.get("type"), str) for c in chunks)
    assert chunks[0]["type"] == "start" and chunks[-1]["type"] == "finish"
    return True


def _message_events(response) -> bool:
    """An Anthropic stream (each event's schema is checked by schemathesis): `message_start` first, blocks
    opened, filled and closed in order, then `message_delta` and `message_stop`; or it ends with one `error`."""
    events = []
    for block in response.text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n") if line and not line.startswith(":"))
        if lines:
            data = orjson.loads(lines["data"])
            assert data["type"] == lines["event"], f"event {lines['event']} carries {data['type']}"
            events.append(data)
    assert events, "empty stream"
    kinds = [e["type"] for e in events]
    assert "error" not in kinds[:-1], "an error event must end the stream"
    if kinds[-1] == "error":
        events, kinds = events[:-1], kinds[:-1]
        if not events:
            return True
    else:
        assert kinds[-2:] == ["message_delta", "message_stop"], f"stream ends with {kinds[-2:]}"
    assert kinds[0] == "message_start", f"stream starts with {kinds[0]}"
    assert kinds.count("message_start") == 1 and kinds.count("message_stop") <= 1
    open_index, last_index = None, -1
    for event in events:
        if event["type"] == "content_block_start":
            assert open_index is None and event["index"] == last_index + 1, f"block {event['index']} opened"
            open_index = last_index = event["index"]
        elif event["type"] == "content_block_delta":
            assert 0 <= event["index"] <= last_index, f"delta for block {event['index']}"
        elif event["type"] == "content_block_stop":
            assert event["index"] == open_index, f"block {event['index']} closed while {open_index} is open"
            open_index = None
        elif event["type"] in ("message_delta", "message_stop"):
            assert open_index is None, f"{event['type']} while block {open_index} is open"
    return True


def _response_events(response) -> bool:
    """A Responses stream (each event's schema is checked by schemathesis): `sequence_number` counting from 0,
    `response.created` and `response.in_progress` first, each output item added (at the next index) before
    any event names it, and one terminal event, last, whose Response holds every item added."""
    events = []
    for block in response.text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n") if line and not line.startswith(":"))
        if lines:
            data = orjson.loads(lines["data"])
            assert data["type"] == lines["event"], f"event {lines['event']} carries {data['type']}"
            events.append(data)
    assert events, "empty stream"
    kinds = [e["type"] for e in events]
    assert [e["sequence_number"] for e in events] == list(range(len(events))), "sequence numbers out of order"
    assert kinds[:2] == ["response.created", "response.in_progress"], f"stream starts with {kinds[:2]}"
    terminal = {"response.completed", "response.incomplete", "response.failed"}
    assert kinds[-1] in terminal and not terminal & set(kinds[:-1]), f"stream ends with {kinds[-1]}"
    added: list[str] = []
    for event in events[2:-1]:
        if event["type"] == "response.output_item.added":
            assert event["output_index"] == len(added), f"item {event['output_index']} added after {len(added)}"
            added.append(event["item"]["id"])
        elif "output_index" in event:
            assert event["output_index"] < len(added), f"{event['type']} for item {event['output_index']}"
            item_id = event["item"]["id"] if "item" in event else event["item_id"]
            assert item_id == added[event["output_index"]], f"{event['type']} names {item_id}"
    final = events[-1]["response"]
    assert final["status"] == kinds[-1].removeprefix("response."), f"{kinds[-1]} with status {final['status']}"
    assert [item["id"] for item in final["output"]] == added, "the final Response's items are not those added"
    return True


@schema.parametrize()
def test_router_conforms_to_its_openapi_document(case, router_url: str) -> None:
    case.call_and_validate(base_url=router_url, additional_checks=[_openai_error_shape, _sse_events], timeout=15)
