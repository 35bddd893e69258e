"""Virtual keys: hashed storage, lookups across instances, the authenticator and model globs."""

from __future__ import annotations

import hashlib

import pytest
from aiohttp.test_utils import make_mocked_request
from support.fake_clock import Clock

from router.auth import (
    Authenticator,
    ConfigKeyReadOnly,
    KeyExists,
    KeyStore,
    KeyStoreUnavailable,
    hash_secret,
)
from router.config.schema import AuthConfig
from router.errors import ApiError
from router.pipeline.policy import check_names

CONFIG_SECRET = "sk-team-a-config-secret-0123456789"
AUTH = AuthConfig(admin_token="admin-token-xyz", keys=[
    {"name": "team-a", "key": CONFIG_SECRET, "models": ["openai/*", "fast"], "budget_usd": 50, "rpm": 600},
    {"name": "disabled", "key": ""},
])




@pytest.fixture(params=["redis", "memory"])
async def store_factory(request, make_conn):
    async def make(**kw) -> KeyStore:
        if request.param == "memory":
            return KeyStore(None, AUTH, **kw)
        return KeyStore(await make_conn(request.getfixturevalue("redis_url")), AUTH, **kw)

    make.backend = request.param
    return make


def redis_dump(server) -> str:
    """Every key and every value in the Redis, as text."""
    out = []
    for key in server.cli("--scan").split():
        kind = server.cli("type", key).strip()
        cmd = {"hash": ("hgetall",), "set": ("smembers",), "string": ("get",)}[kind]
        out += [key, server.cli(*cmd, key)]
    return "\n".join(out)


async def test_config_keys_are_hashed_and_found(store_factory) -> None:
    store = await store_factory()
    vk = await store.lookup(CONFIG_SECRET)
    assert vk is not None and vk.name == "team-a" and vk.source == "config"
    assert vk.key_hash == hashlib.sha256(CONFIG_SECRET.encode()).hexdigest()
    assert vk.budget_nanos == 50 * 10**9 and vk.budget_period_s == 30 * 86400 and vk.rpm == 600
    assert CONFIG_SECRET not in repr(vars(store)) and CONFIG_SECRET not in repr(vk)
    assert await store.lookup("") is None  # the empty key of "disabled" matches nothing
    assert [k.name for k in await store.list()] == ["team-a"]


async def test_admin_keys_round_trip(store_factory) -> None:
    store = await store_factory()
    vk, secret = await store.create("ci-bot", models=["demo/*"], budget_usd=1.5, budget_period="12h",
                                    rpm=10, tpm=1000)
    assert secret.startswith("sk-sb-") and len(secret) == 6 + 43
    assert vk.key_hash == hash_secret(secret) and vk.source == "admin"
    assert (vk.budget_nanos, vk.budget_period_s, vk.rpm, vk.tpm) == (1_500_000_000, 43200, 10, 1000)
    assert await store.lookup(secret) == vk
    assert vk.public() == {"name": "ci-bot", "models": ["demo/*"], "tools": None, "budget_usd": 1.5,
                           "budget_period": "12h", "rpm": 10, "tpm": 1000, "source": "admin",
                           "created_at": int(vk.created_at)}
    assert [k.name for k in await store.list()] == ["team-a", "ci-bot"]
    assert await store.get("ci-bot") == vk and await store.get("nope") is None
    with pytest.raises(KeyExists):
        await store.create("ci-bot")
    with pytest.raises(KeyExists):
        await store.create("team-a")
    with pytest.raises(ConfigKeyReadOnly):
        await store.delete("team-a")
    with pytest.raises(ValueError):
        await store.create("has space")
    assert await store.delete("ci-bot") is True
    assert await store.delete("ci-bot") is False
    assert await store.lookup(secret) is None
    assert [k.name for k in await store.list()] == ["team-a"]


async def test_secret_is_never_stored_in_redis(redis_server, redis_url, make_conn) -> None:
    store = KeyStore(await make_conn(redis_url), AUTH)
    vk, secret = await store.create("tenant-1", rpm=5)
    dump = redis_dump(redis_server)
    assert "tenant-1" in dump and vk.key_hash in dump  # the record is there, by hash
    assert secret not in dump and secret[6:] not in dump and CONFIG_SECRET not in dump
    assert secret not in repr(vars(store))


async def test_keys_created_on_one_instance_work_on_another(redis_url, make_conn) -> None:
    clock = Clock(1000.0)
    one = KeyStore(await make_conn(redis_url), AUTH, clock=clock)
    two = KeyStore(await make_conn(redis_url), AUTH, clock=clock)
    for store in (one, two):
        assert await store.lookup("sk-sb-unknown") is None  # loads the (empty) mirror
    vk, secret = await one.create("shared", budget_usd=2)
    clock.t += 1.0  # a miss re-validates at most every second
    assert await two.lookup(secret) == vk
    with pytest.raises(KeyExists):  # the name is taken in Redis, not just in `one`'s mirror
        await two.create("shared")
    assert await two.delete("shared") is True
    assert await one.lookup(secret) == vk  # `one` still trusts its mirror ...
    clock.t += 5.0
    assert await one.lookup(secret) is None  # ... for at most refresh_s


async def test_unknown_keys_do_not_hammer_redis(redis_server, redis_url, make_conn) -> None:
    clock = Clock(1000.0)
    store = KeyStore(await make_conn(redis_url), AUTH, clock=clock)
    await store.lookup("sk-sb-warm-up")
    redis_server.cli("config", "resetstat")
    for i in range(500):
        assert await store.lookup(f"sk-sb-guess-{i}") is None
    clock.t += 1.0
    for i in range(500):
        assert await store.lookup(f"sk-sb-guess-again-{i}") is None
    stats = redis_server.cli("info", "commandstats")
    assert "cmdstat_get:calls=1," in stats  # one re-validation for the second batch; none for the first
    assert "cmdstat_smembers" not in stats and "cmdstat_hgetall" not in stats


async def test_concurrent_misses_share_one_refresh(redis_server, redis_url, make_conn) -> None:
    import asyncio

    store = KeyStore(await make_conn(redis_url), AUTH)
    redis_server.cli("config", "resetstat")
    results = await asyncio.gather(*(store.lookup(f"sk-sb-x{i}") for i in range(100)))
    assert results == [None] * 100
    assert "cmdstat_get:calls=1," in redis_server.cli("info", "commandstats")


async def test_redis_down_serves_the_last_mirror(redis_server, redis_url, make_conn) -> None:
    clock = Clock(1000.0)
    conn = await make_conn(redis_url, timeout_s=0.3)
    store = KeyStore(conn, AUTH, clock=clock)
    vk, secret = await store.create("survivor")
    assert await store.lookup(secret) == vk  # synced with Redis once
    redis_server.kill()
    clock.t += 10
    assert await store.lookup(secret) == vk  # known before the outage: keeps working
    assert await store.lookup(CONFIG_SECRET) is not None
    assert await store.lookup("sk-sb-never-seen") is None
    assert store.stale
    with pytest.raises(KeyStoreUnavailable):
        await store.create("during-outage")
    with pytest.raises(KeyStoreUnavailable):
        await store.delete("survivor")
    # A store that never reached Redis cannot tell an unknown key from an admin key it never loaded.
    cold = KeyStore(conn, AUTH, clock=clock)
    assert await cold.lookup(CONFIG_SECRET) is not None
    with pytest.raises(KeyStoreUnavailable):
        await cold.lookup(secret)
    redis_server.start()


async def test_a_redis_restart_is_not_mistaken_for_an_outage(redis_server, redis_url, make_conn) -> None:
    """Pooled connections to the old Redis fail once each; the store retries on a fresh one."""
    clock = Clock(1000.0)
    conn = await make_conn(redis_url)
    store = KeyStore(conn, AUTH, clock=clock)
    vk, secret = await store.create("before-restart")
    assert await store.lookup(secret) == vk
    redis_server.restart()  # nothing persisted: the key is gone with the data
    clock.t += 5
    assert await store.lookup(secret) is None
    assert conn.up and not store.stale


async def test_keys_work_on_redis_cluster(redis_cluster, make_conn) -> None:
    clock = Clock(1000.0)
    one = KeyStore(await make_conn(redis_cluster.url, cluster=True), AUTH, clock=clock)
    two = KeyStore(await make_conn(redis_cluster.url, cluster=True), AUTH, clock=clock)
    made = [await one.create(f"cluster-{i}") for i in range(5)]
    clock.t += 1
    for vk, secret in made:
        assert await two.lookup(secret) == vk
    for vk, _ in made:
        assert await two.delete(vk.name)
    clock.t += 5
    assert await one.lookup(made[0][1]) is None


def test_config_key_problems_are_refused() -> None:
    with pytest.raises(ValueError, match=r"auth.keys\[1\].name: duplicate"):
        KeyStore(None, AuthConfig(keys=[{"name": "a", "key": "k1"}, {"name": "a", "key": "k2"}]))
    with pytest.raises(ValueError, match=r"auth.keys\[1\].key: the same secret"):
        KeyStore(None, AuthConfig(keys=[{"name": "a", "key": "k1"}, {"name": "b", "key": "k1"}]))


# -- authenticator --------------------------------------------------------------------------------
def request(headers: dict[str, str] | None = None):
    return make_mocked_request("POST", "/v1/chat/completions", headers=headers or {})


async def test_auth_off_means_open() -> None:
    auth = Authenticator(KeyStore(None, None), None)
    assert await auth.authenticate(request()) is None
    check_names(None, [("anything", "model")])
    with pytest.raises(ApiError) as info:
        auth.require_admin(request({"Authorization": "Bearer x"}))
    assert (info.value.status, info.value.code) == (403, "admin_disabled")


async def test_authenticate_accepts_bearer_and_x_api_key() -> None:
    auth = Authenticator(KeyStore(None, AUTH), AUTH)
    assert (await auth.authenticate(request({"Authorization": f"Bearer {CONFIG_SECRET}"}))).name == "team-a"
    assert (await auth.authenticate(request({"Authorization": f"bearer  {CONFIG_SECRET} "}))).name == "team-a"
    assert (await auth.authenticate(request({"x-api-key": CONFIG_SECRET}))).name == "team-a"


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer sk-sb-wrong-key-4242"}, {"Authorization": "Basic dXNlcjpwYXNz"},
    {"Authorization": "Bearer "}, {"x-api-key": "sk-sb-wrong-key-4242"},
    {"Authorization": "Bearer sk-sb-wrong-key-4242", "x-api-key": CONFIG_SECRET},  # Authorization wins
])
async def test_missing_or_unknown_key_is_401_without_echo(headers) -> None:
    auth = Authenticator(KeyStore(None, AUTH), AUTH)
    with pytest.raises(ApiError) as info:
        await auth.authenticate(request(headers))
    err = info.value
    assert (err.status, err.type, err.code) == (401, "authentication_error", "invalid_api_key")
    assert "wrong-key" not in err.message and "dXNlcjpwYXNz" not in err.message
    assert err.headers["www-authenticate"].startswith("Bearer")


async def test_key_store_down_is_503_not_401(redis_server, redis_url, make_conn) -> None:
    conn = await make_conn(redis_url, timeout_s=0.3)
    redis_server.kill()
    conn.failed(ConnectionError("down"))
    auth = Authenticator(KeyStore(conn, AUTH), AUTH)
    with pytest.raises(ApiError) as info:
        await auth.authenticate(request({"Authorization": "Bearer sk-sb-maybe-valid"}))
    assert (info.value.status, info.value.code) == (503, "auth_unavailable")
    redis_server.start()


def test_model_globs() -> None:
    vk = KeyStore(None, AUTH)._config_by_name["team-a"]
    for allowed in ("openai/gpt-4o-mini", "openai/o3", "fast"):
        check_names(vk, [(allowed, "model")])
    for denied in ("anthropic/claude-haiku-4-5", "faster", "openai", "Fast", "agent:main"):
        with pytest.raises(ApiError) as info:
            check_names(vk, [("fast", "model"), (denied, "fallbacks")])
        err = info.value
        assert (err.status, err.code, err.param, err.type) == (403, "model_not_allowed", "fallbacks",
                                                               "permission_error")
        assert f"'{denied}'" in err.message
    nothing = KeyStore(None, AuthConfig(keys=[{"name": "n", "key": "k", "models": []}]))._config_by_name["n"]
    with pytest.raises(ApiError):
        check_names(nothing, [("demo/echo", "model")])


def test_require_admin() -> None:
    auth = Authenticator(KeyStore(None, AUTH), AUTH)
    auth.require_admin(request({"Authorization": "Bearer admin-token-xyz"}))
    for headers in ({}, {"Authorization": "Bearer admin-token-xy"}, {"Authorization": "Bearer admin-token-xyzz"},
                    {"Authorization": f"Bearer {CONFIG_SECRET}"}, {"x-api-key": "admin-token-xyz"},
                    {"Authorization": "Bearer adm\u00efn"}):
        with pytest.raises(ApiError) as info:
            auth.require_admin(request(headers))
        assert (info.value.status, info.value.code) == (401, "invalid_admin_token")
    no_token = AuthConfig(keys=[])
    with pytest.raises(ApiError) as info:
        Authenticator(KeyStore(None, no_token), no_token).require_admin(request({"Authorization": "Bearer x"}))
    assert info.value.status == 403
