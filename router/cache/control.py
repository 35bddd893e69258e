"""Per-request cache control: what the client's headers allow, and how the outcome is reported.

Request headers:
- `Cache-Control: no-cache`  - do not look up (the fresh answer is still stored for others).
- `Cache-Control: no-store`  - neither look up nor store.
- `Cache-Control: max-age=N` - accept a stored answer only if it is at most N seconds old
  (`max-age=0` therefore behaves like `no-cache`). Malformed or unknown directives are ignored,
  as HTTP caches do: a client library's stray header must not turn into a 400.
- `x-switchboard-cache-ttl: N` - keep the answer N seconds instead of `cache.ttl_s`; `0` means do
  not store. This header is ours, so a bad value is a 400 naming it.

The outcome goes to the response header `x-switchboard-cache` (`hit|miss|bypass`) and to
`extra_fields.cache.status` (the same, or `off` when no cache is configured).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

from ..errors import ApiError

STATUS_HEADER = "x-switchboard-cache"
TTL_HEADER = "x-switchboard-cache-ttl"
MAX_TTL_S = 365 * 24 * 3600.0  # larger is almost surely a unit mistake (ms for s)

HIT = "hit"
MISS = "miss"
BYPASS = "bypass"
OFF = "off"  # extra_fields only: no cache configured (no header is sent then)


@dataclass(frozen=True, slots=True)
class CacheDirective:
    """What one request may do with the cache."""

    lookup: bool  # serve a stored answer if there is one
    store: bool  # store the fresh answer
    ttl_s: float  # how long a stored answer lives
    max_age_s: float | None = None  # a stored answer older than this is not served

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], default_ttl_s: float) -> CacheDirective:
        """Read `Cache-Control` and `x-switchboard-cache-ttl`; raise `ApiError(400)` on a bad TTL.

        `headers` is looked up with lower-case names: pass aiohttp's (case-insensitive) headers.
        """
        lookup = store = True
        max_age: float | None = None
        for directive in _directives(_all(headers, "cache-control")):
            name, _, arg = directive.partition("=")
            name = name.strip()
            if name == "no-cache":
                lookup = False
            elif name == "no-store":
                lookup = store = False
            elif name == "max-age":
                age = _seconds(arg.strip().strip('"'))
                if age is not None:
                    max_age = age if max_age is None else min(max_age, age)
        if max_age == 0:
            lookup = False
        ttl = default_ttl_s
        raw = headers.get(TTL_HEADER)
        if raw is not None:
            ttl = parse_ttl(raw)
            if ttl == 0:
                store = False
        return cls(lookup=lookup, store=store, ttl_s=ttl, max_age_s=max_age)

    def without_lookup(self) -> CacheDirective:
        """The same directive with lookup off (the request needs something no stored entry has)."""
        return replace(self, lookup=False)

    @property
    def status_on_miss(self) -> str:
        """The status to report when the answer came from upstream: `bypass` if lookup was skipped."""
        return MISS if self.lookup else BYPASS

    def fresh_enough(self, stored_at: float, now: float | None = None) -> bool:
        """Whether an entry stored at `stored_at` (epoch seconds) satisfies `max-age`."""
        if self.max_age_s is None:
            return True
        return (time.time() if now is None else now) - stored_at <= self.max_age_s


def parse_ttl(raw: str) -> float:
    """`x-switchboard-cache-ttl`: seconds, a finite number in [0, one year]."""
    try:
        ttl = float(raw.strip())
    except ValueError:
        ttl = math.nan
    if not math.isfinite(ttl) or ttl < 0 or ttl > MAX_TTL_S:
        raise ApiError(400, f"{TTL_HEADER} must be a number of seconds between 0 and {int(MAX_TTL_S)}; "
                            f"got {raw[:40]!r}", param=TTL_HEADER, code="invalid_header")
    return ttl


def status_headers(status: str) -> dict[str, str]:
    """The response header for `status`; none when the cache is off."""
    return {} if status == OFF else {STATUS_HEADER: status}


def _all(headers: Mapping[str, str], name: str) -> str:
    """Every `name` header joined with commas (a client may send Cache-Control twice)."""
    getall = getattr(headers, "getall", None)
    if getall is not None:
        return ",".join(getall(name, ()))
    return headers.get(name, "")


def _directives(value: str) -> list[str]:
    return [d.strip().lower() for d in value.split(",") if d.strip()]


def _seconds(arg: str) -> float | None:
    """A delta-seconds value (non-negative integer per RFC 9111), or None when malformed."""
    return float(arg) if arg.isdigit() else None
