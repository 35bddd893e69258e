"""What to do about each kind of upstream failure: the one table that drives retries and fallbacks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from providers import ErrorKind

from ..config.schema import RetryConfig


class Rule(NamedTuple):
    retry_same: bool  # retry this deployment after a backoff (within `max_retries`)
    next_key: bool  # retry at once with another key of the same provider, when it has one
    bad_key: bool  # the vendor rejected our key: cool the key down
    fallback: bool  # go on to the next deployment; False = return the error to the client now
    breaker: bool  # counts against the deployment's circuit breaker


_CALLER = Rule(retry_same=False, next_key=False, bad_key=False, fallback=False, breaker=False)

RULES: dict[ErrorKind, Rule] = {
    ErrorKind.BAD_REQUEST: _CALLER,
    ErrorKind.TOO_LARGE: _CALLER,
    ErrorKind.UNSUPPORTED: _CALLER,
    ErrorKind.CONTEXT_WINDOW: _CALLER,  # falls back when routing.fallback_on lists it
    ErrorKind.CONTENT_POLICY: _CALLER,  # likewise
    ErrorKind.AUTH: Rule(retry_same=False, next_key=True, bad_key=True, fallback=True, breaker=False),
    ErrorKind.NOT_FOUND: Rule(retry_same=False, next_key=False, bad_key=False, fallback=True, breaker=True),
    ErrorKind.RATE_LIMIT: Rule(retry_same=True, next_key=True, bad_key=False, fallback=True, breaker=True),
    ErrorKind.OVERLOADED: Rule(retry_same=True, next_key=False, bad_key=False, fallback=True, breaker=True),
    ErrorKind.SERVER: Rule(retry_same=True, next_key=False, bad_key=False, fallback=True, breaker=True),
    ErrorKind.TIMEOUT: Rule(retry_same=False, next_key=False, bad_key=False, fallback=True, breaker=True),
    ErrorKind.CONNECT: Rule(retry_same=True, next_key=False, bad_key=False, fallback=True, breaker=True),
    ErrorKind.INVALID_RESPONSE: Rule(retry_same=True, next_key=False, bad_key=False, fallback=True, breaker=True),
    ErrorKind.STREAM_CUT: Rule(retry_same=True, next_key=False, bad_key=False, fallback=True, breaker=True),
}
_FALLBACK_ONLY = Rule(retry_same=False, next_key=False, bad_key=False, fallback=True, breaker=False)


@dataclass(frozen=True, slots=True)
class ErrorPolicy:
    retry: RetryConfig
    fallback_on: frozenset[ErrorKind] = frozenset()

    def rule(self, kind: ErrorKind) -> Rule:
        if kind in self.fallback_on:
            return _FALLBACK_ONLY
        return RULES[kind]

    def backoff(self, attempt: int, retry_after: float | None, uniform) -> float | None:
        """Seconds before retry number `attempt` (0-based), or None when waiting is not worth it."""
        if retry_after is not None:
            return retry_after if retry_after <= self.retry.max_wait_s else None
        return uniform(0.0, min(self.retry.max_s, self.retry.base_s * (2 ** attempt)))  # full jitter
