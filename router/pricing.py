"""USD cost of a response's usage: `pricing:` overrides first, then the genai-prices catalogue.

The canonical (OpenAI-shaped) usage is turned into genai-prices' usage units (cache reads and
writes, one-hour cache writes, audio and image tokens, reasoning tokens) and priced the way the
library prices them: every token in the most specific unit the model has a price for (a cached
audio token at the cached-audio rate, else the cache-read rate, else the input rate), plus any
per-request fee.

genai-prices is exact but costs tens of µs per call, so a price set made only of flat per-unit
prices is compiled once into float per-unit prices and applied with float arithmetic; a price set
with tiers (or a price the fast path does not know) is priced by the library. The active price set
is resolved on every call, because catalogue prices change on given dates and, for some vendors,
by time of day.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any

from cachetools import LRUCache

from .config import PriceConfig

if TYPE_CHECKING:  # genai-prices takes a tenth of a second to import: only when a price is needed
    from genai_prices.types import ModelInfo, ModelPrice

# Our wire-format names -> genai-prices provider ids.
_CATALOGUE_PROVIDER = {
    "openai": "openai", "azure": "azure", "anthropic": "anthropic", "gemini": "google", "bedrock": "aws",
    "cohere": "cohere", "groq": "groq", "mistral": "mistral", "deepseek": "deepseek", "together": "together",
    "xai": "x-ai", "fireworks": "fireworks", "openrouter": "openrouter", "perplexity": "perplexity",
    "cerebras": "cerebras",
}
# Wire formats that never cost anything (local servers and the built-in mock).
_FREE = frozenset({"mock", "ollama", "vllm", "lmstudio"})

_REQUESTS = "requests"  # a per-request fee: every call counts one
# The units `_counts` fills. No other unit contains one of them, so any other unit's count is nought
# for every canonical usage, and the fast path leaves it out.
_COUNTED = frozenset({
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens",
    "input_audio_tokens", "cache_audio_read_tokens", "input_image_tokens", "cache_image_read_tokens",
    "output_audio_tokens", "output_image_tokens", "output_reasoning_tokens", "output_citation_tokens",
    "web_searches",
})


@dataclass(frozen=True, slots=True)
class _Flat:
    """Flat per-unit USD prices, most specific unit first; each unit lists the positions of its
    priced parts, whose tokens it does not price again."""

    units: tuple[tuple[str, float, tuple[int, ...]], ...]
    per_request: float = 0.0

    def total(self, counts: Mapping[str, int]) -> float:
        """Cost of `counts`; a breakdown that contradicts its totals (which `_counts` prevents for
        the shapes it knows) is dropped rather than priced below zero."""
        cost = self._cost(counts)
        return cost if cost is not None else self._cost(_totals(counts)) or 0.0

    def _cost(self, counts: Mapping[str, int]) -> float | None:
        leaves: list[int] = []
        cost = self.per_request
        for usage_key, price, parts in self.units:
            leaf = counts.get(usage_key, 0)
            for i in parts:
                leaf -= leaves[i]
            if leaf < 0:
                return None
            leaves.append(leaf)
            cost += leaf * price
        return cost


def _flat(prices: Mapping[str, Decimal | float]) -> _Flat | None:
    """Compile per-price-key prices (USD per `per` units), or None when one of them is not a flat
    price of a known unit (tiers, or a key this version of the catalogue's units lacks)."""
    priced: list[tuple[str, float, frozenset[tuple[str, str]]]] = []
    per_request = 0.0
    known = _units()
    for price_key, price in prices.items():
        unit = known.get(price_key)
        if unit is None or isinstance(price, bool) or not isinstance(price, Decimal | int | float):
            return None
        usage_key, per, dims = unit
        if usage_key == _REQUESTS:
            per_request = float(price) / per
        elif usage_key in _COUNTED:
            priced.append((usage_key, float(price) / per, dims))
    # The library's order: the most specific units first, so a unit's parts are priced before it.
    priced.sort(key=lambda u: (-len(u[2]), u[0]))
    units = tuple((key, price, tuple(i for i, (_, _, d) in enumerate(priced) if d > dims))
                  for key, price, dims in priced)
    return _Flat(units, per_request)


@cache
def _units() -> dict[str, tuple[str, int, frozenset[tuple[str, str]]]]:
    """genai-prices' units by price key: (usage key, how many units the price is for, dimensions).
    A unit whose dimensions include another's is a more specific part of it (cache_audio_read_tokens
    is a part of cache_read_tokens, of input_audio_tokens and of input_tokens)."""
    from genai_prices.data_units import unit_data

    return {spec["price_key"]: (usage_key, int(spec["per"]), frozenset(spec["dimensions"].items()))
            for usage_key, spec in unit_data.items()}


def _model_price_flat(mp: ModelPrice) -> _Flat | None:
    return _flat({k: v for k, v in vars(mp).items() if v is not None and not k.startswith("_")})


def _library_cost(mp: ModelPrice, counts: Mapping[str, int]) -> float:
    from genai_prices import Usage

    try:
        return float(mp.calc_price(Usage(**counts))["total_price"])
    except ValueError:  # a breakdown that contradicts its totals: price the totals
        return float(mp.calc_price(Usage(**_totals(counts)))["total_price"])


class _Catalogued:
    """A catalogue model. Its active price set is looked up on every call (cheap: a date check),
    and each price set it ever has is compiled once."""

    __slots__ = ("_compiled", "_model")

    def __init__(self, model: ModelInfo) -> None:
        self._model = model
        self._compiled: dict[int, tuple[ModelPrice, _Flat | None]] = {}

    def cost(self, counts: Mapping[str, int], now: datetime) -> float:
        mp = self._model.get_prices(now)
        hit = self._compiled.get(id(mp))
        if hit is None or hit[0] is not mp:
            hit = self._compiled[id(mp)] = (mp, _model_price_flat(mp))
        flat = hit[1]
        return flat.total(counts) if flat is not None else _library_cost(mp, counts)


_ZERO = _Flat(())


class Pricer:
    """Prices per (wire format, `provider/model`, vendor model id), looked up once each: an override,
    free, unpriced, or a catalogue model."""

    def __init__(self, overrides: Mapping[str, PriceConfig]) -> None:
        self._overrides = {ref: _from_config(p) for ref, p in overrides.items() if p.input_per_mtok is not None}
        self._max_output = {ref: p.max_output_tokens for ref, p in overrides.items() if p.max_output_tokens}
        self._cache: LRUCache = LRUCache(4096)

    def cost(self, provider_type: str, label: str, model: str, usage: Mapping) -> float | None:
        """Cost of `usage` (OpenAI shape: prompt tokens include cached ones), or None if unpriced."""
        key = (provider_type, label, model)
        price = self._cache.get(key, None)
        if price is None:
            price = self._lookup(provider_type, label, model)
            self._cache[key] = price
        if price is False:
            return None
        counts = _counts(usage)
        cost = price.total(counts) if isinstance(price, _Flat) else price.cost(counts, _now())
        # Fifteen significant digits: what the catalogue's exact sum is, without the float noise
        # of per-token prices (a bill reads 0.03, not 0.030000000000000002).
        return float(f"{cost:.15g}")

    def max_output_tokens(self, label: str) -> int | None:
        """The configured maximum answer length of `provider/model`, if any."""
        return self._max_output.get(label)

    def _lookup(self, provider_type: str, label: str, model: str) -> _Flat | _Catalogued | bool:
        if label in self._overrides:
            return self._overrides[label]
        if provider_type in _FREE:
            return _ZERO
        from genai_prices import Usage, calc_price

        try:
            calc = calc_price(Usage(input_tokens=1, output_tokens=1), model_ref=model,
                              provider_id=_CATALOGUE_PROVIDER.get(provider_type, provider_type))
        except (LookupError, ValueError):
            return False
        return _Catalogued(calc.model)


def _now() -> datetime:
    return datetime.now(UTC)


def _from_config(p: PriceConfig) -> _Flat:
    """A `pricing:` override: input and output, and cache reads and writes at their own price when
    given (else at the input price, as the catalogue does for a model without one)."""
    assert p.input_per_mtok is not None and p.output_per_mtok is not None
    prices = {"input_mtok": p.input_per_mtok, "output_mtok": p.output_per_mtok,
              "cache_read_mtok": p.cache_read_per_mtok, "cache_write_mtok": p.cache_write_per_mtok}
    flat = _flat({k: v for k, v in prices.items() if v is not None})
    assert flat is not None
    return flat


def _count(details: Mapping[str, Any], name: str) -> int:
    """`details[name]` as a non-negative int (0 when absent or not a number)."""
    value = details.get(name)
    if type(value) is int:
        return value if value > 0 else 0
    if isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool)):
        return max(0, int(value))
    return 0


def _counts(usage: Mapping) -> dict[str, int]:
    """Canonical usage -> genai-prices usage units.

    Read from the canonical usage: `prompt_tokens` and `completion_tokens` (totals);
    `prompt_tokens_details`: `cached_tokens` (reads), `cache_creation_tokens` (writes; OpenAI's own
    name `cache_write_tokens` too), `cache_creation_1h_tokens` (the part of the writes kept for an
    hour, dearer than the default five minutes), `audio_tokens`, `image_tokens`;
    `completion_tokens_details`: `reasoning_tokens`, `audio_tokens`, `image_tokens`, `citation_tokens`
    (the sources a search model read, Perplexity); `server_tool_use.web_search_requests` (web searches
    the vendor ran and bills per search: Anthropic's name, Perplexity's `num_search_queries`).

    Each part is capped by what contains it, so a vendor's inconsistent figures are not billed
    twice. No vendor says how many cached tokens were audio or image, which a model with a
    cached-audio price needs: cached tokens are taken as text as far as the prompt allows.
    """
    prompt = _count(usage, "prompt_tokens")
    completion = _count(usage, "completion_tokens")
    pd, cd = usage.get("prompt_tokens_details"), usage.get("completion_tokens_details")
    pd = pd if isinstance(pd, Mapping) else {}
    cd = cd if isinstance(cd, Mapping) else {}
    counts = {"input_tokens": prompt, "output_tokens": completion}
    if pd:
        cached = min(_count(pd, "cached_tokens"), prompt)
        written = _count(pd, "cache_creation_tokens") if "cache_creation_tokens" in pd else \
            _count(pd, "cache_write_tokens")
        written = min(written, prompt - cached)
        audio = min(_count(pd, "audio_tokens"), prompt)
        image = min(_count(pd, "image_tokens"), prompt - audio)
        overlap = max(0, cached + audio + image - prompt)
        cached_audio = min(overlap, audio, cached)
        counts.update(cache_read_tokens=cached, cache_write_tokens=written,
                      cache_write_1h_tokens=min(_count(pd, "cache_creation_1h_tokens"), written),
                      input_audio_tokens=audio, cache_audio_read_tokens=cached_audio, input_image_tokens=image,
                      cache_image_read_tokens=min(overlap - cached_audio, image, cached - cached_audio))
    if cd:
        audio = min(_count(cd, "audio_tokens"), completion)
        counts.update(output_audio_tokens=audio,
                      output_image_tokens=min(_count(cd, "image_tokens"), completion - audio),
                      output_reasoning_tokens=min(_count(cd, "reasoning_tokens"), completion),
                      output_citation_tokens=min(_count(cd, "citation_tokens"), completion))
    tools = usage.get("server_tool_use")
    if isinstance(tools, Mapping):
        counts["web_searches"] = _count(tools, "web_search_requests")
    return counts


def _totals(counts: Mapping[str, int]) -> dict[str, int]:
    return {"input_tokens": counts.get("input_tokens", 0), "output_tokens": counts.get("output_tokens", 0)}
