"""`components.schemas` of the admin API and of `GET /v1/usage` (merged into router/openapi_schemas.py).

The create-key request schema states exactly what `router.handlers.admin.parse_create` enforces
(tests/router/test_openapi_spec.py holds the two together); limits and patterns are imported from
the code that enforces them, so they cannot drift.
"""

from __future__ import annotations

from typing import Any

from .accounting.store import GROUP_BY
from .auth.keys import NAME_RE, PERIOD_RE
from .handlers.admin import MAX_BUDGET_USD, MAX_MODELS, MAX_RATE

Schema = dict[str, Any]

# JSON Schema `pattern` is an ECMA-262 regex; these Python ones use only the common subset.
KEY_NAME_PATTERN = NAME_RE.pattern
PERIOD_PATTERN = PERIOD_RE.pattern
DAY_PATTERN = r"^\d{4}-\d{2}-\d{2}$"


def _obj(properties: dict[str, Schema], required: tuple[str, ...] = (), *, description: str | None = None,
         additional: bool = True) -> Schema:
    out: Schema = {"type": "object", "properties": properties}
    if required:
        out["required"] = list(required)
    if not additional:
        out["additionalProperties"] = False
    if description:
        out["description"] = description
    return out


def _t(kind: str | list[str], description: str | None = None, **keywords: Any) -> Schema:
    out: Schema = {"type": kind, **keywords}
    if description:
        out["description"] = description
    return out


def _rate(name: str) -> Schema:
    return _t(["integer", "null"], f"{name}; `null` = unlimited. A JSON integer (`1.0` is a 400).",
              minimum=1, maximum=MAX_RATE)


def _create_key_request() -> Schema:
    return _obj({
        "name": _t("string", "Unique among config and admin keys; used in metrics, usage rows and URLs.",
                   pattern=KEY_NAME_PATTERN, examples=["team-b"]),
        "models": _t(["array", "null"], "Globs over requested model names (aliases, `provider/model`); "
                                        "`null` = every model.",
                     items=_t("string", minLength=1, maxLength=256), maxItems=MAX_MODELS,
                     examples=[["openai/*", "fast"]]),
        "tools": _t(["array", "null"], "Globs over tool names (built-ins, HTTP tools, `<server>-<tool>` of MCP "
                                       "servers) the key's agents and `/mcp` may use; `null` = every tool.",
                    items=_t("string", minLength=1, maxLength=256), maxItems=MAX_MODELS,
                    examples=[["calculator", "docs-*"]]),
        "budget_usd": _t(["number", "null"], "USD per `budget_period`; `null` = unlimited.", minimum=0,
                         maximum=MAX_BUDGET_USD),
        "budget_period": _t("string", "`Nd`, `Nh` or `Nm`; the budget resets every period (default `30d`).",
                            pattern=PERIOD_PATTERN, examples=["30d"]),
        "rpm": _rate("Requests per minute"),
        "tpm": _rate("Tokens per minute"),
    }, ("name",), additional=False, description="A new virtual key. Unknown members are a 400 naming them.")


def _key_record() -> Schema:
    return _obj({
        "name": _t("string"),
        "models": _t(["array", "null"], items=_t("string")),
        "tools": _t(["array", "null"], items=_t("string")),
        "budget_usd": _t(["number", "null"]),
        "budget_period": _t("string", examples=["30d"]),
        "rpm": _t(["integer", "null"]),
        "tpm": _t(["integer", "null"]),
        "source": {"type": "string", "enum": ["config", "admin"],
                   "description": "`config` keys come from `auth.keys` and cannot be deleted here."},
        "created_at": _t("integer", "Unix seconds."),
    }, ("name", "models", "tools", "budget_usd", "budget_period", "rpm", "tpm", "source", "created_at"),
        description="A virtual key as the admin API shows it: never its secret, nor the secret's hash.")


def _key_limits() -> Schema:
    left = _t(["integer", "null"], minimum=0)
    usd = _t(["number", "null"], minimum=0)
    return _obj({
        "available": _t("boolean", "False when Redis cannot be read (the remaining figures are then null)."),
        "rpm_limit": _t(["integer", "null"]), "rpm_remaining": left,
        "tpm_limit": _t(["integer", "null"]), "tpm_remaining": left,
        "window_reset_s": _t("integer", "Seconds to the end of the current one-minute window.", minimum=1),
        "budget_usd": usd, "budget_spent_usd": usd, "budget_reserved_usd": usd, "budget_remaining_usd": usd,
        "budget_reset_s": _t("integer", "Seconds to the end of the current budget period.", minimum=1),
    }, ("available", "rpm_limit", "rpm_remaining", "tpm_limit", "tpm_remaining", "window_reset_s", "budget_usd",
        "budget_spent_usd", "budget_reserved_usd", "budget_remaining_usd", "budget_reset_s"),
        description="What is left of the key's limits in the current windows.")


def _key_with_limits() -> Schema:
    return {"allOf": [{"$ref": "#/components/schemas/VirtualKey"},
                      _obj({"limits": {"$ref": "#/components/schemas/KeyLimits"}}, ("limits",))]}


def _key_created() -> Schema:
    secret = _t("string", "The secret to send as `Authorization: Bearer <key>`. Shown this once only.",
                pattern="^sk-sb-")
    return {"allOf": [{"$ref": "#/components/schemas/VirtualKey"}, _obj({"key": secret}, ("key",))]}


def _key_list() -> Schema:
    return _obj({
        "object": {"type": "string", "const": "list"},
        "data": _t("array", "Config keys, then admin keys, each by name.",
                   items={"$ref": "#/components/schemas/VirtualKeyWithLimits"}),
        "stale": _t("boolean", "The key store (Redis) could not be read: admin keys are the last ones known."),
    }, ("object", "data", "stale"))


_COUNTERS: dict[str, tuple[str, str]] = {
    "requests": ("integer", "Requests served, failed or answered from the cache."),
    "errors": ("integer", "Requests that failed."),
    "cache_hits": ("integer", "Requests answered from the router's cache (zero tokens, zero cost)."),
    "prompt_tokens": ("integer", "As the vendors billed them."),
    "completion_tokens": ("integer", "As the vendors billed them."),
    "cached_tokens": ("integer", "Prompt tokens the vendor served from its prompt cache."),
    "total_tokens": ("integer", "`prompt_tokens + completion_tokens`."),
    "cost_usd": ("number", "USD, summed exactly (in nano-dollars)."),
    "cost_nanos": ("integer", "The same cost in integer nano-dollars."),
    "estimated_requests": ("integer", "Requests whose usage was estimated with tiktoken."),
    "unpriced_requests": ("integer", "Requests with tokens but no known price (counted at cost 0)."),
}


def _usage_totals() -> Schema:
    return _obj({name: _t(kind, text, minimum=0) for name, (kind, text) in _COUNTERS.items()}, tuple(_COUNTERS),
                description="Usage counters.")


def _usage_row() -> Schema:
    dims = {"day": _t("string", "UTC day.", pattern=DAY_PATTERN), "key": _t("string", "Virtual key name, or "
                                                                             "`anonymous` without auth."),
            "provider": _t("string"), "model": _t("string", "`provider/model` served (or last tried).")}
    assert tuple(dims) == GROUP_BY
    return {"allOf": [{"$ref": "#/components/schemas/UsageTotals"},
                      _obj(dims, description="One group: the `group_by` members, then the counters.")]}


def _usage_report() -> Schema:
    return _obj({
        "object": {"type": "string", "const": "usage"},
        "from": _t("string", "First UTC day included.", pattern=DAY_PATTERN),
        "to": _t("string", "Last UTC day included.", pattern=DAY_PATTERN),
        "group_by": _t("array", items={"type": "string", "enum": list(GROUP_BY)}),
        "key": _t(["string", "null"], "The `key` filter, if any."),
        "backend": {"type": "string", "enum": ["memory", "redis"],
                    "description": "`redis`: every instance's totals; `memory`: this worker's."},
        "data": _t("array", items={"$ref": "#/components/schemas/UsageRow"}),
        "totals": {"$ref": "#/components/schemas/UsageTotals"},
    }, ("object", "from", "to", "group_by", "key", "backend", "data", "totals"))


ADMIN_SCHEMAS: dict[str, Schema] = {
    "CreateKeyRequest": _create_key_request(),
    "VirtualKey": _key_record(),
    "KeyLimits": _key_limits(),
    "VirtualKeyWithLimits": _key_with_limits(),
    "VirtualKeyCreated": _key_created(),
    "VirtualKeyList": _key_list(),
    "UsageTotals": _usage_totals(),
    "UsageRow": _usage_row(),
    "UsageReport": _usage_report(),
}
