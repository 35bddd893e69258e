"""`extra_fields`: per-response routing metadata (see DESIGN.md)."""

from __future__ import annotations

import time
from typing import Any

from .routing.chain import Call


def routing_head(call: Call) -> dict[str, Any]:
    """What the first chunk of a stream carries: who is serving it."""
    target = call.target
    return {"provider": target.runtime.name if target else None, "model": target.label if target else None}


def full(call: Call, *, billed: dict[str, Any] | None = None, raw: Any = None,
         cache: str = "off") -> dict[str, Any]:
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
