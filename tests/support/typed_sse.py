"""Parsing the typed event streams the Messages and Responses faces write, checking their exact framing."""

from __future__ import annotations

import orjson


def typed_events(data: bytes) -> list[dict]:
    """Events of a byte stream framed `event: <type>\\ndata: <json>\\n\\n`, whose `type` matches the name."""
    assert data.endswith(b"\n\n") or not data
    events = []
    for frame in data.split(b"\n\n")[:-1]:
        name_line, data_line = frame.split(b"\n")
        assert name_line.startswith(b"event: ") and data_line.startswith(b"data: ")
        event = orjson.loads(data_line[len(b"data: "):])
        assert event["type"] == name_line[len(b"event: "):].decode()
        events.append(event)
    return events
