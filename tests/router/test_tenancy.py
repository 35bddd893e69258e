"""Tenancy end to end: a virtual key reaches only what its `models` allow, on every hop, and owns its cache.

What this file proves, through the real app over HTTP with the fake OpenAI vendor behind it:

- every name a request writes (`model`, each of its `fallbacks`, `agent:<id>`) must match the key's
  globs, else 403 `model_not_allowed` naming it, before any vendor is called; on chat, embeddings
  and the agents' OpenAI face, and even when the allowed primary fails;
- every deployment a request can reach (alias targets, alias fallbacks, request fallbacks, hedged
  targets, an agent's model) must match too: the others are skipped and never called, and when
  none is left the request is refused with 403; naming an alias never grants its targets;
- cache entries belong to the key's immutable identity: a key deleted and re-created under the same
  name starts with an empty cache (in memory and in Redis), and two keys never share an entry;
- a deployment that cannot honour a parameter (the mock has no `logprobs`) is skipped for one that
  can; when none can, 400 `unsupported_parameter` naming the parameter;
- a stream whose vendor reports no usage is billed an estimate that counts its tool-call arguments.

Upstreams: `up` and `up2` are deployments the test keys may use, `vault` is one they may not; all
three are paths on one fake vendor, so call counts prove what was (never) sent.
"""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest
from fakes.openai_upstream import EMBEDDINGS, Fail, Reply

from providers.tokens import count_text

M = "gpt-4o-mini"
EMBED_M = "text-embedding-3-small"
ALLOWED = f"up/{M}"
ALLOWED_2 = f"up2/{M}"
SECRET_MODEL = f"vault/{M}"
USER = [{"role": "user", "content": "What is the capital of France?"}]
ADMIN_TOKEN = "admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


# -- helpers ----------------------------------------------------------------------------------------
def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def key(name: str, *models: str) -> dict[str, Any]:
    """A config key `sk-<name>` restricted to `models`."""
    return {"name": name, "key": f"sk-{name}", "models": list(models)}


def config(fake, keys: list[dict], **sections: Any) -> dict:
    """Auth on with `keys`; the fake upstreams `up`, `up2` and `vault`; plus `sections`."""
    providers = {name: fake.provider(name) for name in ("up", "up2", "vault")}
    return {"providers": providers, "auth": {"admin_token": ADMIN_TOKEN, "keys": keys}, **sections}


def chat_body(model: str, *fallbacks: str, **extra: Any) -> dict:
    body: dict[str, Any] = {"model": model, "messages": USER, **extra}
    if fallbacks:
        body["fallbacks"] = list(fallbacks)
    return body


async def chat(raw, url: str, secret: str, model: str, *fallbacks: str, **extra: Any):
    return await raw.post(url + "/v1/chat/completions", headers=bearer(secret),
                          json=chat_body(model, *fallbacks, **extra))


def served_by(resp) -> str:
    return resp.json()["extra_fields"]["model"]


def trail(resp) -> list[str]:
    return [a["model"] for a in resp.json()["extra_fields"]["attempts"]]


def assert_not_allowed(resp, name: str, param: str) -> None:
    """403 `model_not_allowed` (a permission error) naming `name`, with `param` saying where it was."""
    assert resp.status == 403, resp.body
    error = resp.error
    assert error["type"] == "permission_error" and error["code"] == "model_not_allowed", error
    assert error["param"] == param, error
    assert f"'{name}'" in error["message"], error


def calls(fake, upstream: str, endpoint: str = "chat/completions") -> int:
    return len(fake.calls(upstream, endpoint))


def header(resp, name: str) -> str | None:
    return {k.lower(): v for k, v in resp.headers.items()}.get(name)


# -- 1. every name the request writes -----------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_request_fallback_the_key_may_not_use_is_403_even_when_the_primary_fails(
        fake_openai, make_router, raw, stream) -> None:
    """The allowed primary answers 503: the forbidden fallback must not serve it (nor be called)."""
    url = await make_router(config(fake_openai, [key("team", "up/*")]))
    fake_openai.queue("up", Fail(503))
    resp = await chat(raw, url, "sk-team", ALLOWED, SECRET_MODEL, stream=stream)
    assert_not_allowed(resp, SECRET_MODEL, "fallbacks")
    assert fake_openai.calls() == []


async def test_alias_in_request_fallbacks_needs_its_name_and_grants_none_of_its_targets(
        fake_openai, make_router, raw) -> None:
    models = {"backup": SECRET_MODEL}
    url = await make_router(config(fake_openai, [key("team", "up/*"), key("named", "up/*", "backup")],
                                   models=models))

    # The alias name itself is not allowed: refused before anything is sent.
    resp = await chat(raw, url, "sk-team", ALLOWED, "backup")
    assert_not_allowed(resp, "backup", "fallbacks")
    assert fake_openai.calls() == []
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="sk-team", max_retries=0, timeout=10.0) as client:
        with pytest.raises(openai.PermissionDeniedError) as refused:
            await client.chat.completions.create(model=ALLOWED, messages=USER, extra_body={"fallbacks": ["backup"]})
    assert refused.value.code == "model_not_allowed"
    assert fake_openai.calls() == []

    # The name is allowed but its deployment is not: the fallback is skipped, the client gets the
    # primary's failure (502), never an answer from the vault.
    fake_openai.queue("up", Fail(503))
    resp = await chat(raw, url, "sk-named", ALLOWED, "backup")
    assert resp.status == 502, resp.body
    assert trail(resp) == [ALLOWED]
    assert calls(fake_openai, "up") == 1 and calls(fake_openai, "vault") == 0


async def test_embeddings_fallback_the_key_may_not_use_is_403(fake_openai, make_router, raw) -> None:
    url = await make_router(config(fake_openai, [key("team", "up/*", "up2/*")]))
    fake_openai.queue("up", Fail(503), endpoint=EMBEDDINGS)
    resp = await raw.post(url + "/v1/embeddings", headers=bearer("sk-team"), json={
        "model": f"up/{EMBED_M}", "input": ["one", "two"], "fallbacks": [f"vault/{EMBED_M}"]})
    assert_not_allowed(resp, f"vault/{EMBED_M}", "fallbacks")
    assert fake_openai.calls() == []

    # The allowed fallback still works: the check refuses names, it does not break fallbacks.
    fake_openai.queue("up", Fail(503), endpoint=EMBEDDINGS)
    resp = await raw.post(url + "/v1/embeddings", headers=bearer("sk-team"), json={
        "model": f"up/{EMBED_M}", "input": ["one", "two"], "fallbacks": [f"up2/{EMBED_M}"]})
    assert resp.status == 200, resp.body
    assert len(resp.json()["data"]) == 2 and served_by(resp) == f"up2/{EMBED_M}"
    assert calls(fake_openai, "vault", EMBEDDINGS) == 0


def agent_config(fake, keys: list[dict], model: str = ALLOWED) -> dict:
    """`config` plus the agent `helper` on `model`, with no tools (the per-IP agent limit off)."""
    return config(fake, keys, agents={"helper": {"model": model, "tools": []}},
                  agent_settings={"rate_limits": {"per_ip": None}})


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_agent_with_request_fallbacks_the_key_may_not_use_is_403(fake_openai, make_router, raw,
                                                                       stream) -> None:
    url = await make_router(agent_config(fake_openai, [key("team", "agent:helper", "up/*")]))
    fake_openai.queue("up", Fail(503))
    resp = await chat(raw, url, "sk-team", "agent:helper", SECRET_MODEL, stream=stream)
    assert_not_allowed(resp, SECRET_MODEL, "fallbacks")
    assert fake_openai.calls() == []


# -- 2. every deployment the request can reach --------------------------------------------------------
async def test_weighted_alias_is_served_only_by_the_targets_the_key_may_use(fake_openai, make_router,
                                                                            raw) -> None:
    models = {"mixed": {"targets": [ALLOWED, SECRET_MODEL]}}
    url = await make_router(config(fake_openai, [key("team", "mixed", "up/*")], models=models))
    for _ in range(20):
        resp = await chat(raw, url, "sk-team", "mixed")
        assert resp.status == 200, resp.body
        assert served_by(resp) == ALLOWED and trail(resp) == [ALLOWED]
    assert calls(fake_openai, "up") == 20 and calls(fake_openai, "vault") == 0


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_alias_fallbacks_the_key_may_not_use_are_skipped(fake_openai, make_router, raw, stream) -> None:
    models = {"fast": {"targets": [ALLOWED], "fallbacks": [SECRET_MODEL]}}
    url = await make_router(config(fake_openai, [key("team", "fast", "up/*")], models=models))
    fake_openai.queue("up", Fail(503, "up is overloaded"))
    resp = await chat(raw, url, "sk-team", "fast", stream=stream)
    assert resp.status == 502, resp.body  # the primary's failure, not the vault's answer
    assert "up is overloaded" in resp.error["message"]
    assert trail(resp) == [ALLOWED]
    assert calls(fake_openai, "up") == 1 and calls(fake_openai, "vault") == 0


async def test_alias_with_no_deployment_the_key_may_use_is_403(fake_openai, make_router, raw) -> None:
    models = {"fast": {"targets": [SECRET_MODEL], "fallbacks": [f"vault/{M}-mini"]},
              "embed": f"vault/{EMBED_M}"}
    url = await make_router(config(fake_openai, [key("alias-only", "fast", "embed")], models=models))
    resp = await chat(raw, url, "sk-alias-only", "fast")
    assert_not_allowed(resp, "fast", "model")
    resp = await raw.post(url + "/v1/embeddings", headers=bearer("sk-alias-only"),
                          json={"model": "embed", "input": "one"})
    assert_not_allowed(resp, "embed", "model")
    assert fake_openai.calls() == []


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_hedge_never_races_a_deployment_the_key_may_not_use(fake_openai, make_router, raw,
                                                                  stream) -> None:
    """The plan is up (slow), vault, up2 with a 50 ms hedge: without the vault the hedge races up2."""
    models = {"hedged": {"targets": [ALLOWED], "fallbacks": [SECRET_MODEL, ALLOWED_2], "hedge_after_ms": 50}}
    url = await make_router(config(fake_openai, [key("team", "hedged", "up/*", "up2/*")], models=models))
    fake_openai.queue("up", Reply(delay_s=2.0))
    resp = await chat(raw, url, "sk-team", "hedged", stream=stream)
    assert resp.status == 200, resp.body
    last = resp.events[-2] if stream else resp.json()
    assert last["extra_fields"]["model"] == ALLOWED_2
    assert calls(fake_openai, "up") == 1 and calls(fake_openai, "up2") == 1  # raced, the slow one cancelled
    assert calls(fake_openai, "vault") == 0


# -- 3. agents ---------------------------------------------------------------------------------------
async def test_agent_whose_model_the_key_may_not_use_is_403(fake_openai, make_router, raw) -> None:
    url = await make_router(agent_config(fake_openai, [key("agent-only", "agent:helper"),
                                                       key("models-only", "up/*")]))
    resp = await chat(raw, url, "sk-agent-only", "agent:helper")
    assert_not_allowed(resp, ALLOWED, "model")  # the agent's own model, refused before any step runs
    # The agent's name is itself a name the request writes.
    resp = await chat(raw, url, "sk-models-only", "agent:helper")
    assert_not_allowed(resp, "agent:helper", "model")
    assert fake_openai.calls() == []


async def test_an_agent_model_is_checked_by_its_deployments_not_its_name(fake_openai, make_router, raw) -> None:
    """The agent's configured model is the operator's choice, not a name the client wrote: a key that
    may run the agent and use its deployments need not list the alias it is configured with."""
    cfg = agent_config(fake_openai, [key("team", "agent:helper", "up/*"), key("other", "agent:helper", "up2/*")],
                       model="smart")
    url = await make_router({**cfg, "models": {"smart": ALLOWED}})
    resp = await chat(raw, url, "sk-team", "agent:helper")
    assert resp.status == 200, resp.body
    assert resp.json()["extra_fields"]["model_requested"] == "agent:helper"
    resp = await chat(raw, url, "sk-other", "agent:helper")
    assert resp.status == 403 and "'smart'" in resp.error["message"]  # none of smart's deployments
    assert calls(fake_openai, "up") == 1


# -- 4. cache identity --------------------------------------------------------------------------------
@pytest.fixture(params=["memory", "redis"])
def cache_config(request, fake_openai):
    """`cache_config(keys)`: `config` with the response cache on, in memory or in a real Redis."""

    def make(keys: list[dict]) -> dict:
        if request.param == "redis":
            return config(fake_openai, keys, cache={"ttl_s": 60}, redis={"url": request.getfixturevalue("redis_url")})
        return config(fake_openai, keys, cache={"ttl_s": 60, "backend": "memory"})

    return make


async def _create_key(raw, url: str, name: str) -> str:
    resp = await raw.post(url + "/admin/keys", headers=ADMIN, json={"name": name, "models": ["up/*"]})
    assert resp.status == 201, resp.body
    return resp.json()["key"]


async def test_a_recreated_key_starts_with_an_empty_cache(cache_config, make_router, fake_openai, raw) -> None:
    url = await make_router(cache_config([]))
    first = await _create_key(raw, url, "x")
    for expected in ("miss", "hit"):
        resp = await chat(raw, url, first, ALLOWED)
        assert resp.status == 200 and header(resp, "x-switchboard-cache") == expected, resp.body
    assert calls(fake_openai, "up") == 1

    assert (await raw.request("DELETE", url + "/admin/keys/x", headers=ADMIN)).status == 204
    second = await _create_key(raw, url, "x")
    assert second != first
    resp = await chat(raw, url, second, ALLOWED)
    assert resp.status == 200 and header(resp, "x-switchboard-cache") == "miss", resp.body
    assert resp.json()["extra_fields"]["cache"] == {"status": "miss"}
    assert calls(fake_openai, "up") == 2


async def test_two_keys_never_share_cache_entries(cache_config, make_router, fake_openai, raw) -> None:
    url = await make_router(cache_config([key("alpha", "up/*"), key("beta", "up/*")]))
    statuses = []
    for secret in ("sk-alpha", "sk-beta", "sk-alpha", "sk-beta"):
        resp = await chat(raw, url, secret, ALLOWED)
        assert resp.status == 200, resp.body
        statuses.append(header(resp, "x-switchboard-cache"))
    assert statuses == ["miss", "miss", "hit", "hit"]
    assert calls(fake_openai, "up") == 2


async def test_a_cached_answer_from_a_deployment_the_key_may_no_longer_use_is_not_served(
        fake_openai, make_router, raw, redis_url) -> None:
    """A key keeps its identity across restarts (config keys are known by their secret), so its
    entries outlive a change of its allow-list: an entry served by a deployment it lost is a miss."""
    shared = {"cache": {"ttl_s": 60}, "redis": {"url": redis_url}, "models": {"mix": {"targets": [ALLOWED, ALLOWED_2]}}}
    before = await make_router(config(fake_openai, [key("team", "mix", "up/*")], **shared))
    resp = await chat(raw, before, "sk-team", "mix")
    assert resp.status == 200 and served_by(resp) == ALLOWED
    assert header(await chat(raw, before, "sk-team", "mix"), "x-switchboard-cache") == "hit"
    after = await make_router(config(fake_openai, [key("team", "mix", "up2/*")], **shared))
    resp = await chat(raw, after, "sk-team", "mix")
    assert resp.status == 200 and header(resp, "x-switchboard-cache") == "miss"
    assert served_by(resp) == ALLOWED_2


# -- 5. capabilities ----------------------------------------------------------------------------------
def mock_config(fake, models: dict) -> dict:
    """No auth: the built-in mock (`demo`, no `logprobs`) and the fake vendor `up`, behind `models`."""
    return {"providers": {"demo": {"type": "mock", "models": ["echo"]}, "up": fake.provider("up")},
            "models": models}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_a_deployment_that_cannot_honour_a_parameter_is_skipped(fake_openai, make_router, raw,
                                                                      stream) -> None:
    # The mock's weight makes it the alias's first choice nearly every time.
    models = {"mixed": {"targets": [{"model": "demo/echo", "weight": 1000}, {"model": ALLOWED, "weight": 1}]}}
    url = await make_router(mock_config(fake_openai, models))
    for _ in range(5):
        resp = await raw.post(url + "/v1/chat/completions", json=chat_body("mixed", logprobs=True, stream=stream))
        assert resp.status == 200, resp.body
        extra = resp.events[-2]["extra_fields"] if stream else resp.json()["extra_fields"]
        assert extra["model"] == ALLOWED
        assert [a["model"] for a in extra["attempts"]] == [ALLOWED]  # the mock was never tried
    assert calls(fake_openai, "up") == 5
    assert all(r.body.get("logprobs") is True for r in fake_openai.calls("up"))


async def test_no_deployment_can_honour_a_parameter_is_400(fake_openai, make_router, raw) -> None:
    models = {"only-mock": {"targets": ["demo/echo"]}}
    url = await make_router(mock_config(fake_openai, models))
    for model in ("only-mock", "demo/echo"):
        resp = await raw.post(url + "/v1/chat/completions", json=chat_body(model, logprobs=True))
        assert resp.status == 400, resp.body
        error = resp.error
        assert error["code"] == "unsupported_parameter" and error["param"] == "logprobs", error
        assert "logprobs" in error["message"]
        assert not (resp.json().get("extra_fields") or {}).get("attempts")
    assert fake_openai.calls() == []


# -- 6. usage estimates ---------------------------------------------------------------------------------
async def test_stream_estimate_without_vendor_usage_counts_tool_call_arguments(fake_openai, make_router,
                                                                              raw) -> None:
    arguments = orjson.dumps({"query": " ".join(f"word{i}" for i in range(300))}).decode()
    expected = count_text(arguments, M)
    assert expected > 300
    tools = [{"type": "function", "function": {"name": "search", "parameters": {
        "type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}}]
    url = await make_router({"providers": {"up": fake_openai.provider("up")}})
    fake_openai.queue("up", Reply(text=None, tool_calls=[("search", arguments)], usage=None))
    resp = await raw.post(url + "/v1/chat/completions", json=chat_body(ALLOWED, stream=True, tools=tools))
    assert resp.status == 200, resp.body
    assert resp.events[-1] == "[DONE]"
    streamed = "".join(call["function"].get("arguments") or ""
                       for event in resp.events[:-1] for choice in event.get("choices") or ()
                       for call in choice["delta"].get("tool_calls") or ())
    assert streamed == arguments
    billed = resp.events[-2]["extra_fields"]["billed_usage"]
    assert billed["estimated"] is True
    assert billed["completion_tokens"] >= expected
