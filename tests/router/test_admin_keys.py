"""The admin API for virtual keys over HTTP, on Redis and in memory."""

from __future__ import annotations

import pytest

from router.app import build_app
from router.config import parse_config
from router.config.schema import AuthConfig
from router.gateway import GATEWAY

ADMIN = {"Authorization": "Bearer admin-secret-1"}
AUTH_CONFIG = {"admin_token": "admin-secret-1", "keys": [{"name": "team-a", "key": "sk-config-a", "rpm": 5}]}
AUTH = AuthConfig(**AUTH_CONFIG)


@pytest.fixture(params=["redis", "memory"])
async def admin(request, aiohttp_client):
    """A test client on the real app, with keys in Redis or in memory; `client.gw` is its gateway."""
    config = {"auth": AUTH_CONFIG}
    if request.param == "redis":
        config["redis"] = {"url": request.getfixturevalue("redis_url")}
    app = build_app(parse_config(config))
    client = await aiohttp_client(app)
    client.gw = app[GATEWAY]
    yield client


async def test_create_list_get_delete_round_trip(admin) -> None:
    resp = await admin.post("/admin/keys", headers=ADMIN, json={
        "name": "ci", "models": ["demo/*"], "tools": ["calculator", "docs-*"], "budget_usd": 2.5, "budget_period": "1h",
        "rpm": 3, "tpm": 900})
    assert resp.status == 201
    created = await resp.json()
    secret = created.pop("key")
    assert secret.startswith("sk-sb-")
    assert created == {"name": "ci", "models": ["demo/*"], "tools": ["calculator", "docs-*"], "budget_usd": 2.5,
                       "budget_period": "1h", "rpm": 3, "tpm": 900, "source": "admin",
                       "created_at": created["created_at"]}
    # The secret authenticates, and its limits apply.
    vk = await admin.gw.keys.lookup(secret)
    assert vk.name == "ci"
    assert vk.allows_tool("docs-search") and vk.allows_tool("calculator") and not vk.allows_tool("http_fetch")
    await admin.gw.limiter.settle(await admin.gw.limiter.admit(vk, 100, 10**9), 100, 10**9)

    resp = await admin.get("/admin/keys", headers=ADMIN)
    assert resp.status == 200
    body = await resp.json()
    text = await resp.text()
    assert secret not in text and vk.key_hash not in text and "sk-config-a" not in text
    assert body["object"] == "list" and body["stale"] is False
    by_name = {k["name"]: k for k in body["data"]}
    assert set(by_name) == {"team-a", "ci"} and by_name["team-a"]["source"] == "config"
    limits = by_name["ci"]["limits"]
    assert limits["available"] is True and limits["rpm_remaining"] == 2 and limits["tpm_remaining"] == 800
    assert limits["budget_spent_usd"] == 1.0 and limits["budget_remaining_usd"] == 1.5
    assert by_name["team-a"]["limits"]["rpm_remaining"] == 5

    resp = await admin.get("/admin/keys/ci", headers=ADMIN)
    assert resp.status == 200 and (await resp.json())["limits"]["budget_usd"] == 2.5
    assert (await admin.get("/admin/keys/nope", headers=ADMIN)).status == 404

    resp = await admin.delete("/admin/keys/ci", headers=ADMIN)
    assert resp.status == 204 and await resp.read() == b""
    assert await admin.gw.keys.lookup(secret) is None
    resp = await admin.delete("/admin/keys/ci", headers=ADMIN)
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "key_not_found"
    resp = await admin.delete("/admin/keys/team-a", headers=ADMIN)
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "config_key"


async def test_name_clash_is_409(admin) -> None:
    assert (await admin.post("/admin/keys", headers=ADMIN, json={"name": "dup"})).status == 201
    for name in ("dup", "team-a"):
        resp = await admin.post("/admin/keys", headers=ADMIN, json={"name": name})
        err = (await resp.json())["error"]
        assert resp.status == 409 and err["code"] == "key_exists" and err["param"] == "name"


async def test_a_key_with_no_limits_is_created_with_defaults(admin) -> None:
    resp = await admin.post("/admin/keys", headers=ADMIN, json={"name": "open"})
    body = await resp.json()
    assert resp.status == 201
    assert (body["models"], body["budget_usd"], body["budget_period"], body["rpm"], body["tpm"]) == (
        None, None, "30d", None, None)


@pytest.mark.parametrize(("body", "param"), [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "a b"}, "name"),
    ({"name": "x" * 65}, "name"),
    ({"name": 5}, "name"),
    ({"name": "ok", "models": "openai/*"}, "models"),
    ({"name": "ok", "models": [1]}, "models"),
    ({"name": "ok", "budget_usd": -1}, "budget_usd"),
    ({"name": "ok", "budget_usd": "5"}, "budget_usd"),
    ({"name": "ok", "budget_usd": True}, "budget_usd"),
    ({"name": "ok", "budget_usd": 10**9}, "budget_usd"),
    ({"name": "ok", "budget_period": "30"}, "budget_period"),
    ({"name": "ok", "budget_period": "0d"}, "budget_period"),
    ({"name": "ok", "budget_period": 30}, "budget_period"),
    ({"name": "ok", "rpm": 0}, "rpm"),
    ({"name": "ok", "rpm": 1.5}, "rpm"),
    ({"name": "ok", "tpm": "10"}, "tpm"),
    ({"name": "ok", "colour": "red"}, "colour"),
])
async def test_invalid_bodies_are_400_naming_the_field(admin, body, param) -> None:
    resp = await admin.post("/admin/keys", headers=ADMIN, json=body)
    assert resp.status == 400
    err = (await resp.json())["error"]
    assert err["param"] == param and err["type"] == "invalid_request_error" and param in err["message"]
    assert [k["name"] for k in (await (await admin.get("/admin/keys", headers=ADMIN)).json())["data"]] == ["team-a"]


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b""])
async def test_non_object_bodies_are_400(admin, raw) -> None:
    resp = await admin.post("/admin/keys", headers={**ADMIN, "content-type": "application/json"}, data=raw)
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_json"


@pytest.mark.parametrize(("method", "path"), [("POST", "/admin/keys"), ("GET", "/admin/keys"),
                                              ("GET", "/admin/keys/team-a"), ("DELETE", "/admin/keys/team-a")])
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer sk-config-a"}])
async def test_every_admin_route_needs_the_admin_token(admin, method, path, headers) -> None:
    resp = await admin.request(method, path, headers=headers, json={"name": "sneaky"})
    assert resp.status == 401
    err = (await resp.json())["error"]
    assert err["type"] == "authentication_error" and "wrong" not in err["message"]


@pytest.mark.parametrize("config", [{"auth": {"keys": [{"name": "team-a", "key": "sk-config-a"}]}}, {}],
                         ids=["no-admin-token", "no-auth"])
async def test_admin_api_is_closed_without_an_admin_token(aiohttp_client, config) -> None:
    client = await aiohttp_client(build_app(parse_config(config)))
    resp = await client.get("/admin/keys", headers={"Authorization": "Bearer anything"})
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "admin_disabled"


async def test_redis_down_is_503_for_writes(redis_server, admin) -> None:
    if admin.gw.keys.conn is None:
        pytest.skip("memory backend has no outage")
    redis_server.kill()
    admin.gw.keys.conn.failed(ConnectionError("down"))
    try:
        resp = await admin.post("/admin/keys", headers=ADMIN, json={"name": "later"})
        assert resp.status == 503 and resp.headers["retry-after"] == "1"
        assert (await resp.json())["error"]["code"] == "key_store_unavailable"
        resp = await admin.get("/admin/keys", headers=ADMIN)
        body = await resp.json()
        assert resp.status == 200 and body["stale"] is True
        assert body["data"][0]["limits"]["available"] is False
    finally:
        redis_server.start()
