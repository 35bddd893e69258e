"""Cache keys and per-request cache control: which requests share an answer, what headers allow."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from router.cache import ANONYMOUS_TENANT, CHAT, EMBEDDINGS, CacheDirective, cache_key, status_headers
from router.cache.keys import IGNORED_FIELDS
from router.errors import ApiError

BODY = {
    "model": "fast",
    "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
    "temperature": 0.2,
    "max_tokens": 50,
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}],
    "response_format": {"type": "json_object"},
}


def key(body: dict | None = None, *, tenant: str = "team-a", model: str = "fast", streamed: bool = False,
        endpoint: str = CHAT) -> str:
    return cache_key(endpoint, tenant, model, BODY if body is None else body, streamed)


def test_key_is_sha256_hex_and_deterministic():
    k = key()
    assert len(k) == 64 and int(k, 16) >= 0
    assert key() == k


def test_member_order_does_not_matter_at_any_depth():
    reordered = {name: BODY[name] for name in reversed(list(BODY))}
    reordered["tools"] = [{"function": {"parameters": {"properties": {}, "type": "object"}, "name": "f"},
                           "type": "function"}]
    reordered["messages"] = [{"content": m["content"], "role": m["role"]} for m in BODY["messages"]]
    assert key(reordered) == key()


@pytest.mark.parametrize("extra", [
    {"user": "alice"}, {"safety_identifier": "u-1"}, {"stream": False}, {"metadata": {"run": "7"}},
    {"store": True}, {"fallbacks": ["demo/echo"]}, {"stream_options": {"include_usage": True}},
    {"top_p": None},  # null = absent
])
def test_irrelevant_members_do_not_change_the_key(extra):
    assert key({**BODY, **extra}) == key()


def test_body_model_is_replaced_by_the_requested_model_argument():
    assert key({**BODY, "model": "something-else"}) == key()
    assert key(model="openai/gpt-4o-mini") != key(model="fast")


def test_integral_float_equals_integer_at_top_level():
    assert key({**BODY, "max_tokens": 50.0}) == key()
    assert key({**BODY, "temperature": 1}) == key({**BODY, "temperature": 1.0})
    assert key({**BODY, "temperature": True}) != key({**BODY, "temperature": 1})  # bools are not numbers


@pytest.mark.parametrize("change", [
    {"temperature": 0.3}, {"seed": 1}, {"n": 2}, {"max_tokens": 51}, {"top_p": 0.9}, {"stop": ["\n"]},
    {"prompt_cache_key": "p"}, {"service_tier": "flex"}, {"logprobs": True}, {"tool_choice": "none"},
    {"response_format": {"type": "text"}}, {"tools": []}, {"reasoning_effort": "low"},
    {"messages": [{"role": "user", "content": "hi"}]},
    {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi "}]},
    {"vendor_extension": {"x": 1}},  # unknown members are kept (conservative)
])
def test_relevant_members_change_the_key(change):
    assert key({**BODY, **change}) != key()


def test_removing_a_relevant_member_changes_the_key():
    assert key({k: v for k, v in BODY.items() if k != "temperature"}) != key()


def test_tenants_never_share_keys():
    assert key(tenant="team-a") != key(tenant="team-b")
    assert key(tenant=ANONYMOUS_TENANT) != key(tenant="team-a")
    # No separator games: the parts are encoded as a JSON array.
    assert cache_key(CHAT, "a:b", "c", BODY, False) != cache_key(CHAT, "a", "b:c", BODY, False)


def test_stream_and_non_stream_entries_are_distinct():
    assert key(streamed=True) != key(streamed=False)


def test_stream_options_count_for_streams_only():
    with_usage = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
    assert key(with_usage, streamed=True) != key({**BODY, "stream": True}, streamed=True)
    assert key(with_usage, streamed=False) == key(streamed=False)


def test_endpoints_are_distinct():
    body = {"model": "emb", "input": "hello"}
    assert key(body, endpoint=CHAT) != key(body, endpoint=EMBEDDINGS)
    assert key({**body, "encoding_format": "base64"}, endpoint=EMBEDDINGS) != key(body, endpoint=EMBEDDINGS)
    assert key({**body, "user": "x"}, endpoint=EMBEDDINGS) == key(body, endpoint=EMBEDDINGS)


def test_ignored_fields_are_documented():
    assert all(reason for reason in IGNORED_FIELDS.values())
    assert not {"seed", "n", "temperature", "prompt_cache_key", "service_tier", "stream_options"} & set(IGNORED_FIELDS)


# -- Cache-Control and x-switchboard-cache-ttl ---------------------------------------------------------
def directive(**headers: str) -> CacheDirective:
    return CacheDirective.from_headers(CIMultiDict({k.replace("_", "-"): v for k, v in headers.items()}), 60.0)


def test_default_directive_looks_up_and_stores_with_the_config_ttl():
    d = directive()
    assert (d.lookup, d.store, d.ttl_s, d.max_age_s) == (True, True, 60.0, None)
    assert d.status_on_miss == "miss"


def test_no_cache_skips_lookup_but_stores():
    d = directive(Cache_Control="no-cache")
    assert (d.lookup, d.store) == (False, True)
    assert d.status_on_miss == "bypass"


def test_no_store_skips_both():
    for value in ("no-store", "NO-STORE", "max-age=5, no-store", 'private, no-store="x"'):
        d = directive(Cache_Control=value)
        assert (d.lookup, d.store) == (False, False), value


def test_repeated_cache_control_headers_are_all_read():
    headers = CIMultiDict([("Cache-Control", "max-age=10"), ("cache-control", "no-store")])
    d = CacheDirective.from_headers(headers, 60.0)
    assert (d.lookup, d.store, d.max_age_s) == (False, False, 10.0)


def test_max_age_limits_the_age_of_a_served_entry():
    d = directive(Cache_Control="max-age=30")
    assert d.lookup and d.max_age_s == 30
    assert d.fresh_enough(stored_at=1000.0, now=1029.0)
    assert not d.fresh_enough(stored_at=1000.0, now=1031.0)
    assert directive().fresh_enough(stored_at=0.0)
    assert directive(Cache_Control="max-age=0").lookup is False


def test_malformed_cache_control_is_ignored():
    for value in ("max-age=abc", "max-age=-1", "max-age", ",,, ", "bogus=1", "max-age=1.5"):
        d = directive(Cache_Control=value)
        assert (d.lookup, d.store, d.max_age_s) == (True, True, None), value


@pytest.mark.parametrize(("raw", "ttl"), [("30", 30.0), (" 2.5 ", 2.5), ("31536000", 31536000.0)])
def test_ttl_header_sets_the_ttl(raw, ttl):
    d = directive(x_switchboard_cache_ttl=raw)
    assert d.ttl_s == ttl and d.store


def test_ttl_zero_means_do_not_store():
    d = directive(x_switchboard_cache_ttl="0")
    assert d.lookup and not d.store


@pytest.mark.parametrize("raw", ["", "abc", "-1", "nan", "inf", "1e99", "31536001", "10s"])
def test_bad_ttl_header_is_a_400_naming_it(raw):
    with pytest.raises(ApiError) as info:
        directive(x_switchboard_cache_ttl=raw)
    assert info.value.status == 400
    assert info.value.param == "x-switchboard-cache-ttl"
    assert len(info.value.message) < 200


def test_status_headers():
    assert status_headers("hit") == {"x-switchboard-cache": "hit"}
    assert status_headers("bypass") == {"x-switchboard-cache": "bypass"}
    assert status_headers("off") == {}
