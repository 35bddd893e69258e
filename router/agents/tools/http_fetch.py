"""The `http_fetch` built-in: GET a URL for the model, with an SSRF guard that refuses before connecting.

Rules (`agent_settings.http_fetch`):
- GET only, `http`/`https` only, no credentials in the URL.
- The host must match `allowed_hosts` (`example.com`, `*.example.com`, or `*` for any host); the
  default (empty) allows nothing.
- Every address the host stands for must be public: loopback, private (RFC 1918, ULA), link-local
  (169.254.0.0/16 with the cloud metadata service), CGNAT, multicast, reserved and unspecified
  addresses are refused, as are IPv4-mapped IPv6 forms of them, unless an address falls in an
  `allow_private` CIDR. An IP literal is checked before the request; a host name is checked by the
  connector's resolver *after* DNS resolution and the connection goes to exactly the addresses
  checked (no second lookup a rebinding DNS server could answer differently).
- Redirects are followed by hand, at most `max_redirects`, and every hop is checked the same way.
- The body is read up to `max_bytes` (the rest is cut), the whole fetch is bounded by `timeout_s`;
  no cookies, no proxy from the environment.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from ...config.agents import HttpFetchConfig
from .base import Tool, ToolError

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
Resolve = Callable[[str, int, int], Awaitable[list[ResolveResult]]]


class FetchRefused(OSError):
    """The SSRF guard refused a destination (an OSError so aiohttp's connector passes it through)."""


class AddressGuard:
    def __init__(self, allowed_hosts: list[str], allow_private: list[str]) -> None:
        self.allowed = [h.lower().rstrip(".") for h in allowed_hosts]
        self.private_ok = [ipaddress.ip_network(c, strict=False) for c in allow_private]

    def check_host(self, host: str) -> None:
        host = host.lower().rstrip(".")
        for pattern in self.allowed:
            if pattern == "*" or pattern == host or (pattern.startswith("*.") and host.endswith(pattern[1:])):
                return
        raise FetchRefused(f"host '{host}' is not in the allowed hosts of http_fetch")

    def check_ip(self, text: str) -> None:
        try:
            ip = ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError:
            raise FetchRefused(f"'{text}' is not an IP address") from None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in net for net in self.private_ok):
            return
        if not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified or ip.is_link_local:
            raise FetchRefused(f"address {ip} is not public (loopback, private, link-local or reserved)")


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


class GuardedResolver(AbstractResolver):
    """Resolves with `resolve` (the system resolver by default) and refuses when any address is not allowed."""

    def __init__(self, guard: AddressGuard, resolve: Resolve | None = None) -> None:
        self.guard = guard
        self._resolve = resolve
        self._system: aiohttp.ThreadedResolver | None = None

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        if self._resolve is not None:
            results = await self._resolve(host, port, family)
        else:
            if self._system is None:
                self._system = aiohttp.ThreadedResolver()
            results = await self._system.resolve(host, port, family)
        if not results:
            raise FetchRefused(f"host '{host}' has no address")
        for result in results:
            self.guard.check_ip(result["host"])
        return results

    async def close(self) -> None:
        if self._system is not None:
            await self._system.close()


class HttpFetcher:
    """Owns the guarded client session (created lazily in the running loop, closed with the app)."""

    def __init__(self, settings: HttpFetchConfig, resolve: Resolve | None = None) -> None:
        self.settings = settings
        self.guard = AddressGuard(settings.allowed_hosts, settings.allow_private)
        self._resolve = resolve
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(resolver=GuardedResolver(self.guard, self._resolve),
                                             use_dns_cache=False, force_close=True)
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False,
                                                  cookie_jar=aiohttp.DummyCookieJar(),
                                                  headers={"user-agent": "switchboard-agent/1"})
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _checked(self, url: URL) -> URL:
        if url.scheme not in ("http", "https"):
            raise FetchRefused(f"scheme '{url.scheme}' is not allowed (http and https only)")
        if not url.host:
            raise FetchRefused("the URL has no host")
        if url.user or url.password:
            raise FetchRefused("credentials in the URL are not allowed")
        self.guard.check_host(url.host)
        if is_ip_literal(url.host):
            self.guard.check_ip(url.host)
        return url

    async def fetch(self, url_text: str, max_bytes: int | None = None) -> dict[str, Any]:
        limit = min(max_bytes or self.settings.max_bytes, self.settings.max_bytes)
        try:
            url = URL(url_text)
        except (ValueError, TypeError):
            raise ToolError("the URL is not valid") from None
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s)
        try:
            for _ in range(self.settings.max_redirects + 1):
                url = self._checked(url)
                async with self._client().get(url, allow_redirects=False, timeout=timeout) as resp:
                    location = resp.headers.get("location")
                    if resp.status in _REDIRECTS and location:
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
            cause = exc.os_error if isinstance(exc.os_error, FetchRefused) else exc.__cause__
            if isinstance(cause, FetchRefused):
                raise ToolError(f"refused: {cause}") from None
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
