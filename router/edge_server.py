"""The HTTP server at the edge: aiohttp's, with hostile-client rules of our own.

aiohttp answers a request it cannot parse (a header line over the limit, too many headers, a bad
request line, broken chunking) itself, before any middleware runs: a `text/plain` body that may
echo the offending bytes (an `Authorization` header included) and a traceback in the log. Here such
a request gets an OpenAI-shaped JSON error with the right status (400, 431) and one log line
that names the status and the client address, never a header value, never a traceback.

Deadlines (`server.timeouts`): a request must deliver its headers within `headers_s` of its first
byte, or it is answered 408 and the connection closed (slow-loris clients cannot hold sockets open
by trickling bytes); a connection with no request at all is closed after `idle_s` (aiohttp's
keep-alive timer, which also covers idle keep-alive connections); the body's deadline (`body_s`)
is applied where the body is read (`edge.read_body`).

`EdgeRunner` is aiohttp's `AppRunner` building an `EdgeServer` (aiohttp's `Server` making
`EdgeHandler`s): the app, its middlewares and signals are untouched.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, BadStatusLine, HttpProcessingError, LineTooLong

from .tasks import stop

log = logging.getLogger("switchboard")

_REASONS = {400: "Bad Request", 408: "Request Timeout", 431: "Request Header Fields Too Large",
            500: "Internal Server Error"}


def classify(status: int, exc: BaseException | None) -> tuple[int, str, str]:
    """(status, code, message) for a request aiohttp could not take; never quotes the request."""
    if isinstance(exc, LineTooLong):  # the parser does not say which line: the URL or a header field
        return 431, "header_too_large", "the request line or a request header is too large"
    if isinstance(exc, BadHttpMessage) and "too many headers" in str(exc).lower():
        return 431, "too_many_headers", "the request has too many headers"
    if isinstance(exc, BadStatusLine):
        return 400, "bad_request_line", "the request line is not valid HTTP"
    if isinstance(exc, HttpProcessingError) or status == 400:
        return 400, "malformed_request", "the request is not valid HTTP"
    if status == 500:
        return 500, "internal_error", "internal error in the router"
    return status, "malformed_request", "the request could not be processed"


def _error_body(status: int, code: str, message: str) -> bytes:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})


def _raw_response(status: int, code: str, message: str) -> bytes:
    """A whole HTTP/1.1 response, for a connection whose request never became one."""
    body = _error_body(status, code, message)
    return (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body


class EdgeHandler(web.RequestHandler):
    """One client connection: JSON protocol errors, and the header deadline (kept by `EdgeServer`)."""

    def __init__(self, manager: EdgeServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.edge = manager
        self.between_requests = True  # the next bytes start a new request
        self.partial_since: float | None = None  # when the first byte of headers still incomplete came

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.edge.handlers.add(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.edge.handlers.discard(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.between_requests and self.partial_since is None:
            self.partial_since = self.edge.clock  # a coarse clock: no timer, no syscall per request
        super().data_received(data)

    def request_started(self) -> None:
        """The headers are in (the request object is being made)."""
        self.between_requests = False
        self.partial_since = None

    async def finish_response(self, request: web.BaseRequest, resp: web.StreamResponse,
                              start_time: float | None) -> tuple[web.StreamResponse, bool]:
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            self.between_requests = True

    def headers_late(self) -> None:
        """No complete headers within the deadline: 408, and the connection is closed."""
        if self.transport is None:
            return
        headers_s = self.edge.headers_s
        log.warning("closed a connection from %s: no complete request headers within %gs", self._peer(), headers_s)
        self.transport.write(_raw_response(408, "request_timeout",
                                           f"the request headers did not arrive within {headers_s:g}s"))
        self.force_close()

    def _peer(self) -> str:
        transport = self.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        return str(peer[0]) if isinstance(peer, tuple) and peer else "?"

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """A request aiohttp could not parse or handle: a JSON error and one line in the log."""
        status, code, text = classify(status, exc)
        if status >= 500:
            log.error("internal error answering a request from %s (%s)", self._peer(),
                      type(exc).__name__ if exc is not None else "no exception")
        else:
            log.warning("refused a malformed request from %s: %d %s", self._peer(), status, code)
        if request.writer.output_size > 0:
            raise ConnectionError("the response has started: no room for an error")
        resp = web.Response(status=status, body=_error_body(status, code, text), content_type="application/json")
        resp.force_close()
        return resp


RequestFactory = Callable[..., web.BaseRequest]
# After an answer that left the body unread (413, 408, 415), how long to drain it before closing.
LINGER_S = 1.0
SWEEP_S = 0.25  # how often the header deadline is checked (its precision)


class EdgeServer(web.Server):
    """aiohttp's `Server`, making `EdgeHandler`s and keeping their header deadline: one sweep every
    `SWEEP_S` for every connection, rather than a timer armed and cancelled for every request."""

    def __init__(self, handler: Any, *, request_factory: RequestFactory, handler_cancellation: bool,
                 headers_s: float, **handler_kwargs: Any) -> None:
        def factory(message: Any, payload: Any, protocol: Any, writer: Any, task: Any) -> web.BaseRequest:
            if isinstance(protocol, EdgeHandler):
                protocol.request_started()
            return request_factory(message, payload, protocol, writer, task)

        super().__init__(handler, request_factory=factory, handler_cancellation=handler_cancellation,
                         **handler_kwargs)
        self.handler_kwargs = handler_kwargs
        self.headers_s = headers_s
        self.handlers: set[EdgeHandler] = set()
        self.clock = 0.0
        self.sweeper: asyncio.Task | None = None

    def __call__(self) -> EdgeHandler:
        loop = asyncio.get_running_loop()
        if self.sweeper is None:
            self.clock = loop.time()
            self.sweeper = loop.create_task(self._sweep())
        return EdgeHandler(self, loop=loop, **self.handler_kwargs)

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SWEEP_S)
            self.clock = now = loop.time()
            late = now - self.headers_s
            for handler in [h for h in self.handlers if h.partial_since is not None and h.partial_since <= late]:
                handler.partial_since = None
                handler.headers_late()

    async def shutdown(self, timeout: float | None = None) -> None:
        await stop(self.sweeper)
        await super().shutdown(timeout)


class EdgeRunner(web.AppRunner):
    """Runs the app behind an `EdgeServer`."""

    def __init__(self, app: web.Application, *, headers_s: float, idle_s: float, max_headers: int,
                 max_field_size: int, shutdown_timeout: float = 10.0) -> None:
        self.edge_settings = {"headers_s": headers_s, "keepalive_timeout": idle_s, "max_headers": max_headers,
                              "max_field_size": max_field_size, "max_line_size": max_field_size,
                              "lingering_time": LINGER_S, "access_log": None}
        super().__init__(app, handler_cancellation=True, access_log=None, shutdown_timeout=shutdown_timeout)

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()  # the app's start-up runs here
        return EdgeServer(server.request_handler, request_factory=server.request_factory,
                          handler_cancellation=True, **self.edge_settings)
