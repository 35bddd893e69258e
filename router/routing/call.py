"""One model call as it moves through the attempt chain: what was asked, tried and served.

The chain fills it in (every attempt, the deployment that served, the time spent waiting on
upstreams); the pipeline, `extra_fields`, the metrics and the access log read it.
"""

from __future__ import annotations

import time
from typing import Any

from providers import UpstreamError

from .table import Target


class Attempt:
    """One try at one deployment, as reported in `extra_fields.attempts`."""

    __slots__ = ("error", "latency_ms", "model", "status")

    def __init__(self, model: str, status: int, latency_ms: float, error: str | None) -> None:
        self.model = model
        self.status = status
        self.latency_ms = latency_ms
        self.error = error

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "status": self.status, "latency_ms": self.latency_ms, "error": self.error}


class Call:
    """One model call: the name asked for, the attempts made, the deployment that served."""

    __slots__ = ("attempts", "request_type", "requested", "started", "target", "upstream_s")

    def __init__(self, requested: str, request_type: str, started: float) -> None:
        self.requested = requested
        self.request_type = request_type
        self.started = started
        self.attempts: list[Attempt] = []
        self.target: Target | None = None
        self.upstream_s = 0.0  # waiting on upstreams (network, not translation): for the overhead metric

    def record(self, target: Target, t0: float, status: int, error: str | None = None) -> Attempt:
        attempt = Attempt(target.label, status, round((time.perf_counter() - t0) * 1000.0, 3), error)
        self.attempts.append(attempt)
        return attempt

    def sub(self) -> Call:
        """A call of its own for one of several parallel calls made for this one (`n` emulation)."""
        return Call(self.requested, self.request_type, self.started)


class ChainFailed(Exception):
    """Every attempt failed (or one failed with a caller error); `error` is the one to report."""

    def __init__(self, error: UpstreamError) -> None:
        super().__init__(error.message)
        self.error = error
