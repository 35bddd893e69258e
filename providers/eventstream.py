"""AWS event stream framing (`application/vnd.amazon.eventstream`), sans-I/O.

Bedrock's ConverseStream does not speak SSE: it sends binary frames, each one

    total_length u32 BE | headers_length u32 BE | prelude_crc u32 BE     (the 12-byte prelude)
    headers (headers_length bytes) | payload | message_crc u32 BE

where `prelude_crc` is the CRC32 of the first 8 bytes and `message_crc` the CRC32 of everything
before it. A header is `name_len u8, name, type u8, value`; see `_HEADER_TYPES`.

The decoder is fed arbitrary slices (a network read may split a frame anywhere, even inside the
prelude) and returns whole messages. Both CRCs are checked, so a corrupted or mis-framed stream
becomes an `INVALID_RESPONSE` instead of garbage JSON further down. botocore ships a decoder too,
but botocore is an optional extra (only SigV4 needs it) and this path must work without it.
`encode_frame` is the inverse, used by tests and by fake Bedrock servers.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from .base import invalid_response
from .errors import UpstreamError

HeaderValue = str | bytes | bool | int | uuid.UUID

PRELUDE_LENGTH = 12
MAX_HEADERS_LENGTH = 128 * 1024  # the limits AWS documents; anything larger is a framing error
MAX_PAYLOAD_LENGTH = 24 * 1024 * 1024
_MIN_MESSAGE_LENGTH = PRELUDE_LENGTH + 4

# type byte -> (struct format or None for variable length). 0/1 are bool true/false with no value
# bytes; 6/7 are byte array / UTF-8 string with a u16 length; 8 is a timestamp (ms, int64); 9 a UUID.
_FIXED: dict[int, str] = {2: "!b", 3: "!h", 4: "!i", 5: "!q", 8: "!q"}


@dataclass(slots=True)
class EventStreamMessage:
    """One decoded frame. Header values keep their wire type (str, bytes, bool, int, UUID)."""

    headers: dict[str, HeaderValue]
    payload: bytes


class EventStreamDecoder:
    """Incremental frame decoder: `feed(bytes) -> [EventStreamMessage]`."""

    __slots__ = ("_buf", "_need", "_provider")

    def __init__(self, provider: str = "eventstream") -> None:
        self._provider = provider
        self._buf = bytearray()
        self._need = 0  # total length of the frame being assembled, once its prelude is verified

    @property
    def pending(self) -> bool:
        """True when part of a frame is buffered (the stream stopped mid-frame)."""
        return bool(self._buf)

    def feed(self, data: bytes) -> list[EventStreamMessage]:
        return list(self.frames(data))

    def frames(self, data: bytes) -> Iterator[EventStreamMessage]:
        """Consume `data`; the completed frames are decoded one at a time as they are iterated, so a
        corrupt frame raises only after the good frames before it were handed out."""
        self._buf += data
        return self._drain()

    def _drain(self) -> Iterator[EventStreamMessage]:
        while True:
            if not self._need:
                if len(self._buf) < PRELUDE_LENGTH:
                    return
                self._need = self._read_prelude()
            if len(self._buf) < self._need:
                return
            frame = bytes(self._buf[: self._need])
            del self._buf[: self._need]
            self._need = 0
            yield self._decode(frame)

    def _read_prelude(self) -> int:
        total, headers_len, crc = struct.unpack_from("!III", self._buf, 0)
        if zlib.crc32(self._buf[:8]) != crc:
            raise self._error("prelude CRC mismatch")
        if total < _MIN_MESSAGE_LENGTH or headers_len > total - _MIN_MESSAGE_LENGTH:
            raise self._error(f"bad frame lengths (total {total}, headers {headers_len})")
        if headers_len > MAX_HEADERS_LENGTH or total - headers_len - _MIN_MESSAGE_LENGTH > MAX_PAYLOAD_LENGTH:
            raise self._error("frame exceeds the event stream size limits")
        return total

    def _decode(self, frame: bytes) -> EventStreamMessage:
        (crc,) = struct.unpack_from("!I", frame, len(frame) - 4)
        if zlib.crc32(frame[:-4]) != crc:
            raise self._error("message CRC mismatch")
        (headers_len,) = struct.unpack_from("!I", frame, 4)
        headers_end = PRELUDE_LENGTH + headers_len
        try:
            headers = _decode_headers(frame[PRELUDE_LENGTH:headers_end])
        except (struct.error, UnicodeDecodeError, ValueError) as exc:
            raise self._error(f"malformed headers ({exc})") from None
        return EventStreamMessage(headers, frame[headers_end:-4])

    def _error(self, detail: str) -> UpstreamError:
        return invalid_response(self._provider, f"event stream: {detail}")


def _decode_headers(raw: bytes) -> dict[str, HeaderValue]:
    headers: dict[str, HeaderValue] = {}
    pos, end = 0, len(raw)
    while pos < end:
        name_len = raw[pos]
        pos += 1
        name = raw[pos : pos + name_len].decode("utf-8")
        pos += name_len
        if pos >= end:
            raise ValueError("header without a value type")
        vtype = raw[pos]
        pos += 1
        value: HeaderValue
        if vtype in (0, 1):
            value = vtype == 0
        elif vtype in _FIXED:
            fmt = _FIXED[vtype]
            (value,) = struct.unpack_from(fmt, raw, pos)
            pos += struct.calcsize(fmt)
        elif vtype in (6, 7):
            (length,) = struct.unpack_from("!H", raw, pos)
            pos += 2
            if pos + length > end:
                raise ValueError("header value runs past the header block")
            chunk = raw[pos : pos + length]
            pos += length
            value = chunk.decode("utf-8") if vtype == 7 else bytes(chunk)
        elif vtype == 9:
            if pos + 16 > end:
                raise ValueError("truncated uuid header")
            value = uuid.UUID(bytes=bytes(raw[pos : pos + 16]))
            pos += 16
        else:
            raise ValueError(f"unknown header value type {vtype}")
        if pos > end:
            raise ValueError("header value runs past the header block")
        headers[name] = value
    return headers


def _encode_header(name: str, value: HeaderValue) -> bytes:
    raw_name = name.encode("utf-8")
    if len(raw_name) > 255:
        raise ValueError(f"header name too long: {name!r}")
    head = struct.pack("!B", len(raw_name)) + raw_name
    if isinstance(value, bool):
        return head + (b"\x00" if value else b"\x01")
    if isinstance(value, int):
        if -(2**31) <= value < 2**31:
            return head + b"\x04" + struct.pack("!i", value)
        return head + b"\x05" + struct.pack("!q", value)
    if isinstance(value, uuid.UUID):
        return head + b"\x09" + value.bytes
    if isinstance(value, str):
        vtype, data = 7, value.encode("utf-8")
    elif isinstance(value, bytes | bytearray):
        vtype, data = 6, bytes(value)
    else:
        raise TypeError(f"unsupported header value type for {name!r}: {type(value).__name__}")
    if len(data) > 0xFFFF:
        raise ValueError(f"header value too long: {name!r}")
    return head + struct.pack("!BH", vtype, len(data)) + data


def encode_frame(headers: Mapping[str, HeaderValue], payload: bytes) -> bytes:
    """Build one frame with valid CRCs (the inverse of `EventStreamDecoder`)."""
    raw_headers = b"".join(_encode_header(name, value) for name, value in headers.items())
    total = PRELUDE_LENGTH + len(raw_headers) + len(payload) + 4
    prelude = struct.pack("!II", total, len(raw_headers))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    body = prelude + raw_headers + payload
    return body + struct.pack("!I", zlib.crc32(body))


def event_frame(event_type: str, payload: bytes) -> bytes:
    """A Bedrock-style `event` frame (`:message-type: event`, JSON payload)."""
    return encode_frame({":event-type": event_type, ":content-type": "application/json",
                         ":message-type": "event"}, payload)


def exception_frame(exception_type: str, payload: bytes) -> bytes:
    """A Bedrock-style `exception` frame, as sent for throttling or model errors mid-stream."""
    return encode_frame({":exception-type": exception_type, ":content-type": "application/json",
                         ":message-type": "exception"}, payload)
