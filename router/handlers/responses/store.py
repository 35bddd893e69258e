"""Stored Responses: what `GET`/`DELETE /v1/responses/{id}`, `input_items` and `previous_response_id` read.

A response the client asked to store (`store`, true by default as at OpenAI) is kept with its input
items and the whole conversation up to and including its output, so a later request that names it
as `previous_response_id` continues from there without resending anything. Records live under the
creating key's immutable identity and the id together: another key asking for the same id finds
nothing (404), exactly as for an id that never existed. Memory per process by default, Redis when
configured (shared by every worker and instance), with a TTL either way (`responses.ttl_s`).
"""

from __future__ import annotations

import hashlib
from typing import Any

from ...config.schema import ResponsesConfig
from ...records import MemoryRecords, Records, RedisRecords
from ...redis_conn import RedisConn


class ResponseStore:
    def __init__(self, records: Records) -> None:
        self.records = records

    @staticmethod
    def _key(tenant: str, response_id: str) -> str:
        return hashlib.sha256(f"{tenant}\x00{response_id}".encode()).hexdigest()

    async def get(self, tenant: str, response_id: str) -> dict[str, Any] | None:
        """`{"response", "input_items", "conversation"}`, or None (unknown, expired or another key's)."""
        return await self.records.load(self._key(tenant, response_id))

    async def put(self, tenant: str, response: dict[str, Any], input_items: list[dict[str, Any]],
                  conversation: list[dict[str, Any]]) -> None:
        await self.records.save(self._key(tenant, response["id"]), {
            "response": response, "input_items": input_items, "conversation": conversation})

    async def delete(self, tenant: str, response_id: str) -> bool:
        return await self.records.delete(self._key(tenant, response_id))


def build_response_store(config: ResponsesConfig, conn: RedisConn | None) -> ResponseStore:
    if config.backend == "redis" or (config.backend is None and conn is not None):
        if conn is None:
            raise ValueError("responses.backend 'redis' needs the redis section (redis.url)")
        return ResponseStore(RedisRecords(conn, "response:", config.ttl_s, "stored response"))
    return ResponseStore(MemoryRecords(config.ttl_s, config.max_responses))
