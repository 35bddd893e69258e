"""A fast, standalone mock of the OpenAI API for load benchmarks (its own process).

    python -m benchmarks.mock_upstream --port 8099 [--latency-ms 0] [--chunks 20] [--chunk-interval-ms 1]

It has to be cheap: on a 2-core machine it shares the CPU with the router and the load generator,
so every microsecond it spends is taken from the thing being measured. The default implementation
(`--impl raw`) is therefore a minimal HTTP/1.1 server written directly on an asyncio `Protocol`
(uvloop when installed): keep-alive, Content-Length and chunked request bodies, responses built once
per model and cached as bytes (orjson), no per-request objects beyond the parsed JSON body.
`--impl aiohttp` serves the same bytes through aiohttp's low-level server, for a cross-check.

Behaviour (what a router sees from OpenAI):
  POST .../chat/completions   a ~1.3 KB `chat.completion` with usage; with `"stream": true` an SSE
                              stream (chunked transfer encoding): a role chunk, `--chunks` content
                              chunks, a finish chunk, the usage chunk when
                              `stream_options.include_usage` is set, and `data: [DONE]`
  POST .../embeddings         a small embedding list with usage
  GET  .../models, /healthz   a model list / `ok`
  GET  /stats                 {"requests": N, "connections": N} so far (this request included), so
                              a harness can check that a gateway really called the mock
  model `fail-<status>`       that status with an OpenAI error body (e.g. `fail-503` for fallbacks)
  any path containing /fail/  503 with an OpenAI error body
`--latency-ms` delays the response headers (time to first byte); `--chunk-interval-ms` spaces the
stream chunks (0 writes the whole stream at once).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from typing import Any, NamedTuple

import orjson

_TEXT = ("The router forwards each request to the upstream deployment chosen by the routing table, "
          "records usage and latency, and returns the vendor's answer in the OpenAI format so that "
          "existing SDK code keeps working unchanged. When a deployment fails with a retryable error the "
          "next one in the chain is tried, and the attempt trail is reported in extra fields. Caching "
          "and accounting are optional and happen off the hot path wherever possible, so the added "
          "latency stays small compared with any real model. This paragraph is only filler text for a "
          "benchmark, sized like a typical short chat answer.")
_WORDS = _TEXT.split()
_CREATED = 1_735_689_600
_MAX_CACHED_MODELS = 256
_MAX_HEAD = 64 * 1024
_MAX_BODY = 16 * 1024 * 1024
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 411: "Length Required",
            413: "Payload Too Large", 429: "Too Many Requests", 500: "Internal Server Error",
            502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
_ERRORS = {429: ("requests", "rate_limit_exceeded", "Rate limit reached (mock upstream)."),
           500: ("server_error", None, "The server had an error while processing your request (mock)."),
           503: ("server_error", None, "The engine is currently overloaded, please try again later (mock).")}


# -- bodies ------------------------------------------------------------------------------------------
def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}


def completion_body(model: str, words: int = len(_WORDS)) -> bytes:
    """A non-streaming `chat.completion` as OpenAI returns it (about 1.3 KB with the default text)."""
    text = " ".join(_WORDS[:words])
    return orjson.dumps({
        "id": "chatcmpl-benchmock0000000000000000", "object": "chat.completion", "created": _CREATED,
        "model": model, "choices": [{"index": 0, "message": {"role": "assistant", "content": text,
                                                             "refusal": None, "annotations": []},
                                     "logprobs": None, "finish_reason": "stop"}],
        "usage": _usage(42, words), "service_tier": "default", "system_fingerprint": "fp_benchmock"})


def stream_events(model: str, chunks: int, include_usage: bool) -> list[bytes]:
    """The SSE events of a streamed completion: role, `chunks` content deltas, finish, usage, [DONE]."""
    base: dict[str, Any] = {"id": "chatcmpl-benchmock0000000000000000", "object": "chat.completion.chunk",
                            "created": _CREATED, "model": model, "service_tier": "default",
                            "system_fingerprint": "fp_benchmock"}
    if include_usage:
        base["usage"] = None

    def event(delta: dict, finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: " + orjson.dumps({**base, "choices": [choice]}) + b"\n\n"

    out = [event({"role": "assistant", "content": "", "refusal": None})]
    for i in range(chunks):
        out.append(event({"content": " ".join(_WORDS[(3 * i + k) % len(_WORDS)] for k in range(3)) + " "}))
    out.append(event({}, "stop"))
    if include_usage:
        out.append(b"data: " + orjson.dumps({**base, "choices": [], "usage": _usage(42, 3 * chunks)}) + b"\n\n")
    out.append(b"data: [DONE]\n\n")
    return out


def error_body(status: int) -> bytes:
    etype, code, message = _ERRORS.get(status, ("server_error" if status >= 500 else "invalid_request_error",
                                                None, f"Simulated HTTP {status} (mock upstream)."))
    return orjson.dumps({"error": {"message": message, "type": etype, "param": None, "code": code}})


def embeddings_body(model: str) -> bytes:
    vector = [round(((i * 37) % 200 - 100) / 1000.0, 4) for i in range(64)]
    return orjson.dumps({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": vector}],
                         "model": model, "usage": {"prompt_tokens": 8, "total_tokens": 8}})


def models_body() -> bytes:
    return orjson.dumps({"object": "list", "data": [
        {"id": m, "object": "model", "created": _CREATED, "owned_by": "benchmock"}
        for m in ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")]})


def _head(status: int, content_type: bytes, length: int | None, extra: bytes = b"") -> bytes:
    framing = b"transfer-encoding: chunked\r\n" if length is None else b"content-length: %d\r\n" % length
    return (b"HTTP/1.1 %d %s\r\nserver: benchmock\r\ncontent-type: %s\r\n%s%s\r\n"
            % (status, _REASONS.get(status, "Error").encode(), content_type, framing, extra))


def _full(status: int, body: bytes, content_type: bytes = b"application/json") -> bytes:
    return _head(status, content_type, len(body)) + body


def _frame(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class StreamReply(NamedTuple):
    head: bytes  # status line and headers (chunked transfer encoding)
    frames: list[bytes]  # one chunked-encoding frame per SSE event; the last carries the zero chunk
    events: list[bytes]  # the SSE events themselves (for the aiohttp implementation)


class Replies:
    """Every answer pre-serialised once (per model, bounded), so serving is a dict lookup."""

    def __init__(self, chunks: int, stats: Stats | None = None) -> None:
        self.chunks = chunks
        self.stats = stats
        self._completion: dict[str, bytes] = {}
        self._stream: dict[tuple[str, bool], StreamReply] = {}
        self._errors = {s: _full(s, error_body(s)) for s in _ERRORS}
        self.models = _full(200, models_body())
        self.ok = _full(200, b"ok", b"text/plain")
        self.not_found = _full(404, orjson.dumps({"error": {"message": "Unknown path (mock upstream).",
                                                            "type": "invalid_request_error", "param": None,
                                                            "code": "unknown_url"}}))
        self.bad_request = _full(400, orjson.dumps({"error": {"message": "Invalid JSON body (mock upstream).",
                                                              "type": "invalid_request_error", "param": None,
                                                              "code": None}}))

    def error(self, status: int) -> bytes:
        reply = self._errors.get(status)
        if reply is None:
            reply = self._errors[status] = _full(status, error_body(status))
        return reply

    def completion(self, model: str) -> bytes:
        reply = self._completion.get(model)
        if reply is None:
            if len(self._completion) >= _MAX_CACHED_MODELS:
                self._completion.clear()
            reply = self._completion[model] = _full(200, completion_body(model))
        return reply

    def stream(self, model: str, include_usage: bool) -> StreamReply:
        key = (model, include_usage)
        reply = self._stream.get(key)
        if reply is None:
            if len(self._stream) >= _MAX_CACHED_MODELS:
                self._stream.clear()
            events = stream_events(model, self.chunks, include_usage)
            frames = [_frame(e) for e in events]
            frames[-1] += b"0\r\n\r\n"
            reply = self._stream[key] = StreamReply(
                _head(200, b"text/event-stream", None, b"cache-control: no-cache\r\n"), frames, events)
        return reply

    def embeddings(self, model: str) -> bytes:
        return _full(200, embeddings_body(model))

    def route(self, method: bytes, path: bytes, body: bytes) -> tuple[bytes | None, StreamReply | None]:
        """(full reply, None) or (None, stream reply) for one request."""
        if b"/fail/" in path:
            return self.error(503), None
        if path.endswith(b"/chat/completions"):
            if method != b"POST":
                return _full(405, b""), None
            try:
                req = orjson.loads(body)
                model = req.get("model")
                if not isinstance(model, str):
                    model = "gpt-4o-mini"
            except (orjson.JSONDecodeError, AttributeError):
                return self.bad_request, None
            if model.startswith("fail-") and model[5:].isdigit():
                return self.error(int(model[5:])), None
            if req.get("stream") is True:
                options = req.get("stream_options")
                return None, self.stream(model, isinstance(options, dict) and options.get("include_usage") is True)
            return self.completion(model), None
        if path.endswith(b"/embeddings") and method == b"POST":
            try:
                model = orjson.loads(body).get("model") or "text-embedding-3-small"
            except (orjson.JSONDecodeError, AttributeError):
                return self.bad_request, None
            return self.embeddings(str(model)), None
        if path.endswith(b"/models"):
            return self.models, None
        if path in (b"/healthz", b"/readyz", b"/"):
            return self.ok, None
        if path == b"/stats" and self.stats is not None:
            return _full(200, orjson.dumps({"requests": self.stats.requests,
                                            "connections": self.stats.connections})), None
        return self.not_found, None


class Stats:
    __slots__ = ("connections", "requests", "started")

    def __init__(self) -> None:
        self.requests = 0
        self.connections = 0
        self.started = time.monotonic()


# -- raw asyncio implementation -------------------------------------------------------------------------
class MockProtocol(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection. Requests are answered strictly in order (no overlap)."""

    __slots__ = ("_buf", "_busy", "_closed", "_loop", "_processing", "_replies", "_settings", "_stats",
                 "_transport")

    def __init__(self, replies: Replies, settings: argparse.Namespace, stats: Stats) -> None:
        self._replies = replies
        self._settings = settings
        self._stats = stats
        self._buf = bytearray()
        self._busy = False
        self._processing = False
        self._closed = False
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()

    def connection_made(self, transport) -> None:
        self._transport = transport
        self._stats.connections += 1

    def connection_lost(self, exc) -> None:
        self._closed = True

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if not self._busy:
            self._process()

    def _process(self) -> None:
        self._processing = True
        try:
            self._parse_requests()
        finally:
            self._processing = False

    def _parse_requests(self) -> None:
        buf = self._buf
        while buf and not self._busy and not self._closed:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > _MAX_HEAD:
                    self._abort(431)
                return
            head = bytes(buf[:end])
            line_end = head.find(b"\r\n")
            parts = (head if line_end < 0 else head[:line_end]).split(b" ")
            if len(parts) != 3:
                self._abort(400)
                return
            method, target, version = parts
            lower = head.lower()
            keep_alive = (b"\r\nconnection: close" not in lower if version == b"HTTP/1.1"
                          else b"\r\nconnection: keep-alive" in lower)
            start = end + 4
            if b"\r\ntransfer-encoding: chunked" in lower:
                try:
                    decoded = _dechunk(buf, start)
                except ValueError:
                    self._abort(400)
                    return
                if decoded is None:
                    return  # wait for the rest of the body
                body, consumed = decoded
            else:
                pos = lower.find(b"\r\ncontent-length:")
                length = 0
                if pos >= 0:
                    stop = lower.find(b"\r\n", pos + 17)
                    try:
                        length = int(lower[pos + 17:stop if stop >= 0 else None])
                    except ValueError:
                        self._abort(400)
                        return
                if length > _MAX_BODY:
                    self._abort(413)
                    return
                if len(buf) < start + length:
                    return
                body, consumed = bytes(buf[start:start + length]), start + length
            del buf[:consumed]
            query = target.find(b"?")
            self._respond(method, target if query < 0 else target[:query], body, keep_alive)

    def _respond(self, method: bytes, path: bytes, body: bytes, keep_alive: bool) -> None:
        self._stats.requests += 1
        full, stream = self._replies.route(method, path, body)
        latency = self._settings.latency_s
        self._busy = True
        if latency > 0:
            self._loop.call_later(latency, self._send, full, stream, keep_alive)
        else:
            self._send(full, stream, keep_alive)

    def _send(self, full: bytes | None, stream: StreamReply | None, keep_alive: bool) -> None:
        if self._closed:
            return
        transport = self._transport
        if full is not None:
            transport.write(full)
            self._done(keep_alive)
            return
        head, frames, _ = stream
        interval = self._settings.chunk_interval_s
        if interval <= 0:
            transport.write(head + b"".join(frames))
            self._done(keep_alive)
            return
        transport.write(head + frames[0])
        self._loop.call_later(interval, self._next_frame, frames, 1, keep_alive)

    def _next_frame(self, frames: list[bytes], index: int, keep_alive: bool) -> None:
        if self._closed:
            return
        self._transport.write(frames[index])
        if index + 1 < len(frames):
            self._loop.call_later(self._settings.chunk_interval_s, self._next_frame, frames, index + 1, keep_alive)
        else:
            self._done(keep_alive)

    def _done(self, keep_alive: bool) -> None:
        self._busy = False
        if not keep_alive:
            self._closed = True
            self._transport.close()
        elif self._buf and not self._processing:  # pipelined requests answered after a delayed one
            self._process()

    def _abort(self, status: int) -> None:
        if self._transport is not None and not self._closed:
            self._transport.write(_head(status, b"text/plain", 0)[:-2] + b"connection: close\r\n\r\n")
            self._transport.close()
        self._closed = True


def _dechunk(buf: bytearray, pos: int) -> tuple[bytes, int] | None:
    """Decode a chunked body starting at `pos`; None while incomplete. Returns (body, end offset)."""
    out = bytearray()
    while True:
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = int(bytes(buf[pos:line_end]).split(b";")[0] or b"0", 16)
        pos = line_end + 2
        if size == 0:
            trailer_end = buf.find(b"\r\n\r\n", pos - 2)
            if trailer_end < 0:
                return None
            return bytes(out), trailer_end + 4
        if len(buf) < pos + size + 2:
            return None
        out += buf[pos:pos + size]
        pos += size + 2


async def serve_raw(settings: argparse.Namespace, stop: asyncio.Event, stats: Stats) -> None:
    loop = asyncio.get_running_loop()
    replies = Replies(settings.chunks, stats)
    server = await loop.create_server(lambda: MockProtocol(replies, settings, stats), settings.host,
                                      settings.port, backlog=4096, reuse_address=True)
    _announce(settings)
    try:
        await stop.wait()
    finally:
        server.close()


# -- aiohttp implementation (cross-check) ---------------------------------------------------------------
async def serve_aiohttp(settings: argparse.Namespace, stop: asyncio.Event, stats: Stats) -> None:
    from aiohttp import web

    replies = Replies(settings.chunks, stats)

    def split(full: bytes) -> tuple[int, str, bytes]:
        head, _, body = full.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        ctype = next(v for k, _, v in (ln.partition(b": ") for ln in lines[1:]) if k == b"content-type")
        return status, ctype.decode(), body

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        stats.requests += 1
        body = await request.read()
        full, stream = replies.route(request.method.encode(), request.path.encode(), body)
        if settings.latency_s > 0:
            await asyncio.sleep(settings.latency_s)
        if full is not None:
            status, ctype, payload = split(full)
            return web.Response(status=status, body=payload, content_type=ctype)
        response = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache"})
        await response.prepare(request)
        events = stream.events
        if settings.chunk_interval_s <= 0:
            await response.write(b"".join(events))
        else:
            for i, event in enumerate(events):
                if i:
                    await asyncio.sleep(settings.chunk_interval_s)
                await response.write(event)
        await response.write_eof()
        return response

    server = web.Server(handler, access_log=None)
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(server, settings.host, settings.port, backlog=4096, reuse_address=True)
    _announce(settings)
    try:
        await stop.wait()
    finally:
        srv.close()
        await server.shutdown(1.0)


# -- entry point ------------------------------------------------------------------------------------------
def _announce(settings: argparse.Namespace) -> None:
    print(f"mock_upstream: {settings.impl} on http://{settings.host}:{settings.port} "
          f"(latency {settings.latency_ms:g} ms, {settings.chunks} chunks, "
          f"interval {settings.chunk_interval_ms:g} ms, pid {os.getpid()})", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.mock_upstream", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8099)
    p.add_argument("--latency-ms", type=float, default=0.0, help="delay before the response headers")
    p.add_argument("--chunks", type=int, default=20, help="content chunks per stream")
    p.add_argument("--chunk-interval-ms", type=float, default=0.0, help="delay between stream chunks")
    p.add_argument("--impl", choices=("raw", "aiohttp"), default="raw")
    p.add_argument("--max-seconds", type=float, default=24 * 3600.0, help="exit after this long (a safety bound)")
    args = p.parse_args(argv)
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        p.error("the benchmark mock only listens on loopback")
    if args.chunks < 1 or args.latency_ms < 0 or args.chunk_interval_ms < 0:
        p.error("--chunks must be >= 1 and delays >= 0")
    args.latency_s = args.latency_ms / 1000.0
    args.chunk_interval_s = args.chunk_interval_ms / 1000.0
    return args


async def amain(settings: argparse.Namespace) -> Stats:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.call_later(settings.max_seconds, stop.set)
    stats = Stats()
    await (serve_raw if settings.impl == "raw" else serve_aiohttp)(settings, stop, stats)
    return stats


def main(argv: list[str] | None = None) -> int:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    settings = parse_args(argv)
    try:
        import uvloop
    except ImportError:
        uvloop = None
    stats = uvloop.run(amain(settings)) if uvloop is not None else asyncio.run(amain(settings))
    print(f"mock_upstream: served {stats.requests} requests on {stats.connections} connections "
          f"in {time.monotonic() - stats.started:.1f}s", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
