"""`extra_fields`: per-response routing metadata (see DESIGN.md)."""

from __future__ import annotations

import time
from typing import Any

from .cache import CachedResponse
from .routing.chain import Call

# A cache hit is billed nothing by any vendor.
_ZERO_BILL = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "cached_tokens": 0, "cost_usd": 0.0}


def routing_head(call: Call) -> dict[str, Any]:
    """What the first chunk of a stream carries: who is serving it."""
    target = call.target
    return {"provider": target.runtime.name if target else None, "model": target.label if target else None}


def full(call: Call, *, billed: dict[str, Any] | None = None, raw: Any = None,
         cache: str = "off") -> dict[str, Any]:
    """The whole object, as the last thing the client reads of a response."""
    target = call.target
    out: dict[str, Any] = {
        "provider": target.runtime.name if target else None,
        "model": target.label if target else None,
        "model_requested": call.requested,
        "request_type": call.request_type,
        "latency": round((time.perf_counter() - call.started) * 1000.0, 3),
    }
    if billed is not None:
        out["billed_usage"] = billed
    out["attempts"] = [a.as_dict() for a in call.attempts]
    out["cache"] = {"status": cache}
    if raw is not None:
        out["raw_response"] = raw
    return out


def cached(call: Call, entry: CachedResponse) -> dict[str, Any]:
    """`extra_fields` of a cache hit: who originally served it, nothing billed, no attempts."""
    return {
        "provider": entry.provider,
        "model": entry.model,
        "model_requested": call.requested,
        "request_type": call.request_type,
        "latency": round((time.perf_counter() - call.started) * 1000.0, 3),
        "billed_usage": dict(_ZERO_BILL),
        "attempts": [],
        "cache": {"status": "hit"},
    }


def cached_head(entry: CachedResponse) -> dict[str, Any]:
    return {"provider": entry.provider, "model": entry.model}
