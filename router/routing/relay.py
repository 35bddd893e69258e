"""A vendor stream relayed to the client as the vendor sent it, and translated all the same.

When a face's request went to a vendor that speaks the face's own dialect (`HttpRequest.dialect`), the
client gets the vendor's bytes, not a rendering of our canonical chunks: nothing is converted twice
and members we do not know survive. The router still needs the canonical chunks (usage for
accounting, content for the commit decision and the cache), so the vendor's translator reads the
same bytes. `Relay` stands in for that translator and keeps what it was fed; `take` hands out the
bytes up to the last complete event, so a relayed stream never ends inside an event when the face
has to add an error event of its own.
"""

from __future__ import annotations

from providers import StreamTranslator

_EVENT_ENDS = (b"\n\n", b"\r\n\r\n")


class Relay:
    """A translator's stand-in that keeps the raw bytes it is fed (see the module doc)."""

    __slots__ = ("_pending", "_translator")

    def __init__(self, translator: StreamTranslator) -> None:
        self._translator = translator
        self._pending = bytearray()

    def feed(self, data: bytes) -> list[dict]:
        self._pending += data
        return self._translator.feed(data)

    def check(self) -> None:
        self._translator.check()

    def close(self) -> list[dict]:
        return self._translator.close()

    def take(self) -> bytes:
        """The bytes read so far up to the end of the last complete event."""
        pending = self._pending
        end = max((at + len(sep) for sep in _EVENT_ENDS if (at := pending.rfind(sep)) >= 0), default=0)
        if not end:
            return b""
        out = bytes(pending[:end])
        del pending[:end]
        return out

    def rest(self) -> bytes:
        """Everything not yet taken (the stream is over)."""
        out = bytes(self._pending)
        self._pending.clear()
        return out
