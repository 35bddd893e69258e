"""What the pipeline hands a face: a whole answer, a stream of canonical chunks, or a failure.

Every answer carries its `Outcome` (the call, the bill, who served, the cache status), which is all
a face needs for its metadata (`extra_fields`). A stream is accounted by the pipeline however it
ends (completed, broken upstream, client gone): the face only reads chunks and writes them. A live
stream always ends with a usage chunk (the vendor's, or an estimate), so every face can report
usage and a cached stream replays it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from providers import UpstreamError

from ..accounting.billed import Billed
from ..cache import CachedResponse, StreamRecorder
from ..exchange import Outcome
from ..routing.call import Call
from ..routing.chain import OpenStream
from ..routing.fanout import MergedStream
from ..routing.relay import Relay
from .billing import estimate_usage, generated_text


class CallFailed(Exception):
    """No deployment served (or one refused the request): the error to report and the attempt trail."""

    def __init__(self, error: UpstreamError, outcome: Outcome) -> None:
        super().__init__(error.message)
        self.error = error
        self.outcome = outcome


class Completion:
    """A whole answer: a canonical body (a `chat.completion` or an embeddings `list`)."""

    __slots__ = ("body", "outcome", "raw", "relayed")

    def __init__(self, body: dict[str, Any], outcome: Outcome, raw: bytes | None = None,
                 relayed: bytes | None = None) -> None:
        self.body = body  # shared with the cache on a hit: build new objects, never mutate it
        self.outcome = outcome
        self.raw = raw  # the vendor's untranslated body, when the caller may see it
        self.relayed = relayed  # the vendor's body in the face's own dialect, to send as it is

    @property
    def hit(self) -> bool:
        return self.outcome.cache == "hit"


class Replay:
    """A cached stream: its chunks, in order, as the first client received them."""

    __slots__ = ("_chunks", "outcome")

    relay = None  # a replay is rendered from its canonical chunks

    def __init__(self, entry: CachedResponse, outcome: Outcome) -> None:
        assert entry.chunks is not None
        self._chunks = entry.chunks  # shared with the cache: never mutated
        self.outcome = outcome

    async def batches(self) -> AsyncIterator[list[dict[str, Any]]]:
        yield self._chunks

    async def finish(self) -> None:
        """Nothing to store: it came from the cache."""


Store = Callable[[CachedResponse], Awaitable[None]]
Account = Callable[[Outcome], None]
TEXT_PARTS = 64  # a stream's text is kept as at most this many strings


class LiveStream:
    """A committed upstream stream, read as batches of canonical chunks.

    `batches` raises `UpstreamError` when the stream breaks after its first chunk; the outcome is
    accounted before it does (and when the reader stops early, when the generator is closed).
    """

    __slots__ = ("_account", "_bill", "_body", "_opened", "_recorder", "_store", "_text", "_usage", "accounted",
                 "completed", "outcome")

    def __init__(self, opened: OpenStream | MergedStream, call: Call, cache: str, body: dict[str, Any],
                 bill: Callable[[dict[str, Any] | None, bool], Billed], account: Account,
                 recorder: StreamRecorder | None, store: Store | None) -> None:
        self._opened = opened
        self._bill = bill
        self._account = account
        self._recorder = recorder
        self._store = store
        self._body = body  # what was sent, for an estimate when the vendor reports no usage
        self._usage: dict[str, Any] | None = None
        self._text: list[str] = []  # what the model wrote, for an estimate if the vendor reports no usage
        self.completed = False
        self.accounted = False
        self.outcome = Outcome.of(call, None, False, cache)

    @property
    def relay(self) -> Relay | None:
        """The vendor's own bytes, when it speaks the face's dialect (see `routing/relay.py`)."""
        return getattr(self._opened, "relay", None)

    async def batches(self) -> AsyncIterator[list[dict[str, Any]]]:
        recorder = self._recorder
        text = self._text
        last: dict[str, Any] = {}
        try:
            async for batch in self._opened.batches():
                for chunk in batch:
                    usage = chunk.get("usage")
                    if usage:
                        self._usage = usage
                    for choice in chunk.get("choices") or ():
                        delta = choice.get("delta")
                        if delta:
                            text += generated_text((delta,))
                    if recorder is not None:
                        recorder.add(chunk)
                if len(text) > TEXT_PARTS:  # one string, not one object per chunk, for a long stream
                    text[:] = ("".join(text),)
                last = batch[-1]
                yield batch
            if self._usage is None:  # the vendor reported none: say what it cost, marked estimated
                chunk = _usage_chunk(last, self._estimated_usage())
                if recorder is not None:
                    recorder.add(chunk)
                yield [chunk]
            self.completed = True
            self.account()
        except UpstreamError:
            self.account()
            raise
        finally:
            self._opened.close()
            self.account()  # the reader stopped early (client gone): what was streamed is billed

    async def finish(self) -> None:
        """Store a completed stream in the cache (call once the client has its last byte)."""
        recorder = self._recorder
        if not self.completed or recorder is None or self._store is None:
            return
        outcome = self.outcome
        entry = recorder.entry(provider=outcome.provider, model=outcome.model,
                               billed_usage=outcome.billed.as_dict() if outcome.billed else None)
        if entry is not None:
            await self._store(entry)

    def _estimated_usage(self) -> dict[str, Any]:
        target = self.outcome.call.target
        return estimate_usage(self._body, target.model if target else "", "".join(self._text))

    def account(self) -> None:
        """Record the outcome once: the vendor's usage, or an estimate of what was streamed."""
        if self.accounted:
            return
        self.accounted = True
        estimated = self._usage is None
        usage = self._estimated_usage() if estimated else self._usage
        outcome = self.outcome
        outcome.billed = self._bill(usage, estimated)
        outcome.ok = self.completed
        self._account(outcome)


def _usage_chunk(like: dict[str, Any], usage: dict[str, Any]) -> dict[str, Any]:
    """A `choices: []` usage chunk in the stream's identity."""
    return {"id": like.get("id", "chatcmpl-switchboard"), "object": "chat.completion.chunk",
            "created": like.get("created", int(time.time())), "model": like.get("model", ""),
            "choices": [], "usage": usage}
