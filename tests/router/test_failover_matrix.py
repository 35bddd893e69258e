"""The failover matrix: one fault per row, non-stream and stream, `max_retries` 0 and 1.

Each row says how the primary fails on *every* call it gets; the fake is scripted with exactly the
number of failures the policy should consume, so one call too many is served by the default success
and shows up in the trail and the counts. Each case sends two requests: one with a fallback (what
does the chain do: retries, fallback, attempt trail, upstream call counts) and one without (what
does the client see when nothing else is left). Every request runs under `asyncio.timeout`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from fakes.openai_upstream import SECRET, Drop, Fail, Html, Reply, Truncated

USER = [{"role": "user", "content": "hi"}]
M = "gpt-4o-mini"
P, S = f"primary/{M}", f"second/{M}"
BOUND_S = 5.0  # no single request of this module may take longer
# The breaker is tested in test_cooldown.py; here it must not interfere with the counts.
ROUTING = {"cooldown": {"failures": 1000}, "retry": {"base_s": 0.01, "max_s": 0.02}}


@dataclass(frozen=True)
class Fault:
    id: str
    make: Callable[[], Any]  # one primary answer
    status: int  # the primary's status in the attempt trail
    retried: bool  # retried on the same deployment (up to max_retries)
    falls_back: bool  # False: a caller error, returned at once
    client_status: int  # what the client gets when the primary is alone
    client_type: str
    provider: dict = field(default_factory=dict)  # overrides of the primary's provider config
    max_s: float = 1.5  # wall clock of one request
    says: str = ""  # in the primary's attempt error

    def __str__(self) -> str:
        return self.id


FAST_FIRST_BYTE = {"timeouts": {"first_byte_s": 0.2}}
FAST_IDLE = {"timeouts": {"idle_s": 0.2}}
UP, TIMEOUT, RATE, CALLER = "upstream_error", "timeout_error", "rate_limit_error", "invalid_request_error"
RETRY, NO_RETRY = True, False
FALLBACK, RETURNED = True, False

# Faults that behave the same way in a non-stream and a stream request.
#     id, primary answer, its status in the trail, retried?, falls back?, status and type when alone, ...
BOTH = [
    Fault("500", lambda: Fail(500), 500, RETRY, FALLBACK, 502, UP, says="overloaded"),
    Fault("502", lambda: Fail(502, "Bad gateway."), 502, RETRY, FALLBACK, 502, UP, says="Bad gateway"),
    Fault("503", lambda: Fail(503), 503, RETRY, FALLBACK, 502, UP, says="overloaded"),
    Fault("529", lambda: Fail(529, "Overloaded", type="overloaded_error"), 529, RETRY, FALLBACK, 502, UP,
          says="Overloaded"),
    Fault("html-502", lambda: Html(502), 502, RETRY, FALLBACK, 502, UP, says="non-JSON error body"),
    Fault("html-503", lambda: Html(503), 503, RETRY, FALLBACK, 502, UP, says="non-JSON error body"),
    # A vendor-side timeout is not retried (the policy table: TIMEOUT never retries), it falls back.
    Fault("504", lambda: Fail(504, "Gateway timeout."), 504, NO_RETRY, FALLBACK, 504, TIMEOUT,
          says="Gateway timeout"),
    Fault("408", lambda: Fail(408, "Request timeout."), 408, NO_RETRY, FALLBACK, 504, TIMEOUT,
          says="Request timeout"),
    Fault("404", lambda: Fail(404, "The model does not exist", code="model_not_found"), 404, NO_RETRY, FALLBACK,
          502, UP, says="does not exist"),
    Fault("200-error-body", lambda: Fail(200, "Something broke.", type="server_error"), 200, RETRY, FALLBACK,
          502, UP),
    Fault("200-truncated-json", Truncated, 200, RETRY, FALLBACK, 502, UP),
    Fault("drop-before-headers", Drop, 0, RETRY, FALLBACK, 502, UP, says="connection failed"),
    Fault("first-byte-stall", lambda: Reply(delay_s=3), 0, NO_RETRY, FALLBACK, 504, TIMEOUT, FAST_FIRST_BYTE,
          says="no response within 0.2s"),
    Fault("429-retry-after-30", lambda: Fail(429, "Rate limit reached", retry_after="30"), 429, NO_RETRY, FALLBACK,
          429, RATE, says="Rate limit"),
    Fault("400", lambda: Fail(400, "Invalid 'temperature'.", param="temperature", code="invalid_value"), 400,
          NO_RETRY, RETURNED, 400, CALLER, says="temperature"),
    Fault("413", lambda: Fail(413, "Request too large."), 413, NO_RETRY, RETURNED, 413, CALLER, says="too large"),
    Fault("422", lambda: Fail(422, "Unprocessable entity."), 422, NO_RETRY, RETURNED, 422, CALLER,
          says="Unprocessable"),
]
# Stream faults before the first content chunk: the stream may still fall back.
STREAM_BEFORE_CONTENT = [
    Fault("cut-before-content", lambda: Reply(cut_after=1), 200, RETRY, FALLBACK, 502, UP,
          says="connection closed"),
    Fault("clean-eof-before-content", lambda: Reply(cut_after=1, abort=False), 200, RETRY, FALLBACK, 502, UP,
          says="stream ended before a finish reason"),
    Fault("malformed-sse-before-content", lambda: Reply(malformed_after=1), 200, RETRY, FALLBACK, 502, UP,
          says="not JSON"),
    Fault("error-event-before-content", lambda: Reply(error_after=1), 200, RETRY, FALLBACK, 502, UP,
          says="The server had an error"),
    Fault("stall-before-content", lambda: Reply(stall_after=1, stall_s=3), 200, NO_RETRY, FALLBACK, 504, TIMEOUT,
          FAST_IDLE, says="timed out"),
]
# Stream faults after content ("Hello from " was sent): committed, ends with an error event. Most
# rows pace the events so the fault arrives in a later read than the content; the `-one-read` rows
# send content and fault in one write, which the router reads at once: the content the vendor sent
# is relayed all the same (never dropped and asked of the fallback again).
PACE = 0.03
STREAM_AFTER_CONTENT = [
    Fault("cut-after-content", lambda: Reply(cut_after=3, chunk_delay_s=PACE), 200, NO_RETRY, RETURNED, 200, UP,
          says="connection closed"),
    Fault("malformed-sse-after-content", lambda: Reply(malformed_after=3, chunk_delay_s=PACE), 200, NO_RETRY,
          RETURNED, 200, UP, says="not JSON"),
    Fault("error-event-after-content", lambda: Reply(error_after=3, chunk_delay_s=PACE), 200, NO_RETRY, RETURNED,
          200, UP, says="The server had an error"),
    Fault("error-event-after-content-one-read", lambda: Reply(error_after=3, one_write=True), 200, NO_RETRY,
          RETURNED, 200, UP, says="The server had an error"),
    Fault("malformed-sse-after-content-one-read", lambda: Reply(malformed_after=3, one_write=True), 200, NO_RETRY,
          RETURNED, 200, UP, says="not JSON"),
    Fault("stall-after-content", lambda: Reply(stall_after=3, stall_s=3), 200, NO_RETRY, RETURNED, 200, TIMEOUT,
          FAST_IDLE, says="timed out"),
]


async def start(make_router, fake, primary: dict | None = None, routing: dict | None = None,
                max_retries: int = 0) -> str:
    config = {"providers": {"primary": fake.provider("primary", max_retries=max_retries, **(primary or {})),
                            "second": fake.provider("second", max_retries=max_retries)},
              "routing": {**ROUTING, **(routing or {})}}
    return await make_router(config) + "/v1/chat/completions"


def body(*models: str, stream: bool = False) -> dict:
    out: dict[str, Any] = {"model": models[0], "messages": USER, "stream": stream}
    if len(models) > 1:
        out["fallbacks"] = list(models[1:])
    return out


async def post(raw, url: str, payload: dict, max_s: float = BOUND_S):
    """One request under a hard bound; returns (response, seconds)."""
    t0 = time.monotonic()
    async with asyncio.timeout(max_s):
        resp = await raw.post(url, json=payload)
    return resp, time.monotonic() - t0


def attempts(resp) -> list[dict]:
    """The attempt trail of a non-stream body, a stream's last chunk or a stream's error event."""
    if resp.events:
        last = [e for e in resp.events if e != "[DONE]"][-1]
        return last["extra_fields"]["attempts"]
    return resp.json()["extra_fields"]["attempts"]


def trail(resp) -> list[tuple[str, int]]:
    return [(a["model"], a["status"]) for a in attempts(resp)]


def text(resp) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or ""
                   for c in resp.events if c != "[DONE]" and "error" not in c and c["choices"])


def assert_clean_stream_from(resp, provider: str) -> None:
    """200, one stream from `provider`: no error event, ends with [DONE], a single role chunk."""
    assert resp.status == 200 and resp.events[-1] == "[DONE]", resp.events
    chunks = resp.events[:-1]
    assert not any("error" in c for c in chunks)
    assert chunks[0]["extra_fields"] == {"provider": provider, "model": f"{provider}/{M}"}
    assert sum(1 for c in chunks if c["choices"] and c["choices"][0]["delta"].get("role")) == 1
    assert text(resp) == "Hello from the fake."


@pytest.mark.parametrize("max_retries", [0, 1])
@pytest.mark.parametrize("fault", [*((f, s) for f in BOTH for s in (False, True)),
                                   *((f, True) for f in STREAM_BEFORE_CONTENT)],
                         ids=lambda p: f"{p[0]}-{'stream' if p[1] else 'json'}")
async def test_fault_before_content(fake_openai, make_router, raw, fault, max_retries):
    fault, stream = fault
    url = await start(make_router, fake_openai, fault.provider, max_retries=max_retries)
    primary_calls = 1 + (max_retries if fault.retried else 0)

    # 1. With a fallback: retries, then the fallback serves (or a caller error comes straight back).
    fake_openai.queue("primary", *(fault.make() for _ in range(primary_calls)))
    resp, took = await post(raw, url, body(P, S, stream=stream))
    assert took < fault.max_s * primary_calls
    expected = [(P, fault.status)] * primary_calls
    if fault.falls_back:
        expected.append((S, 200))
        if stream:
            assert_clean_stream_from(resp, "second")
        else:
            assert resp.status == 200 and resp.json()["extra_fields"]["provider"] == "second"
            assert resp.json()["choices"][0]["message"]["content"] == "Hello from the fake."
    else:
        assert resp.status == fault.client_status and resp.error["type"] == fault.client_type
    assert trail(resp) == expected
    assert all(fault.says in a["error"] for a in attempts(resp)[:primary_calls])
    assert len(fake_openai.calls("primary")) == primary_calls
    assert len(fake_openai.calls("second")) == (1 if fault.falls_back else 0)

    # 2. Alone: the client gets the upstream's error as a plain HTTP error (nothing was streamed yet).
    fake_openai.queue("primary", *(fault.make() for _ in range(primary_calls)))
    resp, took = await post(raw, url, body(P, stream=stream))
    assert took < fault.max_s * primary_calls
    assert resp.status == fault.client_status, resp.body
    error = resp.error
    assert error["type"] == fault.client_type
    assert trail(resp) == [(P, fault.status)] * primary_calls
    assert resp.json()["extra_fields"]["provider"] is None
    if fault.client_status == 429:
        assert resp.headers["Retry-After"] == "30"
    assert len(fake_openai.calls("primary")) == 2 * primary_calls
    assert len(fake_openai.calls("second")) == (1 if fault.falls_back else 0)


@pytest.mark.parametrize("max_retries", [0, 1])
@pytest.mark.parametrize("fault", STREAM_AFTER_CONTENT, ids=str)
async def test_stream_fault_after_content_ends_with_error_event(fake_openai, make_router, raw, fault, max_retries):
    url = await start(make_router, fake_openai, fault.provider, max_retries=max_retries)
    fake_openai.queue("primary", fault.make())
    resp, took = await post(raw, url, body(P, S, stream=True))
    assert took < fault.max_s
    assert resp.status == 200 and "[DONE]" not in resp.events
    *chunks, last = resp.events
    assert not any("error" in c for c in chunks)
    assert text(resp) == "Hello from "
    assert set(last["error"]) == {"message", "type", "param", "code"}
    assert last["error"]["type"] == fault.client_type
    assert trail(resp) == [(P, 200)]
    assert last["extra_fields"]["provider"] == "primary"
    assert attempts(resp)[0]["error"].startswith("after the first chunk") and fault.says in attempts(resp)[0]["error"]
    # Committed: no retry on the same deployment and no fallback, whatever max_retries says.
    await asyncio.sleep(0.05)
    assert len(fake_openai.calls("primary")) == 1 and fake_openai.calls("second") == []


@pytest.mark.parametrize("max_retries", [0, 1])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_refused_connection_is_retried_then_falls_back(fake_openai, make_router, raw, refused_url,
                                                             max_retries, stream):
    url = await start(make_router, fake_openai, {"base_url": refused_url}, max_retries=max_retries)
    resp, took = await post(raw, url, body(P, S, stream=stream))
    assert took < 1.0
    assert trail(resp) == [(P, 0)] * (1 + max_retries) + [(S, 200)]
    assert all("connect" in a["error"] for a in attempts(resp)[:-1])
    assert len(fake_openai.calls("second")) == 1
    resp, _ = await post(raw, url, body(P, stream=stream))
    assert resp.status == 502 and resp.error["code"] == "connection_error"
    assert trail(resp) == [(P, 0)] * (1 + max_retries)


# -- keys: 401/403 rotate, 429 rotates or waits ----------------------------------------------------
KEY_A, KEY_B = f"{SECRET}-A", f"{SECRET}-B"
TWO_KEYS = {"keys": [{"value": KEY_A}, {"value": KEY_B}]}


def key_of(received) -> str:
    return received.headers["Authorization"].removeprefix("Bearer ")


@pytest.mark.parametrize("max_retries", [0, 1])
@pytest.mark.parametrize("status", [401, 403])
async def test_rejected_key_rotates_at_once_and_cools_down(fake_openai, make_router, raw, status, max_retries):
    # A slow backoff would show: any wait before the second key is a bug.
    url = await start(make_router, fake_openai, TWO_KEYS, {"retry": {"base_s": 3, "max_s": 3}}, max_retries)
    fake_openai.queue("primary", Fail(status, "Incorrect API key provided.", code="invalid_api_key"))
    resp, took = await post(raw, url, body(P, S))
    assert took < 1.0
    assert resp.status == 200 and trail(resp) == [(P, status), (P, 200)]
    first, second = fake_openai.calls("primary")
    bad, good = key_of(first), key_of(second)
    assert {bad, good} == {KEY_A, KEY_B}
    assert fake_openai.calls("second") == []

    for stream in (False, True, False):  # the rejected key is skipped while it cools down
        resp, _ = await post(raw, url, body(P, S, stream=stream))
        assert resp.status == 200 and trail(resp) == [(P, 200)]
    assert [key_of(c) for c in fake_openai.calls("primary")[2:]] == [good, good, good]
    ready = (await raw.request("GET", url.replace("/v1/chat/completions", "/readyz"))).json()
    cooling = [d for d in ready["checks"]["deployments"] if d["state"] == "key_cooldown"]
    assert [d["key"] for d in cooling] == [f"primary#{[KEY_A, KEY_B].index(bad)}"]
    assert 0 < cooling[0]["cooldown_remaining_s"] <= 60


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_rejected_only_key_falls_back_then_is_skipped(fake_openai, make_router, raw, stream):
    url = await start(make_router, fake_openai, max_retries=1)
    fake_openai.queue("primary", Fail(401, "Incorrect API key provided.", code="invalid_api_key"))
    resp, _ = await post(raw, url, body(P, S, stream=stream))
    assert trail(resp) == [(P, 401), (S, 200)]  # no retry with the same rejected key
    resp, _ = await post(raw, url, body(P, S, stream=stream))
    assert trail(resp) == [(S, 200)]
    assert len(fake_openai.calls("primary")) == 1 and len(fake_openai.calls("second")) == 2


RETRY_SOON = [pytest.param({"retry_after": "0"}, 0.0, id="retry-after-0"),
              pytest.param({"retry_after_ms": "50"}, 0.05, id="retry-after-ms-50")]


@pytest.mark.parametrize("max_retries", [0, 1])
@pytest.mark.parametrize(("header", "wait_s"), RETRY_SOON)
async def test_429_retry_soon_one_key(fake_openai, make_router, raw, header, wait_s, max_retries):
    url = await start(make_router, fake_openai, max_retries=max_retries)
    fake_openai.queue("primary", Fail(429, "Rate limit reached", code="rate_limit_exceeded", **header))
    resp, took = await post(raw, url, body(P, S))
    assert resp.status == 200
    if max_retries:
        assert trail(resp) == [(P, 429), (P, 200)] and took >= wait_s * 0.9  # the hint is honoured
        assert fake_openai.calls("second") == []
    else:
        assert trail(resp) == [(P, 429), (S, 200)]
        assert len(fake_openai.calls("second")) == 1
    assert took < 1.0


@pytest.mark.parametrize("header", [{"retry_after": "0"}, {"retry_after_ms": "50"}, {"retry_after": "30"}],
                         ids=["retry-after-0", "retry-after-ms-50", "retry-after-30"])
async def test_429_with_two_keys_rotates_to_the_other_key(fake_openai, make_router, raw, header):
    url = await start(make_router, fake_openai, TWO_KEYS, max_retries=0)
    fake_openai.queue("primary", Fail(429, "Rate limit reached", code="rate_limit_exceeded", **header))
    resp, took = await post(raw, url, body(P, S))
    assert took < 1.0 and resp.status == 200
    assert trail(resp) == [(P, 429), (P, 200)]
    first, second = fake_openai.calls("primary")
    assert {key_of(first), key_of(second)} == {KEY_A, KEY_B}
    assert fake_openai.calls("second") == []


# -- the request deadline --------------------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_request_deadline_ends_a_chain_of_slow_upstreams(fake_openai, make_router, raw, stream):
    url = await start(make_router, fake_openai, FAST_FIRST_BYTE, {"request_timeout_s": 1.0})
    fake_openai.queue("primary", Reply(delay_s=3))  # first-byte timeout after 0.2 s
    fake_openai.queue("second", Reply(delay_s=3))  # cut by the deadline at 1 s
    resp, took = await post(raw, url, body(P, S, stream=stream))
    assert 0.95 <= took < 1.5
    assert resp.status == 504
    assert resp.error["code"] == "request_timeout" and resp.error["type"] == "timeout_error"
    assert trail(resp) == [(P, 0), (S, 0)]
    assert attempts(resp)[1]["error"] == "cancelled"
    async with asyncio.timeout(2):
        while "second" not in fake_openai.aborts:  # the slow request was dropped, not left running
            await asyncio.sleep(0.01)
    assert fake_openai.completed == 0


async def test_backoff_that_would_cross_the_deadline_is_not_taken(fake_openai, make_router, raw):
    routing = {"request_timeout_s": 1.0, "retry": {"max_wait_s": 2.0}}
    url = await start(make_router, fake_openai, routing=routing, max_retries=1)
    fake_openai.queue("primary", Fail(429, "Rate limit reached", retry_after="1.5"))
    resp, took = await post(raw, url, body(P, S))
    assert took < 0.5 and resp.status == 200 and trail(resp) == [(P, 429), (S, 200)]

    fake_openai.queue("primary", Fail(429, "Rate limit reached", retry_after="1.5"))
    resp, took = await post(raw, url, body(P))
    assert took < 0.5  # not a 1.5 s sleep ending in a 504: the 429 is reported at once
    assert resp.status == 429 and trail(resp) == [(P, 429)]
    assert len(fake_openai.calls("primary")) == 2


async def test_backoff_inside_the_deadline_is_taken(fake_openai, make_router, raw):
    """The control for the test above: with room left, the same 429 is waited for and retried."""
    url = await start(make_router, fake_openai, routing={"request_timeout_s": 5.0}, max_retries=1)
    fake_openai.queue("primary", Fail(429, "Rate limit reached", retry_after="0.3"))
    resp, took = await post(raw, url, body(P))
    assert 0.28 <= took < 1.5 and resp.status == 200 and trail(resp) == [(P, 429), (P, 200)]


# -- routing.fallback_on ---------------------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("fallback_on", [[], ["context_window"]], ids=["default", "fallback-on-context-window"])
async def test_context_window_falls_back_only_when_configured(fake_openai, make_router, raw, fallback_on, stream):
    url = await start(make_router, fake_openai, routing={"fallback_on": fallback_on}, max_retries=1)
    fake_openai.queue("primary", Fail(400, "This model's maximum context length is 128000 tokens.",
                                      param="messages", code="context_length_exceeded"))
    resp, _ = await post(raw, url, body(P, S, stream=stream))
    if fallback_on:
        assert resp.status == 200 and trail(resp) == [(P, 400), (S, 200)]
        assert len(fake_openai.calls("second")) == 1
    else:
        assert resp.status == 400 and resp.error["code"] == "context_length_exceeded"
        assert resp.error["param"] == "messages" and trail(resp) == [(P, 400)]
        assert fake_openai.calls("second") == []
    assert len(fake_openai.calls("primary")) == 1  # a caller-side error is never retried
