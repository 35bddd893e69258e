"""Usage as billed: what one model call (or several, summed) cost, in tokens and USD.

One value type for every place that reads a bill: `extra_fields.billed_usage`, the usage record,
the settling of a budget reservation, the metrics and access log, the agent step traces and the
cache entry (which remembers what the original answer cost). Tokens follow OpenAI's convention:
`prompt_tokens` include the `cached_tokens`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Billed:
    """Treated as immutable (shared by outcomes, traces and totals): sums build new ones."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float | None = 0.0  # None: the model has no known price
    estimated: bool = False  # counted with tiktoken because the vendor reported no usage

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Billed | None:
        """A bill from its `extra_fields.billed_usage` form (as cache entries keep it); None stays None."""
        if not isinstance(data, Mapping):
            return None
        prompt, completion = _int(data.get("prompt_tokens")), _int(data.get("completion_tokens"))
        cost = data.get("cost_usd")
        return cls(prompt, completion, _int(data.get("total_tokens")) or prompt + completion,
                   _int(data.get("cached_tokens")),
                   float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None,
                   data.get("estimated") is True)

    def as_dict(self) -> dict[str, Any]:
        """`extra_fields.billed_usage`; `estimated` appears only when true."""
        out: dict[str, Any] = {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                               "total_tokens": self.total_tokens, "cached_tokens": self.cached_tokens,
                               "cost_usd": self.cost_usd}
        if self.estimated:
            out["estimated"] = True
        return out

    def usage(self) -> dict[str, Any]:
        """OpenAI `usage` for these tokens."""
        out: dict[str, Any] = {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                               "total_tokens": self.total_tokens}
        if self.cached_tokens:
            out["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        return out

    def __add__(self, other: Billed) -> Billed:
        """The sum of two bills: the cost stays None only while every part is unpriced."""
        costs = [c for c in (self.cost_usd, other.cost_usd) if c is not None]
        return Billed(self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens,
                      self.total_tokens + other.total_tokens, self.cached_tokens + other.cached_tokens,
                      round(sum(costs), 10) if costs else None, self.estimated or other.estimated)


ZERO = Billed()  # a cache hit: nothing billed by any vendor


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0
