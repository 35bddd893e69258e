"""The router's OpenAPI 3.1 document, served at `GET /openapi.json`.

Paths live here; component schemas in router/openapi_schemas.py. tests/router/test_openapi_spec.py
checks that the paths are exactly the routes router/app.py registers, so the two cannot drift.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from . import __version__
from .accounting.store import GROUP_BY
from .agents.openapi import AGENT_SCHEMAS, add_agent_docs
from .cache.control import MAX_TTL_S, TTL_HEADER
from .handlers.messages.openapi import MESSAGES_SCHEMAS, add_messages_docs
from .handlers.responses.openapi import RESPONSES_SCHEMAS, add_responses_docs
from .openapi_admin import KEY_NAME_PATTERN
from .openapi_schemas import SCHEMAS, Schema, ref

# -- helpers ----------------------------------------------------------------------------------------
_ERROR_TEXT = {
    400: "Invalid JSON or parameters (`param` names the field), a bad `x-switchboard-cache-ttl` header "
         "(`param` names the header), an unknown request fallback, a parameter no deployment of the model "
         "can honour (`unsupported_parameter`), or a vendor rejecting the request as the caller's error.",
    401: "Missing, malformed or unknown virtual key (`invalid_api_key`; only when `auth` is configured).",
    402: "The virtual key's budget for the current period cannot cover this request at its most (the "
         "prompt plus its `max_tokens`, else the model's maximum output) (`insufficient_quota`, code "
         "`budget_exceeded`); `Retry-After` says when the period resets.",
    403: "The virtual key may not use a model the request names (`model_not_allowed`; `param` is `model` or "
         "`fallbacks`), or none of the deployments the model routes to.",
    404: "Unknown model (`model_not_found`) or provider disabled because its key is unset (`provider_disabled`).",
    408: "The request body did not arrive within `server.timeouts.body_s` (`request_timeout`).",
    413: "Request body larger than `server.max_body_bytes` (`request_too_large`).",
    415: "The body is not declared JSON: send `Content-Type: application/json` (`unsupported_media_type`).",
    429: "Rate limited: by the virtual key's RPM/TPM (`rate_limit_exceeded`, with `x-ratelimit-*`) or by every "
         "upstream tried; see `Retry-After`.",
    502: "Every upstream attempt failed; the most relevant upstream error plus the attempt trail in "
         "`extra_fields.attempts`.",
    503: "The model has no enabled deployment (`no_deployment_available`), or keys/limits cannot be checked "
         "because Redis is unreachable (`auth_unavailable`; `limits_unavailable` with `auth.on_redis_down: "
         "fail_closed`).",
    504: "Every upstream attempt timed out (`timeout_error`).",
}
_PROXY_ERRORS = (400, 401, 402, 403, 404, 408, 413, 415, 429, 502, 503, 504)

_SECONDS = {"type": "string", "pattern": r"^\d+$"}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": _SECONDS}}
_WWW_AUTHENTICATE = {"WWW-Authenticate": {"description": "The challenge: `Bearer realm=\"switchboard\"`.",
                                          "schema": {"type": "string", "pattern": "^Bearer "}}}
_CACHE_STATUS = {"x-switchboard-cache": {
    "description": "What the response cache did: `hit` (served from the cache, no upstream call), `miss` (looked "
                   "up, not found), `bypass` (lookup skipped: `Cache-Control: no-cache`/`no-store`, "
                   "`max-age=0` or a raw-response request). Absent when no cache is configured.",
    "schema": {"type": "string", "enum": ["hit", "miss", "bypass"]}}}


def _rate_header(what: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": f"{what} Sent for virtual keys with that limit.", "schema": schema}


_RESET = {"type": "string", "pattern": r"^\d+s$", "examples": ["42s"]}
_RATE_LIMIT_HEADERS = {
    "x-ratelimit-limit-requests": _rate_header("The key's requests per minute.", _SECONDS),
    "x-ratelimit-remaining-requests": _rate_header("Requests left in this minute.", _SECONDS),
    "x-ratelimit-reset-requests": _rate_header("Time until the request window resets.", _RESET),
    "x-ratelimit-limit-tokens": _rate_header("The key's tokens per minute.", _SECONDS),
    "x-ratelimit-remaining-tokens": _rate_header("Tokens left in this minute.", _SECONDS),
    "x-ratelimit-reset-tokens": _rate_header("Time until the token window resets.", _RESET),
}
# Every response of a proxied request may carry the cache status and the key's rate-limit state.
_PROXY_HEADERS = {**_CACHE_STATUS, **_RATE_LIMIT_HEADERS}
_ERROR_HEADERS = {401: _WWW_AUTHENTICATE, 402: _RETRY_AFTER, 429: _RETRY_AFTER, 503: _RETRY_AFTER}


def json_content(schema: Schema) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def error_response(status: int, description: str | None = None, *,
                   headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description or _ERROR_TEXT[status],
                                "content": json_content(ref("Error"))}
    all_headers = {**_ERROR_HEADERS.get(status, {}), **(headers or {})}
    if all_headers:
        response["headers"] = all_headers
    return response


def errors(*statuses: int, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return {str(status): error_response(status, headers=headers) for status in statuses}


def json_body(schema_name: str, examples: dict[str, Any]) -> dict[str, Any]:
    named = {name: {"summary": summary, "value": value} for name, (summary, value) in examples.items()}
    return {"required": True, "content": {"application/json": {"schema": ref(schema_name), "examples": named}}}


def get(operation_id: str, summary: str, responses: dict[str, Any], tag: str, *,
        secured: bool = False) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": operation_id, "summary": summary, "tags": [tag], "responses": responses}
    if not secured:
        op["security"] = [{}]
    return {"get": op}


def unprefixed(path_item: dict[str, Any], v1_path: str) -> dict[str, Any]:
    """The same operation under the path without `/v1` (clients whose base URL lacks it)."""
    out = {}
    for method, op in path_item.items():
        out[method] = {**op, "operationId": op["operationId"] + "Unprefixed",
                       "summary": f"{op['summary']} (alias of `{v1_path}`)"}
    return out


# -- operations -------------------------------------------------------------------------------------
_RAW_HEADER = {
    "name": "x-switchboard-raw-response", "in": "header", "required": False,
    "description": "`true` adds the vendor's untranslated body as `extra_fields.raw_response` "
                   "(when `server.allow_raw_response_header` is on) and skips the cache lookup (a stored answer "
                   "has no vendor body); any other value is ignored.",
    "schema": {"type": "string", "examples": ["true"]},
}
_CACHE_CONTROL = {
    "name": "Cache-Control", "in": "header", "required": False,
    "description": "Response cache control (when a cache is configured): `no-cache` skips the lookup (the fresh "
                   "answer is still stored), `no-store` skips lookup and store, `max-age=N` accepts only a stored "
                   "answer at most N seconds old. Malformed or unknown directives are ignored.",
    "schema": {"type": "string", "examples": ["no-cache", "no-store", "max-age=60"]},
}
_CACHE_TTL = {
    "name": TTL_HEADER, "in": "header", "required": False,
    "description": "Keep this answer in the cache for N seconds instead of `cache.ttl_s`; `0` = do not store. "
                   "Any other value is a 400 naming this header (when a cache is configured).",
    "schema": {"type": "number", "minimum": 0, "maximum": MAX_TTL_S, "examples": [60]},
}
_PROXY_PARAMETERS = [_CACHE_CONTROL, _CACHE_TTL, _RAW_HEADER]

# An OpenAPI 3.1 `schema` under `text/event-stream` describes one event (as 3.2's `itemSchema` does).
_SSE_EVENT = {
    "type": "object",
    "required": ["data"],
    "description": (
        "One Server-Sent Event. Each `data` is a `ChatCompletionChunk` JSON; the first chunk carries "
        "`extra_fields.provider`/`model`, the last chunk before `data: [DONE]` carries the full `extra_fields`. "
        "A failure after the first chunk ends the stream with one `StreamErrorEvent` instead of `[DONE]`."),
    "properties": {
        "event": {"type": "string", "const": "message"},
        "data": {"anyOf": [
            {"type": "string", "const": "[DONE]"},
            {"type": "string", "contentMediaType": "application/json",
             "contentSchema": {"anyOf": [ref("ChatCompletionChunk"), ref("StreamErrorEvent")]}},
        ]},
    },
}


_HELLO = [{"role": "user", "content": "Hello, how are you?"}]
_CHAT_EXAMPLES = {
    "basic": ("A model by `provider/model`", {"model": "demo/echo", "messages": _HELLO}),
    "stream": ("An alias, streamed, with usage", {"model": "fast", "messages": _HELLO, "stream": True,
                                                  "stream_options": {"include_usage": True}}),
    "fallbacks": ("Request fallbacks after the primary", {"model": "demo/fail-503", "messages": _HELLO,
                                                          "fallbacks": ["fast", "demo/echo"], "max_tokens": 64}),
}
_EMBEDDINGS_EXAMPLES = {
    "one": ("One string", {"model": "demo/echo", "input": "The food was delicious."}),
    "batch": ("Several strings, base64", {"model": "demo/echo", "input": ["first", "second"],
                                          "encoding_format": "base64", "dimensions": 8}),
}


def _chat_path() -> dict[str, Any]:
    ok = {"description": "The completion (`stream` absent or false) or an SSE stream (`stream: true`). A cache "
                         "hit has the same body (a stream: the same chunks) with fresh `extra_fields`: "
                         "`cache.status: hit`, nothing billed, no attempts.",
          "headers": _PROXY_HEADERS,
          "content": {"application/json": {"schema": ref("ChatCompletion")},
                      "text/event-stream": {"schema": _SSE_EVENT}}}
    return {"post": {
        "operationId": "createChatCompletion",
        "summary": "Create a chat completion",
        "description": "OpenAI Chat Completions through the routing core: virtual key, model allow-list, rate "
                       "limits and budget, response cache, model resolution, fallback chain, retries, "
                       "accounting. Request `fallbacks` are tried after the primary.",
        "tags": ["OpenAI"],
        "parameters": _PROXY_PARAMETERS,
        "requestBody": json_body("ChatCompletionRequest", _CHAT_EXAMPLES),
        "responses": {"200": ok, **errors(*_PROXY_ERRORS, headers=_PROXY_HEADERS)},
    }}


def _embeddings_path() -> dict[str, Any]:
    return {"post": {
        "operationId": "createEmbeddings",
        "summary": "Create embeddings",
        "description": "OpenAI Embeddings through the same routing core as chat (keys, limits, cache, "
                       "accounting).",
        "tags": ["OpenAI"],
        "parameters": _PROXY_PARAMETERS,
        "requestBody": json_body("EmbeddingsRequest", _EMBEDDINGS_EXAMPLES),
        "responses": {"200": {"description": "The embeddings.", "headers": _PROXY_HEADERS,
                              "content": json_content(ref("EmbeddingsResponse"))},
                      **errors(*_PROXY_ERRORS, headers=_PROXY_HEADERS)},
    }}


def _models_path() -> dict[str, Any]:
    return get("listModels", "List models", {
        "200": {"description": "Configured aliases, then each enabled provider's declared models.",
                "content": json_content(ref("ModelList"))},
        **errors(401)}, "OpenAI", secured=True)


def _model_path() -> dict[str, Any]:
    item = get("retrieveModel", "Retrieve a model", {
        "200": {"description": "One model of the list (an id with `/` is matched whole).",
                "content": json_content(ref("Model"))},
        **errors(401, 404)}, "OpenAI", secured=True)
    item["get"]["parameters"] = [{"name": "model", "in": "path", "required": True,
                                  "description": "An alias or `provider/model`.", "schema": {"type": "string"}}]
    return item


def _healthz_path() -> dict[str, Any]:
    return get("healthz", "Liveness", {"200": {"description": "The process answers.",
                                               "content": json_content(ref("Health"))}}, "Operations")


def _readyz_path() -> dict[str, Any]:
    return get("readyz", "Readiness", {
        "200": {"description": "Config loaded, transport started, dependencies reachable.",
                "content": json_content(ref("Readiness"))},
        "503": {"description": "Starting or shutting down.", "content": json_content(ref("Readiness"))},
    }, "Operations")


def _openapi_path() -> dict[str, Any]:
    return get("openapi", "This document", {"200": {"description": "The OpenAPI 3.1 document.",
                                                    "content": json_content({"type": "object"})}}, "Operations")


# -- admin API and usage (behind `auth.admin_token`) ------------------------------------------------
_ADMIN_SECURITY = [{"adminToken": []}]
_ADMIN_ERRORS = {
    400: "A member is missing, unknown or invalid (`param` names it).",
    401: "Missing or wrong admin token (`invalid_admin_token`).",
    403: "The admin API is disabled: `auth.admin_token` is not set (`admin_disabled`).",
    404: "No key by that name (`key_not_found`).",
    409: "The name is taken (`key_exists`), or the key is defined in the config and cannot be deleted here "
         "(`config_key`).",
    408: "The request body did not arrive within `server.timeouts.body_s` (`request_timeout`).",
    413: "Request body larger than 64 KiB.",
    415: "The body is not declared JSON: send `Content-Type: application/json` (`unsupported_media_type`).",
    503: "The key store (Redis) cannot be reached (`key_store_unavailable`); retry shortly.",
}
_NAME_PARAMETER = {"name": "name", "in": "path", "required": True, "description": "The key's name.",
                   "schema": {"type": "string", "pattern": KEY_NAME_PATTERN}}


def admin_errors(*statuses: int, text: dict[int, str] | None = None) -> dict[str, Any]:
    text = {**_ADMIN_ERRORS, **(text or {})}
    return {str(status): error_response(status, text[status]) for status in statuses}


def admin_op(operation_id: str, summary: str, description: str, responses: dict[str, Any],
             **extra: Any) -> dict[str, Any]:
    return {"operationId": operation_id, "summary": summary, "description": description, "tags": ["Admin"],
            "security": _ADMIN_SECURITY, **extra, "responses": responses}


def _keys_path() -> dict[str, Any]:
    example = {"name": "team-b", "models": ["openai/*", "fast"], "budget_usd": 20, "budget_period": "30d",
               "rpm": 600, "tpm": 200000}
    return {
        "post": admin_op(
            "createKey", "Create a virtual key",
            "A new admin key; with Redis it works on every instance within about a second. The secret is in "
            "the response only.",
            {"201": {"description": "The key, with its secret (`key`).",
                     "content": json_content(ref("VirtualKeyCreated"))},
             **admin_errors(400, 401, 403, 408, 409, 413, 415, 503)},
            requestBody=json_body("CreateKeyRequest", {"limited": ("A key with limits", example),
                                                       "open": ("A key without limits", {"name": "ci"})})),
        "get": admin_op(
            "listKeys", "List virtual keys",
            "Config keys then admin keys, without secrets, each with what is left of its limits.",
            {"200": {"description": "Every key.", "content": json_content(ref("VirtualKeyList"))},
             **admin_errors(401, 403)}),
    }


def _key_path() -> dict[str, Any]:
    return {
        "get": admin_op("getKey", "Get a virtual key", "One key, without its secret, with its remaining limits.",
                        {"200": {"description": "The key.", "content": json_content(ref("VirtualKeyWithLimits"))},
                         **admin_errors(401, 403, 404)}, parameters=[_NAME_PARAMETER]),
        "delete": admin_op("deleteKey", "Delete a virtual key",
                           "Revokes an admin key (on every instance within `refresh_s`, 5 s). Config keys are "
                           "read-only here (409).",
                           {"204": {"description": "Deleted."}, **admin_errors(401, 403, 404, 409, 503)},
                           parameters=[_NAME_PARAMETER]),
    }


def _query(name: str, description: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema, **extra}


def _usage_path() -> dict[str, Any]:
    day = {"type": "string", "pattern": r"^(\d{4}-\d{2}-\d{2})?$", "examples": ["2025-01-31"],
           "description": "A UTC date `YYYY-MM-DD`; empty = the default."}
    parameters = [
        _query("key", "Only this virtual key (`anonymous`: requests made without one).", {"type": "string"}),
        _query("from", "First UTC day, inclusive (default: 29 days before `to`).", day),
        _query("to", "Last UTC day, inclusive (default: today). At most 366 days in all.", day),
        _query("group_by", "Group rows by any of `day`, `key`, `provider`, `model`: repeated and/or comma-separated "
                           "(none = one row).",
               {"type": "array", "items": {"type": "string", "enum": list(GROUP_BY)}}, style="form", explode=True),
        _query("provider", "Only this provider.", {"type": "string"}),
        _query("model", "Only this `provider/model`.", {"type": "string"}),
    ]
    text = {400: "A bad `from`/`to` date (`invalid_date`), a range over 366 days (`range_too_long`) or an "
                 "unknown `group_by` member (`invalid_group_by`).",
            503: "The usage store (Redis) is unreachable (`usage_store_unavailable`); retry shortly."}
    return {"get": admin_op(
        "getUsage", "Token and cost totals",
        "Usage per virtual key, provider, model and UTC day: requests, errors, cache hits (zero tokens and cost), "
        "tokens and cost as billed. With Redis the totals are every instance's (this worker's unflushed records "
        "are written first); without it, this worker's.",
        {"200": {"description": "The totals.", "content": json_content(ref("UsageReport"))},
         **admin_errors(400, 401, 403, 503, text=text)},
        parameters=parameters)}


# -- observability (router/handlers/metrics.py) ----------------------------------------------------
def _metrics_path() -> dict[str, Any]:
    return get("metrics", "Prometheus metrics", {"200": {
        "description": "Prometheus text exposition (format 0.0.4) of every `switchboard_*` metric; under "
                       "`serve --workers N`, all workers' values combined.",
        "content": {"text/plain": {"schema": {"type": "string"}}}}}, "Operations")


# -- the document -----------------------------------------------------------------------------------
_PATHS: dict[str, Any] = {
    "/v1/chat/completions": _chat_path(),
    "/v1/embeddings": _embeddings_path(),
    "/v1/models": _models_path(),
    "/v1/models/{model}": _model_path(),
    "/healthz": _healthz_path(),
    "/readyz": _readyz_path(),
    "/openapi.json": _openapi_path(),
    "/v1/usage": _usage_path(),
    "/admin/keys": _keys_path(),
    "/admin/keys/{name}": _key_path(),
}
for _v1 in ("/v1/chat/completions", "/v1/embeddings", "/v1/models", "/v1/models/{model}"):
    _PATHS[_v1.removeprefix("/v1")] = unprefixed(_PATHS[_v1], _v1)
_PATHS["/metrics"] = _metrics_path()
add_agent_docs(_PATHS)  # POST /agent/v1/chat/completions and the agent notes on chat (router/agents/openapi.py)
add_messages_docs(_PATHS)  # POST /v1/messages, /v1/messages/count_tokens (router/handlers/messages/openapi.py)
add_responses_docs(_PATHS)  # /v1/responses and its stored responses (router/handlers/responses/openapi.py)

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Switchboard",
        "version": __version__,
        "summary": "A lean reverse-proxy LLM router with an OpenAI-compatible API.",
        "description": "One OpenAI-compatible API in front of many LLM vendors, with fallback chains, "
                       "per-response routing metadata (`extra_fields`), response caching, virtual keys with "
                       "budgets and rate limits, and usage accounting. Errors are OpenAI-shaped, except on the "
                       "Anthropic Messages routes (`/v1/messages`), which use Anthropic's shape and statuses.",
        "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
    },
    "servers": [{"url": "http://127.0.0.1:8080", "description": "`server.host`/`server.port` defaults"}],
    "tags": [{"name": "OpenAI", "description": "OpenAI-compatible endpoints."},
             {"name": "Anthropic", "description": "Anthropic Messages on any vendor; errors in Anthropic's shape."},
             {"name": "Responses", "description": "OpenAI Responses on any vendor, and the responses stored per "
                                                  "key; errors in OpenAI's shape."},
             {"name": "Admin", "description": "Virtual keys and usage; `Authorization: Bearer <auth.admin_token>`."},
             {"name": "Operations", "description": "Health, readiness and this document."}],
    # Open when `auth` is not configured; otherwise a virtual key, as a bearer token or in `x-api-key`.
    "security": [{}, {"bearerAuth": []}, {"apiKeyHeader": []}],
    "paths": _PATHS,
    "components": {
        "schemas": {**SCHEMAS, **AGENT_SCHEMAS, **MESSAGES_SCHEMAS, **RESPONSES_SCHEMAS},
        "securitySchemes": {
            "bearerAuth": {
                "type": "http", "scheme": "bearer",
                "description": "A virtual key (from `auth.keys` or the admin API) as `Authorization: Bearer "
                               "<key>`; only required when `auth` is configured."},
            "apiKeyHeader": {
                "type": "apiKey", "in": "header", "name": "x-api-key",
                "description": "The same virtual key in `x-api-key` (as Anthropic SDKs send it); `Authorization` "
                               "wins when both are present."},
            "adminToken": {
                "type": "http", "scheme": "bearer",
                "description": "`auth.admin_token`, for the admin API and `/v1/usage`."},
        },
    },
}

_BODY = orjson.dumps(SPEC)


async def openapi(request: web.Request) -> web.Response:
    """`GET /openapi.json`: this document."""
    return web.Response(body=_BODY, content_type="application/json")
