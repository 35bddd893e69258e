"""One served request's usage, as the accountant records it.

Costs travel as float USD (what the pricer returns) but are summed as integer nano-dollars
(`round(cost * 1e9)`): integer sums are exact and associative, so totals do not drift with the
number of requests, the order of the additions or how many workers added them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .billed import Billed

ANONYMOUS = "anonymous"  # the key name of requests made without a virtual key (auth off)

_day_cache: list[Any] = [0.0, ""]  # [next UTC midnight as epoch seconds, current day]


def utc_day(now: float | None = None) -> str:
    """Today's UTC date as `YYYY-MM-DD`; formatted once per day, not per request."""
    if now is not None:
        return time.strftime("%Y-%m-%d", time.gmtime(now))
    now = time.time()
    if now >= _day_cache[0] or not _day_cache[1]:
        _day_cache[0] = (now // 86400 + 1) * 86400
        _day_cache[1] = time.strftime("%Y-%m-%d", time.gmtime(now))
    return _day_cache[1]


def to_nanos(cost_usd: float | None) -> int:
    """USD -> integer nano-dollars (None, i.e. unpriced, counts as 0)."""
    return round(cost_usd * 1e9) if cost_usd else 0


def nanos_to_usd(nanos: int) -> float:
    return round(nanos / 1e9, 9)


@dataclass(slots=True)
class UsageRecord:
    """Usage of one request.

    - `key`: virtual key name, or `"anonymous"`.
    - `provider`: provider name that served it (or was last tried, for a failure).
    - `model`: the `provider/model` label served (or last tried); for a cache hit, the cached label.
    - `cost_usd`: None when the model has no known price (counted as `unpriced`, cost 0).
    - `estimated`: usage was counted with tiktoken because the vendor reported none.
    - `cache_hit`: served from the router's response cache. Counts as a request and a cache hit with
      ZERO tokens and cost, whatever the record carries: nothing was billed upstream, so totals keep
      reconciling with the vendors' invoices.
    - `ok`: False for a failed request: it counts as a request and an error (with whatever usage
      the vendor billed, usually none).
    - `day`: UTC `YYYY-MM-DD`, taken when the record is made.
    """

    key: str
    provider: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float | None = None
    estimated: bool = False
    cache_hit: bool = False
    ok: bool = True
    day: str = field(default_factory=utc_day)

    @classmethod
    def from_billed(cls, key: str | None, provider: str, model: str, billed: Billed | None, *,
                    cache_hit: bool = False, ok: bool = True) -> UsageRecord:
        """A record of one model call; `billed` is None for a failure with no usage. A cache hit
        is recorded with zero tokens and cost whatever it carries (nothing was billed upstream)."""
        if billed is None or cache_hit:
            return cls(key or ANONYMOUS, provider, model, cost_usd=0.0 if cache_hit else None,
                       cache_hit=cache_hit, ok=ok)
        return cls(key or ANONYMOUS, provider, model, billed.prompt_tokens, billed.completion_tokens,
                   billed.cached_tokens, billed.cost_usd, billed.estimated, cache_hit, ok)
