"""JSON records kept for a while, in this process or in Redis: the state a face keeps between requests.

Agent sessions and stored Responses both need the same thing: a record under a key, for `ttl_s`,
dropped least recently used first in memory, shared by every worker and instance in Redis
(`SET … EX`). When Redis cannot be reached a read finds nothing and a write is skipped, with one
warning: the request goes on without the state rather than fail.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Any

import orjson

from .redis_conn import REDIS_ERRORS, RedisConn

log = logging.getLogger("switchboard")


class Records:
    """The interface: `load`, `save`, `delete` of JSON objects by key."""

    async def load(self, key: str) -> dict[str, Any] | None:
        raise NotImplementedError

    async def save(self, key: str, record: dict[str, Any]) -> None:
        raise NotImplementedError

    async def delete(self, key: str) -> bool:
        """True when there was a record to delete."""
        raise NotImplementedError


class MemoryRecords(Records):
    def __init__(self, ttl_s: float, max_records: int) -> None:
        self.ttl_s = ttl_s
        self.max_records = max_records
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def load(self, key: str) -> dict[str, Any] | None:
        item = self._data.get(key)
        if item is None:
            return None
        expires, raw = item
        if expires < time.monotonic():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return orjson.loads(raw)

    async def save(self, key: str, record: dict[str, Any]) -> None:
        self._data[key] = (time.monotonic() + self.ttl_s, orjson.dumps(record))
        self._data.move_to_end(key)
        while len(self._data) > self.max_records:
            self._data.popitem(last=False)

    async def delete(self, key: str) -> bool:
        return self._data.pop(key, None) is not None


class RedisRecords(Records):
    def __init__(self, conn: RedisConn, prefix: str, ttl_s: float, what: str) -> None:
        self.conn = conn
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.what = what  # for the warning: "agent session", "stored response"

    def _key(self, key: str) -> str:
        return self.conn.key(self.prefix + key)

    async def load(self, key: str) -> dict[str, Any] | None:
        client = self.conn.client
        if client is None or not self.conn.up:
            return None
        try:
            raw = await client.get(self._key(key))
        except REDIS_ERRORS as exc:
            self.conn.failed(exc)
            log.warning("%s not loaded (redis unreachable)", self.what)
            return None
        try:
            return orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            return None

    async def save(self, key: str, record: dict[str, Any]) -> None:
        client = self.conn.client
        if client is None or not self.conn.up:
            return
        try:
            await client.set(self._key(key), orjson.dumps(record), ex=max(1, int(self.ttl_s)))
        except REDIS_ERRORS as exc:
            self.conn.failed(exc)
            log.warning("%s not saved (redis unreachable)", self.what)

    async def delete(self, key: str) -> bool:
        client = self.conn.client
        if client is None or not self.conn.up:
            return False
        try:
            return bool(await client.delete(self._key(key)))
        except REDIS_ERRORS as exc:
            self.conn.failed(exc)
            log.warning("%s not deleted (redis unreachable)", self.what)
            return False
