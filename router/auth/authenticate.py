"""Who is calling: the virtual key of a request, the models it may use, and the admin check.

A client key is read from `Authorization: Bearer <key>`, or from `x-api-key: <key>` (what the
Anthropic SDK sends, so Anthropic-style clients work unchanged); Authorization wins when both are
present. Error messages never contain the key that was sent.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from ..config.schema import AuthConfig
from ..errors import ApiError
from .keys import KeyStore, KeyStoreUnavailable, VirtualKey

_CHALLENGE = {"www-authenticate": 'Bearer realm="switchboard"'}


def bearer(request: web.Request) -> str | None:
    """The token of `Authorization: Bearer …` ('' when the header is there but malformed)."""
    value = request.headers.get("Authorization")
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def require_admin(request: web.Request, admin_token: str | bytes | None) -> None:
    """403 when no admin token is configured; 401 unless `Authorization: Bearer <admin token>`."""
    if not admin_token:
        raise ApiError(403, "the admin API is disabled: set auth.admin_token to enable it",
                       code="admin_disabled", type="permission_error")
    expected = admin_token.encode("utf-8") if isinstance(admin_token, str) else admin_token
    token = bearer(request)
    if not token or not hmac.compare_digest(token.encode("utf-8"), expected):
        raise ApiError(401, "missing or invalid admin token", type="authentication_error",
                       code="invalid_admin_token", headers=dict(_CHALLENGE))


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, message, type="authentication_error", code="invalid_api_key", headers=dict(_CHALLENGE))


class Authenticator:
    def __init__(self, store: KeyStore, config: AuthConfig | None) -> None:
        self.store = store
        self.enabled = config is not None
        token = config.admin_token if config is not None else None
        self._admin_token = token.encode("utf-8") if token else None

    async def authenticate(self, request: web.Request) -> VirtualKey | None:
        """The caller's key; None when auth is not configured (open). 401 when missing or unknown."""
        if not self.enabled:
            return None
        secret = bearer(request)
        if secret is None:
            secret = request.headers.get("x-api-key")
            if secret is None:
                raise _unauthorized("missing API key: send it as 'Authorization: Bearer <key>'")
            secret = secret.strip()
        if not secret:
            raise _unauthorized("malformed Authorization header: expected 'Bearer <key>'")
        try:
            vk = await self.store.lookup(secret)
        except KeyStoreUnavailable:
            raise ApiError(503, "API keys cannot be checked right now; retry shortly", code="auth_unavailable",
                           headers={"retry-after": "1"}) from None
        if vk is None:
            raise _unauthorized("invalid API key")
        return vk

    def require_admin(self, request: web.Request) -> None:
        require_admin(request, self._admin_token)
