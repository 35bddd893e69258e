"""Virtual keys: who may call the router, on which models, within which limits.

Secrets are never kept: a key is known by the sha256 hex digest of its secret. Config keys are
hashed once at start-up. Keys created through the admin API live in Redis (one hash per key at
`prefix:{vk}:key:<name>`, the set of names at `prefix:{vk}:index`, a change counter at
`prefix:{vk}:version`; all in one Cluster slot) or, without Redis, in this process only.

Each process keeps a mirror of the admin keys, so a lookup is a sha256 and a dict lookup. The
mirror is re-validated (one GET of the change counter) at most every `refresh_s`, and a miss
re-validates it at most every `miss_refresh_s`: random keys from an attacker cost Redis at most one
small command per second per process, a key created on another instance works here within about a
second, and a deleted key stops working everywhere within `refresh_s`. While Redis is unreachable
the last mirror keeps serving; if no mirror was ever loaded, an unknown key cannot be told apart
from an admin key and `KeyStoreUnavailable` is raised (the authenticator answers 503).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from redis.exceptions import BusyLoadingError, ClusterError, RedisClusterException, ResponseError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError

from ..config.schema import AuthConfig
from ..globs import matcher
from ..redis_conn import REDIS_ERRORS, RedisConn
from ..tasks import stop
from .lua import LuaScript

log = logging.getLogger("switchboard")

SECRET_PREFIX = "sk-sb-"
_REDIS_FAILURES = (*REDIS_ERRORS, RedisClusterException)
# Admin-created names: they appear in Redis keys, metric labels and URLs.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,63}$")
PERIOD_RE = re.compile(r"^([1-9][0-9]{0,5})([dhm])$")
_UNIT_S = {"d": 86400, "h": 3600, "m": 60}
# Budgets are integer nano-dollars; Lua compares them as doubles, exact below 2**53 (~9M USD).
MAX_BUDGET_NANOS = 2**53 - 1
NANOS_PER_USD = 1_000_000_000


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def parse_period(period: str) -> int:
    """`30d` / `12h` / `90m` -> seconds. ValueError otherwise."""
    m = PERIOD_RE.match(period)
    if m is None:
        raise ValueError("must look like 30d, 12h or 90m")
    return int(m.group(1)) * _UNIT_S[m.group(2)]


def format_period(seconds: int) -> str:
    for unit in "dhm":
        if seconds % _UNIT_S[unit] == 0:
            return f"{seconds // _UNIT_S[unit]}{unit}"
    return f"{seconds}s"


def usd_to_nanos(usd: float) -> int:
    return min(MAX_BUDGET_NANOS, max(0, round(usd * NANOS_PER_USD)))


@dataclass(frozen=True, slots=True)
class VirtualKey:
    name: str
    key_hash: str  # sha256 hex of the secret
    models: tuple[str, ...] | None = None  # globs over requested names; None = every model
    tools: tuple[str, ...] | None = None  # globs over tool names (agents, /mcp); None = every tool
    budget_nanos: int | None = None  # USD budget per period, integer nano-dollars; None = unlimited
    budget_period_s: int = 30 * 86400
    rpm: int | None = None
    tpm: int | None = None
    source: Literal["config", "admin"] = "config"
    created_at: float = 0.0
    # Immutable identity (never the reusable name): cache entries, sessions and stored responses
    # belong to it, so a deleted and re-created key starts with none. Admin keys get a random one;
    # a config key is identified by its secret's hash (a new secret is a new key).
    key_id: str = ""
    has_limits: bool = field(init=False, repr=False, compare=False)
    _allows: Callable[[str], bool] | None = field(init=False, repr=False, compare=False)
    _allows_tool: Callable[[str], bool] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "has_limits",
                           self.rpm is not None or self.tpm is not None or self.budget_nanos is not None)
        object.__setattr__(self, "_allows", matcher(self.models))
        object.__setattr__(self, "_allows_tool", matcher(self.tools))
        if not self.key_id:
            object.__setattr__(self, "key_id", self.key_hash)

    @property
    def id(self) -> str:
        return self.key_id

    def allows(self, model: str) -> bool:
        """Whether `model` (as the client requested it) matches one of the key's globs."""
        return self._allows is None or self._allows(model)

    def allows_tool(self, tool: str) -> bool:
        """Whether the key may see and call the tool named `tool` (its name as the model sees it)."""
        return self._allows_tool is None or self._allows_tool(tool)

    def public(self) -> dict[str, Any]:
        """The record as the admin API shows it: never the secret, nor its hash."""
        return {"name": self.name, "models": list(self.models) if self.models is not None else None,
                "tools": list(self.tools) if self.tools is not None else None,
                "budget_usd": self.budget_nanos / NANOS_PER_USD if self.budget_nanos is not None else None,
                "budget_period": format_period(self.budget_period_s), "rpm": self.rpm, "tpm": self.tpm,
                "source": self.source, "created_at": int(self.created_at)}

    def to_redis(self) -> dict[str, str]:
        return {"name": self.name, "key_hash": self.key_hash,
                "models": orjson.dumps(list(self.models)).decode() if self.models is not None else "",
                "tools": orjson.dumps(list(self.tools)).decode() if self.tools is not None else "",
                "budget_nanos": "" if self.budget_nanos is None else str(self.budget_nanos),
                "budget_period_s": str(self.budget_period_s), "rpm": "" if self.rpm is None else str(self.rpm),
                "tpm": "" if self.tpm is None else str(self.tpm), "created_at": repr(self.created_at),
                "id": self.key_id}

    @classmethod
    def from_redis(cls, h: dict[bytes, bytes]) -> VirtualKey:
        f = {k.decode(): v.decode() for k, v in h.items()}

        def opt_int(name: str) -> int | None:
            return int(f[name]) if f.get(name) else None

        models = tuple(orjson.loads(f["models"])) if f.get("models") else None
        tools = tuple(orjson.loads(f["tools"])) if f.get("tools") else None
        return cls(name=f["name"], key_hash=f["key_hash"], models=models, tools=tools,
                   budget_nanos=opt_int("budget_nanos"), budget_period_s=int(f["budget_period_s"]),
                   rpm=opt_int("rpm"), tpm=opt_int("tpm"),
                   source="admin", created_at=float(f.get("created_at") or 0), key_id=f.get("id") or "")


class KeyStoreError(Exception):
    pass


class KeyExists(KeyStoreError):
    """A key with this name already exists (in config or created earlier)."""


class ConfigKeyReadOnly(KeyStoreError):
    """Config keys cannot be deleted or replaced through the admin API."""


class KeyStoreUnavailable(KeyStoreError):
    """Redis holds the admin keys and cannot be reached."""


_CREATE = LuaScript("""
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[2], unpack(ARGV, 2))
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('INCR', KEYS[3])
return 1
""")
_DELETE = LuaScript("""
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('DEL', KEYS[2])
redis.call('INCR', KEYS[3])
return 1
""")


async def _retrying(call: Callable[[], Awaitable[Any]]) -> Any:
    """A pooled connection that died with an earlier Redis (restart, failover) fails once and is
    replaced: try again on a fresh one before calling Redis down (a dead Redis refuses at once)."""
    for attempt in range(3):
        try:
            return await call()
        except RedisConnectionError as exc:
            if attempt == 2 or isinstance(exc, BusyLoadingError):
                raise
    raise AssertionError("unreachable")


class KeyStore:
    def __init__(self, conn: RedisConn | None, config: AuthConfig | None, *, refresh_s: float = 5.0,
                 miss_refresh_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.conn = conn
        self.refresh_s = refresh_s
        self.miss_refresh_s = miss_refresh_s
        self._clock = clock
        self._config_by_hash: dict[str, VirtualKey] = {}
        self._config_by_name: dict[str, VirtualKey] = {}
        for i, kc in enumerate(config.keys if config is not None else ()):
            where = f"auth.keys[{i}]"
            if "{" in kc.name or "}" in kc.name:
                raise ValueError(f"{where}.name: must not contain braces")
            if kc.name in self._config_by_name:
                raise ValueError(f"{where}.name: duplicate key name {kc.name!r}")
            if not kc.key:
                log.warning("%s (%s) has an empty key; it is disabled", where, kc.name)
                continue
            vk = VirtualKey(name=kc.name, key_hash=hash_secret(kc.key),
                            models=tuple(kc.models) if kc.models is not None else None,
                            tools=tuple(kc.tools) if kc.tools is not None else None,
                            budget_nanos=usd_to_nanos(kc.budget_usd) if kc.budget_usd is not None else None,
                            budget_period_s=parse_period(kc.budget_period), rpm=kc.rpm, tpm=kc.tpm,
                            source="config", created_at=time.time())
            if vk.key_hash in self._config_by_hash:
                raise ValueError(f"{where}.key: the same secret as key {self._config_by_hash[vk.key_hash].name!r}")
            self._config_by_hash[vk.key_hash] = vk
            self._config_by_name[vk.name] = vk
        # Admin keys: authoritative without Redis, a mirror of Redis with it.
        self._admin_by_hash: dict[str, VirtualKey] = {}
        self._admin_by_name: dict[str, VirtualKey] = {}
        self._version: bytes | None = None
        self._loaded_at: float | None = None  # last successful sync with Redis
        self._tried_at = float("-inf")  # last attempt, successful or not
        self._refreshing: asyncio.Future | None = None
        self.stale = False  # the last sync attempt failed: the mirror may be out of date

    # -- Redis names ----------------------------------------------------------------------------
    def _index(self) -> str:
        assert self.conn is not None
        return self.conn.key("vk", "index")

    def _record(self, name: str) -> str:
        assert self.conn is not None
        return self.conn.key("vk", "key", name)

    def _version_key(self) -> str:
        assert self.conn is not None
        return self.conn.key("vk", "version")

    # -- lookup ---------------------------------------------------------------------------------
    async def lookup(self, secret: str) -> VirtualKey | None:
        """The key whose secret this is, or None. Raises KeyStoreUnavailable (see module doc)."""
        if not secret:
            return None
        key_hash = hash_secret(secret)
        vk = self._config_by_hash.get(key_hash)
        if vk is not None or self.conn is None:
            return vk or self._admin_by_hash.get(key_hash)
        now = self._clock()
        since_try = now - self._tried_at
        vk = self._admin_by_hash.get(key_hash)
        # A miss joins a sync already in flight (free: single flight) rather than deciding without it:
        # on a fresh instance that sync is the first load, and without it every key would be a 503.
        if since_try >= self.refresh_s or (vk is None and (since_try >= self.miss_refresh_s
                                                           or self._refreshing is not None)):
            await self._refresh()
            vk = self._admin_by_hash.get(key_hash)
        if vk is None and self._loaded_at is None:
            raise KeyStoreUnavailable("the key store (Redis) cannot be reached")
        return vk

    async def _refresh(self) -> bool:
        """Sync the mirror with Redis (single flight). True when it is now current."""
        if self._refreshing is None:
            self._refreshing = asyncio.ensure_future(self._sync())
            self._refreshing.add_done_callback(self._refresh_done)
        return await asyncio.shield(self._refreshing)

    def _refresh_done(self, fut: asyncio.Future) -> None:
        self._refreshing = None
        if not fut.cancelled():
            fut.exception()  # _sync never raises; this just marks the result as retrieved

    async def _sync(self) -> bool:
        self._tried_at = self._clock()
        conn = self.conn
        if conn is None or conn.client is None or not conn.up:
            self.stale = True
            return False
        client = conn.client
        try:
            version = await _retrying(lambda: client.get(self._version_key()))
            if version != self._version or self._loaded_at is None:
                names = await _retrying(lambda: client.smembers(self._index()))
                records = await _retrying(lambda: self._read_records(client, names)) if names else []
                keys = [VirtualKey.from_redis(r) for r in records if r]
                self._admin_by_hash = {vk.key_hash: vk for vk in keys}
                self._admin_by_name = {vk.name: vk for vk in keys}
                self._version = version
        except _REDIS_FAILURES as exc:
            self._redis_failed(exc)
            self.stale = True
            return False
        self._loaded_at = self._clock()
        self.stale = False
        return True

    async def _read_records(self, client: Any, names: set[bytes]) -> list[dict[bytes, bytes]]:
        pipe = client.pipeline(transaction=False)  # (a pipeline is emptied by execute: build it per try)
        for name in names:
            pipe.hgetall(self._record(name.decode()))
        return await pipe.execute()

    def _redis_failed(self, exc: BaseException) -> None:
        if isinstance(exc, ResponseError) and not isinstance(exc, ClusterError | TryAgainError):
            # Redis answers but refuses (ACL, scripting disabled): not an outage.
            log.error("key store: Redis refused a command: %s: %s", type(exc).__name__, exc)
        elif self.conn is not None:
            self.conn.failed(exc)

    # -- admin operations -----------------------------------------------------------------------
    async def create(self, name: str, models: Iterable[str] | None = None, budget_usd: float | None = None,
                     budget_period: str = "30d", rpm: int | None = None,
                     tpm: int | None = None, tools: Iterable[str] | None = None) -> tuple[VirtualKey, str]:
        """A new admin key and its secret (returned only here, never stored)."""
        if not NAME_RE.match(name):
            raise ValueError("name: 1-64 characters of letters, digits and . _ @ : - (starting with a letter "
                             "or digit)")
        if name in self._config_by_name:
            raise KeyExists(f"key {name!r} is defined in the config")
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        vk = VirtualKey(name=name, key_hash=hash_secret(secret),
                        models=tuple(models) if models is not None else None,
                        tools=tuple(tools) if tools is not None else None,
                        budget_nanos=usd_to_nanos(budget_usd) if budget_usd is not None else None,
                        budget_period_s=parse_period(budget_period), rpm=rpm, tpm=tpm, source="admin",
                        created_at=time.time(), key_id="ak-" + secrets.token_hex(16))
        if self.conn is None:
            if name in self._admin_by_name:
                raise KeyExists(f"key {name!r} already exists")
        else:
            client = self._client()
            fields: list[str] = []
            for k, v in vk.to_redis().items():
                fields += (k, v)
            try:
                created = await _retrying(lambda: _CREATE(
                    client, [self._index(), self._record(name), self._version_key()], [name, *fields]))
            except _REDIS_FAILURES as exc:
                self._redis_failed(exc)
                raise KeyStoreUnavailable("the key store (Redis) cannot be reached") from None
            if not created:
                raise KeyExists(f"key {name!r} already exists")
        self._admin_by_hash[vk.key_hash] = vk
        self._admin_by_name[name] = vk
        return vk, secret

    async def delete(self, name: str) -> bool:
        """Remove an admin key: False when there is none by that name."""
        if name in self._config_by_name:
            raise ConfigKeyReadOnly(f"key {name!r} is defined in the config and cannot be deleted here")
        if self.conn is not None:
            client = self._client()
            try:
                deleted = bool(await _retrying(lambda: _DELETE(
                    client, [self._index(), self._record(name), self._version_key()], [name])))
            except _REDIS_FAILURES as exc:
                self._redis_failed(exc)
                raise KeyStoreUnavailable("the key store (Redis) cannot be reached") from None
        else:
            deleted = name in self._admin_by_name
        vk = self._admin_by_name.pop(name, None)
        if vk is not None:
            self._admin_by_hash.pop(vk.key_hash, None)
        return deleted

    async def get(self, name: str) -> VirtualKey | None:
        vk = self._config_by_name.get(name)
        if vk is None:
            if self.conn is not None:
                await self._refresh()
            vk = self._admin_by_name.get(name)
        return vk

    async def list(self) -> list[VirtualKey]:
        """Config keys then admin keys, by name. With Redis down: the last known admin keys
        (`self.stale` is then True)."""
        if self.conn is not None:
            await self._refresh()
        return ([self._config_by_name[n] for n in sorted(self._config_by_name)]
                + [self._admin_by_name[n] for n in sorted(self._admin_by_name)])

    def _client(self) -> Any:
        conn = self.conn
        if conn is None or conn.client is None or not conn.up:
            raise KeyStoreUnavailable("the key store (Redis) cannot be reached")
        return conn.client

    async def close(self) -> None:
        await stop(self._refreshing)
