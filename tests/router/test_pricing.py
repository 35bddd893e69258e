"""Costs: `Pricer.cost` against genai-prices' own `calc_price` for the same usage, vendor by vendor
(plain, cache reads, cache writes, reasoning, audio, tiers, per-request fees), the `pricing:`
overrides against hand-computed figures, prices that change with the clock, and `bill()` on usage as
each translator emits it from the vendor's own figures, priced against genai-prices' extraction of
those same figures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import genai_prices.data_snapshot
import genai_prices.types
import pytest
from genai_prices import Usage, calc_price, extract_usage

from router import pricing
from router.config.schema import PriceConfig
from router.pricing import Pricer

# Our wire formats -> genai-prices provider ids.
CATALOGUE = {"openai": "openai", "azure": "azure", "anthropic": "anthropic", "gemini": "google",
             "bedrock": "aws", "cohere": "cohere", "groq": "groq", "mistral": "mistral",
             "perplexity": "perplexity", "deepseek": "deepseek", "xai": "x-ai"}
EXACT = 1e-12  # USD


def catalogue(vendor: str, model: str, at: datetime | None = None, **units: int) -> float:
    """What genai-prices itself charges for `units` (its usage keys)."""
    calc = calc_price(Usage(**units), model_ref=model, provider_id=CATALOGUE[vendor], genai_request_timestamp=at)
    return float(calc.total_price)


def cost(pricer: Pricer, vendor: str, model: str, usage: Mapping[str, Any]) -> float | None:
    return pricer.cost(vendor, f"{vendor}/{model}", model, usage)


def openai_usage(prompt: int, completion: int, *, cached: int | None = None, audio_in: int | None = None,
                 reasoning: int | None = None, audio_out: int | None = None, **prompt_details: int) -> dict:
    """Canonical usage (OpenAI's shape): details only where given."""
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                             "total_tokens": prompt + completion}
    pd = {k: v for k, v in (("cached_tokens", cached), ("audio_tokens", audio_in)) if v is not None}
    pd.update(prompt_details)
    cd = {k: v for k, v in (("reasoning_tokens", reasoning), ("audio_tokens", audio_out)) if v is not None}
    if pd:
        usage["prompt_tokens_details"] = pd
    if cd:
        usage["completion_tokens_details"] = cd
    return usage


@dataclass(frozen=True)
class Case:
    vendor: str
    model: str
    usage: dict  # canonical, as a translator emits it
    units: dict  # the same numbers in genai-prices' usage keys
    name: str

    @property
    def id(self) -> str:
        return f"{self.vendor}-{self.name}-{self.model}"


def case(vendor: str, model: str, name: str, usage: dict, **units: int) -> Case:
    return Case(vendor, model, usage, units, name)


CASES = [
    # -- OpenAI ---------------------------------------------------------------------------------
    case("openai", "gpt-4o", "plain", openai_usage(1200, 350), input_tokens=1200, output_tokens=350),
    case("openai", "gpt-4o-2024-08-06", "cache-read", openai_usage(5000, 400, cached=3072, audio_in=0),
         input_tokens=5000, output_tokens=400, cache_read_tokens=3072),
    # OpenAI reports cache writes as `cache_write_tokens` ($15.625 against $12.5 input).
    case("openai", "gpt-5.6-cyber", "cache-write", openai_usage(20000, 600, cached=8000, cache_write_tokens=10000),
         input_tokens=20000, output_tokens=600, cache_read_tokens=8000, cache_write_tokens=10000),
    case("openai", "o4-mini", "reasoning", openai_usage(800, 2500, cached=0, reasoning=1800, audio_out=0),
         input_tokens=800, output_tokens=2500, output_reasoning_tokens=1800),
    case("openai", "gpt-audio", "audio", openai_usage(2000, 300, cached=0, audio_in=1500, reasoning=0, audio_out=200),
         input_tokens=2000, output_tokens=300, input_audio_tokens=1500, output_audio_tokens=200),
    # 2048 cached and 2000 audio in a 3000-token prompt: at least 1048 cached tokens are audio; the
    # pricer takes the rest of the cache as text (OpenAI does not split cached tokens by modality).
    case("openai", "gpt-4o-mini-realtime-preview", "audio-cached",
         openai_usage(3000, 500, cached=2048, audio_in=2000, audio_out=400),
         input_tokens=3000, output_tokens=500, cache_read_tokens=2048, input_audio_tokens=2000,
         cache_audio_read_tokens=1048, output_audio_tokens=400),
    case("openai", "gpt-5.4", "tiered", openai_usage(300_000, 2000, cached=100_000, reasoning=1500),
         input_tokens=300_000, output_tokens=2000, cache_read_tokens=100_000, output_reasoning_tokens=1500),
    # -- Azure (OpenAI's models through Azure's own entries, else OpenAI's) -----------------------
    case("azure", "gpt-4o", "cache-read", openai_usage(5000, 300, cached=2048),
         input_tokens=5000, output_tokens=300, cache_read_tokens=2048),
    case("azure", "o4-mini", "reasoning", openai_usage(900, 3000, cached=0, reasoning=2200),
         input_tokens=900, output_tokens=3000, output_reasoning_tokens=2200),
    case("azure", "phi-4-multimodal-instruct", "audio", openai_usage(5000, 200, audio_in=4000),
         input_tokens=5000, output_tokens=200, input_audio_tokens=4000),
    # -- Anthropic: prompt = input + cache reads + cache writes ------------------------------------
    case("anthropic", "claude-sonnet-4-20250514", "plain", openai_usage(1500, 500, cached=0, cache_creation_tokens=0),
         input_tokens=1500, output_tokens=500),
    case("anthropic", "claude-sonnet-4-20250514", "cache-read",
         openai_usage(21500, 500, cached=20000, cache_creation_tokens=0),
         input_tokens=21500, output_tokens=500, cache_read_tokens=20000),
    case("anthropic", "claude-haiku-4-5-20251001", "cache-write",
         openai_usage(12000, 300, cached=0, cache_creation_tokens=10000),
         input_tokens=12000, output_tokens=300, cache_write_tokens=10000),
    case("anthropic", "claude-opus-4-1-20250805", "read-write-thinking",
         openai_usage(30000, 4000, cached=20000, cache_creation_tokens=8000, reasoning=3000),
         input_tokens=30000, output_tokens=4000, cache_read_tokens=20000, cache_write_tokens=8000,
         output_reasoning_tokens=3000),
    case("anthropic", "claude-sonnet-4-20250514", "cache-write-1h",
         openai_usage(12000, 300, cached=0, cache_creation_tokens=10000, cache_creation_1h_tokens=6000),
         input_tokens=12000, output_tokens=300, cache_write_tokens=10000, cache_write_1h_tokens=6000),
    case("anthropic", "claude-sonnet-4-5-20250929", "tiered",
         openai_usage(250_000, 1000, cached=100_000, cache_creation_tokens=50_000),
         input_tokens=250_000, output_tokens=1000, cache_read_tokens=100_000, cache_write_tokens=50_000),
    # -- Gemini: thoughts are output; cachedContentTokenCount is part of the prompt ---------------
    case("gemini", "gemini-2.5-flash", "plain", openai_usage(1000, 200, cached=0, reasoning=0),
         input_tokens=1000, output_tokens=200),
    case("gemini", "gemini-2.5-flash", "cache-read", openai_usage(40000, 500, cached=32000, reasoning=0),
         input_tokens=40000, output_tokens=500, cache_read_tokens=32000),
    case("gemini", "gemini-2.5-flash", "thinking", openai_usage(1000, 2600, cached=0, reasoning=2000),
         input_tokens=1000, output_tokens=2600, output_reasoning_tokens=2000),
    case("gemini", "gemini-2.5-flash", "audio", openai_usage(12000, 300, audio_in=10000),
         input_tokens=12000, output_tokens=300, input_audio_tokens=10000),
    case("gemini", "gemini-2.0-flash", "audio-cached", openai_usage(12000, 300, cached=10000, audio_in=10000),
         input_tokens=12000, output_tokens=300, cache_read_tokens=10000, input_audio_tokens=10000,
         cache_audio_read_tokens=8000),
    case("gemini", "gemini-2.5-pro", "tiered", openai_usage(250_000, 3000, cached=50_000, reasoning=2000),
         input_tokens=250_000, output_tokens=3000, cache_read_tokens=50_000, output_reasoning_tokens=2000),
    # -- Bedrock: prompt = inputTokens + cache reads + cache writes ------------------------------
    case("bedrock", "meta.llama3-3-70b-instruct-v1:0", "plain",
         openai_usage(1000, 200, cached=0, cache_creation_tokens=0), input_tokens=1000, output_tokens=200),
    case("bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0", "read-write",
         openai_usage(3324, 11, cached=2100, cache_creation_tokens=1200),
         input_tokens=3324, output_tokens=11, cache_read_tokens=2100, cache_write_tokens=1200),
    case("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "cache-write-1h",
         openai_usage(15000, 400, cached=0, cache_creation_tokens=12000, cache_creation_1h_tokens=12000),
         input_tokens=15000, output_tokens=400, cache_write_tokens=12000, cache_write_1h_tokens=12000),
    # $0.00875/MTok cache reads: a cost far below a tenth of a nano-dollar must not be rounded away.
    case("bedrock", "amazon.nova-micro-v1:0", "cache-read-tiny", openai_usage(7, 3, cached=1, cache_creation_tokens=0),
         input_tokens=7, output_tokens=3, cache_read_tokens=1),
    case("bedrock", "amazon.nova-sonic-v1:0", "audio", openai_usage(3000, 800, audio_in=2500, audio_out=600),
         input_tokens=3000, output_tokens=800, input_audio_tokens=2500, output_audio_tokens=600),
    # -- Cohere: billed units; no cache price, so cached tokens cost the input price ---------------
    case("cohere", "command-r-plus-08-2024", "plain", openai_usage(30, 20), input_tokens=30, output_tokens=20),
    case("cohere", "command-a-03-2025", "cache-read", openai_usage(1200, 40, cached=384),
         input_tokens=1200, output_tokens=40, cache_read_tokens=384),
    case("cohere", "command-r7b-12-2024", "tiny", openai_usage(7, 3), input_tokens=7, output_tokens=3),
    # -- OpenAI-compatible presets ---------------------------------------------------------------
    case("groq", "llama-3.3-70b-versatile", "plain", openai_usage(2000, 300), input_tokens=2000, output_tokens=300),
    case("groq", "openai/gpt-oss-20b", "cache-read-reasoning", openai_usage(3000, 900, cached=2048, reasoning=600),
         input_tokens=3000, output_tokens=900, cache_read_tokens=2048, output_reasoning_tokens=600),
    case("mistral", "mistral-large-2512", "cache-read", openai_usage(9000, 700, cached=8192),
         input_tokens=9000, output_tokens=700, cache_read_tokens=8192),
    case("mistral", "magistral-medium-2509", "reasoning", openai_usage(500, 3000, reasoning=2500),
         input_tokens=500, output_tokens=3000, output_reasoning_tokens=2500),
    # $14 per thousand requests on top of the tokens.
    case("perplexity", "sonar-pro", "request-fee", openai_usage(200, 900), input_tokens=200, output_tokens=900),
    # Reasoning at $3/MTok, the rest of the output at $8/MTok.
    case("perplexity", "sonar-deep-research", "reasoning-price", openai_usage(200, 900, reasoning=600),
         input_tokens=200, output_tokens=900, output_reasoning_tokens=600),
]


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_cost_is_the_catalogue_price(c: Case) -> None:
    expected = catalogue(c.vendor, c.model, **c.units)
    assert expected > 0
    got = cost(Pricer({}), c.vendor, c.model, c.usage)
    assert got is not None and abs(got - expected) <= EXACT, (got, expected)


def test_each_case_prices_what_it_is_about() -> None:
    """The cases are not vacuous: each priced component changes the catalogue's figure."""
    def without(c: Case, *keys: str) -> float:
        return catalogue(c.vendor, c.model, **{k: v for k, v in c.units.items() if k not in keys})

    by_id = {c.id: c for c in CASES}
    for case_id, keys in [("openai-cache-write-gpt-5.6-cyber", ("cache_write_tokens",)),
                          ("openai-audio-gpt-audio", ("input_audio_tokens", "output_audio_tokens")),
                          ("anthropic-cache-write-claude-haiku-4-5-20251001", ("cache_write_tokens",)),
                          ("anthropic-cache-write-1h-claude-sonnet-4-20250514", ("cache_write_1h_tokens",)),
                          ("bedrock-read-write-anthropic.claude-3-5-sonnet-20240620-v1:0", ("cache_write_tokens",)),
                          ("gemini-audio-gemini-2.5-flash", ("input_audio_tokens",)),
                          ("perplexity-reasoning-price-sonar-deep-research", ("output_reasoning_tokens",))]:
        c = by_id[case_id]
        assert without(c, *keys) != catalogue(c.vendor, c.model, **c.units), case_id


def test_anthropic_cache_writes_cost_a_quarter_more_than_input() -> None:
    """genai-prices' five-minute write premium (1.25x input), and the one-hour one (2x)."""
    pricer = Pricer({})
    five_min = cost(pricer, "anthropic", "claude-haiku-4-5-20251001",
                    openai_usage(10000, 0, cached=0, cache_creation_tokens=10000))
    one_hour = cost(pricer, "anthropic", "claude-haiku-4-5-20251001",
                    openai_usage(10000, 0, cached=0, cache_creation_tokens=10000, cache_creation_1h_tokens=10000))
    plain = cost(pricer, "anthropic", "claude-haiku-4-5-20251001", openai_usage(10000, 0))
    assert plain is not None and five_min is not None and one_hour is not None
    assert abs(five_min - 1.25 * plain) <= EXACT and abs(one_hour - 2 * plain) <= EXACT


def test_free_and_unknown_models() -> None:
    pricer = Pricer({})
    assert cost(pricer, "mock", "echo", openai_usage(100, 100)) == 0.0
    assert cost(pricer, "ollama", "llama3.1", openai_usage(100, 100, cached=50)) == 0.0
    assert cost(pricer, "openai", "no-such-model-anywhere", openai_usage(100, 100)) is None
    assert cost(pricer, "openai", "gpt-4o", {}) == 0.0


def test_inconsistent_figures_are_capped_not_billed_twice_or_raised() -> None:
    """A breakdown larger than its total (cached above the prompt) is capped at the total, on the
    flat path and on the library's (tiered) path alike, which would otherwise refuse it."""
    pricer = Pricer({})
    got = cost(pricer, "gemini", "gemini-2.5-pro", openai_usage(3000, 100, cached=5000))
    assert got is not None
    assert abs(got - catalogue("gemini", "gemini-2.5-pro", input_tokens=3000, output_tokens=100,
                               cache_read_tokens=3000)) <= EXACT
    got = cost(pricer, "anthropic", "claude-haiku-4-5-20251001",
               openai_usage(1000, 10, cached=800, cache_creation_tokens=900))
    assert got is not None
    assert abs(got - catalogue("anthropic", "claude-haiku-4-5-20251001", input_tokens=1000, output_tokens=10,
                               cache_read_tokens=800, cache_write_tokens=200)) <= EXACT


# -- `pricing:` overrides -----------------------------------------------------------------------
OVERRIDE = PriceConfig(input_per_mtok=2.0, output_per_mtok=8.0, cache_read_per_mtok=0.5, cache_write_per_mtok=2.5)
PLAIN_OVERRIDE = PriceConfig(input_per_mtok=2.0, output_per_mtok=8.0)


@pytest.mark.parametrize(("config", "usage", "expected"), [
    # 4000 uncached input at $2, 4000 reads at $0.5, 2000 writes at $2.5, 1000 output at $8; audio and
    # reasoning have no price of their own here, so they are input and output.
    (OVERRIDE, openai_usage(10000, 1000, cached=4000, audio_in=1000, reasoning=600, cache_creation_tokens=2000),
     (4000 * 2 + 4000 * 0.5 + 2000 * 2.5 + 1000 * 8) / 1e6),
    (OVERRIDE, openai_usage(10000, 1000, cached=4000, cache_write_tokens=2000),  # OpenAI's name for writes
     (4000 * 2 + 4000 * 0.5 + 2000 * 2.5 + 1000 * 8) / 1e6),
    (OVERRIDE, openai_usage(10000, 1000), (10000 * 2 + 1000 * 8) / 1e6),
    # Without cache prices, cached and written tokens cost the input price.
    (PLAIN_OVERRIDE, openai_usage(10000, 1000, cached=4000, cache_creation_tokens=2000), (10000 * 2 + 1000 * 8) / 1e6),
], ids=["all-parts", "openai-write-name", "plain", "no-cache-prices"])
def test_override_prices(config: PriceConfig, usage: dict, expected: float) -> None:
    pricer = Pricer({"up/gpt-4o": config})
    got = pricer.cost("openai", "up/gpt-4o", "gpt-4o", usage)
    assert got is not None and abs(got - expected) <= EXACT, (got, expected)


def test_override_replaces_the_catalogue_entirely() -> None:
    """An override of a model with a per-request fee in the catalogue charges tokens only."""
    pricer = Pricer({"pplx/sonar-pro": PriceConfig(input_per_mtok=3.0, output_per_mtok=15.0)})
    got = pricer.cost("perplexity", "pplx/sonar-pro", "sonar-pro", openai_usage(200, 900))
    assert got is not None and abs(got - (200 * 3 + 900 * 15) / 1e6) <= EXACT
    assert pricer.cost("perplexity", "other/sonar-pro", "sonar-pro", openai_usage(200, 900)) != got


# -- prices that change with the clock ------------------------------------------------------------
def freeze(monkeypatch: pytest.MonkeyPatch, at: datetime) -> None:
    """Stop the clock at `at`, for the pricer and for the catalogue alike."""
    class Frozen(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return at if tz is None else at.astimezone(tz)

    for module in (pricing, genai_prices.types, genai_prices.data_snapshot):
        monkeypatch.setattr(module, "datetime", Frozen, raising=False)


@pytest.mark.parametrize(("vendor", "model", "before", "after"), [
    # DeepSeek's off-peak discount starts at 16:30 UTC every day.
    ("deepseek", "deepseek-chat", datetime(2026, 12, 4, 16, 0, tzinfo=UTC), datetime(2026, 12, 4, 17, 0, tzinfo=UTC)),
    # A list price that doubles on a set date.
    ("gemini", "gemini-3.7-flash", datetime(2026, 12, 31, 23, 0, tzinfo=UTC), datetime(2027, 1, 1, 1, 0, tzinfo=UTC)),
], ids=["time-of-day", "start-date"])
def test_prices_follow_the_clock(monkeypatch: pytest.MonkeyPatch, vendor: str, model: str, before: datetime,
                                 after: datetime) -> None:
    catalogue(vendor, model, input_tokens=1)  # the catalogue is loaded before the clock stops
    units = {"input_tokens": 40000, "output_tokens": 2000, "cache_read_tokens": 30000}
    usage = openai_usage(40000, 2000, cached=30000)
    pricer = Pricer({})  # one pricer across the change: it must not keep the first price it saw
    for at in (before, after):
        freeze(monkeypatch, at)
        expected = catalogue(vendor, model, at=at, **units)
        got = cost(pricer, vendor, model, usage)
        assert got is not None and abs(got - expected) <= EXACT, (at, got, expected)
    assert catalogue(vendor, model, at=before, **units) != catalogue(vendor, model, at=after, **units)


# -- bill() on usage as each translator emits it -----------------------------------------------------
def _anthropic(usage: dict) -> dict:
    from providers.anthropic_stream import openai_usage as translate

    return translate(usage)


def _bedrock(usage: dict) -> dict:
    from providers.bedrock import converse_usage

    return converse_usage(usage)


def _gemini(usage: dict) -> dict:
    from providers.gemini_response import usage_from

    out = usage_from(usage)
    assert out is not None
    return out


def _cohere(usage: dict) -> dict:
    from providers.cohere import cohere_usage

    return cohere_usage(usage)


def _passthrough(usage: dict) -> dict:
    """OpenAI and the OpenAI-compatible presets hand the vendor's usage on as it is."""
    return dict(usage)


def _preset(vendor: str) -> Callable[[dict], dict]:
    """The usage of a non-stream answer as the OpenAI-compatible preset `vendor` translates it (xAI
    and Perplexity count reasoning apart from completion_tokens, and the preset folds it in)."""
    def translate(usage: dict) -> dict:
        import orjson

        from providers import ProviderSettings, create_provider

        body = {"object": "chat.completion", "usage": usage, "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}
        provider = create_provider(ProviderSettings(name=vendor, type=vendor))
        return provider.chat_response(orjson.dumps(body), "model")["usage"]

    return translate


@dataclass(frozen=True)
class BillCase:
    vendor: str
    model: str
    translate: Callable[[dict], dict]
    response: dict  # the vendor's response (only its usage matters)
    flavor: str = "default"  # genai-prices' extractor for the vendor's API


def bill_case(vendor: str, model: str, name: str, translate: Callable[[dict], dict], response: dict,
              flavor: str = "default", xfail: str | None = None) -> Any:
    marks = (pytest.mark.xfail(strict=True, raises=AssertionError, reason=xfail),) if xfail else ()
    return pytest.param(BillCase(vendor, model, translate, response, flavor), id=f"{vendor}-{name}", marks=marks)


OPENAI_DETAILS = {"accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}

BILL_CASES = [
    bill_case("openai", "gpt-4o", "cache-read", _passthrough, {"usage": {
        "prompt_tokens": 5000, "completion_tokens": 400, "total_tokens": 5400,
        "prompt_tokens_details": {"cached_tokens": 3072, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, **OPENAI_DETAILS}}}, "chat"),
    bill_case("openai", "gpt-audio", "audio", _passthrough, {"usage": {
        "prompt_tokens": 2000, "completion_tokens": 300, "total_tokens": 2300,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 1500},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 200, **OPENAI_DETAILS}}}, "chat"),
    bill_case("openai", "gpt-5.6-cyber", "cache-write", _passthrough, {"usage": {
        "prompt_tokens": 20000, "completion_tokens": 600, "total_tokens": 20600,
        "prompt_tokens_details": {"cached_tokens": 8000, "cache_write_tokens": 10000, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 450, "audio_tokens": 0, **OPENAI_DETAILS}}}, "chat"),
    bill_case("openai", "o4-mini", "reasoning", _passthrough, {"usage": {
        "prompt_tokens": 800, "completion_tokens": 2500, "total_tokens": 3300,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 1800, "audio_tokens": 0, **OPENAI_DETAILS}}}, "chat"),
    bill_case("anthropic", "claude-sonnet-4-20250514", "read-write", _anthropic, {"usage": {
        "input_tokens": 1500, "cache_creation_input_tokens": 10000, "cache_read_input_tokens": 20000,
        "output_tokens": 500, "cache_creation": {"ephemeral_5m_input_tokens": 10000, "ephemeral_1h_input_tokens": 0},
        "service_tier": "standard"}}),
    bill_case("anthropic", "claude-sonnet-4-20250514", "web-searches", _anthropic, {"usage": {
        "input_tokens": 2100, "output_tokens": 300, "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0, "server_tool_use": {"web_search_requests": 3}}}),
    bill_case("anthropic", "claude-sonnet-4-20250514", "cache-write-1h", _anthropic, {"usage": {
        "input_tokens": 1500, "cache_creation_input_tokens": 10000, "cache_read_input_tokens": 0,
        "output_tokens": 500,
        "cache_creation": {"ephemeral_5m_input_tokens": 4000, "ephemeral_1h_input_tokens": 6000}}}),
    bill_case("bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0", "read-write", _bedrock, {"usage": {
        "inputTokens": 24, "outputTokens": 11, "totalTokens": 3335, "cacheReadInputTokens": 2100,
        "cacheWriteInputTokens": 1200}}),
    bill_case("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "cache-write-1h", _bedrock, {"usage": {
        "inputTokens": 3000, "outputTokens": 400, "totalTokens": 15400, "cacheReadInputTokens": 0,
        "cacheWriteInputTokens": 12000, "cacheDetails": [{"ttl": "1h", "inputTokens": 12000}]}}),
    bill_case("gemini", "gemini-2.5-flash", "read-thinking-tools", _gemini, {"usageMetadata": {
        "promptTokenCount": 40000, "candidatesTokenCount": 500, "thoughtsTokenCount": 1200,
        "cachedContentTokenCount": 32000, "toolUsePromptTokenCount": 300, "totalTokenCount": 42000,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 40000}],
        "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 32000}]}}),
    bill_case("gemini", "gemini-2.5-flash", "audio", _gemini, {"usageMetadata": {
        "promptTokenCount": 12000, "candidatesTokenCount": 300, "totalTokenCount": 12300,
        "promptTokensDetails": [{"modality": "AUDIO", "tokenCount": 10000},
                                {"modality": "TEXT", "tokenCount": 2000}]}}),
    bill_case("cohere", "command-a-03-2025", "billed-units", _cohere, {"usage": {
        "billed_units": {"input_tokens": 1200, "output_tokens": 40},
        "tokens": {"input_tokens": 1500, "output_tokens": 40}, "cached_tokens": 384}}),
    bill_case("groq", "openai/gpt-oss-20b", "cache-read-reasoning", _passthrough, {"usage": {
        "prompt_tokens": 3000, "completion_tokens": 900, "total_tokens": 3900,
        "prompt_tokens_details": {"cached_tokens": 2048}, "completion_tokens_details": {"reasoning_tokens": 600}}}),
    bill_case("mistral", "mistral-large-2512", "cache-read", _passthrough, {"usage": {
        "prompt_tokens": 9000, "completion_tokens": 700, "total_tokens": 9700,
        "prompt_tokens_details": {"cached_tokens": 8192}}}),
    bill_case("perplexity", "sonar-pro", "request-fee", _passthrough, {"usage": {
        "prompt_tokens": 200, "completion_tokens": 900, "total_tokens": 1100, "search_context_size": "low"}}),
    bill_case("perplexity", "sonar-deep-research", "reasoning-citations", _preset("perplexity"), {"usage": {
        "prompt_tokens": 200, "completion_tokens": 900, "total_tokens": 1100, "citation_tokens": 3000,
        "reasoning_tokens": 6000, "num_search_queries": 12}}),
    bill_case("xai", "grok-3-mini", "reasoning", _preset("xai"), {"usage": {
        "prompt_tokens": 200, "completion_tokens": 100, "total_tokens": 1100,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 800}}}, "chat"),
]


def target(vendor: str, model: str) -> Any:
    settings = SimpleNamespace(type=vendor)
    return SimpleNamespace(runtime=SimpleNamespace(provider=SimpleNamespace(settings=settings)),
                           label=f"{vendor}/{model}", model=model)


@pytest.mark.parametrize("c", BILL_CASES)
def test_bill_prices_what_the_vendor_reported(c: BillCase) -> None:
    """The vendor's usage, through its translator and `bill()`, costs what genai-prices makes of the
    vendor's usage itself."""
    from router.pipeline.billing import bill

    root = "usageMetadata" if c.vendor == "gemini" else "usage"
    usage = c.translate(c.response[root])
    billed = bill(Pricer({}), target(c.vendor, c.model), usage)
    assert (billed.prompt_tokens, billed.completion_tokens) == (usage["prompt_tokens"], usage["completion_tokens"])
    assert billed.cached_tokens == (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    vendor_usage = extract_usage(c.response, provider_id=CATALOGUE[c.vendor], api_flavor=c.flavor).usage
    expected = float(calc_price(vendor_usage, model_ref=c.model, provider_id=CATALOGUE[c.vendor]).total_price)
    assert expected > 0
    assert billed.cost_usd is not None and abs(billed.cost_usd - expected) <= EXACT, (billed.cost_usd, expected)
