"""Agent sessions: which conversation a request continues, and where its history and traces live.

Session id, in order: the `x-session-id` header; else the body's `session_id` (`sessionId`, or the
`id` useChat sends, on the UI face), created when it does not exist yet; else, when the request
names a `user`, an id derived from the caller's key, the agent and that user; else none (the
request is stateless and nothing is stored). Sessions are namespaced by the caller's virtual key
and the agent, so an id guessed by another key reads nothing. The id is returned in the
`x-session-id` response header.

A record holds the conversation (OpenAI messages, at most `max_messages`, oldest dropped first at a
user turn) and the traces of the last `max_runs` runs. Backends: memory (per process, LRU, TTL) or
Redis (`SET … EX ttl`, shared by every worker); when Redis is unreachable a run goes on stateless.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from typing import Any

from ..config.agents import AgentSessionsConfig
from ..errors import ApiError
from ..records import MemoryRecords, Records, RedisRecords
from ..redis_conn import RedisConn

SESSION_HEADER = "x-session-id"
_VALID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")


@dataclass(frozen=True, slots=True)
class SessionRef:
    id: str
    source: str  # header | body | user


def resolve(header: str | None, body_id: Any, body_param: str, user: Any, tenant: str,
            agent_id: str) -> SessionRef | None:
    """The session a request continues (see the module doc); 400 on a malformed id."""
    if header is not None:
        return SessionRef(_checked(header.strip(), SESSION_HEADER), "header")
    if body_id is not None:
        if not isinstance(body_id, str):
            raise ApiError(400, f"'{body_param}' must be a string", param=body_param, code="invalid_type")
        return SessionRef(_checked(body_id, body_param), "body")
    if isinstance(user, str) and user:
        digest = hashlib.sha256(f"{tenant}\x00{agent_id}\x00{user}".encode()).hexdigest()[:32]
        return SessionRef(f"user-{digest}", "user")
    return None


def _checked(value: str, param: str) -> str:
    if not _VALID.match(value):
        raise ApiError(400, f"'{param}' must be 1-128 characters of letters, digits and ._:@/+=-",
                       param=param, code="invalid_value")
    return value


def conversation(mode: str, stored: list[dict[str, Any]], sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the model sees of the past, by the agent's `history` mode.

    client: the request's messages as sent. session: the stored history, then the request's
    messages after its last assistant turn (all of them when the store has nothing).
    last_message: only the request's last message (with the assistant turn it answers, when it is
    a tool result).
    """
    tail = _tail(sent)
    if mode == "session":
        return [*stored, *tail] if stored else list(sent)
    if mode == "last_message":
        if sent and sent[-1].get("role") == "tool":
            start = len(sent) - len(tail)
            return sent[max(0, start - 1):]
        return sent[-1:]
    return list(sent)


def _tail(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].get("role") == "assistant":
            return messages[i + 1:]
    return list(messages)


def trim(messages: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The last `limit` messages, starting at a user turn (never at an orphaned tool result)."""
    messages = [m for m in messages if m.get("role") != "system"]
    if len(messages) <= limit:
        return messages
    cut = messages[-limit:]
    for i, message in enumerate(cut):
        if message.get("role") == "user":
            return cut[i:]
    return []


class SessionStore:
    """Sessions over a record store (`router/records.py`): memory per process, or Redis."""

    def __init__(self, config: AgentSessionsConfig, records: Records) -> None:
        self.config = config
        self.records = records

    @staticmethod
    def key(tenant: str, agent_id: str, session_id: str) -> str:
        return hashlib.sha256(f"{tenant}\x00{agent_id}\x00{session_id}".encode()).hexdigest()

    async def load(self, key: str) -> dict[str, Any] | None:
        return await self.records.load(key)

    async def save(self, key: str, record: dict[str, Any]) -> None:
        await self.records.save(key, record)

    async def update(self, key: str, agent_id: str, messages: list[dict[str, Any]], run: dict[str, Any],
                     loaded: dict[str, Any] | None) -> None:
        """Store the conversation after a run and append the run's trace."""
        now = time.time()
        record = dict(loaded or {"agent": agent_id, "created": now, "runs": []})
        record["messages"] = trim(messages, self.config.max_messages)
        record["runs"] = [*record.get("runs", []), {"at": now, **run}][-self.config.max_runs:]
        record["updated"] = now
        await self.save(key, record)


def build_store(config: AgentSessionsConfig, conn: RedisConn | None) -> SessionStore:
    if config.backend == "redis" or (config.backend is None and conn is not None):
        if conn is None:
            raise ValueError("agent_settings.sessions.backend 'redis' needs the redis section (redis.url)")
        return SessionStore(config, RedisRecords(conn, "agent-session:", config.ttl_s, "agent session"))
    return SessionStore(config, MemoryRecords(config.ttl_s, config.max_sessions))
