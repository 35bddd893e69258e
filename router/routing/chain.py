"""The attempt chain: try each deployment in order, retrying and falling back by error kind.

Every endpoint (chat, embeddings, streams, agents) goes through `complete` or `open_stream`, so
fallback semantics are the same everywhere: a fallback is taken on 429, 5xx, timeouts, connection
errors and broken upstream bodies; never on a caller error (400/413/422) or a client disconnect.
A stream may fall back until its first content chunk has been read; after that it is committed.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from providers import ErrorKind, HttpRequest, StreamTranslator, UpstreamError

from ..upstream import Transport, UpstreamResponse
from .table import Target

RETRYABLE = frozenset({ErrorKind.RATE_LIMIT, ErrorKind.OVERLOADED, ErrorKind.SERVER, ErrorKind.CONNECT,
                       ErrorKind.INVALID_RESPONSE, ErrorKind.STREAM_CUT})
MAX_RETRY_WAIT_S = 2.0  # a longer Retry-After moves on to the next deployment instead of waiting
BACKOFF_BASE_S = 0.1
# When every attempt fails, the client sees the error the upstreams said most clearly.
_RELEVANCE = {ErrorKind.RATE_LIMIT: 6, ErrorKind.OVERLOADED: 5, ErrorKind.SERVER: 5, ErrorKind.AUTH: 4,
              ErrorKind.NOT_FOUND: 4, ErrorKind.TIMEOUT: 3, ErrorKind.INVALID_RESPONSE: 3,
              ErrorKind.STREAM_CUT: 3, ErrorKind.CONNECT: 1}


class Attempt:
    """One try at one deployment, as reported in `extra_fields.attempts`."""

    __slots__ = ("error", "latency_ms", "model", "status")

    def __init__(self, model: str, status: int, latency_ms: float, error: str | None) -> None:
        self.model = model
        self.status = status
        self.latency_ms = latency_ms
        self.error = error

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "status": self.status, "latency_ms": self.latency_ms, "error": self.error}


class Call:
    """One client request as it moves through the chain: what was asked, tried and served."""

    __slots__ = ("attempts", "raw_requested", "request_type", "requested", "started", "target")

    def __init__(self, requested: str, request_type: str, started: float, raw_requested: bool = False) -> None:
        self.requested = requested
        self.request_type = request_type
        self.started = started
        self.raw_requested = raw_requested
        self.attempts: list[Attempt] = []
        self.target: Target | None = None

    def record(self, target: Target, t0: float, status: int, error: UpstreamError | None = None) -> None:
        latency = round((time.perf_counter() - t0) * 1000.0, 3)
        self.attempts.append(Attempt(target.label, status, latency, error.message if error else None))

    @property
    def wants_raw(self) -> bool:
        return self.raw_requested or (self.target is not None and self.target.runtime.raw_response)


class ChainFailed(Exception):
    """Every attempt failed (or one failed with a caller error); `error` is the one to report."""

    def __init__(self, error: UpstreamError) -> None:
        super().__init__(error.message)
        self.error = error


def _more_relevant(best: UpstreamError | None, err: UpstreamError) -> UpstreamError:
    if best is None or _RELEVANCE.get(err.kind, 2) >= _RELEVANCE.get(best.kind, 2):
        return err
    return best


def _redact(err: UpstreamError, target: Target) -> UpstreamError:
    """Mask the provider's keys in a vendor error message: some vendors echo the key they were sent."""
    for key in target.runtime.keys:
        if key.value in err.message:
            err.message = err.message.replace(key.value, "[redacted]")
            err.args = (err.message,)
    return err


def _retry_delay(err: UpstreamError, attempt: int, rng: random.Random) -> float | None:
    """Seconds to wait before retrying the same deployment, or None to move on."""
    if err.kind not in RETRYABLE:
        return None
    if err.retry_after is not None:
        return err.retry_after if err.retry_after <= MAX_RETRY_WAIT_S else None
    return rng.uniform(0.0, min(MAX_RETRY_WAIT_S, BACKOFF_BASE_S * (2 ** attempt)))  # full jitter


BuildRequest = Callable[[Target, str | None], HttpRequest]
ParseBody = Callable[[Target, bytes], dict]


async def complete(transport: Transport, plan: list[Target], call: Call, build: BuildRequest,
                   parse: ParseBody, rng: random.Random) -> tuple[dict, bytes]:
    """Non-streaming: return (canonical response, raw vendor body) from the first deployment that serves."""
    best: UpstreamError | None = None
    for target in plan:
        key: str | None = None
        provider = target.runtime.provider
        for attempt in range(target.runtime.max_retries + 1):
            t0 = time.perf_counter()
            status = 0
            try:
                key = target.runtime.pick_key(target.model, rng, exclude=key)
                resp = await transport.open(target.runtime, build(target, key))
                status = resp.status
                try:
                    body = await resp.read()
                finally:
                    resp.release()
                if status >= 300:
                    raise provider.error(status, resp.headers, body)
                result = parse(target, body)
            except UpstreamError as err:
                _redact(err, target)
                call.record(target, t0, status, err)
                if err.is_caller_error:
                    raise ChainFailed(err) from None
                best = _more_relevant(best, err)
                delay = _retry_delay(err, attempt, rng) if attempt < target.runtime.max_retries else None
                if delay is None:
                    break
                await asyncio.sleep(delay)
                continue
            call.record(target, t0, status)
            call.target = target
            return result, body
    assert best is not None
    raise ChainFailed(best)


def has_content(chunk: dict) -> bool:
    """True when a canonical chunk carries something the client must not see twice."""
    for choice in chunk.get("choices") or ():
        if choice.get("finish_reason"):
            return True
        delta = choice.get("delta")
        if delta and (delta.get("content") or delta.get("tool_calls") or delta.get("refusal")
                      or delta.get("reasoning_content") or delta.get("function_call")):
            return True
    return False


class OpenStream:
    """A committed upstream stream: the chunks read up to the first content, then the rest."""

    __slots__ = ("_call", "_data", "_resp", "_translator", "finished", "head")

    def __init__(self, call: Call, resp: UpstreamResponse, data: AsyncIterator[bytes],
                 translator: StreamTranslator, head: list[dict], finished: bool) -> None:
        self._call = call
        self._resp = resp
        self._data = data
        self._translator = translator
        self.head = head
        self.finished = finished

    async def batches(self) -> AsyncIterator[list[dict]]:
        """Canonical chunks in batches as they arrive; raises `UpstreamError` on a mid-stream failure."""
        try:
            if self.head:
                yield self.head
            if self.finished:
                return
            feed = self._translator.feed
            async for data in self._data:
                out = feed(data)
                if out:
                    yield out
            tail = self._translator.close()
            if tail:
                yield tail
        except UpstreamError as err:
            if self._call.target is not None:
                _redact(err, self._call.target)
            last = self._call.attempts[-1]
            last.error = f"after the first chunk: {err.message}"
            raise
        finally:
            self.close()

    def close(self) -> None:
        self._resp.release()


async def open_stream(transport: Transport, plan: list[Target], call: Call, build: BuildRequest,
                      rng: random.Random) -> OpenStream:
    """Streaming: open deployments in order until one produces its first content chunk."""
    best: UpstreamError | None = None
    for target in plan:
        key: str | None = None
        runtime = target.runtime
        for attempt in range(runtime.max_retries + 1):
            t0 = time.perf_counter()
            status = 0
            resp: UpstreamResponse | None = None
            try:
                key = runtime.pick_key(target.model, rng, exclude=key)
                resp = await transport.open(runtime, build(target, key))
                status = resp.status
                if status >= 300:
                    body = await resp.read()
                    raise runtime.provider.error(status, resp.headers, body)
                translator = runtime.provider.chat_stream(target.model)
                data = resp.iter_chunks()
                head: list[dict] = []
                finished = True
                async for piece in data:
                    chunks = translator.feed(piece)
                    if chunks:
                        head.extend(chunks)
                        if any(has_content(c) for c in chunks):
                            finished = False
                            break
                if finished:
                    head.extend(translator.close())
            except UpstreamError as err:
                if resp is not None:
                    resp.release()
                _redact(err, target)
                call.record(target, t0, status, err)
                if err.is_caller_error:
                    raise ChainFailed(err) from None
                best = _more_relevant(best, err)
                delay = _retry_delay(err, attempt, rng) if attempt < runtime.max_retries else None
                if delay is None:
                    break
                await asyncio.sleep(delay)
                continue
            except BaseException:
                if resp is not None:
                    resp.release()
                raise
            call.record(target, t0, status)
            call.target = target
            return OpenStream(call, resp, data, translator, head, finished)
    assert best is not None
    raise ChainFailed(best)
