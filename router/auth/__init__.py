"""Virtual keys, model allow-lists, budgets and RPM/TPM limits (atomic across instances with Redis).

Used by the request pipeline (router/pipeline/), per request and per model call:

    vk = await authenticator.authenticate(request)          # None when auth is off; 401 / 503
    vk.allows(name)                                         # every name and deployment (pipeline/policy.py)
    res = await limiter.admit(vk, est_tokens, est_cost)     # 429 / 402 / 503 (fail_closed)
    ... the model call ...
    await limiter.settle(res, real_tokens, real_cost_nanos)
"""

from .authenticate import Authenticator, bearer, require_admin
from .keys import (
    NANOS_PER_USD,
    ConfigKeyReadOnly,
    KeyExists,
    KeyStore,
    KeyStoreError,
    KeyStoreUnavailable,
    VirtualKey,
    hash_secret,
    parse_period,
    usd_to_nanos,
)
from .limits import UNLIMITED, Limiter, Reservation

__all__ = [
    "NANOS_PER_USD",
    "UNLIMITED",
    "Authenticator",
    "ConfigKeyReadOnly",
    "KeyExists",
    "KeyStore",
    "KeyStoreError",
    "KeyStoreUnavailable",
    "Limiter",
    "Reservation",
    "VirtualKey",
    "bearer",
    "hash_secret",
    "parse_period",
    "require_admin",
    "usd_to_nanos",
]
