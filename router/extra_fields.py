"""`extra_fields`: per-response routing metadata of the OpenAI-shaped faces (see DESIGN.md).

Built from a call's `Outcome`, the same way for a live answer, a cache hit and a failure.
"""

from __future__ import annotations

import time
from typing import Any

from .exchange import Outcome


def routing_head(outcome: Outcome) -> dict[str, Any]:
    """What the first chunk of a stream carries: who is serving it (None when nobody did)."""
    if outcome.cache == "hit":
        return {"provider": outcome.provider or None, "model": outcome.model or None}
    target = outcome.call.target
    return {"provider": target.runtime.name if target else None, "model": target.label if target else None}


def full(outcome: Outcome, raw: Any = None) -> dict[str, Any]:
    """The whole object, as the last thing the client reads of a response."""
    call = outcome.call
    target = call.target
    if outcome.cache == "hit" or target is None:
        head = routing_head(outcome)
        provider, model = head["provider"], head["model"]
    else:
        provider, model = target.runtime.name, target.label
    out: dict[str, Any] = {
        "provider": provider,
        "model": model,
        "model_requested": call.requested,
        "request_type": call.request_type,
        "latency": round((time.perf_counter() - call.started) * 1000.0, 3),
    }
    if outcome.billed is not None:
        out["billed_usage"] = outcome.billed.as_dict()
    out["attempts"] = [a.as_dict() for a in call.attempts]
    out["cache"] = {"status": outcome.cache}
    if raw is not None:
        out["raw_response"] = raw
    return out
