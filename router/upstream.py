"""All network I/O to vendors: one pooled aiohttp session, timeouts, error classification.

Providers build `HttpRequest`s; this module sends them and hands back an `UpstreamResponse`.
`local://` requests are answered in process by the provider's `serve_local` (the mock) and played
out with the same timeout rules, so tests and benchmarks exercise the same code path.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping

import aiohttp
from multidict import CIMultiDictProxy

from providers import ErrorKind, HttpRequest, LocalReply, UpstreamError

from .config import TimeoutsConfig
from .tasks import stop

ServeLocal = Callable[[HttpRequest], LocalReply]


class UpstreamResponse:
    """A vendor response whose headers have arrived; the body is read or iterated once."""

    status: int
    headers: Mapping[str, str]

    async def read(self) -> bytes:
        raise NotImplementedError

    def iter_chunks(self) -> AsyncIterator[bytes]:
        raise NotImplementedError

    def release(self) -> None:
        """Give the connection back (or drop it when the body was not read to the end)."""


class _HttpResponse(UpstreamResponse):
    __slots__ = ("_idle", "_resp", "_where", "headers", "status", "waiting_since")

    def __init__(self, resp: aiohttp.ClientResponse, where: str, idle: IdleWatch) -> None:
        self._resp = resp
        self._where = where
        self._idle = idle
        self.status = resp.status
        self.headers: CIMultiDictProxy[str] = resp.headers
        self.waiting_since: float | None = None  # when the read in progress began (the idle watch reads it)

    async def read(self) -> bytes:
        try:
            return await self._resp.read()
        except Exception as exc:
            raise _classify(exc, self._where, "reading the response body") from None

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        content = self._resp.content
        connection = self._resp.connection  # None: the whole body is already buffered
        watched = connection is not None and connection.protocol is not None
        if watched:
            connection.protocol.read_timeout = None  # the watch keeps the idle timeout from here on
            self._idle.watch(self, self._where)
        clock = time.monotonic
        try:
            while True:
                self.waiting_since = clock()
                data = await content.readany()
                self.waiting_since = None
                if not data:
                    return
                yield data
        except Exception as exc:
            raise _classify(exc, self._where, "reading the stream") from None
        finally:
            if watched:
                self._idle.forget(self)

    def expire(self, idle_s: float) -> None:
        """No byte for `idle_s` while reading: the read in progress fails as aiohttp's own would."""
        self._resp.content.set_exception(aiohttp.ServerTimeoutError(f"no data for {idle_s:g}s"))

    def release(self) -> None:
        self._resp.release()


class IdleWatch:
    """The idle timeout of stream bodies, kept by one sweep per worker.

    aiohttp re-arms a timer on every read of a response (`sock_read`), which for a long stream is a
    timer cancelled and armed again for every chunk. A stream body is instead watched here: a sweep
    every `period_s` fails the read of any stream that has waited longer than its upstream's `idle_s`
    (so the timeout fires up to one period late). Headers and whole bodies keep aiohttp's timers.
    """

    def __init__(self, idle_s: Mapping[str, float]) -> None:
        self._idle_s = dict(idle_s)
        self.period_s = min(1.0, max(0.02, min(self._idle_s.values(), default=1.0) / 4))
        self._streams: dict[_HttpResponse, float] = {}  # stream -> its upstream's idle_s
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._sweep(), name="upstream idle watch")

    def watch(self, stream: _HttpResponse, where: str) -> None:
        self._streams[stream] = self._idle_s[where]

    def forget(self, stream: _HttpResponse) -> None:
        self._streams.pop(stream, None)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.period_s)
            now = time.monotonic()
            for stream, idle_s in list(self._streams.items()):
                since = stream.waiting_since
                if since is not None and now - since >= idle_s:
                    self.forget(stream)
                    stream.expire(idle_s)

    async def close(self) -> None:
        await stop(self._task)
        self._task = None


class _LocalResponse(UpstreamResponse):
    """An in-process provider's reply, played out with its delays and the idle timeout."""

    __slots__ = ("_idle_s", "_reply", "headers", "status")

    def __init__(self, reply: LocalReply, idle_s: float) -> None:
        self._reply = reply
        self._idle_s = idle_s
        self.status = reply.status
        self.headers = {k.lower(): v for k, v in reply.headers.items()}

    async def read(self) -> bytes:
        async for _ in self._delays(self._reply.parts[1:]):
            pass
        return b"".join(self._reply.parts)

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        parts = self._reply.parts
        if parts:
            yield parts[0]
        async for part in self._delays(parts[1:]):
            yield part

    async def _delays(self, parts: Iterable[bytes]) -> AsyncIterator[bytes]:
        delay = self._reply.part_delay_s
        for part in parts:
            if delay:
                if delay > self._idle_s:
                    await asyncio.sleep(self._idle_s)
                    raise UpstreamError(ErrorKind.TIMEOUT, f"no data for {self._idle_s:g}s mid-response",
                                        code="idle_timeout")
                await asyncio.sleep(delay)
            yield part


class Transport:
    """Sends provider requests. One per worker process, started and closed with the app."""

    def __init__(self, timeouts: Mapping[str, TimeoutsConfig]) -> None:
        """`timeouts`: each upstream's (provider's) timeouts, by the name `open` is given."""
        self._settings = dict(timeouts)
        self._timeouts = {
            name: aiohttp.ClientTimeout(total=t.total_s, sock_connect=t.connect_s, sock_read=t.idle_s)
            for name, t in timeouts.items()}
        self._idle = IdleWatch({name: t.idle_s for name, t in timeouts.items()})
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300,
                                         keepalive_timeout=60, family=socket.AF_UNSPEC)
        self.session = aiohttp.ClientSession(connector=connector, auto_decompress=True, trust_env=False,
                                             cookie_jar=aiohttp.DummyCookieJar(), skip_auto_headers=("User-Agent",))
        self._idle.start()

    async def close(self) -> None:
        await self._idle.close()
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def open(self, where: str, request: HttpRequest, serve_local: ServeLocal | None = None) -> UpstreamResponse:
        """Send `request` to upstream `where`; return once the response headers are in (first-byte
        timeout applies). A `local://` request is answered by `serve_local` (an in-process provider)."""
        timeouts = self._settings[where]
        if request.url.startswith("local://"):
            assert serve_local is not None, "a local:// request needs its provider's serve_local"
            return await self._open_local(where, timeouts, serve_local(request))
        assert self.session is not None, "Transport.start() was not awaited"
        try:
            if timeouts.first_byte_s >= timeouts.idle_s:
                # aiohttp's `sock_read` (idle_s) already bounds the wait for the headers, and its
                # timeouts are `TimeoutError`s: no extra timer per request (it costs ~5% of the CPU).
                resp = await self.session.request(
                    request.method, request.url, headers=request.headers, data=request.body,
                    timeout=self._timeouts[where], allow_redirects=False)
            else:
                async with asyncio.timeout(timeouts.first_byte_s):
                    resp = await self.session.request(
                        request.method, request.url, headers=request.headers, data=request.body,
                        timeout=self._timeouts[where], allow_redirects=False)
        except TimeoutError:  # also aiohttp's ServerTimeoutError (connect, sock_read, total)
            raise UpstreamError(ErrorKind.TIMEOUT, f"{where}: no response within {timeouts.first_byte_s:g}s",
                                code="first_byte_timeout") from None
        except Exception as exc:
            raise _classify(exc, where, "connecting") from None
        return _HttpResponse(resp, where, self._idle)

    @staticmethod
    async def _open_local(where: str, timeouts: TimeoutsConfig, reply: LocalReply) -> UpstreamResponse:
        first_byte_s = timeouts.first_byte_s
        if reply.first_byte_delay_s:
            if reply.first_byte_delay_s > first_byte_s:
                await asyncio.sleep(first_byte_s)
                raise UpstreamError(ErrorKind.TIMEOUT, f"{where}: no response within {first_byte_s:g}s",
                                    code="first_byte_timeout")
            await asyncio.sleep(reply.first_byte_delay_s)
        if reply.drop_connection:
            raise UpstreamError(ErrorKind.CONNECT, f"{where}: connection closed before a response",
                                code="connection_error")
        return _LocalResponse(reply, timeouts.idle_s)


def _classify(exc: BaseException, where: str, doing: str) -> UpstreamError:
    """Turn an aiohttp/socket failure into an `UpstreamError`; messages never carry URLs or keys."""
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamError(ErrorKind.TIMEOUT, f"{where}: timed out while {doing}", code="timeout")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return UpstreamError(ErrorKind.STREAM_CUT, f"{where}: connection closed while {doing}",
                             code="stream_truncated")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamError(ErrorKind.CONNECT, f"{where}: cannot connect ({exc.os_error.strerror or 'refused'})",
                             code="connection_error")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return UpstreamError(ErrorKind.CONNECT, f"{where}: connection failed while {doing} "
                             f"({type(exc).__name__})", code="connection_error")
    raise exc
