"""What the cache stores: a finished, successful response, without its per-request metadata.

A JSON entry is the final body the client received minus `extra_fields`; an SSE entry is the
ordered list of canonical chunks the client received minus `extra_fields`, so a streamed hit
replays the same chunks - reasoning_content, tool-call deltas and the usage chunk included - rather
than one aggregated chunk (peers lose reasoning on streamed hits that way). `extra_fields` is left
out because the router writes fresh ones for every response (latency, attempts, cache status).

Entries are immutable once built; the helpers that serve them build new top-level objects, so one
entry can be shared by coalesced requests without copying.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import orjson

ENTRY_VERSION = 1
JSON = "json"
SSE = "sse"
_DATA = b"data: "
_END = b"\n\n"
_DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True, slots=True)
class CachedResponse:
    kind: Literal["json", "sse"]
    body: dict[str, Any] | None  # kind json: the response body without extra_fields
    chunks: list[dict[str, Any]] | None  # kind sse: the chunks as sent, without extra_fields
    provider: str | None  # provider that served the original response
    model: str | None  # `provider/model` label that served it
    billed_usage: dict[str, Any] | None  # what the original response was billed
    stored_at: float  # epoch seconds (comparable across instances, for max-age)

    @classmethod
    def from_body(cls, body: dict[str, Any], *, provider: str | None, model: str | None,
                  billed_usage: dict[str, Any] | None, stored_at: float | None = None) -> CachedResponse:
        """An entry for a non-stream response; `extra_fields` is dropped if present."""
        if "extra_fields" in body:
            body = {k: v for k, v in body.items() if k != "extra_fields"}
        return cls(JSON, body, None, provider, model, billed_usage, time.time() if stored_at is None else stored_at)

    @classmethod
    def from_chunks(cls, chunks: Iterable[dict[str, Any]], *, provider: str | None, model: str | None,
                    billed_usage: dict[str, Any] | None, stored_at: float | None = None) -> CachedResponse:
        """An entry for a stream; each chunk's `extra_fields` is dropped (chunks are not mutated)."""
        clean = [{k: v for k, v in c.items() if k != "extra_fields"} if "extra_fields" in c else c for c in chunks]
        return cls(SSE, None, clean, provider, model, billed_usage, time.time() if stored_at is None else stored_at)

    def encode(self) -> bytes:
        return orjson.dumps({"v": ENTRY_VERSION, "k": self.kind, "b": self.body, "c": self.chunks,
                             "p": self.provider, "m": self.model, "u": self.billed_usage, "t": self.stored_at})

    @classmethod
    def decode(cls, data: bytes | str | None) -> CachedResponse | None:
        """The entry, or None for anything that is not a well-formed entry of this version.

        A corrupted, truncated or foreign value must be a miss, never an exception in a handler.
        """
        if not data:
            return None
        try:
            raw = orjson.loads(data)
        except (orjson.JSONDecodeError, TypeError):
            return None
        if not isinstance(raw, dict) or raw.get("v") != ENTRY_VERSION:
            return None
        kind, body, chunks = raw.get("k"), raw.get("b"), raw.get("c")
        provider, model, usage, stored_at = raw.get("p"), raw.get("m"), raw.get("u"), raw.get("t")
        if kind == JSON:
            if not isinstance(body, dict) or chunks is not None:
                return None
        elif kind == SSE:
            if body is not None or not isinstance(chunks, list) or not chunks:
                return None
            if not all(isinstance(c, dict) for c in chunks):
                return None
        else:
            return None
        if not (_opt_str(provider) and _opt_str(model)) or not (usage is None or isinstance(usage, dict)):
            return None
        if isinstance(stored_at, bool) or not isinstance(stored_at, int | float):
            return None
        return cls(kind, body, chunks, provider, model, usage, float(stored_at))

    def response_body(self, extra_fields: dict[str, Any] | None = None) -> dict[str, Any]:
        """A new body dict to serve (JSON entries); the entry itself is not touched."""
        assert self.body is not None, "not a JSON entry"
        out = dict(self.body)
        if extra_fields is not None:
            out["extra_fields"] = extra_fields
        return out

    def sse_payload(self, head_extra: dict[str, Any] | None = None,
                    tail_extra: dict[str, Any] | None = None) -> bytes:
        """The whole SSE body to replay (SSE entries), `data: [DONE]` included.

        As for a live stream, the first chunk carries `head_extra` (provider, model) and the last
        chunk `tail_extra` (the full `extra_fields`); with a single chunk the tail wins. Pass None
        for both when `server.extra_fields` is off.
        """
        assert self.chunks is not None, "not an SSE entry"
        dumps = orjson.dumps
        last = len(self.chunks) - 1
        parts: list[bytes] = []
        for i, chunk in enumerate(self.chunks):
            extra = tail_extra if i == last and tail_extra is not None else head_extra if i == 0 else None
            if extra is not None:
                chunk = {**chunk, "extra_fields": extra}
            parts.append(_DATA + dumps(chunk) + _END)
        parts.append(_DONE)
        return b"".join(parts)


class StreamRecorder:
    """Collects the chunks a stream sends so a completed stream can be stored.

    Give it each chunk as it is written to the client (`add`), then `entry(...)` once the stream
    ended normally. Do not call `entry` after an upstream error or a client disconnect: partial
    streams are never cached. Recording stops (and `entry` returns None) once the chunks exceed
    `max_bytes`, so a huge stream is not held in memory only to be refused by the store.
    """

    __slots__ = ("_chunks", "_size", "max_bytes", "overflowed")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._chunks: list[dict[str, Any]] = []
        self._size = 0
        self.overflowed = False

    def add(self, chunk: dict[str, Any], nbytes: int | None = None) -> None:
        """Record `chunk` (by reference: it must not change after it was written, except for
        `extra_fields`, which is dropped). `nbytes`: its encoded size if the caller has it."""
        if self.overflowed:
            return
        self._size += len(orjson.dumps(chunk)) if nbytes is None else nbytes
        if self._size > self.max_bytes:
            self.overflowed = True
            self._chunks = []
            return
        self._chunks.append(chunk)

    def entry(self, *, provider: str | None, model: str | None,
              billed_usage: dict[str, Any] | None) -> CachedResponse | None:
        if self.overflowed or not self._chunks:
            return None
        return CachedResponse.from_chunks(self._chunks, provider=provider, model=model, billed_usage=billed_usage)


def _opt_str(value: Any) -> bool:
    return value is None or isinstance(value, str)
