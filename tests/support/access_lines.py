"""The access log's lines as a test sees them: a handler on the `switchboard.access` logger."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    async def wait(self, count: int, timeout: float = 3.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.lines) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return [orjson.loads(line) for line in self.lines]
