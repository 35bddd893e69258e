"""A budget is never exceeded, however many requests run at once and on however many instances.

Before each model call the router reserves the prompt plus the most the answer may cost (the
request's `max_tokens`, else the model's configured `max_output_tokens`, else
`auth.max_output_tokens`), atomically in Redis; a request whose reservation does not fit in what is
left gets 402. Here the configured maximum output equals the fake vendor's answer length and the fake
bills the prompt as the router counts it, so every reservation is exactly the real cost: a budget
worth ten and a half requests admits exactly ten, one after another or fifty at once across two
instances sharing one real Redis.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from fakes.openai_upstream import Reply
from support import key_limits

from providers.anthropic_request import THINKING_BUDGETS
from providers.tokens import count_messages
from router.auth.keys import usd_to_nanos
from router.config import PriceConfig
from router.pricing import Pricer

MODEL = "up/gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "How much may this answer cost?"}]
ADMIN = {"authorization": "Bearer admin-token"}
KEY_NAME, SECRET_KEY = "metered", "sk-metered"
CHAT = "/v1/chat/completions"

PROMPT = count_messages(MESSAGES, MODEL)  # what the router counts, and what the fake bills
COMPLETION = 20  # the fake's answer length, in tokens
USAGE = {"prompt_tokens": PROMPT, "completion_tokens": COMPLETION, "total_tokens": PROMPT + COMPLETION,
         "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0}}
# USD per million tokens; whole nano-dollars per token. Output is dear and the prompt cheap, so a
# reservation of the prompt alone is a small fraction of what a request really costs.
PRICE = {"input_per_mtok": 100, "output_per_mtok": 2000}
INPUT_NANOS, OUTPUT_NANOS = 100_000, 2_000_000
NANOS_PER_USD = 1_000_000_000


def cost_nanos(completion: int) -> int:
    return PROMPT * INPUT_NANOS + completion * OUTPUT_NANOS


COST = cost_nanos(COMPLETION)  # what every request really costs
ALLOWED = 10
BUDGET = ALLOWED * COST + COST // 2  # room for ten and a half requests
REQUESTS = 50
DELAY_S = 0.3  # the fake answers this late, so concurrent requests are all in flight together


def usd(nanos: int) -> float:
    return nanos / NANOS_PER_USD


class Slow:
    """The fake's answer to every chat request: `USAGE`, after `DELAY_S`; counts requests in flight."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.peak = 0

    async def __call__(self, fake, request, received):
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            return await Reply(usage=dict(USAGE), delay_s=DELAY_S)(fake, request, received)
        finally:
            self.in_flight -= 1


@pytest.fixture
def vendor(fake_openai) -> Slow:
    slow = Slow()
    fake_openai.default = lambda received: slow
    return slow


@pytest.fixture(params=["model_maximum", "auth_default"])
def reserve(request) -> str:
    """Where a request without max_tokens takes its maximum output from: the model's
    `pricing.<provider/model>.max_output_tokens`, or `auth.max_output_tokens` (none for the model)."""
    return request.param


def gateway(fake, redis_url: str, *, budget: int, reserve: str = "model_maximum",
            max_output: int = COMPLETION) -> dict:
    price: dict[str, Any] = dict(PRICE)
    auth: dict[str, Any] = {"admin_token": "admin-token", "on_redis_down": "fail_closed",
                            "keys": [{"name": KEY_NAME, "key": SECRET_KEY, "budget_usd": usd(budget)}]}
    if reserve == "model_maximum":
        price["max_output_tokens"] = max_output  # `auth.max_output_tokens` stays at its default (4096)
    else:
        auth["max_output_tokens"] = max_output
    # A generous Redis timeout: a slow reply on a loaded machine must not count as an outage.
    return {"providers": {"up": fake.provider("up")}, "pricing": {MODEL: price},
            "redis": {"url": redis_url, "timeout_s": 2.0}, "cache": {"backend": "off"}, "auth": auth}


async def two_instances(make_router, cfg: dict) -> list[str]:
    return [await make_router(cfg), await make_router(cfg)]


async def send(raw, url: str, *, stream: bool = False, **extra: Any):
    body: dict[str, Any] = {"model": MODEL, "messages": MESSAGES, **extra}
    if stream:
        body["stream"] = True
    resp = await raw.post(url + CHAT, json=body, headers={"authorization": f"Bearer {SECRET_KEY}"})
    if resp.status == 200 and stream:
        assert resp.events[-1] == "[DONE]", resp.events[-3:]
    return resp


async def settled_limits(raw, url: str) -> dict:
    return await key_limits.settled_limits(raw, url, KEY_NAME)


def spent_nanos(limits: dict) -> int:
    return round(limits["budget_spent_usd"] * NANOS_PER_USD)


def vendor_calls(fake) -> int:
    return len(fake.calls("up", "chat/completions"))


def assert_refused_for_budget(resp, may_cost: int) -> None:
    assert resp.status == 402, (resp.status, resp.body)
    error = resp.error
    assert (error["type"], error["code"]) == ("insufficient_quota", "budget_exceeded")
    assert f"may cost up to {usd(may_cost):.6f} USD" in error["message"], error["message"]
    assert int({k.lower(): v for k, v in resp.headers.items()}["retry-after"]) > 0


async def assert_budget_held(raw, fake, urls: list[str], served: int) -> None:
    """Spend as the budget records it and as the vendor billed it: the served requests, within budget."""
    limits = [await settled_limits(raw, url) for url in urls]  # one Redis: every instance sees the same
    assert len({spent_nanos(x) for x in limits}) == 1, limits
    spent = spent_nanos(limits[0])
    assert spent == vendor_calls(fake) * COST == served * COST
    assert spent <= BUDGET, f"spent {usd(spent)} USD of a {usd(BUDGET)} USD budget"
    assert limits[0]["budget_usd"] == pytest.approx(usd(BUDGET), abs=1e-9)
    assert round(limits[0]["budget_remaining_usd"] * NANOS_PER_USD) == BUDGET - spent


def test_the_numbers_make_every_reservation_exact() -> None:
    """The router prices the fake's answer at exactly `COST`; the budget is exactly `BUDGET`; the prompts
    of all the requests fit in it together, while all their answers would cost over four budgets."""
    pricer = Pricer({MODEL: PriceConfig(**PRICE)})
    assert usd_to_nanos(pricer.cost("openai", MODEL, "gpt-4o-mini", USAGE)) == COST
    assert usd_to_nanos(usd(BUDGET)) == BUDGET
    assert BUDGET // COST == ALLOWED and PROMPT * INPUT_NANOS * REQUESTS < BUDGET < REQUESTS * COST // 4


# -- concurrent, two instances ---------------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_concurrent_requests_without_max_tokens_never_exceed_the_budget(
        fake_openai, vendor, make_router, redis_url, raw, reserve, stream) -> None:
    """Fifty requests at once, alternating between two instances, none with max_tokens: each reserves
    its prompt and the model's longest answer, so the budget admits exactly the ten it pays for."""
    urls = await two_instances(make_router, gateway(fake_openai, redis_url, budget=BUDGET, reserve=reserve))
    responses = await asyncio.gather(*(send(raw, urls[i % 2], stream=stream) for i in range(REQUESTS)))

    statuses = Counter(r.status for r in responses)
    assert statuses[200] * COST <= BUDGET
    assert statuses == {200: ALLOWED, 402: REQUESTS - ALLOWED}
    for resp in responses:
        if resp.status == 402:
            assert_refused_for_budget(resp, may_cost=COST)
    assert vendor.peak > 1  # the admitted requests overlapped at the vendor
    await assert_budget_held(raw, fake_openai, urls, served=statuses[200])


# -- one after another -----------------------------------------------------------------------------
async def test_sequential_requests_serve_exactly_what_the_budget_pays_for(fake_openai, make_router, redis_url,
                                                                          raw, reserve) -> None:
    """One at a time, alternating between the instances: with each reservation equal to the real cost,
    exactly floor(budget / cost) are served, every later one refused."""
    fake_openai.default = lambda received: Reply(usage=dict(USAGE))
    urls = await two_instances(make_router, gateway(fake_openai, redis_url, budget=BUDGET, reserve=reserve))
    statuses = [(await send(raw, urls[i % 2])).status for i in range(REQUESTS)]
    assert statuses == [200] * (BUDGET // COST) + [402] * (REQUESTS - BUDGET // COST)
    await assert_budget_held(raw, fake_openai, urls, served=ALLOWED)


# -- the trade-off ---------------------------------------------------------------------------------
async def test_an_unbounded_request_is_refused_when_its_longest_answer_does_not_fit(fake_openai, make_router,
                                                                                   redis_url, raw) -> None:
    """The model may write 200 tokens: a request without max_tokens reserves them all, and is refused
    once they no longer fit, though the 20 it really gets would. A small max_tokens is served."""
    fake_openai.default = lambda received: Reply(usage=dict(USAGE))
    longest = cost_nanos(200)
    assert longest > 9 * COST
    budget = longest + COST // 2  # one unbounded request fits; after it, only bounded ones do
    url = await make_router(gateway(fake_openai, redis_url, budget=budget, max_output=200))

    assert (await send(raw, url)).status == 200
    assert spent_nanos(await settled_limits(raw, url)) == COST

    refused = await send(raw, url)
    assert_refused_for_budget(refused, may_cost=longest)
    message = refused.error["message"]
    assert f"{usd(COST):.6f} USD spent and 0.000000 USD reserved" in message, message
    assert "max_tokens" in message  # the message says what would reserve less
    assert budget - COST >= COST  # spent one; what this one really costs would have fitted
    assert vendor_calls(fake_openai) == 1

    assert (await send(raw, url, max_tokens=COMPLETION)).status == 200
    assert (await send(raw, url, max_completion_tokens=COMPLETION)).status == 200
    limits = await settled_limits(raw, url)
    assert spent_nanos(limits) == 3 * COST == vendor_calls(fake_openai) * COST
    assert_refused_for_budget(await send(raw, url), may_cost=longest)
    assert vendor_calls(fake_openai) == 3


# -- thinking -------------------------------------------------------------------------------------
async def test_a_thinking_budget_is_reserved_with_the_answer(anthropic, make_router, redis_url, raw) -> None:
    """With `reasoning_effort`, Anthropic is sent max_tokens = thinking budget + the answer's: that
    whole amount may be billed, so that whole amount is reserved (not the request's 20)."""
    model = "claude/claude-haiku-4-5"
    prompt = count_messages(MESSAGES, model)
    sent = THINKING_BUDGETS["low"] + COMPLETION  # low effort: a thinking budget on top of the 20 asked for
    bounded = prompt * INPUT_NANOS + COMPLETION * OUTPUT_NANOS
    thinking = prompt * INPUT_NANOS + sent * OUTPUT_NANOS
    budget = bounded + (thinking - bounded) // 2  # the answer alone fits; the answer and the thinking do not
    url = await make_router({
        "providers": {"claude": anthropic.provider("claude")}, "pricing": {model: PRICE},
        "redis": {"url": redis_url}, "cache": {"backend": "off"},
        "auth": {"keys": [{"name": KEY_NAME, "key": SECRET_KEY, "budget_usd": usd(budget)}]}})
    headers = {"authorization": f"Bearer {SECRET_KEY}"}
    body = {"model": model, "messages": MESSAGES, "max_tokens": COMPLETION}
    refused = await raw.post(url + CHAT, json={**body, "reasoning_effort": "low"}, headers=headers)
    assert_refused_for_budget(refused, may_cost=thinking)
    assert (await raw.post(url + CHAT, json=body, headers=headers)).status == 200
