"""The Messages part of the OpenAPI document (merged by router/openapi_spec.py): `POST /v1/messages` and
`POST /v1/messages/count_tokens`, their schemas, and Anthropic's error shape.

The request schemas state what `inbound.py` enforces (types, required members, ranges, the block types
each role may hold, the members refused with a 400); members it drops are not listed and
`additionalProperties` stays open, so a body the schema rejects is a 400. The response schemas are
what `outbound.py` renders, open to the members and block types an Anthropic deployment's relayed
answer may add. Every error is in Anthropic's shape (`errors.py`), with Anthropic's statuses.
"""

from __future__ import annotations

from typing import Any

from ...openapi_parts import const, obj, optional, ref

Schema = dict[str, Any]
MESSAGES_PATH = "/v1/messages"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"










_STRING = {"type": "string"}
_NON_EMPTY = {"type": "string", "minLength": 1}
_COUNT = {"type": "integer", "minimum": 0}
_CACHE_CONTROL = optional("object", "A prompt-cache mark (`{type: ephemeral, ttl?}`): kept for the vendors with "
                                "prompt-cache marks, dropped (and named in `x-switchboard-dropped`) for the others.")
_IMAGE_TYPES = ["image/jpeg", "image/png", "image/gif", "image/webp"]


# -- request ----------------------------------------------------------------------------------------
def _text_block() -> Schema:
    return obj({"type": const("text"), "text": _STRING, "cache_control": _CACHE_CONTROL}, ("type", "text"))


def _image_block() -> Schema:
    source = {"anyOf": [
        obj({"type": const("base64"), "media_type": {"type": "string", "enum": _IMAGE_TYPES}, "data": _NON_EMPTY},
             ("type", "media_type", "data")),
        obj({"type": const("url"), "url": _NON_EMPTY}, ("type", "url")),
    ], "description": "Base64 data or a URL; a Files API `file` source is refused (400)."}
    return obj({"type": const("image"), "source": source, "cache_control": _CACHE_CONTROL}, ("type", "source"))


def _document_block() -> Schema:
    content = {"anyOf": [_STRING, {"type": "array", "minItems": 1,
                                   "items": {"anyOf": [ref("AnthropicTextBlockParam"),
                                                       ref("AnthropicImageBlockParam")]}}]}
    source = {"anyOf": [
        obj({"type": const("base64"), "media_type": const("application/pdf"), "data": _NON_EMPTY},
             ("type", "media_type", "data")),
        obj({"type": const("text"), "data": _STRING}, ("type", "data")),
        obj({"type": const("content"), "content": content}, ("type", "content")),
    ], "description": "A base64 PDF (for vendors that read files), plain text or content blocks; `url` and Files "
                      "API `file` sources are refused (400)."}
    return obj({"type": const("document"), "source": source, "title": optional("string"),
                 "cache_control": _CACHE_CONTROL,
                 "citations": {"description": "Needs Anthropic: dropped for other vendors."},
                 "context": {"description": "Dropped for other vendors."}}, ("type", "source"))


def _tool_result_block() -> Schema:
    reference = obj({"type": const("tool_reference"), "tool_name": _NON_EMPTY}, ("type", "tool_name"),
                     "Claude Code's ToolSearch result: every tool is loaded already here.")
    items = {"anyOf": [ref("AnthropicTextBlockParam"), ref("AnthropicImageBlockParam"),
                       ref("AnthropicDocumentBlockParam"), reference]}
    return obj({"type": const("tool_result"), "tool_use_id": _NON_EMPTY, "is_error": optional("boolean"),
                 "content": {"anyOf": [_STRING, {"type": "array", "items": items}, {"type": "null"}]},
                 "cache_control": _CACHE_CONTROL}, ("type", "tool_use_id"))


def _tool_use_block() -> Schema:
    return obj({"type": const("tool_use"), "id": _NON_EMPTY, "name": _NON_EMPTY, "input": optional("object"),
                 "cache_control": _CACHE_CONTROL}, ("type", "id", "name"))


def _thinking_block() -> Schema:
    return obj({"type": const("thinking"), "thinking": _STRING,
                 "signature": {"type": "string", "description": "Replayed exactly to Anthropic."}},
                ("type", "thinking"))


def _redacted_thinking_block() -> Schema:
    return obj({"type": const("redacted_thinking"), "data": _STRING}, ("type", "data"))


def _content(items: list[str], min_items: int = 0) -> Schema:
    array: Schema = {"type": "array", "items": {"anyOf": [ref(name) for name in items]}}
    if min_items:
        array["minItems"] = min_items
    return {"anyOf": [_STRING, array]}


_TEXT = "AnthropicTextBlockParam"
_USER_BLOCKS = [_TEXT, "AnthropicImageBlockParam", "AnthropicDocumentBlockParam", "AnthropicToolResultBlockParam"]
_ASSISTANT_BLOCKS = [_TEXT, "AnthropicToolUseBlockParam", "AnthropicThinkingBlockParam",
                     "AnthropicRedactedThinkingBlockParam"]


def _message_param() -> Schema:
    def when(role: str, content: Schema) -> Schema:
        return {"if": {"properties": {"role": {"const": role}}, "required": ["role"]},
                "then": {"properties": {"content": content}}}

    return {
        **obj({"role": {"type": "string", "enum": ["user", "assistant", "system"]},
                "content": {"anyOf": [_STRING, {"type": "array"}],
                            "description": "A string or content blocks: `user` text, image, document and "
                                           "tool_result (at least one); `assistant` text, tool_use, thinking "
                                           "and redacted_thinking; `system` (as Claude Code sends) text."}},
               ("role", "content"), "One turn. Block types with no Chat Completions shape are refused (400)."),
        "allOf": [when("user", _content(_USER_BLOCKS, 1)), when("assistant", _content(_ASSISTANT_BLOCKS)),
                  when("system", _content([_TEXT]))],
    }


def _tool() -> Schema:
    return obj({
        "type": {"enum": [None, "custom"], "description": "Absent or `custom`: Anthropic's own tools (web search, "
                                                         "bash, code execution, ...) are refused (400)."},
        "name": _NON_EMPTY, "description": optional("string"),
        "input_schema": optional("object", "JSON Schema of the input; absent: no parameters."),
        "cache_control": _CACHE_CONTROL,
    }, ("name",), "A client tool. Other members (`defer_loading`, `strict`, ...) are dropped.")


def _tool_choice() -> Schema:
    return {
        **obj({"type": {"type": "string", "enum": ["auto", "any", "tool", "none"]},
                "name": {"description": "The tool (a non-empty string), when `type` is `tool`."},
                "disable_parallel_tool_use": optional("boolean")}, ("type",)),
        "if": {"properties": {"type": {"const": "tool"}}, "required": ["type"]},
        "then": {"properties": {"name": _NON_EMPTY}, "required": ["name"]},
    }


def _thinking() -> Schema:
    return {
        **obj({"type": {"type": "string", "enum": ["enabled", "disabled", "adaptive"]},
                "budget_tokens": {"description": "An integer, required when `type` is `enabled`."}},
               ("type",), "Extended thinking: kept for the vendors with an equivalent, dropped for the others."),
        "if": {"properties": {"type": {"const": "enabled"}}, "required": ["type"]},
        "then": {"properties": {"budget_tokens": {"type": "integer"}}, "required": ["budget_tokens"]},
    }


def _output_config() -> Schema:
    fmt = obj({"type": const("json_schema"), "schema": {"type": "object"}}, ("type", "schema"))
    return optional("object", "`format` (structured output) is mapped; `effort` and the rest are dropped.",
                properties={"format": {"anyOf": [fmt, {"type": "null"}]}})


def _request(count: bool) -> Schema:
    """The Messages request; for count_tokens, `max_tokens` and `stream` are not read."""
    properties: dict[str, Schema] = {
        "model": {"type": "string", "minLength": 1, "examples": ["demo/echo"],
                  "description": "An alias, `provider/model` or a bare model name, as on the OpenAI face."},
        "messages": {"type": "array", "minItems": 1, "items": ref("AnthropicMessageParam")},
        "system": {"anyOf": [_STRING, {"type": "array", "items": ref(_TEXT)}, {"type": "null"}]},
        "max_tokens": {"type": "integer", "minimum": 1, "description": "A JSON integer: `1.0` is a 400."},
        "stream": optional("boolean", "`true`: Anthropic's event stream (`text/event-stream`)."),
        "temperature": optional("number", minimum=0, maximum=1),
        "top_p": optional("number", minimum=0, maximum=1),
        "stop_sequences": optional("array", items=_STRING),
        "metadata": optional("object", "`user_id` becomes the canonical `user`.",
                         properties={"user_id": optional("string")}),
        "tools": optional("array", items=ref("AnthropicTool")),
        "tool_choice": {"anyOf": [ref("AnthropicToolChoice"), {"type": "null"}],
                        "description": "`any` and `tool` need `tools`."},
        "thinking": {"anyOf": [ref("AnthropicThinking"), {"type": "null"}]},
        "output_config": _output_config(),
        "mcp_servers": {"enum": [None, False, 0, "", [], {}],
                        "description": "Refused (400) unless empty: an MCP server's tools run at Anthropic."},
    }
    required = ("model", "messages", "max_tokens")
    if count:
        del properties["max_tokens"], properties["stream"]
        required = ("model", "messages")
    out = obj(properties, required, "Anthropic Messages request. Members that only tune Anthropic's own "
                                     "behaviour (`top_k`, `context_management`, `service_tier`, ...) and unknown "
                                     "members are dropped and named in `x-switchboard-dropped`.")
    # `tool_choice` `any` or `tool` without a tool is a 400.
    out["if"] = {"properties": {"tool_choice": {"type": "object", "required": ["type"],
                                                "properties": {"type": {"enum": ["any", "tool"]}}}},
                 "required": ["tool_choice"]}
    out["then"] = {"properties": {"tools": {"type": "array", "minItems": 1}}, "required": ["tools"]}
    return out


# -- response ---------------------------------------------------------------------------------------
_KNOWN_BLOCKS = ["text", "thinking", "redacted_thinking", "tool_use"]
_STOP_REASONS = ["end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal",
                 "model_context_window_exceeded", None]


def _content_block() -> Schema:
    return {"anyOf": [
        obj({"type": const("text"), "text": _STRING}, ("type", "text")),
        obj({"type": const("thinking"), "thinking": _STRING, "signature": _STRING}, ("type", "thinking",
                                                                                       "signature")),
        obj({"type": const("redacted_thinking"), "data": _STRING}, ("type", "data")),
        obj({"type": const("tool_use"), "id": _STRING, "name": _STRING, "input": {"type": "object"}},
             ("type", "id", "name", "input")),
        obj({"type": {"type": "string", "not": {"enum": _KNOWN_BLOCKS}}}, ("type",),
             "Another block an Anthropic deployment sent (`server_tool_use`, ...), relayed as is."),
    ], "description": "Thinking first, then the text, then one `tool_use` per call."}


def _usage() -> Schema:
    nullable_count = {"type": ["integer", "null"], "minimum": 0}
    return obj({"input_tokens": {**_COUNT, "description": "Input tokens less the cache reads and writes."},
                 "output_tokens": _COUNT, "cache_read_input_tokens": nullable_count,
                 "cache_creation_input_tokens": nullable_count}, ("input_tokens", "output_tokens"))


def _message() -> Schema:
    return obj({
        "id": _STRING, "type": const("message"), "role": const("assistant"),
        "model": {"type": "string", "description": "The model the client asked for."},
        "content": {"type": "array", "items": ref("MessageContentBlock")},
        "stop_reason": {"enum": _STOP_REASONS, "description": "`null` only in `message_start`."},
        "stop_sequence": optional("string"),
        "stop_details": optional("object", "`{type: refusal, explanation}` when a content filter stopped the answer."),
        "usage": ref("MessageUsage"),
        "extra_fields": ref("ExtraFields"),
    }, ("id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"),
        "An Anthropic Message, plus `extra_fields` (absent when `server.extra_fields: false`, or relayed).")


def _event(kind: str, properties: dict[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    return obj({"type": const(kind), **properties}, ("type", *required))


def _stream_events() -> dict[str, Schema]:
    index = {"type": "integer", "minimum": 0}
    delta = {"anyOf": [
        obj({"type": const("text_delta"), "text": _STRING}, ("type", "text")),
        obj({"type": const("thinking_delta"), "thinking": _STRING}, ("type", "thinking")),
        obj({"type": const("signature_delta"), "signature": _STRING}, ("type", "signature")),
        obj({"type": const("input_json_delta"), "partial_json": _STRING}, ("type", "partial_json")),
        obj({"type": {"type": "string", "not": {"enum": ["text_delta", "thinking_delta", "signature_delta",
                                                          "input_json_delta"]}}}, ("type",)),
    ]}
    nullable_count = {"type": ["integer", "null"], "minimum": 0}
    usage = obj({"output_tokens": _COUNT, "input_tokens": nullable_count, "cache_read_input_tokens": nullable_count,
                  "cache_creation_input_tokens": nullable_count}, ("output_tokens",), "Cumulative.")
    return {
        "message_start": _event("message_start", {"message": ref("Message")}, ("message",)),
        "ping": _event("ping", {}),
        "content_block_start": _event("content_block_start", {"index": index,
                                                              "content_block": ref("MessageContentBlock")},
                                      ("index", "content_block")),
        "content_block_delta": _event("content_block_delta", {"index": index, "delta": delta}, ("index", "delta")),
        "content_block_stop": _event("content_block_stop", {"index": index}, ("index",)),
        "message_delta": _event("message_delta", {
            "delta": obj({"stop_reason": {"enum": _STOP_REASONS}, "stop_sequence": optional("string"),
                           "stop_details": optional("object")}, ("stop_reason",)),
            "usage": usage}, ("delta", "usage")),
        "message_stop": _event("message_stop", {}),
        "error": _event("error", {"error": ref("AnthropicErrorDetail")}, ("error",)),
    }


_SSE_EVENT = {
    "description": "One Server-Sent Event of Anthropic's stream: `message_start`, `ping`, then per block "
                   "`content_block_start`/`_delta`/`_stop`, then `message_delta` (stop reason, cumulative "
                   "usage) and `message_stop`. A failure after the stream started ends it with one `error` event.",
    "anyOf": [{"type": "object", "required": ["event", "data"],
               "properties": {"event": const(kind),
                              "data": {"type": "string", "contentMediaType": "application/json",
                                       "contentSchema": ref(f"MessageStreamEvent_{kind}")}}}
              for kind in _stream_events()],
}

_ERROR_TYPES = ["invalid_request_error", "authentication_error", "billing_error", "permission_error",
                "not_found_error", "timeout_error", "request_too_large", "rate_limit_error", "api_error",
                "overloaded_error"]


def _error() -> Schema:
    return obj({"type": const("error"), "error": ref("AnthropicErrorDetail")}, ("type", "error"),
                "An error in Anthropic's shape (the Messages routes, and `/v1/models` with `anthropic-version`).")


MESSAGES_SCHEMAS: dict[str, Schema] = {
    "AnthropicMessagesRequest": _request(count=False),
    "AnthropicCountTokensRequest": _request(count=True),
    "AnthropicMessageParam": _message_param(),
    "AnthropicTextBlockParam": _text_block(),
    "AnthropicImageBlockParam": _image_block(),
    "AnthropicDocumentBlockParam": _document_block(),
    "AnthropicToolResultBlockParam": _tool_result_block(),
    "AnthropicToolUseBlockParam": _tool_use_block(),
    "AnthropicThinkingBlockParam": _thinking_block(),
    "AnthropicRedactedThinkingBlockParam": _redacted_thinking_block(),
    "AnthropicTool": _tool(),
    "AnthropicToolChoice": _tool_choice(),
    "AnthropicThinking": _thinking(),
    "Message": _message(),
    "MessageContentBlock": _content_block(),
    "MessageUsage": _usage(),
    **{f"MessageStreamEvent_{kind}": schema for kind, schema in _stream_events().items()},
    "MessageTokensCount": obj({"input_tokens": _COUNT}, ("input_tokens",)),
    "AnthropicError": _error(),
    "AnthropicErrorDetail": obj({"type": {"type": "string", "enum": _ERROR_TYPES}, "message": _STRING},
                                 ("type", "message")),
}


# -- operations -------------------------------------------------------------------------------------
def _header(description: str, pattern: str | None = None) -> Schema:
    schema: Schema = {"type": "string"}
    if pattern:
        schema["pattern"] = pattern
    return {"description": description, "schema": schema}


_ROUTING_HEADERS = {
    "x-switchboard-provider": _header("The provider that served (or was tried last)."),
    "x-switchboard-model": _header("The `provider/model` that served (or was tried last)."),
    "x-switchboard-attempts": _header("How many upstream attempts were made (0 for a cache hit).", r"^\d+$"),
}
_ANSWER_HEADERS = {
    "x-switchboard-cost-usd": _header("What a whole (non-stream) answer cost, in USD, when the model has a price.",
                                      r"^\d+(\.\d+)?(e[-+]\d+)?$"),
    "x-switchboard-dropped": _header("The request members not carried to the vendor, comma-separated (a name "
                                     "that is not a plain token percent-encoded): Anthropic-only tuning and "
                                     "unknown members. Absent when relayed to Anthropic."),
}
_DIALECT_PARAMETERS = [
    {"name": name, "in": "header", "required": False, "schema": {"type": "string"},
     "description": "Forwarded to a deployment that speaks Messages (Anthropic); ignored for the others."}
    for name in ("anthropic-version", "anthropic-beta")
]
_ERRORS = {
    400: ("`invalid_request_error`: invalid JSON or members (Anthropic's checks), a member that cannot be "
          "translated for other vendors (server tools, `mcp_servers`, block types with no equivalent), a bad "
          "`x-switchboard-cache-ttl` header, a parameter no deployment can honour, or a vendor refusing the "
          "request as the caller's error."),
    401: "`authentication_error`: missing or unknown virtual key (only when `auth` is configured).",
    402: "`billing_error`: the virtual key's budget cannot cover this request; `Retry-After` says when it resets.",
    403: "`permission_error`: the virtual key may not use this model.",
    404: "`not_found_error`: unknown model, or its provider is disabled (API key unset).",
    408: "`timeout_error`: the request body did not arrive within `server.timeouts.body_s`.",
    413: "`request_too_large`: the body is larger than `server.max_body_bytes`.",
    415: "`invalid_request_error`: the body is not declared JSON (`Content-Type: application/json`).",
    429: "`rate_limit_error`: the key's RPM/TPM or every upstream tried; see `retry-after`.",
    500: "`api_error`: no deployment served (every upstream attempt failed: the router's 502).",
    504: "`timeout_error`: every upstream attempt timed out.",
    529: ("`overloaded_error`: the upstream is overloaded, the model has no enabled deployment, or keys/limits "
          "cannot be checked (Redis unreachable); see `retry-after`."),
}
_MESSAGE_ERRORS = (400, 401, 402, 403, 404, 408, 413, 415, 429, 500, 504, 529)
_COUNT_ERRORS = (400, 401, 403, 404, 408, 413, 415, 529)
_UPSTREAM = (429, 500, 504, 529)  # may come from the upstream: who was tried is in the routing headers
# The OpenAI face's error status whose documented headers (`WWW-Authenticate`, `Retry-After`, rate limits)
# the Anthropic status carries.
_OPENAI_STATUS = {500: 502, 529: 503}

_HELLO = [{"role": "user", "content": "Hello, how are you?"}]
_EXAMPLES = {
    "basic": ("A model by `provider/model`", {"model": "demo/echo", "max_tokens": 64, "messages": _HELLO}),
    "stream": ("An alias, streamed, with a system prompt", {"model": "fast", "max_tokens": 64, "stream": True,
                                                            "system": "Be brief.", "messages": _HELLO}),
    "tools": ("A tool the model may call", {
        "model": "demo/echo", "max_tokens": 64, "messages": _HELLO,
        "tools": [{"name": "get_weather", "description": "The weather in a city",
                   "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        "tool_choice": {"type": "auto"}}),
}


def _errors(statuses: tuple[int, ...], chat: dict[str, Any], proxied: bool) -> dict[str, Any]:
    out = {}
    for status in statuses:
        response: dict[str, Any] = {"description": _ERRORS[status],
                                    "content": {"application/json": {"schema": ref("AnthropicError")}}}
        openai = chat["responses"].get(str(_OPENAI_STATUS.get(status, status)), {})
        headers = {name: spec for name, spec in openai.get("headers", {}).items()
                   if proxied or not name.startswith("x-")}  # no cache or rate-limit state without a call
        if proxied and status in _UPSTREAM:
            headers.update(_ROUTING_HEADERS)
        if headers:
            response["headers"] = headers
        out[str(status)] = response
    return out


def _body(schema: str, examples: dict[str, Any]) -> dict[str, Any]:
    named = {name: {"summary": summary, "value": value} for name, (summary, value) in examples.items()}
    return {"required": True, "content": {"application/json": {"schema": ref(schema), "examples": named}}}


def _messages_path(chat: dict[str, Any]) -> dict[str, Any]:
    cache = [p for p in chat["parameters"] if p["name"] != "x-switchboard-raw-response"]
    ok = {"description": "The Message (`stream` absent or false) or Anthropic's event stream (`stream: true`). A "
                         "cache hit has the same body (a stream: the same events), nothing billed, no attempts.",
          "headers": {**chat["responses"]["200"]["headers"], **_ROUTING_HEADERS, **_ANSWER_HEADERS},
          "content": {"application/json": {"schema": ref("Message")},
                      "text/event-stream": {"schema": _SSE_EVENT}}}
    return {"post": {
        "operationId": "createMessage",
        "summary": "Create a message (Anthropic Messages)",
        "description": "Anthropic's Messages API, for Claude Code and the anthropic SDK, on any vendor: the "
                       "request becomes a canonical chat request and goes through the same routing core (keys, "
                       "limits, budget, cache, fallbacks, accounting). A deployment that speaks Messages "
                       "(Anthropic) gets the body as written and its answer is relayed unchanged. Keys may be "
                       "sent as `x-api-key`.",
        "tags": ["Anthropic"],
        "parameters": [*cache, *_DIALECT_PARAMETERS],
        "requestBody": _body("AnthropicMessagesRequest", _EXAMPLES),
        "responses": {"200": ok, **_errors(_MESSAGE_ERRORS, chat, proxied=True)},
    }}


def _count_tokens_path(chat: dict[str, Any]) -> dict[str, Any]:
    example = {"model": "demo/echo", "messages": _HELLO}
    return {"post": {
        "operationId": "countMessageTokens",
        "summary": "Count the input tokens of a Messages request",
        "description": "The key must be allowed the model and the model must route somewhere (a call's checks), "
                       "but no vendor is asked: the count is the router's (tiktoken over the request, tools "
                       "included), exact for OpenAI models and an estimate for the others. `max_tokens` and "
                       "`stream` are not read.",
        "tags": ["Anthropic"],
        "parameters": list(_DIALECT_PARAMETERS),
        "requestBody": _body("AnthropicCountTokensRequest", {"basic": ("One message", example)}),
        "responses": {"200": {"description": "The count.",
                              "content": {"application/json": {"schema": ref("MessageTokensCount")}}},
                      **_errors(_COUNT_ERRORS, chat, proxied=False)},
    }}


_MODELS_NOTE = ("With an `anthropic-version` header (the anthropic SDK, Claude Code) the answer is in "
                "Anthropic's shapes (`{data: [{type: model, id, display_name, created_at}], has_more, first_id, "
                "last_id}`) and errors in `AnthropicError`'s.")


def add_messages_docs(paths: dict[str, Any]) -> None:
    """Add the Messages paths (their cache parameters and headers are the chat operation's) and the
    Anthropic note of the model list operations."""
    chat = paths["/v1/chat/completions"]["post"]
    paths[MESSAGES_PATH] = _messages_path(chat)
    paths[COUNT_TOKENS_PATH] = _count_tokens_path(chat)
    for path in ("/v1/models", "/models", "/v1/models/{model}", "/models/{model}"):
        op = paths.get(path, {}).get("get")
        if op is not None:
            description = f"{op['description']}\n\n{_MODELS_NOTE}" if op.get("description") else _MODELS_NOTE
            paths[path]["get"] = {**op, "description": description}
