"""What a provider can honour, and the one table of request members that depend on it.

A provider declares its `Capabilities`; it does not check request parameters itself. The router
checks every request against `PARAMETERS` before any vendor call and, for a deployment that cannot
honour a member the request uses, answers 400 naming that member (`unsupported_error`) before any
vendor is paid, with one wording for every provider. Translators may assume what reaches them passed
this check; they still reject what depends on the *shape* of the content (a content part type, a
tool type, token-array embeddings input), which no flag describes.

`drop_params` (provider-independent): when a provider's `settings.options` has `drop_params: true`,
the router strips the members the provider cannot honour instead of refusing (`without`). Members whose
loss would change what the request is about (`messages`) are refused all the same (`can_drop`), and so
is an endpoint the provider does not serve. `drop_params` reads and validates the option; every
`Provider` validates it when it is built, so a bad value is a configuration error.

`n` is never refused: when a deployment lacks native `n > 1` the router makes n parallel calls
(`router/routing/fanout.py`), so the translators of such providers never see `n > 1` and ignore `n`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from functools import cache
from typing import Any, Literal

from .errors import ErrorKind, UpstreamError

Endpoint = Literal["chat", "embeddings"]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a provider accepts natively. Every flag defaults to True: a provider lists what it lacks.

    `n`: native `n > 1` (False: the router fans out, never refuses). `embeddings`: serves the
    embeddings endpoint. The other flags gate the rows of `PARAMETERS` that name them.
    """

    embeddings: bool = True
    n: bool = True
    tools: bool = True  # tools / tool_choice
    vision: bool = True  # image_url parts in messages
    json_schema: bool = True  # response_format: json_schema
    logprobs: bool = True  # logprobs / top_logprobs
    seed: bool = True
    penalties: bool = True  # frequency_penalty / presence_penalty
    logit_bias: bool = True
    openai_only: bool = True  # audio, modalities beyond text, prediction, web_search_options
    verbosity: bool = True
    legacy_functions: bool = True  # functions / function_call
    thinking: bool = True  # an Anthropic-style `thinking` member (tuning only: see `TUNING`)
    cache_marks: bool = True  # Anthropic-style `cache_control` marks on messages, parts, tools (tuning only)


@dataclass(frozen=True, slots=True)
class Parameter:
    """One row of the table: `member` of the canonical chat body, gated by the `flag` capability.

    `asks(value)` is True when the value asks for the feature (a neutral value such as None, False,
    0, {} or [] does not). `droppable` is False for members `drop_params` must never strip.
    """

    member: str
    flag: str
    asks: Callable[[Any], bool]
    description: str
    droppable: bool = True


def _neutral(value: Any) -> bool:
    return value is None or value is False or value == 0 or value == {} or value == []


def _set(value: Any) -> bool:
    return not _neutral(value)


def _given(value: Any) -> bool:
    return value is not None


def _forces_tools(choice: Any) -> bool:
    return _set(choice) and choice not in ("none", "auto")


def _has_image(messages: Any) -> bool:
    if not isinstance(messages, list):
        return False
    return any(isinstance(part, dict) and part.get("type") == "image_url"
               for msg in messages if isinstance(msg, dict) and isinstance(msg.get("content"), list)
               for part in msg["content"])


def _json_schema(fmt: Any) -> bool:
    return isinstance(fmt, dict) and fmt.get("type") == "json_schema"


def _beyond_text(modalities: Any) -> bool:
    return _set(modalities) and modalities != ["text"]


PARAMETERS: tuple[Parameter, ...] = (
    Parameter("tools", "tools", _set, "tool calling"),
    Parameter("tool_choice", "tools", _forces_tools, "tool calling"),
    Parameter("messages", "vision", _has_image, "image input", droppable=False),
    Parameter("response_format", "json_schema", _json_schema, "structured output with a JSON schema"),
    Parameter("logprobs", "logprobs", bool, "token log probabilities"),
    Parameter("top_logprobs", "logprobs", _set, "token log probabilities"),
    Parameter("seed", "seed", _given, "seeded sampling"),
    Parameter("frequency_penalty", "penalties", _set, "repetition penalties"),
    Parameter("presence_penalty", "penalties", _set, "repetition penalties"),
    Parameter("logit_bias", "logit_bias", _set, "token biases"),
    Parameter("audio", "openai_only", _given, "audio output"),
    Parameter("modalities", "openai_only", _beyond_text, "output modalities other than text"),
    Parameter("prediction", "openai_only", _given, "predicted outputs"),
    Parameter("web_search_options", "openai_only", _given, "built-in web search"),
    Parameter("verbosity", "verbosity", _given, "answer verbosity"),
    Parameter("functions", "legacy_functions", bool, "legacy function calling; use 'tools'"),
    Parameter("function_call", "legacy_functions", _set, "legacy function calling; use 'tool_choice'"),
)
_BY_MEMBER: dict[str, Parameter] = {p.member: p for p in PARAMETERS}
FLAGS: frozenset[str] = frozenset(f.name for f in fields(Capabilities))


def unsupported(capabilities: Capabilities, body: Mapping[str, Any], endpoint: Endpoint) -> list[str]:
    """The members of the canonical `body` a provider with `capabilities` cannot honour, in table order.

    `endpoint` "chat": the members of `PARAMETERS` whose value asks for a feature the provider lacks
    (never `n`). `endpoint` "embeddings": `["model"]` when the provider serves no embeddings at all
    (the requested model cannot be served there), else `[]`.
    """
    if endpoint == "embeddings":
        return [] if capabilities.embeddings else ["model"]
    if endpoint != "chat":
        raise ValueError(f"unknown endpoint {endpoint!r}")
    return [p.member for p in _lacking(capabilities) if p.member in body and p.asks(body[p.member])]


@cache
def _lacking(capabilities: Capabilities) -> tuple[Parameter, ...]:
    return tuple(p for p in PARAMETERS if not getattr(capabilities, p.flag))


@dataclass(frozen=True, slots=True)
class Tuning:
    """What a face may mark as only tuning the vendor's behaviour (a Messages request's `thinking` and
    cache marks): never refused; stripped (`strip`) for a deployment whose provider lacks `flag`, since
    the answer means the same without it. `present(body)` says whether the request uses it."""

    name: str
    flag: str
    present: Callable[[Mapping[str, Any]], bool]
    strip: Callable[[Mapping[str, Any]], dict[str, Any]]


def _marked(item: Any) -> bool:
    return isinstance(item, dict) and "cache_control" in item


def _has_cache_marks(body: Mapping[str, Any]) -> bool:
    messages, tools = body.get("messages"), body.get("tools")
    return (isinstance(messages, list) and any(
        _marked(m) or (isinstance(m, dict) and isinstance(m.get("content"), list) and any(map(_marked, m["content"])))
        for m in messages)) or (isinstance(tools, list) and any(map(_marked, tools)))


def _unmarked(item: Any) -> Any:
    if not _marked(item):
        return item
    return {k: v for k, v in item.items() if k != "cache_control"}


def _without_cache_marks(body: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(body)
    messages, tools = body.get("messages"), body.get("tools")
    if isinstance(messages, list):
        out["messages"] = [
            {**_unmarked(m), "content": [_unmarked(p) for p in m["content"]]}
            if isinstance(m, dict) and isinstance(m.get("content"), list) else _unmarked(m) for m in messages]
    if isinstance(tools, list):
        out["tools"] = [_unmarked(t) for t in tools]
    return out


TUNING: tuple[Tuning, ...] = (
    Tuning("thinking", "thinking", lambda body: body.get("thinking") is not None,
           lambda body: {k: v for k, v in body.items() if k != "thinking"}),
    Tuning("cache_control", "cache_marks", _has_cache_marks, _without_cache_marks),
)
_TUNING = {t.name: t for t in TUNING}


def untuned(capabilities: Capabilities, body: Mapping[str, Any], names: Iterable[str]) -> list[str]:
    """The tuning `names` (see `Tuning`) `body` uses that a provider with `capabilities` cannot honour."""
    return [t.name for t in TUNING if t.name in names and not getattr(capabilities, t.flag) and t.present(body)]


def without_tuning(body: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """`body` without the tuning `names` (from `untuned`)."""
    out = dict(body)
    for name in names:
        out = _TUNING[name].strip(out)
    return out


def honours_all(capabilities: Capabilities) -> bool:
    """True when no chat request member can be refused: `unsupported(..., "chat")` is always empty
    (the router skips the check for such providers)."""
    return not _lacking(capabilities)


def message(provider_name: str, param: str, endpoint: Endpoint = "chat") -> str:
    """The client-facing text refusing `param` (a member `unsupported` returned) on `provider_name`."""
    if endpoint == "embeddings":
        return f"provider '{provider_name}' does not serve embeddings"
    row = _BY_MEMBER.get(param)
    detail = f" ({row.description})" if row is not None else ""
    return f"{provider_name}: '{param}' is not supported by this provider{detail}"


def unsupported_error(provider_name: str, param: str, endpoint: Endpoint = "chat") -> UpstreamError:
    """The 400 refusing `param`: code `unsupported_parameter` (`unsupported_endpoint` for embeddings)."""
    code = "unsupported_endpoint" if endpoint == "embeddings" else "unsupported_parameter"
    return UpstreamError(ErrorKind.UNSUPPORTED, message(provider_name, param, endpoint), param=param, code=code)


def can_drop(params: Iterable[str]) -> bool:
    """True when every member of `params` (from `unsupported(..., "chat")`) may be stripped by `drop_params`."""
    return all(_BY_MEMBER[p].droppable for p in params if p in _BY_MEMBER)


def without(body: Mapping[str, Any], params: Iterable[str]) -> dict[str, Any]:
    """A shallow copy of `body` without the members `params` (check `can_drop` first)."""
    drop = set(params)
    return {key: value for key, value in body.items() if key not in drop}


def drop_params(options: Mapping[str, Any], where: str = "options") -> bool:
    """The `drop_params` option of a provider's settings (absent or null: False); not a boolean raises."""
    value = (options or {}).get("drop_params")
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ValueError(f"{where}.drop_params: must be true or false")
    return value

