"""The replay corpus end to end: the official openai SDK -> the router -> an upstream that answers with
the bytes a vendor really sent (tests/providers/recordings, sources in its PROVENANCE.md).

For each recording the router gets one provider of the recording's type whose base URL is a local
server; that server answers any request with the recorded status, content type and body, a stream
written in many small pieces cut at the awkward places (between the two newlines that end an SSE event,
inside UTF-8 characters, inside event-stream frame headers). What the SDK receives is compared with the
recording's own reading of the same bytes (`corpus.expected`): text, reasoning, tool calls, finish
reason and usage. A vendor error must reach the client with the status its kind calls for and the
vendor's message. Recordings that show a translator defect are `xfail(strict=True)`, as in the
unit-level replay (tests/providers/test_recordings.py), whose defect notes are reused here.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from pathlib import Path
from urllib.parse import unquote

import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from providers import ErrorKind

TESTS = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


corpus = _load("recordings_corpus", TESTS / "providers" / "recordings" / "corpus.py")
unit = _load("recordings_unit_tests", TESTS / "providers" / "test_recordings.py")

UPSTREAM_KEY = "recorded-upstream-key"
PROMPT = [{"role": "user", "content": "Hi"}]


class RecordedUpstream:
    """Answers every request with one recording; keeps what it was sent."""

    def __init__(self, rec) -> None:
        self.rec = rec
        self.received: list[tuple[str, str, bytes]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.received.append((request.method, request.path_qs, await request.read()))
        rec = self.rec
        headers = {k: v for k, v in rec.headers.items() if k != "content-type"}
        if not rec.stream or rec.is_error:
            return web.Response(status=rec.status, body=rec.body, headers={**headers,
                                                                           "Content-Type": rec.content_type})
        resp = web.StreamResponse(status=rec.status, headers={**headers, "Content-Type": rec.content_type})
        await resp.prepare(request)
        for piece in corpus.pieces(rec.body, corpus.awkward_cuts(rec)):
            await resp.write(piece)
            await asyncio.sleep(0)  # let the router read this piece on its own
        await resp.write_eof()
        return resp


@pytest.fixture
async def served():
    servers: list[TestServer] = []

    async def serve(rec) -> RecordedUpstream:
        upstream = RecordedUpstream(rec)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", upstream.handle)
        server = TestServer(app, host="127.0.0.1", port=0)
        await server.start_server()
        servers.append(server)
        upstream.url = str(server.make_url("")).rstrip("/")
        return upstream

    yield serve
    for server in servers:
        await server.close()


async def client_for(rec, served, make_router, openai_client,
                     **config) -> tuple[openai.AsyncOpenAI, RecordedUpstream]:
    upstream = await served(rec)
    provider = {"type": rec.provider_type, "base_url": upstream.url, "keys": [{"value": UPSTREAM_KEY}],
                "max_retries": 0}
    if rec.family == "bedrock":
        provider["region"] = "us-east-1"
    config = {**config, "providers": {"rec": provider, **config.get("providers", {})}}
    return openai_client(await make_router(config)), upstream


def _sent_to_the_recorded_endpoint(rec, upstream: RecordedUpstream, stream: bool) -> None:
    assert len(upstream.received) == 1
    _method, path_qs, body = upstream.received[0]
    if rec.family in ("openai", "anthropic", "cohere"):
        assert bool(json.loads(body).get("stream")) == stream
    if rec.is_error:  # an error body is the vendor's on any endpoint (some were answered by another one)
        return
    segments = {"openai": 2, "anthropic": 2, "cohere": 2, "gemini": 1, "bedrock": 3}[rec.family]
    recorded_path = unquote(rec.request["url"].split("://", 1)[1].split("?", 1)[0])
    tail = "/".join(recorded_path.split("/")[-segments:])
    assert tail in unquote(path_qs), (path_qs, rec.request["url"])
    if rec.family == "gemini":
        assert ("alt=sse" in path_qs) == stream


@pytest.mark.parametrize("rec", unit.params(unit.BODIES, unit.DEFECTS))
async def test_body_end_to_end(rec, served, make_router, openai_client):
    client, upstream = await client_for(rec, served, make_router, openai_client)
    resp = await client.chat.completions.create(model=f"rec/{rec.model}", messages=PROMPT)
    _sent_to_the_recorded_endpoint(rec, upstream, stream=False)
    got = corpus.Collected.from_completion(resp.model_dump(warnings=False))
    assert isinstance(got.raw_content, str) or (got.raw_content is None and got.tool_calls), got.raw_content
    assert not corpus.mismatches(got, corpus.expected(rec))


@pytest.mark.parametrize("rec", unit.params(unit.STREAMS, {**unit.DEFECTS, **unit.SHAPE_DEFECTS}))
async def test_stream_end_to_end(rec, served, make_router, openai_client):
    client, upstream = await client_for(rec, served, make_router, openai_client)
    stream = await client.chat.completions.create(model=f"rec/{rec.model}", messages=PROMPT, stream=True,
                                                  stream_options={"include_usage": True})
    chunks = [chunk.model_dump(warnings=False) async for chunk in stream]
    _sent_to_the_recorded_endpoint(rec, upstream, stream=True)
    finishes = [ch["finish_reason"] for c in chunks for ch in c["choices"] if ch["finish_reason"]]
    assert len(finishes) == 1, finishes
    assert not corpus.mismatches(corpus.Collected.from_chunks(chunks), corpus.expected(rec))


@pytest.mark.parametrize("stream", [False, True], ids=["body", "stream"])
@pytest.mark.parametrize("rec", unit.params(unit.ERRORS, unit.ERROR_MESSAGE_DEFECTS))
async def test_vendor_error_end_to_end(rec, stream, served, make_router, openai_client):
    _kind, client_status, _why = unit.ERROR_EXPECT[rec.name]
    client, upstream = await client_for(rec, served, make_router, openai_client)
    with pytest.raises(openai.APIStatusError) as info:
        if stream:
            async for _ in await client.chat.completions.create(model=f"rec/{rec.model}", messages=PROMPT,
                                                                stream=True):
                pass
        else:
            await client.chat.completions.create(model=f"rec/{rec.model}", messages=PROMPT)
    _sent_to_the_recorded_endpoint(rec, upstream, stream=stream)
    err = info.value
    assert err.status_code == client_status
    assert unit._vendor_message(rec).strip() in err.body["message"]
    assert UPSTREAM_KEY not in err.response.text


@pytest.mark.parametrize("rec", unit.params(unit.ERRORS, unit.ERROR_DEFECTS))
async def test_vendor_error_falls_back_as_its_kind_says(rec, served, make_router, openai_client):
    """The kind is what routing acts on: with `fallback_on: [context_window]`, every recorded error but a
    plain bad request (none in the corpus is one) moves on to the request's fallback, which answers."""
    kind, _status, _why = unit.ERROR_EXPECT[rec.name]
    assert kind is not ErrorKind.BAD_REQUEST
    client, upstream = await client_for(rec, served, make_router, openai_client,
                                        providers={"demo": {"type": "mock"}},
                                        routing={"fallback_on": ["context_window"]})
    resp = await client.chat.completions.create(model=f"rec/{rec.model}", messages=PROMPT,
                                                extra_body={"fallbacks": ["demo/echo"]})
    _sent_to_the_recorded_endpoint(rec, upstream, stream=False)
    attempts = resp.model_extra["extra_fields"]["attempts"]
    assert [a["model"] for a in attempts] == [f"rec/{rec.model}", "demo/echo"]
    assert resp.choices[0].message.content == "Hi"


CITED_STREAMS = [r for r in unit.STREAMS if any("citation" in c for c in r.covers)]


@pytest.mark.parametrize("rec", unit.params(CITED_STREAMS))
async def test_cited_stream_through_the_sdk_accumulator(rec, served, make_router, openai_client):
    """The openai SDK's `chat.completions.stream` folds the chunks into one message: the citations'
    one delta must not break it, and every citation must span text of the final content."""
    client, _ = await client_for(rec, served, make_router, openai_client)
    async with client.chat.completions.stream(model=f"rec/{rec.model}", messages=PROMPT) as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_completion()
    message = final.choices[0].message
    extra = message.model_extra or {}
    cited = extra.get("document_citations") or []
    assert cited or message.annotations
    for citation in cited:
        span = citation["document_citation"]
        assert message.content[span["start_index"]:span["end_index"]].strip()
