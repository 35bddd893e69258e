"""What the scripted fake vendors share: queues, recording, serving, paced bodies.

A fake serves one vendor's API on a free loopback port (`await fake.start()` / `fake.close()`, or
`async with serving(fake)`). Tests queue behaviours (callables `(fake, request, received) ->
response`) under a key the fake derives from each request (the upstream name, the endpoint, the
model); each request takes the next one, and an empty queue answers with the fake's default success.
Every request is recorded (`fake.requests`) before it is checked. A request the vendor would reject
(checked against the vendor SDK's own request types, see `support.vendor_schemas`, plus the API rules
the types cannot express) is answered with the vendor's error *and* recorded in `fake.problems`
(refusals a test provokes on purpose, such as a wrong key, may be answered without being recorded);
so is a scripted reply that is not the vendor's real shape. `serving()` fails the test on exit when
any problem was recorded, so a malformed translation can never pass quietly. `fake.aborted` is set
when a behaviour is cut short because the router hung up (`fake.cut_short` lists those requests);
`fake.completed` counts behaviours that ran to the end.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Self

import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer

SSE_HEADERS = {"content-type": "text/event-stream", "cache-control": "no-cache"}
_ids = itertools.count(1)


def next_id() -> int:
    """A process-wide counter for ids and signatures that must not collide between replies."""
    return next(_ids)


def signature(tag: str) -> str:
    """An opaque, standard-base64 signature (with `+`, `/` and `=` in it, as real ones have)."""
    return base64.b64encode(b"\xfb\xff" + f"{tag}-{next_id()}".encode() + b"\x00").decode()


def split(text: str, pieces: int) -> list[str]:
    """`text` in at most `pieces` consecutive fragments (at least one, possibly empty)."""
    size = max(1, -(-len(text) // max(1, pieces)))
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def words(text: str) -> list[str]:
    """`text` split after each space, the spaces kept: how vendors typically stream text."""
    parts = text.split(" ")
    return [w + " " for w in parts[:-1]] + [parts[-1]]


def vector(index: int, dims: int) -> list[float]:
    """The fake embedding of the `index`-th input: distinct, predictable values."""
    return [round(0.1 * (index + 1) + 0.01 * d, 4) for d in range(dims)]


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(obj), content_type="application/json", headers=headers)


async def send_body(request: web.Request, pieces: list[bytes], *, headers: dict[str, str] | None = None,
                    delay_s: float = 0.0, pauses: dict[int, float] | None = None,
                    abort: bool = False) -> web.StreamResponse:
    """Stream `pieces` (SSE headers unless `headers`), one write each, then end the body.

    `delay_s` is slept after every write; `pauses[i]` before piece `i` (`pauses[len(pieces)]`: before
    the end). `abort` closes the socket instead of ending the body: no terminating chunk, so the
    client sees a broken body.
    """
    pauses = pauses or {}
    resp = web.StreamResponse(headers=SSE_HEADERS if headers is None else headers)
    await resp.prepare(request)
    for i, piece in enumerate(pieces):
        if i in pauses:
            await asyncio.sleep(pauses[i])
        await resp.write(piece)
        if delay_s:
            await asyncio.sleep(delay_s)
    if len(pieces) in pauses:
        await asyncio.sleep(pauses[len(pieces)])
    if abort:
        assert request.transport is not None
        request.transport.close()
        return resp
    await resp.write_eof()
    return resp


class VendorRejected(Exception):
    """A request the real vendor would refuse; `response` is what it would answer.

    `record=False`: a refusal tests provoke on purpose (a wrong key), not kept in `fake.problems`.
    """

    def __init__(self, problem: str, response: web.Response, *, record: bool = True) -> None:
        super().__init__(problem)
        self.problem = problem
        self.response = response
        self.record = record


@dataclass
class Received:
    """One request the fake received (Anthropic, Gemini)."""

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
    one_write: bool = False  # every event (the error event too) in one write: the router reads them together

    async def send(self, fake: FakeVendor, request: web.Request, events: list[bytes],
                   error_event: bytes | None = None) -> web.StreamResponse:
        """Write `events` (each a complete SSE frame); `error_event` replaces the rest when set."""
        if self.cut_after is not None:
            events = events[:self.cut_after]
        elif error_event is not None:
            events = [*events, error_event]
        if self.one_write:
            events = [b"".join(events)]
        return await send_body(request, events, delay_s=self.chunk_delay_s,
                               abort=self.cut_after is not None and self.abort)


@dataclass
class Drop:
    """Close the connection before sending any header."""

    async def __call__(self, fake: FakeVendor, request: web.Request, received: Any) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()
        await asyncio.sleep(10)  # cancelled when the server notices the closed connection
        raise AssertionError("Drop: the handler was not cancelled")


Behaviour = Callable[["FakeVendor", web.Request, Any], Any]


class FakeVendor:
    """Serving, queues, recording and dispatch; subclasses add routes, request checks and defaults."""

    def __init__(self) -> None:
        self.url = ""
        self.requests: list[Any] = []
        self.problems: list[str] = []
        self.aborted = asyncio.Event()  # the router hung up while a behaviour was still answering
        self.cut_short: list[Any] = []  # the request of each behaviour cut short by a hang-up
        self.completed = 0  # behaviours that ran to the end
        self._queues: dict[Hashable, deque] = defaultdict(deque)
        self._server: TestServer | None = None

    # -- for tests ---------------------------------------------------------------------------------
    async def start(self) -> Self:
        """Serve on a free loopback port and set `url`."""
        self._server = TestServer(self.app(), host="127.0.0.1", port=0)
        await self._server.start_server()
        self.url = str(self._server.make_url("")).rstrip("/")
        return self

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()

    def queue(self, upstream: str, *behaviours: Behaviour) -> None:
        """Answer the next requests to `upstream` with these behaviours, in order."""
        self._queues[upstream].extend(behaviours)

    def calls(self, upstream: str | None = None) -> list[Any]:
        return [r for r in self.requests if upstream is None or r.upstream == upstream]

    def bodies(self, upstream: str | None = None) -> list[Any]:
        return [r.body for r in self.calls(upstream)]

    # -- for subclasses ----------------------------------------------------------------------------
    def app(self) -> web.Application:
        raise NotImplementedError

    def queue_key(self, received: Any) -> Hashable:
        """Which queue answers `received`."""
        return received.upstream

    def default(self, received: Any) -> Behaviour:
        """What answers `received` when its queue is empty."""
        raise NotImplementedError

    async def check(self, request: web.Request, received: Any) -> None:
        """Raise `VendorRejected` when the vendor would refuse this request."""

    async def dispatch(self, request: web.Request, received: Any) -> web.StreamResponse:
        self.requests.append(received)
        try:
            await self.check(request, received)
        except VendorRejected as rejected:
            if rejected.record:
                self.problems.append(f"{request.method} {request.path_qs}: {rejected.problem}")
            return rejected.response
        queue = self._queues[self.queue_key(received)]
        behaviour = queue.popleft() if queue else self.default(received)
        try:
            resp = await behaviour(self, request, received)
        except (asyncio.CancelledError, ConnectionError):
            self.cut_short.append(received)
            self.aborted.set()
            raise
        self.completed += 1
        return resp

    @staticmethod
    async def read_body(request: web.Request) -> Any:
        """The body as parsed JSON, or the raw bytes when it is not JSON."""
        raw = await request.read()
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw


@asynccontextmanager
async def serving(fake: FakeVendor) -> AsyncIterator[FakeVendor]:
    """Serve `fake` on a free loopback port; on a clean exit, fail if it saw anything invalid."""
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()
    assert not fake.problems, "the fake vendor rejected requests or replies:\n" + "\n".join(fake.problems)
