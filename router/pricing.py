"""USD cost of a response's usage: `pricing:` overrides first, then the genai-prices catalogue.

genai-prices is exact but costs tens of µs per call, so flat per-token prices are looked up once
per (provider, model) and then applied with float arithmetic; tiered prices use the library.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from cachetools import LRUCache

from .config import PriceConfig

# Our wire-format names -> genai-prices provider ids.
_CATALOGUE_PROVIDER = {
    "openai": "openai", "azure": "azure", "anthropic": "anthropic", "gemini": "google", "bedrock": "aws",
    "cohere": "cohere", "groq": "groq", "mistral": "mistral", "deepseek": "deepseek", "together": "together",
    "xai": "x-ai", "fireworks": "fireworks", "openrouter": "openrouter", "perplexity": "perplexity",
    "cerebras": "cerebras",
}
# Wire formats that never cost anything (local servers and the built-in mock).
_FREE = frozenset({"mock", "ollama", "vllm", "lmstudio"})


@dataclass(frozen=True, slots=True)
class Price:
    """USD per token."""

    input: float
    output: float
    cache_read: float
    cache_write: float

    def cost(self, prompt: int, completion: int, cached: int, cache_write: int) -> float:
        uncached = max(0, prompt - cached - cache_write)
        return (uncached * self.input + cached * self.cache_read + cache_write * self.cache_write
                + completion * self.output)


_ZERO = Price(0.0, 0.0, 0.0, 0.0)


class Pricer:
    def __init__(self, overrides: Mapping[str, PriceConfig]) -> None:
        self._overrides = {ref: _from_config(p) for ref, p in overrides.items() if p.input_per_mtok is not None}
        self._max_output = {ref: p.max_output_tokens for ref, p in overrides.items() if p.max_output_tokens}
        self._cache: LRUCache = LRUCache(4096)

    def cost(self, provider_type: str, label: str, model: str, usage: Mapping) -> float | None:
        """Cost of `usage` (OpenAI shape: prompt tokens include cached ones), or None if unpriced."""
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        details = usage.get("prompt_tokens_details") or {}
        cached = int(details.get("cached_tokens") or 0)
        cache_write = int(details.get("cache_creation_tokens") or 0)
        key = (provider_type, label, model)
        price = self._cache.get(key, None)
        if price is None:
            price = self._lookup(provider_type, label, model)
            self._cache[key] = price
        if price is False:
            return None
        if isinstance(price, Price):
            return round(price.cost(prompt, completion, cached, cache_write), 10)
        return _catalogue_cost(price, prompt, completion, cached, cache_write)

    def max_output_tokens(self, label: str) -> int | None:
        """The configured maximum answer length of `provider/model`, if any."""
        return self._max_output.get(label)

    def _lookup(self, provider_type: str, label: str, model: str) -> Price | object:
        if label in self._overrides:
            return self._overrides[label]
        if provider_type in _FREE:
            return _ZERO
        try:
            from genai_prices import Usage, calc_price

            calc = calc_price(Usage(input_tokens=1, output_tokens=1), model_ref=model,
                              provider_id=_CATALOGUE_PROVIDER.get(provider_type, provider_type))
        except (LookupError, ValueError):
            return False
        mp = calc.model_price
        flat = [mp.input_mtok, mp.output_mtok, mp.cache_read_mtok, getattr(mp, "cache_write_mtok", None)]
        if all(v is None or isinstance(v, int | float | Decimal) for v in flat):
            inp, out, read, write = (float(v) / 1e6 if v is not None else None for v in flat)
            inp = inp or 0.0
            return Price(inp, out or 0.0, read if read is not None else inp, write if write is not None else inp)
        return mp  # tiered: let the library compute


def _from_config(p: PriceConfig) -> Price:
    assert p.input_per_mtok is not None and p.output_per_mtok is not None
    inp = p.input_per_mtok / 1e6
    read = p.cache_read_per_mtok / 1e6 if p.cache_read_per_mtok is not None else inp
    write = p.cache_write_per_mtok / 1e6 if p.cache_write_per_mtok is not None else inp
    return Price(inp, p.output_per_mtok / 1e6, read, write)


def _catalogue_cost(model_price, prompt: int, completion: int, cached: int, cache_write: int) -> float:
    from genai_prices import Usage

    usage = Usage(input_tokens=prompt, output_tokens=completion, cache_read_tokens=cached,
                  cache_write_tokens=cache_write)
    return float(model_price.calc_price(usage)["total_price"])
