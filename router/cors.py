"""CORS: which web pages on other origins may call the gateway from a browser (`server.cors`).

Off unless configured. When on, a preflight (`OPTIONS` with `Access-Control-Request-Method`) from
an allowed origin is answered 204 with the allowed methods, headers and max age, before routing or
authentication (a browser sends no credentials with a preflight); every response to an allowed
origin (JSON, errors, event streams) carries `Access-Control-Allow-Origin` and the exposed
headers. A disallowed origin gets no CORS header at all, so its browser refuses to hand the page
the answer. The admin API takes part only with `cors.admin: true`.

CORS protects browser users, not the gateway: a page can only make the "simple" requests (form,
text or multipart bodies, no custom headers) without a preflight, and the JSON APIs refuse those
(415), so what a page from a disallowed origin can spend is nothing.
"""

from __future__ import annotations

from aiohttp import web
from yarl import URL

from .config.schema import CorsConfig

# Response headers a page may read (what clients use: request id, cache, rate limits, sessions).
EXPOSED = ("x-request-id", "x-switchboard-cache", "x-session-id", "retry-after", "x-ratelimit-limit-requests",
           "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests", "x-ratelimit-limit-tokens",
           "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens", "x-vercel-ai-ui-message-stream")
ADMIN_PREFIX = "/admin/"


class Cors:
    def __init__(self, config: CorsConfig) -> None:
        self.any_origin = "*" in config.allow_origins
        self.origins = frozenset(normalise(o) for o in config.allow_origins if o != "*")
        self.credentials = config.allow_credentials
        self.reflect_headers = "*" in config.allow_headers
        self.headers = ", ".join(h.lower() for h in config.allow_headers if h != "*")
        self.methods = ", ".join(m.upper() for m in config.allow_methods)
        self.max_age = str(config.max_age_s)
        self.admin = config.admin
        self.expose = ", ".join(EXPOSED)

    def allowed(self, request: web.BaseRequest) -> str | None:
        """The value of `Access-Control-Allow-Origin` for this request, or None (no CORS headers)."""
        origin = request.headers.get("origin")
        if not origin or (not self.admin and request.path.startswith(ADMIN_PREFIX)):
            return None
        if normalise(origin) in self.origins:
            return origin
        return "*" if self.any_origin else None  # (`*` with credentials is refused by the config)

    def _common(self, allow: str) -> dict[str, str]:
        out = {"access-control-allow-origin": allow, "vary": "Origin"}
        if self.credentials:
            out["access-control-allow-credentials"] = "true"
        return out

    @web.middleware
    async def preflight(self, request: web.Request, handler) -> web.StreamResponse:
        """Answer preflights; everything else goes on (its headers are added in `on_prepare`)."""
        if request.method != "OPTIONS" or "access-control-request-method" not in request.headers:
            return await handler(request)
        allow = self.allowed(request)
        if allow is None:
            return web.Response(status=204, headers={"vary": "Origin"})  # no grant: the browser refuses
        headers = {**self._common(allow), "access-control-allow-methods": self.methods,
                   "access-control-max-age": self.max_age}
        asked = request.headers.get("access-control-request-headers")
        if self.reflect_headers and asked:
            headers["access-control-allow-headers"] = asked
        elif self.headers:
            headers["access-control-allow-headers"] = self.headers
        return web.Response(status=204, headers=headers)

    async def on_prepare(self, request: web.BaseRequest, response: web.StreamResponse) -> None:
        """`on_response_prepare`: CORS headers on every answer to an allowed origin, streams included;
        `Vary: Origin` on every answer (a shared cache must not hand one origin's answer to another)."""
        vary = response.headers.get("vary")
        if not vary:
            response.headers["vary"] = "Origin"
        elif "origin" not in vary.lower():
            response.headers["vary"] = f"{vary}, Origin"
        if request.method == "OPTIONS":
            return  # a preflight carries its own grant
        allow = self.allowed(request)
        if allow is not None:
            response.headers["access-control-allow-origin"] = allow
            if self.credentials:
                response.headers["access-control-allow-credentials"] = "true"
            response.headers["access-control-expose-headers"] = self.expose


def normalise(origin: str) -> str:
    """An origin as browsers send it: lower-case scheme and host, no default port, no trailing `/`."""
    try:
        url = URL(origin.rstrip("/"))
    except ValueError:
        return origin
    if not url.scheme or not url.host:
        return origin
    port = "" if url.is_default_port() else f":{url.port}"
    return f"{url.scheme.lower()}://{url.host.lower()}{port}"
