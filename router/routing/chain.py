"""The attempt chain: try each deployment in order, retrying, rotating keys and falling back by error kind.

Every endpoint (chat, embeddings, streams, agents) goes through `Chain.complete` or
`Chain.open_stream`, so failover is the same everywhere. What happens after a failure is decided by
one table (`policy.RULES`): caller errors go straight back, 401/403 cool the key down and rotate to
another, 429 rotates the key or backs off, 5xx/timeouts/connection errors/broken bodies retry and
then fall back. Deployments whose circuit breaker is open are skipped (unless nothing else is
left). A stream may fall back until its first content chunk has been read; after that it is
committed to its deployment. Failover never runs past `routing.request_timeout_s`: the deadline
covers the chain up to the answer (non-stream) or the first content chunk (stream); a committed
stream is then bounded by the provider's `idle_s` and `total_s`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from providers import ErrorKind, HttpRequest, StreamTranslator, UpstreamError

from ..errors import where
from ..upstream import Transport, UpstreamResponse
from .call import Call, ChainFailed
from .health import Deployment, HealthRegistry
from .policy import ErrorPolicy
from .relay import Relay
from .table import KeySlot, Plan, Target

log = logging.getLogger("switchboard")

# When every attempt fails, the client sees the error the upstreams said most clearly.
_RELEVANCE = {ErrorKind.RATE_LIMIT: 6, ErrorKind.OVERLOADED: 5, ErrorKind.SERVER: 5, ErrorKind.AUTH: 4,
              ErrorKind.NOT_FOUND: 4, ErrorKind.TIMEOUT: 3, ErrorKind.INVALID_RESPONSE: 3,
              ErrorKind.STREAM_CUT: 3, ErrorKind.CONNECT: 1}


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

    __slots__ = ("_call", "_data", "_dep", "_health", "_resp", "_translator", "finished", "head", "relay")

    def __init__(self, call: Call, resp: UpstreamResponse, data: AsyncIterator[bytes],
                 translator: StreamTranslator | Relay, head: list[dict], finished: bool) -> None:
        self._call = call
        self._resp = resp
        self._data = data
        self._translator = translator
        self.head = head
        self.finished = finished
        self.relay = translator if isinstance(translator, Relay) else None  # the vendor's bytes, for the client
        self._health: HealthRegistry | None = None
        self._dep: Deployment | None = None

    async def batches(self) -> AsyncIterator[list[dict]]:
        """Canonical chunks in batches as they arrive; raises `UpstreamError` on a mid-stream failure."""
        try:
            if self.head:
                yield self.head
            if self.finished:
                return
            translator = self._translator
            feed = translator.feed
            translator.check()  # an error read together with the first content ends the stream after it
            async for data in self._data:
                out = feed(data)
                if out:
                    yield out
                    translator.check()
            tail = translator.close()
            if tail:
                yield tail
        except Exception as exc:  # a translator tripping on odd vendor bytes is a broken stream too
            target = self._call.target
            err = exc if isinstance(exc, UpstreamError) or target is None else _translation_failure(target, exc)
            if not isinstance(err, UpstreamError):
                raise
            if target is not None:
                _redact(err, target)
            self._call.attempts[-1].error = f"after the first chunk: {err.message}"
            if self._health is not None and self._dep is not None:
                self._health.failure(self._dep, err.message)
            raise err from None
        finally:
            self.close()

    def hold(self, health: HealthRegistry, dep: Deployment) -> None:
        """Keep the deployment's in-flight slot until the stream ends; report a mid-stream failure."""
        self._health = health
        self._dep = dep

    def close(self) -> None:
        self._resp.release()
        if self._health is not None and self._dep is not None:
            self._health.finish(self._dep)
            self._dep = None


BuildRequest = Callable[[Target, str | None], HttpRequest]
ParseBody = Callable[[Target, bytes, Mapping[str, str]], dict]
# One exchange with one deployment: returns (value, time to first byte/content in ms).
AttemptFn = Callable[[Target, KeySlot], Awaitable[tuple[Any, float]]]


class _Failed:
    """Sentinel: a target's tries are spent; the chain goes on."""


_FAILED = _Failed()


class _State:
    __slots__ = ("attempted", "best", "deadline")

    def __init__(self, deadline: float) -> None:
        self.best: UpstreamError | None = None
        self.deadline = deadline
        self.attempted = False


class Chain:
    """Walks a `Plan`. One per worker process, shared by every endpoint."""

    def __init__(self, transport: Transport, health: HealthRegistry, policy: ErrorPolicy,
                 request_timeout_s: float, rng: random.Random) -> None:
        self.transport = transport
        self.health = health
        self.policy = policy
        self.request_timeout_s = request_timeout_s
        self.rng = rng

    # -- the two entry points ---------------------------------------------------------------
    async def complete(self, plan: Plan, call: Call, build: BuildRequest, parse: ParseBody) -> tuple[dict, bytes]:
        """Non-streaming: (canonical response, raw vendor body) from the first deployment that serves."""
        transport = self.transport

        async def exchange(target: Target, slot: KeySlot) -> tuple[Any, float]:
            runtime = target.runtime
            request = build(target, slot.value)
            t0 = time.perf_counter()
            resp = await transport.open(runtime.name, request, runtime.provider.serve_local)
            ttfb = (time.perf_counter() - t0) * 1000.0
            try:
                body = await resp.read()
            finally:
                resp.release()
                call.upstream_s += time.perf_counter() - t0
            if resp.status >= 300:
                raise runtime.provider.error(resp.status, resp.headers, body)
            try:
                return (parse(target, body, resp.headers), body), ttfb
            except UpstreamError as err:
                err.upstream_status = err.upstream_status or resp.status
                raise

        return await self._run(plan, call, exchange)

    async def open_stream(self, plan: Plan, call: Call, build: BuildRequest) -> OpenStream:
        """Streaming: open deployments in order until one produces its first content chunk."""
        transport = self.transport

        async def open_one(target: Target, slot: KeySlot) -> tuple[Any, float]:
            runtime = target.runtime
            request = build(target, slot.value)
            t0 = time.perf_counter()
            resp = await transport.open(runtime.name, request, runtime.provider.serve_local)
            try:
                if resp.status >= 300:
                    raise runtime.provider.error(resp.status, resp.headers, await resp.read())
                if request.dialect is None:
                    translator = runtime.provider.chat_stream(target.model)
                else:  # the face's own dialect: read for the router, relayed to the client as sent
                    translator = Relay(runtime.provider.native_stream(request.dialect, target.model))
                data = resp.iter_chunks()
                head: list[dict] = []
                finished = True
                async for piece in data:
                    chunks = translator.feed(piece)
                    if chunks:
                        head.extend(chunks)
                        if any(has_content(c) for c in chunks):
                            # committed: an error read after this content (`feed` holds it back)
                            # is raised by the stream once the content went out
                            finished = False
                            break
                        translator.check()  # an error after chunks with no content: fall back now
                if finished:
                    head.extend(translator.close())
            except UpstreamError as err:
                err.upstream_status = err.upstream_status or resp.status
                resp.release()
                raise
            except BaseException:
                resp.release()
                raise
            elapsed = time.perf_counter() - t0
            call.upstream_s += elapsed
            return OpenStream(call, resp, data, translator, head, finished), elapsed * 1000.0

        return await self._run(plan, call, open_one)

    # -- walking the plan -------------------------------------------------------------------
    async def _run(self, plan: Plan, call: Call, attempt: AttemptFn) -> Any:
        state = _State(call.started + self.request_timeout_s)
        remaining = state.deadline - time.perf_counter()
        try:
            async with asyncio.timeout(max(0.0, remaining)):
                result = await self._walk(plan, call, attempt, state, force=False)
                if result is _FAILED and not state.attempted:
                    # Every deployment is cooling down: try them anyway rather than fail unheard.
                    result = await self._walk(plan, call, attempt, state, force=True)
        except TimeoutError:
            raise ChainFailed(UpstreamError(
                ErrorKind.TIMEOUT, f"no deployment answered within the request deadline of "
                f"{self.request_timeout_s:g}s", code="request_timeout")) from None
        if result is _FAILED:
            assert state.best is not None
            raise ChainFailed(state.best)
        return result

    async def _walk(self, plan: Plan, call: Call, attempt: AttemptFn, state: _State, force: bool) -> Any:
        targets = plan.targets
        start = 0
        if plan.hedge_after_s is not None and len(targets) > 1:
            result = await self._hedged(targets[0], targets[1], plan.hedge_after_s, call, attempt, state, force)
            if result is not _FAILED:
                return result
            start = 2
        for target in targets[start:]:
            result = await self._target(target, call, attempt, state, force)
            if result is not _FAILED:
                return result
        return _FAILED

    def _pick(self, target: Target, slots: tuple[KeySlot, ...], tried: set[str], force: bool) -> KeySlot | None:
        """Weighted choice among the keys not tried yet whose key and deployment are healthy."""
        health = self.health
        if len(slots) == 1:  # the common case: one key, no list to build
            slot = slots[0]
            if slot.id in tried or not (force or (
                    health.key_ok(slot.id) and health.available(health.deployment(target.label, slot.id)))):
                return None
            return slot
        pool = [s for s in slots if s.id not in tried and (force or (
            health.key_ok(s.id) and health.available(health.deployment(target.label, s.id))))]
        if not pool:
            return None
        if len(pool) == 1:
            return pool[0]
        return self.rng.choices(pool, weights=[s.weight for s in pool])[0]

    async def _target(self, target: Target, call: Call, attempt: AttemptFn, state: _State, force: bool) -> Any:
        """All tries at one target: key rotation and retries. `_FAILED` when they are spent."""
        runtime = target.runtime
        health = self.health
        policy = self.policy
        try:
            slots = runtime.key_slots(target.model)
        except UpstreamError as err:
            if not force:  # the forced second walk meets it again: one entry in the trail is enough
                call.record(target, time.perf_counter(), 0, err.message)
            state.best = _more_relevant(state.best, err)
            return _FAILED
        tried: set[str] = set()
        slot = self._pick(target, slots, tried, force)
        retries = 0
        while slot is not None:
            state.attempted = True
            dep = health.deployment(target.label, slot.id)
            health.start(dep)
            t0 = time.perf_counter()
            try:
                value, ttfb_ms = await attempt(target, slot)
            except asyncio.CancelledError:
                health.finish(dep)
                call.record(target, t0, 0, "cancelled")
                raise
            except Exception as exc:
                health.finish(dep)
                err = exc if isinstance(exc, UpstreamError) else _translation_failure(target, exc)
                _redact(err, target)
                call.record(target, t0, err.upstream_status or 0, err.message)
                rule = policy.rule(err.kind)
                if rule.breaker:
                    health.failure(dep, err.message, err.retry_after if err.kind is ErrorKind.RATE_LIMIT else None)
                if rule.bad_key:
                    health.key_failed(slot.id)
                if not rule.fallback:
                    raise ChainFailed(err) from None
                state.best = _more_relevant(state.best, err)
                tried.add(slot.id)
                if rule.next_key:
                    other = self._pick(target, slots, tried, force)
                    if other is not None:
                        slot = other
                        continue
                if not rule.retry_same or retries >= runtime.max_retries:
                    return _FAILED
                delay = policy.backoff(retries, err.retry_after, self.rng.uniform)
                if delay is None or time.perf_counter() + delay >= state.deadline:
                    return _FAILED
                retries += 1
                await asyncio.sleep(delay)
                other = self._pick(target, slots, tried, force)
                if other is None and not (force or health.available(dep)):
                    return _FAILED  # this failure opened the breaker: stop hammering it
                slot = other or slot
                continue
            health.success(dep, ttfb_ms)
            if isinstance(value, OpenStream):
                value.hold(health, dep)  # the stream frees its slot when it ends
            else:
                health.finish(dep)
            call.record(target, t0, 200)
            call.target = target
            return value
        return _FAILED

    async def _hedged(self, first: Target, second: Target, after_s: float, call: Call, attempt: AttemptFn,
                      state: _State, force: bool) -> Any:
        """Race: if `first` has not answered within `after_s`, start `second`; take whichever serves."""
        lead = asyncio.ensure_future(self._target(first, call, attempt, state, force))
        done, _ = await asyncio.wait({lead}, timeout=after_s)
        if done:
            result = lead.result()
            if result is not _FAILED:
                return result
            return await self._target(second, call, attempt, state, force)
        backup = asyncio.ensure_future(self._target(second, call, attempt, state, force))
        pending = {lead, backup}
        winner: Any = _FAILED
        try:
            while pending and winner is _FAILED:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    result = task.result()  # a caller error (ChainFailed) propagates from here
                    if result is not _FAILED and winner is _FAILED:
                        winner = result
                    elif isinstance(result, OpenStream):
                        result.close()  # both committed at once: keep one
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        if winner is not _FAILED:
            _served_last(call)
        return winner


def _more_relevant(best: UpstreamError | None, err: UpstreamError) -> UpstreamError:
    if best is None or _RELEVANCE.get(err.kind, 2) >= _RELEVANCE.get(best.kind, 2):
        return err
    return best


def _translation_failure(target: Target, exc: Exception) -> UpstreamError:
    """A translator tripped on a vendor body it did not expect: a broken response, not a router crash."""
    log.warning("%s: could not translate the vendor response: %s", target.label, where(exc))
    return UpstreamError(ErrorKind.INVALID_RESPONSE, f"{target.runtime.name}: could not translate the "
                         f"vendor response ({type(exc).__name__})", code="invalid_upstream_response")


def _redact(err: UpstreamError, target: Target) -> UpstreamError:
    """Mask the provider's keys in a vendor error message: some vendors echo the key they were sent."""
    for key in target.runtime.keys:
        if key.value and key.value in err.message:
            err.message = err.message.replace(key.value, "[redacted]")
            err.args = (err.message,)
    return err


def _served_last(call: Call) -> None:
    """After a hedge, keep the served attempt last in the trail (the loser was cancelled after it)."""
    label = call.target.label if call.target else None
    for i in range(len(call.attempts) - 1, -1, -1):
        attempt = call.attempts[i]
        if attempt.model == label and attempt.error is None:
            call.attempts.append(call.attempts.pop(i))
            return
