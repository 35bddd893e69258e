"""`GET /metrics`: the exposition parses, counters move by exactly what one request did, labels stay bounded.

Metric families are per process and every test in the session shares them, so each test uses its
own provider name and compares scrapes taken before and after (deltas), never absolute values.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from router.app import build_app
from router.config import parse_config
from router.metrics import OTHER, Labels
from router.observe import OBSERVER

CHAT = "/v1/chat/completions"
_ids = itertools.count()

Sample = dict[tuple[str, frozenset], float]


def config(p: str, **extra: Any) -> dict[str, Any]:
    """A mock provider `p` (echo answers, fail-503 always fails), a priced model and an alias that falls back."""
    return {
        "providers": {p: {"type": "mock", "models": ["echo", "fail-503"], "max_retries": 1,
                          "keys": [{"value": f"sk-provider-secret-{p}"}]},
                      f"{p}slow": {"type": "mock", "models": ["echo"], "options": {"latency_ms": 400}}},
        "models": {f"{p}-fast": {"targets": [f"{p}/fail-503"], "fallbacks": [f"{p}/echo"]}},
        "pricing": {f"{p}/echo": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}},
        "cache": {"backend": "memory"},
        "routing": {"retry": {"base_s": 0.001, "max_s": 0.002}},
        **extra}


@pytest.fixture
async def router():
    """`await router(config)` -> (base URL, app): a router served in this test's loop."""
    servers: list[TestServer] = []

    async def start(cfg: dict) -> tuple[str, Any]:
        app = build_app(parse_config(cfg))
        server = TestServer(app, host="127.0.0.1", port=0)
        await server.start_server()
        servers.append(server)
        return str(server.make_url("")).rstrip("/"), app

    yield start
    for server in servers:
        await server.close()


@pytest.fixture
def p() -> str:
    return f"mx{next(_ids)}"


async def scrape(raw, url: str) -> Sample:
    resp = await raw.request("GET", url + "/metrics")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
    out: Sample = {}
    for family in text_string_to_metric_families(resp.body.decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def delta(after: Sample, before: Sample, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


def chat(model: str, text: str = "hello metrics", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


async def test_one_request_moves_each_counter_by_exactly_its_share(router, raw, p) -> None:
    url, _ = await router(config(p))
    before = await scrape(raw, url)
    resp = await raw.post(url + CHAT, json=chat(f"{p}/echo"))
    assert resp.status == 200
    billed = resp.json()["extra_fields"]["billed_usage"]
    after = await scrape(raw, url)
    pm = {"provider": p, "model": f"{p}/echo"}
    assert delta(after, before, "switchboard_requests_total", route="chat", status_class="2xx", **pm) == 1
    assert delta(after, before, "switchboard_request_duration_seconds_count", route="chat", **pm) == 1
    assert delta(after, before, "switchboard_upstream_duration_seconds_count", **pm) == 1
    assert delta(after, before, "switchboard_overhead_seconds_count", route="chat") == 1
    assert delta(after, before, "switchboard_key_requests_total", key="anonymous", outcome="ok") == 1
    assert delta(after, before, "switchboard_tokens_total", key="anonymous", type="prompt", **pm) \
        == billed["prompt_tokens"] > 0
    assert delta(after, before, "switchboard_tokens_total", key="anonymous", type="completion", **pm) \
        == billed["completion_tokens"] > 0
    assert delta(after, before, "switchboard_cost_usd_total", key="anonymous", **pm) \
        == pytest.approx(billed["cost_usd"]) != 0
    assert delta(after, before, "switchboard_cache_misses_total", key="anonymous", **pm) == 1
    assert delta(after, before, "switchboard_cache_hits_total", key="anonymous", **pm) == 0
    assert after[("switchboard_in_flight_requests", frozenset({"route": "chat"}.items()))] == 0
    # Every bucket series is cumulative and ends in +Inf == _count.
    count = after[("switchboard_request_duration_seconds_count", frozenset({"route": "chat", **pm}.items()))]
    assert after[("switchboard_request_duration_seconds_bucket",
                  frozenset({"route": "chat", "le": "+Inf", **pm}.items()))] == count


async def test_stream_counts_ttft_and_its_usage(router, raw, p) -> None:
    url, _ = await router(config(p))
    before = await scrape(raw, url)
    resp = await raw.post(url + CHAT, json=chat(f"{p}/echo", "stream these words please", stream=True))
    assert resp.status == 200 and resp.events[-1] == "[DONE]"
    billed = resp.events[-2]["extra_fields"]["billed_usage"]
    after = await scrape(raw, url)
    pm = {"provider": p, "model": f"{p}/echo"}
    assert delta(after, before, "switchboard_time_to_first_token_seconds_count", **pm) == 1
    assert delta(after, before, "switchboard_requests_total", route="chat", status_class="2xx", **pm) == 1
    assert delta(after, before, "switchboard_tokens_total", key="anonymous", type="completion", **pm) \
        == billed["completion_tokens"] > 0


async def test_cache_hit_counts_a_hit_and_no_tokens(router, raw, p) -> None:
    url, _ = await router(config(p))
    first = await raw.post(url + CHAT, json=chat(f"{p}/echo", "cache me"))
    before = await scrape(raw, url)
    second = await raw.post(url + CHAT, json=chat(f"{p}/echo", "cache me"))
    assert first.headers["x-switchboard-cache"] == "miss" and second.headers["x-switchboard-cache"] == "hit"
    after = await scrape(raw, url)
    pm = {"provider": p, "model": f"{p}/echo", "key": "anonymous"}
    assert delta(after, before, "switchboard_cache_hits_total", **pm) == 1
    assert delta(after, before, "switchboard_cache_misses_total", **pm) == 0
    assert delta(after, before, "switchboard_tokens_total", type="prompt", **pm) == 0
    assert delta(after, before, "switchboard_cost_usd_total", **pm) == 0


async def test_fallback_retry_and_upstream_error(router, raw, p) -> None:
    url, _ = await router(config(p))
    before = await scrape(raw, url)
    ok = await raw.post(url + CHAT, json=chat(f"{p}-fast"))
    assert ok.status == 200
    trail = [a["model"] for a in ok.json()["extra_fields"]["attempts"]]
    assert trail == [f"{p}/fail-503", f"{p}/fail-503", f"{p}/echo"]  # one retry, then the fallback
    failed = await raw.post(url + CHAT, json=chat(f"{p}/fail-503", "no way out"))
    assert failed.status == 502  # its first failure is the 3rd in the window: the breaker opens, no retry
    after = await scrape(raw, url)
    assert delta(after, before, "switchboard_fallbacks_total", requested=f"{p}-fast", provider=p,
                 model=f"{p}/echo") == 1
    assert delta(after, before, "switchboard_retries_total", provider=p, model=f"{p}/fail-503") == 1
    assert delta(after, before, "switchboard_upstream_duration_seconds_count", provider=p,
                 model=f"{p}/fail-503") == 3
    assert delta(after, before, "switchboard_errors_total", route="chat", provider=p, model=f"{p}/fail-503",
                 **{"class": "upstream"}) == 1
    assert delta(after, before, "switchboard_requests_total", route="chat", provider=p, model=f"{p}/fail-503",
                 status_class="5xx") == 1
    # Only the request served by its first attempt measured overhead: neither of these.
    assert delta(after, before, "switchboard_overhead_seconds_count", route="chat") == 0


async def test_rate_limit_budget_and_auth_errors_by_key_with_no_secret_exposed(router, raw, p) -> None:
    keys = [{"name": f"{p}-rpm", "key": f"sk-client-secret-{p}-rpm", "rpm": 1},
            {"name": f"{p}-budget", "key": f"sk-client-secret-{p}-budget", "budget_usd": 0.0000001}]
    url, app = await router(config(p, auth={"keys": keys}))
    before = await scrape(raw, url)
    rpm = {"authorization": f"Bearer sk-client-secret-{p}-rpm"}
    statuses = [(await raw.post(url + CHAT, json=chat(f"{p}/echo"), headers=rpm)).status for _ in range(2)]
    assert statuses == [200, 429]
    budget = await raw.post(url + CHAT, json=chat(f"{p}/echo"), headers={"authorization":
                                                                          f"Bearer sk-client-secret-{p}-budget"})
    assert budget.status == 402
    assert (await raw.post(url + CHAT, json=chat(f"{p}/echo"), headers={"authorization": "Bearer nope"})).status == 401
    await app[OBSERVER].gauges.refresh()
    after = await scrape(raw, url)
    none = {"provider": "none", "model": "none", "route": "chat"}
    assert delta(after, before, "switchboard_errors_total", **none, **{"class": "rate_limit"}) == 1
    assert delta(after, before, "switchboard_errors_total", **none, **{"class": "budget"}) == 1
    assert delta(after, before, "switchboard_errors_total", **none, **{"class": "auth"}) == 1
    assert delta(after, before, "switchboard_key_requests_total", key=f"{p}-rpm", outcome="ok") == 1
    assert delta(after, before, "switchboard_key_requests_total", key=f"{p}-rpm", outcome="rate_limit") == 1
    assert delta(after, before, "switchboard_key_requests_total", key=f"{p}-budget", outcome="budget") == 1
    assert delta(after, before, "switchboard_tokens_total", key=f"{p}-rpm", provider=p, model=f"{p}/echo",
                 type="prompt") > 0
    # Budget and rate-limit gauges come from the background refresh (forced above).
    assert after[("switchboard_budget_usd", frozenset({"key": f"{p}-budget"}.items()))] == pytest.approx(1e-7)
    assert after[("switchboard_budget_remaining_usd", frozenset({"key": f"{p}-budget"}.items()))] \
        == pytest.approx(1e-7)
    assert after[("switchboard_rate_limit_remaining", frozenset({"key": f"{p}-rpm", "limit": "rpm"}.items()))] == 0
    text = (await raw.request("GET", url + "/metrics")).body.decode()
    assert "secret" not in text and "sk-" not in text


async def test_unknown_model_names_never_become_labels(router, raw, p) -> None:
    url, _ = await router(config(p))
    statuses = set()
    for i in range(50):
        statuses.add((await raw.post(url + CHAT, json=chat(f"no-such-model-{p}-{i}"))).status)
        statuses.add((await raw.post(url + CHAT, json=chat(f"{p}/typo-{i}"))).status)  # the mock echoes these
    assert statuses == {404, 200}
    text = (await raw.request("GET", url + "/metrics")).body.decode()
    assert "no-such-model" not in text and "typo-" not in text
    after = await scrape(raw, url)
    models = {dict(labels).get("model") for (name, labels) in after if name.startswith("switchboard_")}
    mine = {m for m in models if m and m.startswith(p)}
    assert mine <= {f"{p}/echo", f"{p}/fail-503"}
    unknown = {m for m in models if m and not m.startswith("mx") and "/" not in m}
    assert unknown <= {OTHER, "none"}
    assert after[("switchboard_requests_total", frozenset({"route": "chat", "provider": p, "model": OTHER,
                                                           "status_class": "2xx"}.items()))] == 50


def test_key_label_cap() -> None:
    labels = Labels(parse_config({"auth": {"keys": [{"name": "cfg", "key": "sk-1"}]}}).config, key_cap=2)
    assert [labels.key(n) for n in ("cfg", "a", "b", "c", "a", None)] == ["cfg", "a", "b", OTHER, "a", "anonymous"]


async def test_in_flight_and_breaker_gauges(router, raw, p) -> None:
    url, _ = await router(config(p))
    slow = asyncio.ensure_future(raw.post(url + CHAT, json=chat(f"{p}slow/echo")))
    await asyncio.sleep(0.2)
    during = await scrape(raw, url)
    assert during[("switchboard_in_flight_requests", frozenset({"route": "chat"}.items()))] >= 1
    assert (await slow).status == 200
    for _ in range(2):  # 2 x (attempt + retry) = 4 failures: the breaker opens (3 in 30 s)
        await raw.post(url + CHAT, json=chat(f"{p}/fail-503", "open the breaker"))
    after = await scrape(raw, url)  # /metrics refreshes this worker's breaker gauges first
    assert after[("switchboard_in_flight_requests", frozenset({"route": "chat"}.items()))] == 0
    state = frozenset({"provider": p, "model": f"{p}/fail-503", "slot": f"{p}#0"}.items())
    assert after[("switchboard_deployment_state", state)] == 2
    assert after[("switchboard_deployment_cooldown_seconds", state)] > 0


async def test_client_leaving_a_stream_is_client_closed(router, raw, p) -> None:
    cfg = config(p)
    cfg["providers"][f"{p}slow"]["options"] = {"chunk_latency_ms": 100, "chunk_tokens": 1}
    url, _ = await router(cfg)
    before = await scrape(raw, url)
    async with raw.session.post(url + CHAT, json=chat(f"{p}slow/echo", "one two three four five six seven eight",
                                                      stream=True)) as resp:
        assert resp.status == 200
        await resp.content.readline()  # the first event, then hang up
    pm = {"route": "chat", "provider": f"{p}slow", "model": f"{p}slow/echo"}
    for _ in range(50):
        after = await scrape(raw, url)
        if delta(after, before, "switchboard_errors_total", **pm, **{"class": "client_closed"}):
            break
        await asyncio.sleep(0.05)
    assert delta(after, before, "switchboard_errors_total", **pm, **{"class": "client_closed"}) == 1
    assert delta(after, before, "switchboard_errors_total", **pm, **{"class": "upstream"}) == 0
    assert after[("switchboard_in_flight_requests", frozenset({"route": "chat"}.items()))] == 0
