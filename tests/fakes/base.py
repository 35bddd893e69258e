"""What the scripted fake vendors (Anthropic, Gemini) share: queues, recording, SSE, serving.

A fake stands in for any number of upstreams: upstream `name` lives under `/{name}/...`, so two
router providers can point at one fake. For each upstream a test queues behaviours (callables
`(fake, request, received) -> response`); each request takes the next one, and an empty queue
answers with the fake's default success. Every request is recorded as a `Received`. A request the
vendor would reject (checked against the vendor SDK's own request types plus the API rules the
types cannot express) is answered with the vendor's 400 *and* recorded in `fake.problems`; so is a
scripted reply that is not the vendor's real shape. `serving()` fails the test on exit when any
problem was recorded, so a malformed translation can never pass quietly.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer

_ids = itertools.count(1)


def next_id() -> int:
    """A process-wide counter for ids and signatures that must not collide between replies."""
    return next(_ids)


def signature(tag: str) -> str:
    """An opaque, standard-base64 signature (with `+`, `/` and `=` in it, as real ones have)."""
    return base64.b64encode(b"\xfb\xff" + f"{tag}-{next_id()}".encode() + b"\x00").decode()


def materialize(value: Any) -> Any:
    """SDK param types declare `Iterable[...]`, which pydantic validates lazily: force every item."""
    if isinstance(value, dict):
        return {k: materialize(v) for k, v in value.items()}
    if isinstance(value, list | tuple | Iterator):
        return [materialize(v) for v in value]
    return value


def split(text: str, pieces: int) -> list[str]:
    """`text` in at most `pieces` consecutive fragments (at least one, possibly empty)."""
    size = max(1, -(-len(text) // max(1, pieces)))
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(obj), content_type="application/json", headers=headers)


class VendorRejected(Exception):
    """A request the real vendor would refuse; `response` is what it would answer."""

    def __init__(self, problem: str, response: web.Response) -> None:
        super().__init__(problem)
        self.problem = problem
        self.response = response


@dataclass
class Received:
    """One request the fake received."""

    upstream: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: Any  # parsed JSON, or the raw bytes when the body is not JSON
    model: str | None = None  # from the URL where the vendor puts it there (Gemini)
    stream: bool = False


@dataclass
class Stream:
    """How a scripted SSE body is delivered: pacing and the two ways a stream breaks."""

    chunk_delay_s: float = 0.0
    cut_after: int | None = None  # close the socket after this many events (no terminator)
    abort: bool = True  # cut: close the socket mid-body; False ends the body cleanly but early

    async def send(self, fake: FakeVendor, request: web.Request, events: list[bytes],
                   error_event: bytes | None = None) -> web.StreamResponse:
        """Write `events` (each a complete SSE frame); `error_event` replaces the rest when set."""
        if self.cut_after is not None:
            events = events[:self.cut_after]
        elif error_event is not None:
            events = [*events, error_event]
        resp = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache"})
        await resp.prepare(request)
        for event in events:
            await resp.write(event)
            if self.chunk_delay_s:
                await asyncio.sleep(self.chunk_delay_s)
        if self.cut_after is not None and self.abort:
            assert request.transport is not None
            request.transport.close()
            return resp
        await resp.write_eof()
        return resp


Behaviour = Callable[["FakeVendor", web.Request, Received], Any]


class FakeVendor:
    """Queues, recording and dispatch; subclasses add routes, request checks and the default reply."""

    def __init__(self) -> None:
        self.url = ""
        self.requests: list[Received] = []
        self.problems: list[str] = []
        self.aborted = asyncio.Event()  # the router hung up while a behaviour was still answering
        self.completed = 0
        self._queues: dict[str, deque] = defaultdict(deque)

    # -- for tests ---------------------------------------------------------------------------------
    def app(self) -> web.Application:
        raise NotImplementedError

    def queue(self, upstream: str, *behaviours: Behaviour) -> None:
        """Answer the next requests to `upstream` with these behaviours, in order."""
        self._queues[upstream].extend(behaviours)

    def calls(self, upstream: str | None = None) -> list[Received]:
        return [r for r in self.requests if upstream is None or r.upstream == upstream]

    def bodies(self, upstream: str | None = None) -> list[Any]:
        return [r.body for r in self.calls(upstream)]

    # -- for subclasses ----------------------------------------------------------------------------
    def default(self) -> Behaviour:
        raise NotImplementedError

    def check(self, received: Received) -> None:
        """Raise `VendorRejected` when the vendor would refuse this request."""

    async def dispatch(self, request: web.Request, received: Received) -> web.StreamResponse:
        self.requests.append(received)
        try:
            self.check(received)
        except VendorRejected as rejected:
            self.problems.append(f"{request.method} {request.path_qs}: {rejected.problem}")
            return rejected.response
        queue = self._queues[received.upstream]
        behaviour = queue.popleft() if queue else self.default()
        try:
            resp = await behaviour(self, request, received)
        except (asyncio.CancelledError, ConnectionError):
            self.aborted.set()
            raise
        self.completed += 1
        return resp

    @staticmethod
    async def read_body(request: web.Request) -> Any:
        raw = await request.read()
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw


@asynccontextmanager
async def serving(fake: FakeVendor) -> AsyncIterator[FakeVendor]:
    """Serve `fake` on a free loopback port; on a clean exit, fail if it saw anything invalid."""
    server = TestServer(fake.app(), host="127.0.0.1", port=0)
    await server.start_server()
    fake.url = str(server.make_url("")).rstrip("/")
    try:
        yield fake
    finally:
        await server.close()
    assert not fake.problems, "the fake vendor rejected requests or replies:\n" + "\n".join(fake.problems)
