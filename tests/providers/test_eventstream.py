"""AWS event stream framing: known-answer vectors, CRC checks, frames split at every byte."""

from __future__ import annotations

import struct
import uuid
import zlib

import pytest

from providers.errors import ErrorKind, UpstreamError
from providers.eventstream import (
    EventStreamDecoder,
    encode_frame,
    event_frame,
    exception_frame,
)

# Known-answer vectors from the AWS event stream test suites (botocore / transcribe-streaming SDK).
EMPTY_MESSAGE = b"\x00\x00\x00\x10\x00\x00\x00\x00\x05\xc2H\xeb}\x98\xc8\xff"
PAYLOAD_NO_HEADERS = b"\x00\x00\x00\x1d\x00\x00\x00\x00\xfdR\x8cZ{'foo':'bar'}\xc3e96"
PAYLOAD_ONE_STR_HEADER = (b"\x00\x00\x00=\x00\x00\x00 \x07\xfd\x83\x96\x0ccontent-type\x07\x00\x10"
                          b"application/json{'foo':'bar'}\x8d\x9c\x08\xb1")
INT32_HEADER = (b"\x00\x00\x00\x1d\x00\x00\x00\r\x83\xe3\xf0\xe7\x07"
                b"integer\x04\xff\xff\xff\xff\x8b\x8e\x12\xeb")
ALL_HEADER_TYPES = (
    b"\x00\x00\x00\x62\x00\x00\x00\x52\x03\xb5\xcb\x9c"
    b"\x010\x00\x011\x01\x012\x02\x02\x013\x03\x00\x03"
    b"\x014\x04\x00\x00\x00\x04\x015\x05\x00\x00\x00\x00\x00\x00\x00\x05"
    b"\x016\x06\x00\x05bytes\x017\x07\x00\x04utf8"
    b"\x018\x08\x00\x00\x00\x00\x00\x00\x00\x08\x019\x090123456789abcdef"
    b"\x63\x35\x36\x71"
)
ERROR_MESSAGE = (b"\x00\x00\x00\x52\x00\x00\x00\x42\xbf\x23\x63\x7e"
                 b"\x0d:message-type\x07\x00\x05error"
                 b"\x0b:error-code\x07\x00\x04code"
                 b"\x0e:error-message\x07\x00\x07message"
                 b"\x6b\x6c\xea\x3d")
CORRUPTED_PAYLOAD = b"\x00\x00\x00\x1d\x00\x00\x00\x00\xfdR\x8cZ{'foo':'bar'\x8d\xc3e96"
CORRUPTED_HEADERS = (b"\x00\x00\x00=\x00\x00\x00 \x07\xfd\x83\x96\x0ccontent+type\x07\x00\x10"
                     b"application/json{'foo':'bar'}\x8d\x9c\x08\xb1")
CORRUPTED_LENGTH = b"\x01\x00\x00\x1d\x00\x00\x00\x00\xfdR\x8cZ{'foo':'bar'}\xc3e96"


def decode_all(data: bytes):
    decoder = EventStreamDecoder("bedrock")
    messages = decoder.feed(data)
    assert not decoder.pending
    return messages


@pytest.mark.parametrize(("raw", "headers", "payload"), [
    (EMPTY_MESSAGE, {}, b""),
    (PAYLOAD_NO_HEADERS, {}, b"{'foo':'bar'}"),
    (PAYLOAD_ONE_STR_HEADER, {"content-type": "application/json"}, b"{'foo':'bar'}"),
    (INT32_HEADER, {"integer": -1}, b""),
    (ERROR_MESSAGE, {":message-type": "error", ":error-code": "code", ":error-message": "message"}, b""),
])
def test_known_vectors_decode_and_encode(raw, headers, payload):
    [message] = decode_all(raw)
    assert message.headers == headers
    assert message.payload == payload
    assert encode_frame(headers, payload) == raw


def test_all_header_types():
    [message] = decode_all(ALL_HEADER_TYPES)
    assert message.headers == {"0": True, "1": False, "2": 2, "3": 3, "4": 4, "5": 5, "6": b"bytes",
                               "7": "utf8", "8": 8, "9": uuid.UUID(bytes=b"0123456789abcdef")}


@pytest.mark.parametrize("raw", [CORRUPTED_PAYLOAD, CORRUPTED_HEADERS, CORRUPTED_LENGTH])
def test_corrupted_frames_are_invalid_response(raw):
    with pytest.raises(UpstreamError) as info:
        EventStreamDecoder("bedrock").feed(raw)
    assert info.value.kind is ErrorKind.INVALID_RESPONSE
    assert "bedrock" in info.value.message


def test_prelude_crc_checked_before_waiting_for_the_body():
    frame = bytearray(event_frame("messageStart", b'{"role":"assistant"}'))
    frame[3] ^= 0x01  # total length off by one: prelude CRC no longer matches
    decoder = EventStreamDecoder()
    with pytest.raises(UpstreamError) as info:
        decoder.feed(bytes(frame[:12]))  # only the prelude has arrived
    assert info.value.kind is ErrorKind.INVALID_RESPONSE
    assert "prelude" in info.value.message


def test_message_crc_mismatch():
    frame = bytearray(event_frame("contentBlockDelta", b'{"contentBlockIndex":0,"delta":{"text":"hi"}}'))
    frame[-6] ^= 0xFF  # flip a payload byte
    with pytest.raises(UpstreamError) as info:
        EventStreamDecoder().feed(bytes(frame))
    assert info.value.kind is ErrorKind.INVALID_RESPONSE
    assert "message CRC" in info.value.message


def test_absurd_lengths_rejected_even_with_a_valid_prelude_crc():
    prelude = struct.pack("!II", 10, 0)  # shorter than a prelude + message CRC
    with pytest.raises(UpstreamError):
        EventStreamDecoder().feed(prelude + struct.pack("!I", zlib.crc32(prelude)))
    prelude = struct.pack("!II", 64 * 1024 * 1024, 0)
    with pytest.raises(UpstreamError):
        EventStreamDecoder().feed(prelude + struct.pack("!I", zlib.crc32(prelude)))


def test_malformed_header_block_is_invalid_response():
    headers = b"\x04name\x63"  # value type 0x63 does not exist
    prelude = struct.pack("!II", 12 + len(headers) + 4, len(headers))
    body = prelude + struct.pack("!I", zlib.crc32(prelude)) + headers
    with pytest.raises(UpstreamError) as info:
        EventStreamDecoder().feed(body + struct.pack("!I", zlib.crc32(body)))
    assert info.value.kind is ErrorKind.INVALID_RESPONSE


def test_split_at_every_byte_boundary():
    frames = [event_frame("messageStart", b'{"role":"assistant"}'),
              event_frame("contentBlockDelta", '{"contentBlockIndex":0,"delta":{"text":"h\u00e9\U0001f44b"}}'.encode()),
              exception_frame("throttlingException", b'{"message":"slow down"}')]
    data = b"".join(frames)
    for cut in range(len(data) + 1):
        decoder = EventStreamDecoder()
        messages = decoder.feed(data[:cut]) + decoder.feed(data[cut:])
        assert [m.headers.get(":event-type") or m.headers.get(":exception-type") for m in messages] == [
            "messageStart", "contentBlockDelta", "throttlingException"]
        assert not decoder.pending


def test_one_byte_at_a_time_and_pending():
    data = event_frame("messageStop", b'{"stopReason":"end_turn"}')
    decoder = EventStreamDecoder()
    out = []
    for i in range(len(data)):
        out += decoder.feed(data[i:i + 1])
        if i < len(data) - 1:
            assert decoder.pending and not out
    assert len(out) == 1 and not decoder.pending
    assert out[0].headers == {":event-type": "messageStop", ":content-type": "application/json",
                              ":message-type": "event"}


def test_encoder_header_types_round_trip():
    headers = {"s": "text", "b": b"\x00\x01", "t": True, "f": False, "i": -7, "l": 2**40,
               "u": uuid.UUID("12345678-1234-5678-1234-567812345678")}
    [message] = decode_all(encode_frame(headers, b"payload"))
    assert message.headers == headers
    assert message.payload == b"payload"
    with pytest.raises(TypeError):
        encode_frame({"x": 1.5}, b"")  # type: ignore[dict-item]


def test_botocore_decodes_our_frames():
    eventstream = pytest.importorskip("botocore.eventstream")
    frames = [event_frame("messageStart", b'{"role":"assistant"}'),
              exception_frame("modelStreamErrorException", b'{"message":"boom"}'),
              encode_frame({"n": 5, "flag": True, "blob": b"\xde\xad"}, b"x" * 300)]
    buffer = eventstream.EventStreamBuffer()
    buffer.add_data(b"".join(frames))
    decoded = list(buffer)
    ours = decode_all(b"".join(frames))
    assert [m.headers for m in decoded] == [m.headers for m in ours]
    assert [m.payload for m in decoded] == [m.payload for m in ours]
