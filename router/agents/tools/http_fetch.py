"""The `http_fetch` built-in: GET a URL for the model, with an SSRF guard that refuses before connecting.

Rules (`agent_settings.http_fetch`):
- GET only, `http`/`https` only, no credentials in the URL.
- The host must match `allowed_hosts` (`example.com`, `*.example.com`, or `*` for any host); the
  default (empty) allows nothing.
- Every address the host stands for must be public unless it falls in an `allow_private` CIDR,
  checked before connecting and after DNS resolution (the guard in `guard.py`, shared with HTTP
  tools that follow redirects).
- Redirects are followed by hand, at most `max_redirects`, and every hop is checked the same way.
- The body is read up to `max_bytes` (the rest is cut), the whole fetch is bounded by `timeout_s`;
  no cookies, no proxy from the environment.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from yarl import URL

from ...config.agents import HttpFetchConfig
from .base import Tool, ToolError
from .guard import REDIRECTS, AddressGuard, FetchRefused, Resolve, check_url, guarded_session, refusal


class HttpFetcher:
    """Owns the guarded client session (created lazily in the running loop, closed with the app)."""

    def __init__(self, settings: HttpFetchConfig, resolve: Resolve | None = None) -> None:
        self.settings = settings
        self.guard = AddressGuard(settings.allowed_hosts, settings.allow_private)
        self._resolve = resolve
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = guarded_session(self.guard, self._resolve)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(self, url_text: str, max_bytes: int | None = None) -> dict[str, Any]:
        limit = min(max_bytes or self.settings.max_bytes, self.settings.max_bytes)
        try:
            url = URL(url_text)
        except (ValueError, TypeError):
            raise ToolError("the URL is not valid") from None
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s)
        try:
            for _ in range(self.settings.max_redirects + 1):
                url = check_url(url, self.guard)
                async with self._client().get(url, allow_redirects=False, timeout=timeout) as resp:
                    location = resp.headers.get("location")
                    if resp.status in REDIRECTS and location:
                        url = url.join(URL(location))
                        continue
                    body = await resp.content.read(limit + 1)
                    truncated = len(body) > limit
                    charset = resp.charset or "utf-8"
                    return {"url": str(url), "status": resp.status, "content_type": resp.content_type,
                            "truncated": truncated, "content": body[:limit].decode(charset, "replace")}
        except FetchRefused as exc:
            raise ToolError(f"refused: {exc}") from None
        except aiohttp.ClientConnectorError as exc:
            refused = refusal(exc)
            if refused is not None:
                raise ToolError(f"refused: {refused}") from None
            raise ToolError(f"could not connect to {url.host}") from None
        except (aiohttp.ClientError, LookupError) as exc:
            raise ToolError(f"the request failed ({type(exc).__name__})") from None
        except TimeoutError:
            raise ToolError(f"no answer within {self.settings.timeout_s:g}s") from None
        raise ToolError(f"more than {self.settings.max_redirects} redirects")

    def tool(self) -> Tool:
        async def run(args: dict[str, Any]) -> dict[str, Any]:
            return await self.fetch(args["url"], args.get("max_bytes"))

        return Tool("http_fetch", "Fetch a web page or API response with HTTP GET (allow-listed hosts only). "
                    "Returns status, content type and the body as text (cut at a size limit).",
                    {"type": "object", "properties": {
                        "url": {"type": "string", "description": "absolute http(s) URL"},
                        "max_bytes": {"type": "integer", "minimum": 1, "description": "cut the body here"}},
                     "required": ["url"], "additionalProperties": False},
                    run, timeout_s=self.settings.timeout_s + 1.0)
