"""The router's OpenAPI document: valid OpenAPI 3.1, in step with the routes and with validation.py."""

from __future__ import annotations

import copy

import orjson
import pytest
from aiohttp import web
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from router.app import build_app
from router.config import parse_config
from router.errors import ApiError
from router.openapi_spec import SPEC
from router.validation import validate_chat, validate_embeddings

CONFIG = {"providers": {"demo": {"type": "mock", "models": ["echo", "lorem"]}}, "models": {"fast": "demo/echo"}}
METHODS = ("get", "post", "put", "patch", "delete")


def test_spec_is_valid_openapi_31() -> None:
    assert SPEC["openapi"] == "3.1.0"
    validate(copy.deepcopy(SPEC))


def test_validator_rejects_a_broken_reference() -> None:
    """The validation above is able to fail: a dangling `$ref` is reported."""
    broken = copy.deepcopy(SPEC)
    broken["components"]["schemas"].pop("ExtraFields")
    with pytest.raises(Exception, match="ExtraFields"):
        validate(broken)


def _app_routes(app: web.Application) -> set[tuple[str, str]]:
    routes = set()
    for route in app.router.routes():
        if route.method == "HEAD":  # aiohttp adds HEAD next to every GET
            continue
        routes.add((route.method.lower(), route.resource.canonical))
    return routes


def _spec_routes() -> set[tuple[str, str]]:
    return {(method, path) for path, item in SPEC["paths"].items() for method in item if method in METHODS}


def test_every_route_is_documented_and_every_documented_route_exists() -> None:
    app = build_app(parse_config(CONFIG))
    registered = _app_routes(app)
    documented = _spec_routes()
    assert registered - documented == set(), "routes missing from router/openapi_spec.py"
    assert documented - registered == set(), "documented routes the app does not register"
    assert ("post", "/v1/chat/completions") in documented


def test_operation_ids_are_unique_and_every_response_is_described() -> None:
    ids = [op["operationId"] for item in SPEC["paths"].values() for m, op in item.items() if m in METHODS]
    assert len(ids) == len(set(ids))
    for item in SPEC["paths"].values():
        for method, op in item.items():
            if method in METHODS:
                assert any(status.startswith("2") for status in op["responses"]), op["operationId"]
                assert all(r.get("description") for r in op["responses"].values())


def test_proxy_routes_document_every_error_status_with_the_openai_error_shape() -> None:
    for path in ("/v1/chat/completions", "/v1/embeddings"):
        responses = SPEC["paths"][path]["post"]["responses"]
        for status in ("400", "401", "402", "403", "404", "413", "429", "502", "504"):
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}, (path, status)
        assert "Retry-After" in responses["429"]["headers"]
    error = SPEC["components"]["schemas"]["ErrorDetail"]
    assert set(error["required"]) == {"message", "type", "param", "code"}


RATE_HEADERS = {f"x-ratelimit-{kind}-{what}" for kind in ("limit", "remaining", "reset")
                for what in ("requests", "tokens")}


def test_proxy_routes_document_auth_limits_and_cache_headers() -> None:
    for path in ("/v1/chat/completions", "/chat/completions", "/v1/embeddings", "/embeddings"):
        op = SPEC["paths"][path]["post"]
        assert {p["name"] for p in op["parameters"] if p["in"] == "header"} == {
            "Cache-Control", "x-switchboard-cache-ttl", "x-switchboard-raw-response"}
        responses = op["responses"]
        assert set(responses["200"]["headers"]) == {"x-switchboard-cache", *RATE_HEADERS}
        assert responses["200"]["headers"]["x-switchboard-cache"]["schema"]["enum"] == ["hit", "miss", "bypass"]
        assert RATE_HEADERS | {"Retry-After"} <= set(responses["429"]["headers"])
        assert "WWW-Authenticate" in responses["401"]["headers"]
        for status in ("402", "503"):
            assert "Retry-After" in responses[status]["headers"], (path, status)
    schemes = SPEC["components"]["securitySchemes"]
    assert schemes["bearerAuth"]["scheme"] == "bearer" and schemes["adminToken"]["scheme"] == "bearer"
    assert schemes["apiKeyHeader"] == {**schemes["apiKeyHeader"], "type": "apiKey", "in": "header",
                                       "name": "x-api-key"}
    for path in ("/admin/keys", "/admin/keys/{name}", "/v1/usage"):
        for method, op in SPEC["paths"][path].items():
            assert op["security"] == [{"adminToken": []}], (method, path)
            assert {"401", "403"} <= set(op["responses"]), (method, path)


async def test_openapi_json_serves_the_document(aiohttp_client) -> None:
    client = await aiohttp_client(build_app(parse_config(CONFIG)))
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert await resp.json() == SPEC


# -- the request schemas say exactly what router/validation.py enforces -----------------------------
def _validator(name: str) -> Draft202012Validator:
    root = {"$ref": f"#/components/schemas/{name}", "components": SPEC["components"]}
    return Draft202012Validator(root)


def _accepted(check, body: dict) -> bool:
    try:
        check(body)
    except ApiError as exc:
        assert exc.status == 400
        return False
    return True


MSG = [{"role": "user", "content": "hi"}]
CHAT_BODIES = [
    {"model": "m", "messages": MSG},
    {"model": "m", "messages": MSG, "temperature": None, "fallbacks": None, "stream": None},
    {"model": "m", "messages": MSG, "unknown_member": {"passed": "through"}, "modalities": ["text"]},
    {"messages": MSG},
    {"model": None, "messages": MSG},
    {"model": "  ", "messages": MSG},
    {"model": 3, "messages": MSG},
    {"model": "m"},
    {"model": "m", "messages": []},
    {"model": "m", "messages": {}},
    {"model": "m", "messages": ["hi"]},
    {"model": "m", "messages": [{"content": "hi"}]},
    {"model": "m", "messages": [{"role": "robot", "content": "hi"}]},
    {"model": "m", "messages": [{"role": {"user": 1}, "content": "hi"}]},  # was a 500: unhashable role
    {"model": "m", "messages": [{"role": ["user"], "content": "hi"}]},
    {"model": "m", "messages": [{"role": "user", "content": 5}]},
    {"model": "m", "messages": [{"role": "user", "content": None}]},
    {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]},
    {"model": "m", "messages": [{"role": "user", "content": [{"text": "x"}]}]},
    {"model": "m", "messages": [{"role": "tool", "content": "42"}]},
    {"model": "m", "messages": [{"role": "tool", "content": "42", "tool_call_id": 7}]},
    {"model": "m", "messages": [{"role": "tool", "content": "42", "tool_call_id": "c1"}]},
    {"model": "m", "messages": [{"role": "user", "content": "x", "tool_call_id": 7}]},
    {"model": "m", "messages": [{"role": "assistant", "content": None, "tool_calls": {}}]},
    {"model": "m", "messages": MSG, "temperature": 2},
    {"model": "m", "messages": MSG, "temperature": 2.01},
    {"model": "m", "messages": MSG, "temperature": True},
    {"model": "m", "messages": MSG, "top_p": -0.1},
    {"model": "m", "messages": MSG, "n": 128},
    {"model": "m", "messages": MSG, "n": 129},
    {"model": "m", "messages": MSG, "n": 1.5},
    {"model": "m", "messages": MSG, "max_tokens": 0},
    {"model": "m", "messages": MSG, "max_completion_tokens": 1},
    {"model": "m", "messages": MSG, "presence_penalty": -2},
    {"model": "m", "messages": MSG, "frequency_penalty": 2.5},
    {"model": "m", "messages": MSG, "top_logprobs": 21},
    {"model": "m", "messages": MSG, "seed": -5},
    {"model": "m", "messages": MSG, "seed": "5"},
    {"model": "m", "messages": MSG, "stream": "yes"},
    {"model": "m", "messages": MSG, "stream_options": []},
    {"model": "m", "messages": MSG, "logit_bias": {"50256": -100}},
    {"model": "m", "messages": MSG, "user": 1},
    {"model": "m", "messages": MSG, "service_tier": "auto"},
    {"model": "m", "messages": MSG, "stop": ["a", "b", "c", "d"]},
    {"model": "m", "messages": MSG, "stop": ["a", "b", "c", "d", "e"]},
    {"model": "m", "messages": MSG, "stop": [1]},
    {"model": "m", "messages": MSG, "tools": [{"type": "function", "function": {"name": "f"}}]},
    {"model": "m", "messages": MSG, "tools": [{"type": "function", "function": {}}]},
    {"model": "m", "messages": MSG, "tools": [{"type": "function"}]},
    {"model": "m", "messages": MSG, "tools": [{"type": "web_search"}]},
    {"model": "m", "messages": MSG, "tools": ["f"]},
    {"model": "m", "messages": MSG, "tools": {}},
    {"model": "m", "messages": MSG, "tool_choice": "auto"},
    {"model": "m", "messages": MSG, "tool_choice": "always"},
    {"model": "m", "messages": MSG, "tool_choice": {"type": "function", "function": {"name": "f"}}},
    {"model": "m", "messages": MSG, "response_format": {"type": "json_object"}},
    {"model": "m", "messages": MSG, "response_format": {"type": "xml"}},
    {"model": "m", "messages": MSG, "response_format": {"type": "json_schema"}},
    {"model": "m", "messages": MSG, "response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
    {"model": "m", "messages": MSG, "response_format": "json"},
    {"model": "m", "messages": MSG, "fallbacks": ["a/b"] * 10},
    {"model": "m", "messages": MSG, "fallbacks": ["a/b"] * 11},
    {"model": "m", "messages": MSG, "fallbacks": [""]},
    {"model": "m", "messages": MSG, "fallbacks": "a/b"},
]

EMBEDDING_BODIES = [
    {"model": "m", "input": "hello"},
    {"model": "m", "input": ["a", "b"]},
    {"model": "m", "input": [1, 2, 3]},
    {"model": "m", "input": [[1, 2], [3]]},
    {"model": "m", "input": []},
    {"model": "m", "input": [[]]},
    {"model": "m", "input": ["a", 1]},
    {"model": "m", "input": [True]},
    {"model": "m", "input": ["a"] * 2048},
    {"model": "m", "input": ["a"] * 2049},
    {"model": "m", "input": None},
    {"model": "m"},
    {"input": "x"},
    {"model": "m", "input": "x", "encoding_format": "base64"},
    {"model": "m", "input": "x", "encoding_format": "int8"},
    {"model": "m", "input": "x", "dimensions": 0},
    {"model": "m", "input": "x", "dimensions": 256},
    {"model": "m", "input": "x", "user": ["u"]},
    {"model": "m", "input": "x", "fallbacks": ["demo/echo"]},
]


@pytest.mark.parametrize("body", CHAT_BODIES)
def test_chat_request_schema_agrees_with_validation(body: dict) -> None:
    assert _validator("ChatCompletionRequest").is_valid(body) == _accepted(validate_chat, body)


@pytest.mark.parametrize("body", EMBEDDING_BODIES)
def test_embeddings_request_schema_agrees_with_validation(body: dict) -> None:
    assert _validator("EmbeddingsRequest").is_valid(body) == _accepted(validate_embeddings, body)


def test_the_agreement_check_can_fail() -> None:
    """A looser schema (no temperature range) disagrees with validation on an out-of-range body."""
    loose = copy.deepcopy(SPEC["components"])
    loose["schemas"]["ChatCompletionRequest"]["properties"]["temperature"] = {"type": ["number", "null"]}
    validator = Draft202012Validator({"$ref": "#/components/schemas/ChatCompletionRequest", "components": loose})
    body = {"model": "m", "messages": MSG, "temperature": 3}
    assert validator.is_valid(body) != _accepted(validate_chat, body)


# -- documented responses, checked on a live app --------------------------------------------------
def _response_schema(path: str, method: str, status: str, media: str = "application/json") -> dict:
    return SPEC["paths"][path][method]["responses"][status]["content"][media]["schema"]


def _conforms(schema: dict, instance) -> None:
    validator = Draft202012Validator({**schema, "components": SPEC["components"]})
    errors = sorted(validator.iter_errors(instance), key=str)
    assert not errors, errors[0].message


async def test_responses_match_their_documented_schemas(aiohttp_client) -> None:
    client = await aiohttp_client(build_app(parse_config(CONFIG)))
    resp = await client.post("/v1/chat/completions", json={"model": "fast", "messages": MSG})
    assert resp.status == 200
    _conforms(_response_schema("/v1/chat/completions", "post", "200"), await resp.json())
    resp = await client.post("/v1/embeddings", json={"model": "demo/echo", "input": ["a", "b"]})
    _conforms(_response_schema("/v1/embeddings", "post", "200"), await resp.json())
    resp = await client.post("/v1/chat/completions", json={"model": "demo/fail-429", "messages": MSG})
    assert resp.status == 429 and resp.headers["retry-after"].isdigit()
    _conforms(_response_schema("/v1/chat/completions", "post", "429"), await resp.json())
    for path in ("/v1/models", "/healthz", "/readyz"):
        resp = await client.get(path)
        assert resp.status == 200
        _conforms(_response_schema(path, "get", "200"), await resp.json())
    readiness = await (await client.get("/readyz")).json()
    assert readiness["checks"]["deployments"], "the requests above left deployment health to report"


# -- the admin API and the cache header: schemas agree with what the handlers enforce ---------------
KEY_BODIES = [
    {"name": "ci"},
    {"name": "team-b", "models": ["openai/*", "fast"], "budget_usd": 20, "budget_period": "12h", "rpm": 600,
     "tpm": 200000},
    {"name": "a", "models": None, "budget_usd": None, "rpm": None, "tpm": None},
    {"name": "x" * 64},
    {"name": "x" * 65},
    {"name": "-leading-dash"},
    {"name": "has space"},
    {"name": "ok.name_@:-1"},
    {"name": ""},
    {"name": 5},
    {},
    {"name": "a", "colour": "blue"},
    {"name": "a", "models": "openai/*"},
    {"name": "a", "models": [""]},
    {"name": "a", "models": ["m" * 256]},
    {"name": "a", "models": ["m" * 257]},
    {"name": "a", "models": ["m"] * 256},
    {"name": "a", "models": ["m"] * 257},
    {"name": "a", "models": [1]},
    {"name": "a", "budget_usd": -0.01},
    {"name": "a", "budget_usd": 0},
    {"name": "a", "budget_usd": 9007199},
    {"name": "a", "budget_usd": 9007200},
    {"name": "a", "budget_usd": True},
    {"name": "a", "budget_usd": "5"},
    {"name": "a", "budget_period": "30d"},
    {"name": "a", "budget_period": "90m"},
    {"name": "a", "budget_period": "0d"},
    {"name": "a", "budget_period": "30s"},
    {"name": "a", "budget_period": "1234567d"},
    {"name": "a", "budget_period": None},
    {"name": "a", "budget_period": 30},
    {"name": "a", "rpm": 1},
    {"name": "a", "rpm": 0},
    {"name": "a", "rpm": 10**12},
    {"name": "a", "rpm": 10**12 + 1},
    {"name": "a", "tpm": True},
    {"name": "a", "tpm": "5"},
]


def _parse_create_accepts(body: dict) -> bool:
    from router.handlers.admin import parse_create

    try:
        parse_create(orjson.dumps(body))
    except ApiError as exc:
        assert exc.status == 400
        return False
    return True


@pytest.mark.parametrize("body", KEY_BODIES)
def test_create_key_schema_agrees_with_the_handler(body: dict) -> None:
    assert _validator("CreateKeyRequest").is_valid(body) == _parse_create_accepts(body)


@pytest.mark.parametrize("value", ["0", "1", "60", "0.5", "1e3", "31536000", "31536001", "-1", "abc", "", "nan",
                                   "inf"])
def test_cache_ttl_header_schema_agrees_with_parse_ttl(value: str) -> None:
    from router.cache.control import parse_ttl

    (param,) = [p for p in SPEC["paths"]["/v1/chat/completions"]["post"]["parameters"]
                if p["name"] == "x-switchboard-cache-ttl"]
    try:
        number = float(value)
    except ValueError:
        documented = False
    else:
        documented = Draft202012Validator(param["schema"]).is_valid(number) and number == number
    try:
        parse_ttl(value)
    except ApiError as exc:
        assert exc.status == 400 and exc.param == "x-switchboard-cache-ttl"
        accepted = False
    else:
        accepted = True
    assert documented == accepted


def _headers_conform(path: str, method: str, status: str, headers) -> None:
    """Every documented header that is present matches its schema."""
    documented = SPEC["paths"][path][method]["responses"][status].get("headers", {})
    for name, spec in documented.items():
        if name in headers:
            _conforms(spec["schema"], headers[name])


AUTH_CONFIG = {**CONFIG, "cache": {"backend": "memory"}, "auth": {
    "admin_token": "adm-1", "keys": [{"name": "limited", "key": "sk-limited", "rpm": 1, "tpm": 100000,
                                      "models": ["fast", "demo/echo"]},
                                     {"name": "broke", "key": "sk-broke", "budget_usd": 0}]},
    "pricing": {"demo/echo": {"input_per_mtok": 1000, "output_per_mtok": 1000}}}


async def test_auth_admin_and_usage_responses_match_their_documented_schemas(aiohttp_client) -> None:
    client = await aiohttp_client(build_app(parse_config(AUTH_CONFIG)))
    chat = "/v1/chat/completions"
    admin = {"Authorization": "Bearer adm-1"}

    resp = await client.post(chat, json={"model": "fast", "messages": MSG})
    assert resp.status == 401 and resp.headers["www-authenticate"].startswith("Bearer ")
    _conforms(_response_schema(chat, "post", "401"), await resp.json())
    _headers_conform(chat, "post", "401", resp.headers)

    limited = {"Authorization": "Bearer sk-limited"}
    resp = await client.post(chat, json={"model": "demo/lorem", "messages": MSG}, headers=limited)
    assert resp.status == 403
    _conforms(_response_schema(chat, "post", "403"), await resp.json())

    resp = await client.post(chat, json={"model": "fast", "messages": MSG}, headers=limited)
    assert resp.status == 200 and resp.headers["x-switchboard-cache"] == "miss"
    assert {h.lower() for h in resp.headers} >= RATE_HEADERS
    _conforms(_response_schema(chat, "post", "200"), await resp.json())
    _headers_conform(chat, "post", "200", resp.headers)

    resp = await client.post(chat, json={"model": "fast", "messages": MSG}, headers=limited)
    assert resp.status == 429 and {"retry-after", *RATE_HEADERS} <= {h.lower() for h in resp.headers}
    _conforms(_response_schema(chat, "post", "429"), await resp.json())
    _headers_conform(chat, "post", "429", resp.headers)

    resp = await client.post(chat, json={"model": "fast", "messages": MSG}, headers={"x-api-key": "sk-broke"})
    assert resp.status == 402 and resp.headers["retry-after"].isdigit()
    _conforms(_response_schema(chat, "post", "402"), await resp.json())
    _headers_conform(chat, "post", "402", resp.headers)

    resp = await client.post(chat, json={"model": "fast", "messages": MSG},
                             headers={"x-api-key": "sk-broke", "x-switchboard-cache-ttl": "soon"})
    assert resp.status == 400
    _conforms(_response_schema(chat, "post", "400"), await resp.json())

    resp = await client.post("/admin/keys", json={"name": "new", "rpm": 5}, headers=admin)
    assert resp.status == 201
    _conforms(_response_schema("/admin/keys", "post", "201"), await resp.json())
    resp = await client.get("/admin/keys", headers=admin)
    assert resp.status == 200
    _conforms(_response_schema("/admin/keys", "get", "200"), await resp.json())
    resp = await client.get("/admin/keys/limited", headers=admin)
    assert resp.status == 200
    _conforms(_response_schema("/admin/keys/{name}", "get", "200"), await resp.json())
    for method, path, status in (("post", "/admin/keys", "409"), ("get", "/admin/keys/nope", "404"),
                                 ("delete", "/admin/keys/limited", "409")):
        resp = await client.request(method, path, json={"name": "new"} if method == "post" else None, headers=admin)
        assert str(resp.status) == status
        template = "/admin/keys/{name}" if path != "/admin/keys" else path
        _conforms(_response_schema(template, method, status), await resp.json())
    resp = await client.get("/admin/keys", headers={"Authorization": "Bearer sk-limited"})
    assert resp.status == 401
    _conforms(_response_schema("/admin/keys", "get", "401"), await resp.json())

    resp = await client.get("/v1/usage", params={"group_by": "key,model"}, headers=admin)
    assert resp.status == 200
    report = await resp.json()
    _conforms(_response_schema("/v1/usage", "get", "200"), report)
    # Only the request that was served is accounted; refusals (401/402/403/429/400) reach no vendor.
    assert [(r["key"], r["model"], r["requests"]) for r in report["data"]] == [("limited", "demo/echo", 1)]
    resp = await client.get("/v1/usage", params={"from": "yesterday"}, headers=admin)
    assert resp.status == 400
    _conforms(_response_schema("/v1/usage", "get", "400"), await resp.json())
