"""`components.schemas` of the router's OpenAPI document (assembled in router/openapi_spec.py).

The schemas of the admin API and of `GET /v1/usage` live in router/openapi_admin.py.

Request schemas state exactly what router/validation.py enforces (types, ranges, required members),
so a body the schema rejects is a 400 and the fuzz test can hold the router to it. Every other OpenAI
parameter is passed through to the vendor untouched, hence `additionalProperties: true`. Response
schemas require what the router always sends and allow the extra members vendors add.
"""

from __future__ import annotations

from .openapi_admin import ADMIN_SCHEMAS
from .openapi_parts import Schema, const, nullable, obj, optional, ref, typed

# -- shared request members -------------------------------------------------------------------------
MODEL = typed("string", "What to run: an alias from `models:` (`fast`), `provider/model` (`openai/gpt-4o-mini`), "
                        "a bare model name declared by exactly one provider, or `agent:<id>`. "
                        "Unknown names are a 404 `model_not_found`.",
              pattern=r"\S", examples=["demo/echo"])

FALLBACKS = optional("array", "Models tried in order after the primary and after the alias's own "
                              "`fallbacks`, on 429, 5xx, timeouts and connection errors (never on a caller "
                              "error). Removed before the request reaches a vendor.",
                     items=typed("string", minLength=1), maxItems=10,
                     examples=[["fast", "demo/echo"]])

USER = optional("string", "End-user identifier, passed through.")

CHAT_PASSTHROUGH = ("Every other OpenAI Chat Completions parameter (`modalities`, `audio`, `prediction`, "
                    "`verbosity`, `web_search_options`, ...) is passed through to the vendor or translated. "
                    "Integer parameters must be JSON integers: `1.0` is a 400, as at OpenAI.")


def _content_part() -> Schema:
    return obj({"type": typed("string", "`text`, `image_url`, `input_audio`, `file`, ...")}, ("type",),
               description="One content part; only `type` is checked by the router.")


def _message() -> Schema:
    return {
        **obj({
            "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool", "function"]},
            "content": {"anyOf": [{"type": "string"}, {"type": "array", "items": ref("ContentPart")},
                                  {"type": "null"}]},
            "name": {"description": "Participant name, passed through."},
            "tool_call_id": {"description": "A string; required when `role` is `tool`."},
            "tool_calls": optional("array", "Tool calls an assistant turn made, passed through."),
        }, ("role",), description="A chat message; unknown members are passed through."),
        "if": {"properties": {"role": {"const": "tool"}}, "required": ["role"]},
        "then": {"properties": {"tool_call_id": {"type": "string"}}, "required": ["tool_call_id"]},
    }


def _tool() -> Schema:
    return {
        **obj({"type": {"description": "`function`, or a vendor-specific tool type passed through."},
               "function": {"description": "`{name, description, parameters}`; `name` (a string) is required "
                                           "when `type` is `function`."}},
              description="A tool the model may call; only a function tool's name is checked."),
        "if": {"properties": {"type": {"const": "function"}}, "required": ["type"]},
        "then": {"properties": {"function": {"type": "object", "properties": {"name": {"type": "string"}},
                                             "required": ["name"]}},
                 "required": ["function"]},
    }


def _response_format() -> Schema:
    return {
        **obj({"type": {"type": "string", "enum": ["text", "json_object", "json_schema"]},
               "json_schema": {"description": "`{name, schema, strict}`; an object, required when `type` is "
                                              "`json_schema`."}},
              ("type",)),
        "if": {"properties": {"type": {"const": "json_schema"}}, "required": ["type"]},
        "then": {"properties": {"json_schema": {"type": "object"}}, "required": ["json_schema"]},
    }


def _chat_request() -> Schema:
    def number(description: str, lo: float, hi: float) -> Schema:
        return optional("number", description, minimum=lo, maximum=hi)

    def integer(description: str, lo: int | None = None, hi: int | None = None) -> Schema:
        bounds = {k: v for k, v in (("minimum", lo), ("maximum", hi)) if v is not None}
        return optional("integer", description, **bounds)

    stop = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "maxItems": 4},
                      {"type": "null"}], "description": "Up to 4 sequences where generation stops."}
    tool_choice = {"anyOf": [{"type": "string", "enum": ["none", "auto", "required"]},
                             {"type": "object", "description": "`{type: function, function: {name}}` and the like"},
                             {"type": "null"}]}
    return obj({
        "model": MODEL,
        "messages": typed("array", "The conversation so far.", items=ref("ChatMessage"), minItems=1),
        "stream": optional("boolean", "`true`: answer as Server-Sent Events (`text/event-stream`)."),
        "stream_options": optional("object", "`{include_usage: true}` adds a usage chunk before `[DONE]`."),
        "temperature": number("Sampling temperature.", 0, 2),
        "top_p": number("Nucleus sampling mass.", 0, 1),
        "n": integer("How many choices to generate.", 1, 128),
        "max_tokens": integer("Cap on generated tokens (legacy name).", 1),
        "max_completion_tokens": integer("Cap on generated tokens, reasoning included.", 1),
        "presence_penalty": number("Penalty for tokens already present.", -2, 2),
        "frequency_penalty": number("Penalty proportional to token frequency.", -2, 2),
        "logprobs": optional("boolean", "Return log probabilities of the output tokens."),
        "top_logprobs": integer("Alternatives per token when `logprobs` is true.", 0, 20),
        "logit_bias": optional("object", "Token id -> bias (-100..100)."),
        "seed": integer("Best-effort deterministic sampling."),
        "stop": stop,
        "tools": optional("array", "Tools the model may call.", items=ref("Tool")),
        "tool_choice": tool_choice,
        "parallel_tool_calls": optional("boolean", "Allow several tool calls in one turn."),
        "response_format": nullable(ref("ResponseFormat")),
        "store": optional("boolean", "Passed through."),
        "metadata": optional("object", "Passed through."),
        "user": USER,
        "reasoning_effort": optional("string", "`minimal`, `low`, `medium`, `high`; translated per vendor."),
        "prompt_cache_key": optional("string", "Provider-side prompt caching key, passed through."),
        "safety_identifier": optional("string", "Passed through."),
        "service_tier": optional("string", "Passed through."),
        "fallbacks": FALLBACKS,
    }, ("model", "messages"), description=f"OpenAI Chat Completions request. {CHAT_PASSTHROUGH}")


def _embeddings_request() -> Schema:
    tokens = {"type": "array", "items": {"type": "integer"}, "minItems": 1}
    inputs = {"anyOf": [
        {"type": "string"},
        {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 2048},
        {**tokens, "maxItems": 2048},
        {"type": "array", "items": tokens, "minItems": 1, "maxItems": 2048},
    ], "description": "A string, an array of strings, a token array or an array of token arrays."}
    return obj({
        "model": MODEL,
        "input": inputs,
        "encoding_format": {"enum": ["float", "base64", None], "description": "`float` (default) or `base64`."},
        "dimensions": optional("integer", "Output dimensions, for models that support it.", minimum=1),
        "user": USER,
        "fallbacks": FALLBACKS,
    }, ("model", "input"), description="OpenAI Embeddings request; other members are passed through.")


# -- responses --------------------------------------------------------------------------------------
def _usage() -> Schema:
    count = typed("integer", minimum=0)
    return obj({"prompt_tokens": count, "completion_tokens": count, "total_tokens": count,
                "prompt_tokens_details": nullable(typed("object")),
                "completion_tokens_details": nullable(typed("object"))},
               ("prompt_tokens", "total_tokens"), description="Token usage as the vendor reported it.")


def _tool_call() -> Schema:
    return obj({"id": typed("string"), "type": typed("string"),
                "function": obj({"name": typed("string"), "arguments": typed("string", "JSON-encoded arguments.")})})


def _assistant_message() -> Schema:
    return obj({
        "role": typed("string", examples=["assistant"]),
        "content": typed(["string", "null"]),
        "refusal": typed(["string", "null"]),
        "tool_calls": typed("array", items=ref("ToolCall")),
        "annotations": typed("array"),
    }, ("role",))


def _chat_completion() -> Schema:
    choice = obj({"index": typed("integer", minimum=0), "message": ref("AssistantMessage"),
                  "finish_reason": typed(["string", "null"], examples=["stop", "length", "tool_calls"]),
                  "logprobs": nullable(typed("object"))},
                 ("index", "message"))
    return obj({
        "id": typed("string"),
        "object": const("chat.completion"),
        "created": typed("integer", "Unix seconds."),
        "model": typed("string", "The vendor's model id."),
        "choices": typed("array", items=choice),
        "usage": nullable(ref("Usage")),
        "system_fingerprint": typed(["string", "null"]),
        "service_tier": typed(["string", "null"]),
        "extra_fields": ref("ExtraFields"),
    }, ("id", "object", "created", "model", "choices"),
        description="OpenAI chat completion plus `extra_fields` (absent when `server.extra_fields: false`).")


def _chat_chunk() -> Schema:
    delta = obj({"role": typed("string"), "content": typed(["string", "null"]), "refusal": typed(["string", "null"]),
                 "tool_calls": typed("array")})
    choice = obj({"index": typed("integer", minimum=0), "delta": delta,
                  "finish_reason": typed(["string", "null"]), "logprobs": nullable(typed("object"))},
                 ("index", "delta"))
    return obj({
        "id": typed("string"),
        "object": const("chat.completion.chunk"),
        "created": typed("integer"),
        "model": typed("string"),
        "choices": typed("array", items=choice),
        "usage": nullable(ref("Usage")),
        "extra_fields": {"anyOf": [ref("StreamRoutingHead"), ref("ExtraFields")],
                         "description": "The first chunk carries `provider` and `model`; the last chunk "
                                        "before `[DONE]` carries the full object."},
    }, ("id", "object", "created", "model", "choices"), description="One `data:` event of a chat stream.")


def _embeddings_response() -> Schema:
    item = obj({"object": const("embedding"), "index": typed("integer", minimum=0),
                "embedding": {"anyOf": [{"type": "array", "items": {"type": "number"}},
                                        {"type": "string", "description": "base64 little-endian float32"}]}},
               ("object", "index", "embedding"))
    return obj({"object": const("list"), "data": typed("array", items=item), "model": typed("string"),
                "usage": obj({"prompt_tokens": typed("integer"), "total_tokens": typed("integer")}),
                "extra_fields": ref("ExtraFields")}, ("object", "data"))


# -- extra_fields and errors ------------------------------------------------------------------------
def _billed_usage() -> Schema:
    count = typed("integer", minimum=0)
    return obj({
        "prompt_tokens": count, "completion_tokens": count, "total_tokens": count, "cached_tokens": count,
        "cost_usd": typed(["number", "null"], "USD; `null` when the model has no known price."),
        "estimated": typed("boolean", "Present and true when tiktoken estimated the usage."),
    }, ("prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "cost_usd"),
        description="Usage as billed by the vendor that served the request.")


def _attempt() -> Schema:
    return obj({"model": typed("string", "`provider/model` tried."),
                "status": typed("integer", "Upstream HTTP status; 0 when none arrived."),
                "latency_ms": typed("number"), "error": typed(["string", "null"])},
               ("model", "status", "latency_ms", "error"))


def _extra_fields() -> Schema:
    return obj({
        "provider": typed(["string", "null"], "Provider that served the response (`null` if none did)."),
        "model": typed(["string", "null"], "`provider/model` that served it."),
        "model_requested": typed("string", "What the client sent."),
        "request_type": {"type": "string",
                         "enum": ["chat.completion", "chat.completion.chunk", "embedding", "agent",
                                  "message", "response"]},
        "latency": typed("number", "Milliseconds from request received to response complete.", minimum=0),
        "billed_usage": ref("BilledUsage"),
        "attempts": typed("array", "Every attempt, the served one last.", items=ref("Attempt")),
        "cache": obj({"status": {"type": "string", "enum": ["hit", "miss", "bypass", "off"]}}, ("status",)),
        "raw_response": {"description": "The vendor's untranslated body, when asked for and allowed."},
    }, ("provider", "model", "model_requested", "request_type", "latency", "attempts", "cache"),
        description="Per-response routing metadata. Removed entirely with `server.extra_fields: false`.")


def _error_detail() -> Schema:
    return obj({
        "message": typed("string"),
        "type": typed("string", examples=["invalid_request_error", "authentication_error", "permission_error",
                                          "insufficient_quota", "rate_limit_error", "upstream_error"]),
        "param": typed(["string", "null"], "The offending request member (`messages[0].role`) or request header "
                                           "(`x-switchboard-cache-ttl`)."),
        "code": typed(["string", "null"], examples=["model_not_found", "invalid_type", "request_too_large",
                                                    "invalid_api_key", "model_not_allowed", "budget_exceeded",
                                                    "rate_limit_exceeded"]),
    }, ("message", "type", "param", "code"))


def _error() -> Schema:
    return obj({"error": ref("ErrorDetail"), "extra_fields": ref("ExtraFields")}, ("error",),
               description="OpenAI-shaped error; `extra_fields` carries the attempt trail of proxied requests.")


def _stream_error() -> Schema:
    return obj({"error": ref("ErrorDetail"), "extra_fields": ref("ExtraFields")}, ("error",),
               description="The last event of a stream that failed after its first chunk (no `[DONE]` follows).")


def _health() -> Schema:
    return obj({"status": const("ok")}, ("status",))


def _deployment_health() -> Schema:
    return obj({
        "deployment": typed(["string", "null"], "`provider/model`; `null` for a key in cool-down."),
        "key": typed("string", "A key id (never the key itself)."),
        "state": {"type": "string", "enum": ["closed", "open", "half_open", "key_cooldown"]},
        "cooldown_remaining_s": typed("number", minimum=0),
        "successes": typed("integer", minimum=0),
        "errors": typed("integer", minimum=0),
        "last_error": typed(["string", "null"]),
        "ttfb_ewma_ms": typed(["number", "null"], "Smoothed time to first byte."),
        "in_flight": typed("integer", minimum=0),
    }, ("deployment", "key", "state", "cooldown_remaining_s"),
        description="Circuit-breaker state of one deployment as this worker sees it.")


def _readiness() -> Schema:
    names = typed("array", items=typed("string"))
    checks = obj({"config": {"type": "string", "enum": ["ok", "starting"]}, "providers": names,
                  "disabled_providers": names,
                  "deployments": typed("array", "An open breaker does not make the router unready.",
                                       items=_deployment_health()),
                  "redis": {"type": "string", "enum": ["ok", "unreachable"],
                            "description": "Only with `redis:` configured."}},
                 ("config", "providers", "disabled_providers"))
    return obj({"status": {"type": "string", "enum": ["ready", "degraded", "not_ready"],
                           "description": "`degraded`: Redis is unreachable and auth.on_redis_down is "
                                          "fail_open, so the router serves without it."},
                "checks": checks},
               ("status", "checks"))


def _model() -> Schema:
    return obj({"id": typed("string", "An alias or `provider/model`."), "object": const("model"),
                "created": typed("integer"), "owned_by": typed("string", "`switchboard` for aliases.")},
               ("id", "object", "created", "owned_by"))


def _model_list() -> Schema:
    return obj({"object": const("list"), "data": typed("array", items=ref("Model"))}, ("object", "data"))


SCHEMAS: dict[str, Schema] = {
    "ChatCompletionRequest": _chat_request(),
    "ChatMessage": _message(),
    "ContentPart": _content_part(),
    "Tool": _tool(),
    "ResponseFormat": _response_format(),
    "ToolCall": _tool_call(),
    "EmbeddingsRequest": _embeddings_request(),
    "ChatCompletion": _chat_completion(),
    "AssistantMessage": _assistant_message(),
    "ChatCompletionChunk": _chat_chunk(),
    "Usage": _usage(),
    "EmbeddingsResponse": _embeddings_response(),
    "Model": _model(),
    "ModelList": _model_list(),
    "ExtraFields": _extra_fields(),
    "StreamRoutingHead": obj({"provider": typed("string"), "model": typed("string")}, ("provider", "model"),
                             additional=False),
    "BilledUsage": _billed_usage(),
    "Attempt": _attempt(),
    "Error": _error(),
    "ErrorDetail": _error_detail(),
    "StreamErrorEvent": _stream_error(),
    "Health": _health(),
    "Readiness": _readiness(),
    **ADMIN_SCHEMAS,  # the admin API and `GET /v1/usage` (router/openapi_admin.py)
}
