"""`fallbacks` end to end: which failures move on, which do not, and what the client sees.

Every upstream is a path on the fake vendor (or a refused port); upstream call counts prove there
are no hidden retries. Providers default to `max_retries: 0` (see `FakeOpenAI.provider`).
"""

from __future__ import annotations

import time

import openai
import pytest
from fakes.openai_upstream import Drop, Fail, Reply, check_chat_request

USER = [{"role": "user", "content": "hi"}]
M = "gpt-4o-mini"


async def start(make_router, fake, *names: str, providers: dict | None = None, **extra) -> str:
    """A router with one fake provider per name (plus `providers` overrides), returning the chat URL."""
    config = {"providers": {n: fake.provider(n) for n in names} | (providers or {}), **extra}
    return await make_router(config) + "/v1/chat/completions"


def chat(model: str, *fallbacks: str, **extra) -> dict:
    body = {"model": model, "messages": USER, **extra}
    if fallbacks:
        body["fallbacks"] = list(fallbacks)
    return body


def trail(resp) -> list[tuple[str, int]]:
    return [(a["model"], a["status"]) for a in resp.json()["extra_fields"]["attempts"]]


async def test_503_falls_back_to_second(fake_openai, make_router, raw):
    url = await start(make_router, fake_openai, "primary", "second")
    fake_openai.queue("primary", Fail(503, "primary is overloaded"))
    resp = await raw.post(url, json=chat(f"primary/{M}", f"second/{M}"))
    assert resp.status == 200
    extra = resp.json()["extra_fields"]
    assert extra["provider"] == "second" and extra["model"] == f"second/{M}"
    assert trail(resp) == [(f"primary/{M}", 503), (f"second/{M}", 200)]
    assert "primary is overloaded" in extra["attempts"][0]["error"] and extra["attempts"][1]["error"] is None
    assert len(fake_openai.calls("primary")) == 1 and len(fake_openai.calls("second")) == 1
    sent = fake_openai.calls("second")[0].body
    check_chat_request(sent)  # `fallbacks` is the router's, never forwarded to a vendor
    assert sent["model"] == M


async def test_refused_connection_falls_back(fake_openai, make_router, raw, refused_url):
    url = await start(make_router, fake_openai, "second", providers={
        "primary": {"type": "openai", "base_url": refused_url, "max_retries": 0}})
    resp = await raw.post(url, json=chat(f"primary/{M}", f"second/{M}"))
    assert resp.status == 200 and resp.json()["extra_fields"]["provider"] == "second"
    assert trail(resp) == [(f"primary/{M}", 0), (f"second/{M}", 200)]
    assert "connect" in resp.json()["extra_fields"]["attempts"][0]["error"]


async def test_connection_dropped_before_headers_falls_back(fake_openai, make_router, raw):
    url = await start(make_router, fake_openai, "primary", "second")
    fake_openai.queue("primary", Drop())
    resp = await raw.post(url, json=chat(f"primary/{M}", f"second/{M}"))
    assert resp.status == 200 and trail(resp) == [(f"primary/{M}", 0), (f"second/{M}", 200)]


async def test_first_byte_timeout_falls_back(fake_openai, make_router, raw):
    url = await start(make_router, fake_openai, "second", providers={
        "primary": fake_openai.provider("primary", timeouts={"first_byte_s": 0.2})})
    fake_openai.queue("primary", Reply(delay_s=3))
    t0 = time.monotonic()
    resp = await raw.post(url, json=chat(f"primary/{M}", f"second/{M}"))
    assert time.monotonic() - t0 < 2
    assert resp.status == 200 and trail(resp) == [(f"primary/{M}", 0), (f"second/{M}", 200)]


async def test_stream_idle_before_content_falls_back(fake_openai, make_router, raw):
    url = await start(make_router, fake_openai, "second", providers={
        "primary": fake_openai.provider("primary", timeouts={"idle_s": 0.2})})
    fake_openai.queue("primary", Reply(chunk_delay_s=3))  # the role chunk, then silence
    t0 = time.monotonic()
    resp = await raw.post(url, json=chat(f"primary/{M}", f"second/{M}", stream=True))
    assert time.monotonic() - t0 < 2
    assert resp.events[-1] == "[DONE]" and resp.events[0]["extra_fields"]["provider"] == "second"
    assert "timed out" in resp.events[-2]["extra_fields"]["attempts"][0]["error"]


async def test_429_with_long_retry_after_moves_on_without_waiting(fake_openai, make_router, raw):
    url = await start(make_router, fake_openai, "second", providers={
        "primary": fake_openai.provider("primary", max_retries=2)})
    fake_openai.queue("primary", Fail(429, "Rate limit reached", code="rate_limit_exceeded", retry_after="30"))
    t0 = time.monotonic()
    resp = await raw.post(url, json=chat(f"primary/{M}", f"second/{M}"))
    assert time.monotonic() - t0 < 2
    assert resp.status == 200 and trail(resp) == [(f"primary/{M}", 429), (f"second/{M}", 200)]
    assert len(fake_openai.calls("primary")) == 1  # a 30 s Retry-After is not waited for on the hot path


async def test_429_with_short_retry_after_is_retried_on_same_provider(fake_openai, make_router, raw):
    url = await start(make_router, fake_openai, "second", providers={
        "primary": fake_openai.provider("primary", max_retries=1)})
    fake_openai.queue("primary", Fail(429, "Rate limit reached", retry_after="0.2"))
    t0 = time.monotonic()
    resp = await raw.post(url, json=chat(f"primary/{M}", f"second/{M}"))
    assert time.monotonic() - t0 >= 0.18  # Retry-After honoured
    assert resp.status == 200 and trail(resp) == [(f"primary/{M}", 429), (f"primary/{M}", 200)]
    assert len(fake_openai.calls("second")) == 0


@pytest.mark.parametrize("stream", [False, True])
async def test_400_is_returned_and_never_fallen_back_on(fake_openai, make_router, raw, stream):
    url = await start(make_router, fake_openai, "primary", "second")
    message = "Invalid value for 'logit_bias': token ids must be integers."
    fake_openai.queue("primary", Fail(400, message, param="logit_bias", code="invalid_value"))
    resp = await raw.post(url, json=chat(f"primary/{M}", f"second/{M}", stream=stream))
    assert resp.status == 400
    error = resp.error
    assert message in error["message"]
    assert error["type"] == "invalid_request_error" and error["param"] == "logit_bias"
    assert error["code"] == "invalid_value"
    assert trail(resp) == [(f"primary/{M}", 400)]
    assert len(fake_openai.calls("second")) == 0


async def test_alias_targets_then_alias_fallbacks_then_request_fallbacks(fake_openai, make_router, raw):
    names = ("a1", "a2", "b", "c", "d")
    url = await start(make_router, fake_openai, *names, models={
        "team": {"targets": [{"model": f"a1/{M}", "weight": 1}, {"model": f"a2/{M}", "weight": 1}],
                 "fallbacks": [f"b/{M}", "backup"]},
        "backup": f"c/{M}"})
    for name in names[:-1]:
        fake_openai.queue(name, Fail(500, f"{name} broke"))
    resp = await raw.post(url, json=chat("team", f"d/{M}"))
    assert resp.status == 200
    order = [model.split("/")[0] for model, _ in trail(resp)]
    assert sorted(order[:2]) == ["a1", "a2"] and order[2:] == ["b", "c", "d"]
    assert [s for _, s in trail(resp)] == [500, 500, 500, 500, 200]
    assert all(len(fake_openai.calls(n)) == 1 for n in names)
    assert resp.json()["extra_fields"]["model_requested"] == "team"


async def test_all_fail_reports_most_relevant_error_and_whole_trail(fake_openai, make_router, raw, refused_url):
    url = await start(make_router, fake_openai, "primary", "third", providers={
        "second": {"type": "openai", "base_url": refused_url, "max_retries": 0}})
    fake_openai.queue("primary", Fail(503, "primary is overloaded"))
    resp = await raw.post(url, json=chat(f"primary/{M}", f"second/{M}"))
    assert resp.status == 502  # the vendor's 503 says more than a refused connection
    assert "primary is overloaded" in resp.error["message"] and resp.error["type"] == "upstream_error"
    assert trail(resp) == [(f"primary/{M}", 503), (f"second/{M}", 0)]
    assert all(a["error"] for a in resp.json()["extra_fields"]["attempts"])

    fake_openai.queue("primary", Fail(503, "primary is overloaded"))
    fake_openai.queue("third", Fail(429, "third is rate limited", retry_after="7"))
    resp = await raw.post(url, json=chat(f"primary/{M}", f"second/{M}", f"third/{M}"))
    assert resp.status == 429 and "third is rate limited" in resp.error["message"]
    assert resp.headers["Retry-After"] == "7"
    assert trail(resp) == [(f"primary/{M}", 503), (f"second/{M}", 0), (f"third/{M}", 429)]
    assert len(fake_openai.calls("primary")) == 2 and len(fake_openai.calls("third")) == 1


async def test_max_retries_1_retries_a_503_once_on_the_same_provider(fake_openai, make_router, raw):
    # A breaker that needs many failures, so the third 503 in a row is still retried (see test_cooldown.py).
    url = await start(make_router, fake_openai, "second", providers={
        "primary": fake_openai.provider("primary", max_retries=1)}, routing={"cooldown": {"failures": 10}})
    fake_openai.queue("primary", Fail(503), Fail(503))
    resp = await raw.post(url, json=chat(f"primary/{M}", f"second/{M}"))
    assert resp.status == 200
    assert trail(resp) == [(f"primary/{M}", 503), (f"primary/{M}", 503), (f"second/{M}", 200)]
    assert len(fake_openai.calls("primary")) == 2 and len(fake_openai.calls("second")) == 1

    fake_openai.queue("primary", Fail(503))
    resp = await raw.post(url, json=chat(f"primary/{M}", f"second/{M}", stream=True))
    assert resp.events[-1] == "[DONE]" and resp.events[-2]["extra_fields"]["provider"] == "primary"
    assert len(fake_openai.calls("primary")) == 4 and len(fake_openai.calls("second")) == 1


async def test_max_retries_0_calls_each_upstream_exactly_once(fake_openai, make_router, raw):
    url = await start(make_router, fake_openai, "primary", "second")
    fake_openai.queue("primary", Fail(503))
    fake_openai.queue("second", Fail(502, "bad gateway"))
    resp = await raw.post(url, json=chat(f"primary/{M}", f"second/{M}", "primary/gpt-4o"))
    assert resp.status == 200
    assert trail(resp) == [(f"primary/{M}", 503), (f"second/{M}", 502), ("primary/gpt-4o", 200)]
    assert [c.body["model"] for c in fake_openai.calls()] == [M, M, "gpt-4o"]


# -- streams --------------------------------------------------------------------------------------
async def test_stream_503_before_first_byte_gives_one_clean_stream(fake_openai, make_router, raw, openai_client):
    url = await start(make_router, fake_openai, "primary", "second")
    fake_openai.queue("primary", Fail(503))
    resp = await raw.post(url, json=chat(f"primary/{M}", f"second/{M}", stream=True))
    assert resp.status == 200 and resp.events[-1] == "[DONE]"
    chunks = resp.events[:-1]
    assert not any("error" in c for c in chunks)
    assert chunks[0]["extra_fields"] == {"provider": "second", "model": f"second/{M}"}
    attempts = chunks[-1]["extra_fields"]["attempts"]
    assert [(a["model"], a["status"]) for a in attempts] == [(f"primary/{M}", 503), (f"second/{M}", 200)]

    fake_openai.queue("primary", Fail(503))
    client = openai_client(url.removesuffix("/v1/chat/completions"))
    stream = await client.chat.completions.create(model=f"primary/{M}", messages=USER, stream=True,
                                                  extra_body={"fallbacks": [f"second/{M}"]})
    texts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert "".join(texts) == "Hello from the fake."


@pytest.mark.parametrize("abort", [True, False], ids=["socket-closed", "clean-eof"])
async def test_stream_cut_after_content_ends_with_error_event(fake_openai, make_router, raw, openai_client, abort):
    url = await start(make_router, fake_openai, "primary", "second")
    fake_openai.queue("primary", Reply(text="Hello there friend", cut_after=2, abort=abort))
    resp = await raw.post(url, json=chat(f"primary/{M}", f"second/{M}", stream=True))
    assert resp.status == 200
    assert "[DONE]" not in resp.events
    *chunks, last = resp.events
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "Hello "
    assert set(last["error"]) == {"message", "type", "param", "code"} and last["error"]["type"] == "upstream_error"
    assert last["extra_fields"]["attempts"][-1]["error"].startswith("after the first chunk")
    assert len(fake_openai.calls("second")) == 0  # committed after content: no fallback, no retry

    fake_openai.queue("primary", Reply(text="Hello there friend", cut_after=2, abort=abort))
    client = openai_client(url.removesuffix("/v1/chat/completions"))
    stream = await client.chat.completions.create(model=f"primary/{M}", messages=USER, stream=True)
    seen = []
    with pytest.raises(openai.APIError):
        async for chunk in stream:
            seen.append(chunk.choices[0].delta.content or "")
    assert "".join(seen) == "Hello "


@pytest.mark.parametrize("failure", [Reply(cut_after=1), Reply(cut_after=1, abort=False), Reply(error_after=1)],
                         ids=["cut-socket", "cut-eof", "error-event"])
async def test_stream_failing_before_content_falls_back(fake_openai, make_router, raw, failure):
    url = await start(make_router, fake_openai, "primary", "second")
    fake_openai.queue("primary", failure)
    fake_openai.queue("second", Reply(text="from second"))
    resp = await raw.post(url, json=chat(f"primary/{M}", f"second/{M}", stream=True))
    assert resp.status == 200 and resp.events[-1] == "[DONE]"
    chunks = resp.events[:-1]
    assert not any("error" in c for c in chunks)
    roles = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("role")]
    assert len(roles) == 1  # the primary's role chunk was never sent
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "from second"
    attempts = chunks[-1]["extra_fields"]["attempts"]
    assert [(a["model"], a["status"]) for a in attempts] == [(f"primary/{M}", 200), (f"second/{M}", 200)]
    assert attempts[0]["error"] and attempts[1]["error"] is None
    assert len(fake_openai.calls("primary")) == 1
