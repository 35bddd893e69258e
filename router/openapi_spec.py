"""The router's OpenAPI 3.1 document, served at `GET /openapi.json`.

Paths live here; component schemas in router/openapi_schemas.py. tests/router/test_openapi_spec.py
checks that the paths are exactly the routes router/app.py registers, so the two cannot drift.
"""

from __future__ import annotations

from typing import Any

from .openapi_schemas import SCHEMAS, Schema, ref

# -- helpers ----------------------------------------------------------------------------------------
_ERROR_TEXT = {
    400: "Invalid JSON or parameters (`param` names the field), an unknown request fallback, or a vendor "
         "rejecting the request as the caller's error.",
    401: "Missing or unknown virtual key (only when `auth` is configured).",
    402: "The virtual key's budget is exhausted.",
    403: "The virtual key may not use this model.",
    404: "Unknown model (`model_not_found`) or provider disabled because its key is unset (`provider_disabled`).",
    413: "Request body larger than `server.max_body_bytes` (`request_too_large`).",
    429: "Rate limited by the router or by every upstream tried; see `Retry-After`.",
    502: "Every upstream attempt failed; the most relevant upstream error plus the attempt trail in "
         "`extra_fields.attempts`.",
    503: "The model has no enabled deployment (`no_deployment_available`).",
    504: "Every upstream attempt timed out (`timeout_error`).",
}
_PROXY_ERRORS = (400, 401, 402, 403, 404, 413, 429, 502, 503, 504)

_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.",
                                "schema": {"type": "string", "pattern": r"^\d+$"}}}


def json_content(schema: Schema) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def error_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {"description": _ERROR_TEXT[status], "content": json_content(ref("Error"))}
    if status == 429:
        response["headers"] = _RETRY_AFTER
    return response


def errors(*statuses: int) -> dict[str, Any]:
    return {str(status): error_response(status) for status in statuses}


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
                   "(when `server.allow_raw_response_header` is on); any other value is ignored.",
    "schema": {"type": "string", "examples": ["true"]},
}

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
    ok = {"description": "The completion (`stream` absent or false) or an SSE stream (`stream: true`).",
          "content": {"application/json": {"schema": ref("ChatCompletion")},
                      "text/event-stream": {"schema": _SSE_EVENT}}}
    return {"post": {
        "operationId": "createChatCompletion",
        "summary": "Create a chat completion",
        "description": "OpenAI Chat Completions through the routing core: model resolution, fallback chain, "
                       "retries, accounting. Request `fallbacks` are tried after the primary.",
        "tags": ["OpenAI"],
        "parameters": [_RAW_HEADER],
        "requestBody": json_body("ChatCompletionRequest", _CHAT_EXAMPLES),
        "responses": {"200": ok, **errors(*_PROXY_ERRORS)},
    }}


def _embeddings_path() -> dict[str, Any]:
    return {"post": {
        "operationId": "createEmbeddings",
        "summary": "Create embeddings",
        "description": "OpenAI Embeddings through the same attempt chain as chat.",
        "tags": ["OpenAI"],
        "parameters": [_RAW_HEADER],
        "requestBody": json_body("EmbeddingsRequest", _EMBEDDINGS_EXAMPLES),
        "responses": {"200": {"description": "The embeddings.", "content": json_content(ref("EmbeddingsResponse"))},
                      **errors(*_PROXY_ERRORS)},
    }}


def _models_path() -> dict[str, Any]:
    return get("listModels", "List models", {
        "200": {"description": "Configured aliases, then each enabled provider's declared models.",
                "content": json_content(ref("ModelList"))},
        **errors(401)}, "OpenAI", secured=True)


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


# -- the document -----------------------------------------------------------------------------------
_PATHS: dict[str, Any] = {
    "/v1/chat/completions": _chat_path(),
    "/v1/embeddings": _embeddings_path(),
    "/v1/models": _models_path(),
    "/healthz": _healthz_path(),
    "/readyz": _readyz_path(),
    "/openapi.json": _openapi_path(),
}
for _v1 in ("/v1/chat/completions", "/v1/embeddings", "/v1/models"):
    _PATHS[_v1.removeprefix("/v1")] = unprefixed(_PATHS[_v1], _v1)

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Switchboard",
        "version": "0.1.0",
        "summary": "A lean reverse-proxy LLM router with an OpenAI-compatible API.",
        "description": "One OpenAI-compatible API in front of many LLM vendors, with fallback chains and "
                       "per-response routing metadata (`extra_fields`). Errors are always OpenAI-shaped.",
        "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
    },
    "servers": [{"url": "http://127.0.0.1:8080", "description": "`server.host`/`server.port` defaults"}],
    "tags": [{"name": "OpenAI", "description": "OpenAI-compatible endpoints."},
             {"name": "Operations", "description": "Health, readiness and this document."}],
    "security": [{}, {"bearerAuth": []}],
    "paths": _PATHS,
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {"bearerAuth": {
            "type": "http", "scheme": "bearer",
            "description": "A virtual key from `auth.keys`; only required when `auth` is configured."}},
    },
}
