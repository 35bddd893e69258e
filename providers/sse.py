"""Incremental Server-Sent Events decoder (sans-I/O), shared by every SSE-speaking provider.

Fed arbitrary byte slices (a network read may split an event, a line or a UTF-8 sequence anywhere),
it returns complete events as `(event, data)` pairs. Follows the WHATWG rules that matter for LLM
streams: `\\n`, `\\r\\n` and `\\r` line ends, comment lines, multi-line `data`, an optional space
after the colon, and events dispatched on a blank line.
"""

from __future__ import annotations


class SSEDecoder:
    __slots__ = ("_buf", "_data", "_event")

    def __init__(self) -> None:
        self._buf = b""
        self._event: str | None = None
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[tuple[str | None, bytes]]:
        """Consume bytes, return the events completed by them."""
        buf = self._buf + chunk if self._buf else chunk
        held = b""
        if b"\r" in buf:
            if buf.endswith(b"\r"):  # may be the first half of \r\n: decide on the next read
                buf, held = buf[:-1], b"\r"
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        head, sep, tail = buf.rpartition(b"\n")
        if not sep:
            self._buf = buf + held
            return []
        self._buf = tail + held
        return self._lines(head)

    def close(self) -> list[tuple[str | None, bytes]]:
        """End of input: a final event not followed by a blank line is still dispatched."""
        events = self._lines(self._buf.rstrip(b"\r")) if self._buf else []
        self._buf = b""
        if self._data:
            events.append((self._event, b"\n".join(self._data)))
            self._data = []
            self._event = None
        return events

    @property
    def pending(self) -> bool:
        """True when bytes or a half-built event are waiting (the stream stopped mid-event)."""
        return bool(self._buf.strip() or self._data)

    def _lines(self, block: bytes) -> list[tuple[str | None, bytes]]:
        events: list[tuple[str | None, bytes]] = []
        for line in block.split(b"\n"):
            if not line:
                if self._data:
                    events.append((self._event, b"\n".join(self._data)))
                    self._data = []
                self._event = None
                continue
            if line[0] == 58:  # b":" comment / keep-alive
                continue
            name, _, value = line.partition(b":")
            if value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                self._data.append(value)
            elif name == b"event":
                self._event = value.decode("utf-8", "replace")
        return events
