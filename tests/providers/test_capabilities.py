"""The table of unsupported parameters (`providers.capabilities`) against every provider type.

What each provider declares is pinned here member by member, so a declaration cannot drift from
what its translator handles: whatever the table lets through must translate without an error.
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError, fields
from typing import Any

import pytest

from providers import PROVIDER_TYPES, Capabilities, ErrorKind, ProviderSettings, create_provider
from providers import base as providers_base
from providers.capabilities import (
    FLAGS,
    PARAMETERS,
    TUNING,
    can_drop,
    drop_params,
    message,
    unsupported,
    unsupported_error,
    untuned,
    without,
    without_tuning,
)
from providers.openai import PRESETS

NOTHING = Capabilities(**dict.fromkeys(FLAGS, False))
PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9"
       "awAAAABJRU5ErkJggg==")
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
# One value per member that asks for the feature its row gates.
ASKING: dict[str, Any] = {
    "tools": [WEATHER_TOOL],
    "tool_choice": "required",
    "messages": [{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                              {"type": "image_url", "image_url": {"url": PNG}}]}],
    "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
    "logprobs": True,
    "top_logprobs": 3,
    "seed": 0,  # a seed of 0 is still a seed
    "frequency_penalty": 0.5,
    "presence_penalty": -1,
    "logit_bias": {"50256": -100},
    "audio": {"voice": "alloy", "format": "wav"},
    "modalities": ["text", "audio"],
    "prediction": {"type": "content", "content": "x"},
    "web_search_options": {},  # {} turns web search on with the defaults
    "verbosity": "low",
    "functions": [{"name": "f", "parameters": {"type": "object"}}],
    "function_call": "auto",
}
# Values that ask for nothing: the vendor-neutral defaults every translator has always accepted.
NEUTRAL: dict[str, list[Any]] = {
    "tools": [None, []],
    "tool_choice": [None, "none", "auto"],
    "messages": [[{"role": "user", "content": "hi"}], [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                 "not a list"],
    "response_format": [None, {"type": "text"}, {"type": "json_object"}],
    "logprobs": [None, False, 0],
    "top_logprobs": [None, 0, False],
    "seed": [None],
    "frequency_penalty": [None, 0, 0.0, False],
    "presence_penalty": [None, 0, 0.0],
    "logit_bias": [None, {}],
    "audio": [None],
    "modalities": [None, [], ["text"]],
    "prediction": [None],
    "web_search_options": [None],
    "verbosity": [None],
    "functions": [None, []],
    "function_call": [None, {}],
}
_LOGPROBS = ["logprobs", "top_logprobs"]
_PENALTIES = ["frequency_penalty", "presence_penalty"]
_OPENAI_ONLY = ["audio", "modalities", "prediction", "web_search_options"]
_LEGACY = ["functions", "function_call"]
# Provider type -> the members of a request asking for everything that it refuses, in table order.
REFUSED: dict[str, list[str]] = {
    **{name: [] for name in [*PRESETS, "azure"]},
    "mock": _LOGPROBS,
    "anthropic": [*_LOGPROBS, "seed", *_PENALTIES, "logit_bias", *_OPENAI_ONLY, "verbosity", *_LEGACY],
    "bedrock": [*_LOGPROBS, "seed", *_PENALTIES, "logit_bias", *_OPENAI_ONLY, *_LEGACY],
    "cohere": [*_LOGPROBS, "logit_bias", *_OPENAI_ONLY, *_LEGACY],
    "gemini": [*_LOGPROBS, *_LEGACY],
}
NATIVE_N = {*PRESETS, "azure", "mock", "gemini"}
NO_EMBEDDINGS = {"anthropic", *(name for name, preset in PRESETS.items() if not preset.embeddings)}
MODELS = {"bedrock": "anthropic.claude-3-5-sonnet-20240620-v1:0", "gemini": "gemini-2.5-flash",
          "anthropic": "claude-sonnet-4-5", "cohere": "command-a-03-2025", "mock": "echo"}


def make(type_name: str, **options: Any):
    return create_provider(ProviderSettings(name=f"{type_name}-prod", type=type_name,
                                            base_url="https://llm.example" if type_name == "azure" else None,
                                            options=options))


# -- the table itself -------------------------------------------------------------------------------
def test_every_row_names_a_flag_and_every_flag_is_read() -> None:
    assert {p.flag for p in PARAMETERS} <= FLAGS
    tuning = {t.flag for t in TUNING}
    assert tuning <= FLAGS and not tuning & {p.flag for p in PARAMETERS}
    assert FLAGS - {p.flag for p in PARAMETERS} - tuning == {"n", "embeddings"}  # read by the router, not by rows
    assert len({p.member for p in PARAMETERS}) == len(PARAMETERS)
    assert set(ASKING) == set(NEUTRAL) == {p.member for p in PARAMETERS}
    assert "n" not in {p.member for p in PARAMETERS}


def test_capabilities_are_frozen_slotted_booleans_that_default_to_everything() -> None:
    caps = Capabilities()
    assert all(getattr(caps, f.name) is True for f in fields(Capabilities))
    assert not hasattr(caps, "__dict__")
    with pytest.raises(FrozenInstanceError):
        caps.logprobs = False  # type: ignore[misc]
    assert providers_base.Capabilities is Capabilities


@pytest.mark.parametrize("row", PARAMETERS, ids=lambda p: p.member)
def test_each_row_refuses_only_when_its_flag_is_off(row) -> None:
    body = {row.member: ASKING[row.member]}
    assert unsupported(Capabilities(), body, "chat") == []
    assert unsupported(Capabilities(**{row.flag: False}), body, "chat") == [row.member]
    only_this = Capabilities(**{f: f == row.flag for f in FLAGS})
    assert unsupported(only_this, body, "chat") == []


@pytest.mark.parametrize(("member", "value"), [(m, v) for m, values in NEUTRAL.items() for v in values])
def test_neutral_values_never_count(member: str, value: Any) -> None:
    assert unsupported(NOTHING, {member: value}, "chat") == []


def test_absent_members_never_count_and_order_is_the_table_order() -> None:
    assert unsupported(NOTHING, {}, "chat") == []
    backwards = dict(reversed(list(ASKING.items())))
    assert unsupported(NOTHING, backwards, "chat") == [p.member for p in PARAMETERS]


def test_n_is_never_refused() -> None:
    assert unsupported(NOTHING, {"messages": NEUTRAL["messages"][0], "n": 8}, "chat") == []


def test_unknown_endpoint_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="endpoint"):
        unsupported(Capabilities(), {}, "completions")  # type: ignore[arg-type]


# -- every provider type ----------------------------------------------------------------------------
def test_every_provider_type_has_a_pinned_declaration() -> None:
    assert set(REFUSED) == set(PROVIDER_TYPES)


@pytest.mark.parametrize("type_name", sorted(PROVIDER_TYPES))
def test_declared_refusals(type_name: str) -> None:
    provider = make(type_name)
    assert unsupported(provider.capabilities, ASKING, "chat") == REFUSED[type_name]
    assert provider.capabilities.n is (type_name in NATIVE_N)
    assert unsupported(provider.capabilities, {"input": "x"}, "embeddings") == (
        ["model"] if type_name in NO_EMBEDDINGS else [])


@pytest.mark.parametrize("type_name", sorted(PROVIDER_TYPES))
def test_what_the_table_lets_through_translates(type_name: str) -> None:
    """A request stripped of what the provider refuses (`drop_params`) is one its translator accepts."""
    provider = make(type_name, drop_params=True)
    assert provider.drop_params is True
    body = without(ASKING, unsupported(provider.capabilities, ASKING, "chat"))
    for stream in (False, True):
        request = provider.chat_request(dict(body), MODELS.get(type_name, "some-model"), "key", stream)
        assert request.method == "POST" and request.body


@pytest.mark.parametrize("type_name", sorted(PROVIDER_TYPES))
def test_drop_params_must_be_a_boolean_for_every_provider(type_name: str) -> None:
    assert make(type_name).drop_params is False
    with pytest.raises(ValueError, match=rf"providers\.{type_name}-prod\.options\.drop_params"):
        make(type_name, drop_params="yes")


@pytest.mark.parametrize("type_name", sorted(NO_EMBEDDINGS))
def test_embeddings_on_a_chat_only_provider(type_name: str) -> None:
    provider = make(type_name)
    body = {"input": "x", "logprobs": True}  # chat members are not looked at for embeddings
    assert unsupported(provider.capabilities, body, "embeddings") == ["model"]
    err = unsupported_error(provider.name, "model", "embeddings")
    assert (err.kind, err.param, err.code, err.client_status) == (
        ErrorKind.UNSUPPORTED, "model", "unsupported_endpoint", 400)
    assert provider.name in err.message and "embeddings" in err.message
    with pytest.raises(type(err)) as info:  # the translator's own answer, should the router not refuse first
        provider.embeddings_request(body, "embed", "key")
    assert (info.value.message, info.value.code) == (err.message, err.code)


# -- errors, messages and drop_params ---------------------------------------------------------------
def test_error_for_a_refused_parameter() -> None:
    err = unsupported_error("claude-prod", "logit_bias")
    assert err.kind is ErrorKind.UNSUPPORTED and err.is_caller_error and err.client_status == 400
    assert (err.param, err.code) == ("logit_bias", "unsupported_parameter")
    assert err.to_openai() == {"message": "claude-prod: 'logit_bias' is not supported by this provider (token biases)",
                               "type": "invalid_request_error", "param": "logit_bias",
                               "code": "unsupported_parameter"}


def test_messages_name_provider_and_parameter() -> None:
    assert message("gem", "functions") == \
        "gem: 'functions' is not supported by this provider (legacy function calling; use 'tools')"
    assert message("gem", "something_else") == "gem: 'something_else' is not supported by this provider"
    assert message("claude-prod", "model", "embeddings") == "provider 'claude-prod' does not serve embeddings"


def test_drop_params_option() -> None:
    assert drop_params({}) is False
    assert drop_params({"drop_params": None}) is False
    assert drop_params({"drop_params": False}) is False
    assert drop_params({"drop_params": True}) is True
    for bad in ("true", 1, 0):
        with pytest.raises(ValueError, match=r"^providers\.x\.options\.drop_params: "):
            drop_params({"drop_params": bad}, "providers.x.options")


def test_without_strips_a_shallow_copy() -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "seed": 7, "logprobs": True, "temperature": 0.2}
    stripped = without(body, ["seed", "logprobs"])
    assert stripped == {"messages": body["messages"], "temperature": 0.2}
    assert stripped["messages"] is body["messages"]
    assert set(body) == {"messages", "seed", "logprobs", "temperature"}  # the original is untouched
    assert without(body, []) == body and without(body, []) is not body


def test_only_messages_cannot_be_dropped() -> None:
    assert can_drop([p.member for p in PARAMETERS if p.member != "messages"])
    assert not can_drop(["seed", "messages"])
    assert can_drop([])


# -- tuning members: stripped for a provider without them, never refused ------------------------------
MARK = {"type": "ephemeral"}
MARKED = {"model": "m", "thinking": {"type": "enabled", "budget_tokens": 1024},
          "messages": [{"role": "system", "content": [{"type": "text", "text": "S", "cache_control": MARK}]},
                       {"role": "user", "content": "Hi", "cache_control": MARK}],
          "tools": [{"type": "function", "function": {"name": "f"}, "cache_control": MARK}]}


def test_tuning_members_a_provider_lacks_are_named_and_stripped() -> None:
    names = ("thinking", "cache_control")
    assert untuned(Capabilities(), MARKED, names) == []
    lacking = untuned(Capabilities(thinking=False, cache_marks=False), MARKED, names)
    assert lacking == ["thinking", "cache_control"]
    assert untuned(Capabilities(thinking=False, cache_marks=False), MARKED, ("thinking",)) == ["thinking"]
    out = without_tuning(MARKED, lacking)
    assert "thinking" not in out and "cache_control" not in str(out)
    assert out["messages"][0]["content"] == [{"type": "text", "text": "S"}]
    assert out["messages"][1] == {"role": "user", "content": "Hi"}
    assert out["tools"] == [{"type": "function", "function": {"name": "f"}}]
    assert "cache_control" in str(MARKED)  # the request itself is never changed
    plain = {"model": "m", "messages": [{"role": "user", "content": "Hi"}]}
    assert untuned(Capabilities(thinking=False, cache_marks=False), plain, names) == []
