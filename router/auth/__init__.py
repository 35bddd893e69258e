"""Virtual keys, model allow-lists, budgets and RPM/TPM limits (atomic across instances with Redis).

Per request, in the handler (see each module for details):

    vk = await gw.authenticator.authenticate(request)        # None when auth is off; 401 / 503
    gw.authenticator.check_model(vk, body["model"])          # 403 model_not_allowed
    res = await gw.limiter.admit(vk, est_tokens, est_cost)   # 429 / 402 / 503 (fail_closed)
    try: ... upstream call ...
    finally: await gw.limiter.settle(res, real_tokens, real_cost_nanos)
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
