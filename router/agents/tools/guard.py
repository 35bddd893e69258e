"""The SSRF guard: refuse a destination *before* any connection is made to it.

Shared by `http_fetch` (every URL and every redirect hop) and by HTTP tools that follow redirects
(every hop that leaves the configured origin), so there is one definition of "not public":
loopback, private (RFC 1918, ULA), link-local (169.254.0.0/16 with the cloud metadata service),
CGNAT, multicast, reserved and unspecified addresses, and IPv4-mapped IPv6 forms of them, unless an
address falls in an `allow_private` CIDR.

An IP literal is checked before the request (`check_url`); a host name is checked by the
connector's resolver (`GuardedResolver`) *after* DNS resolution, and the connection goes to exactly
the addresses checked: no second lookup a rebinding DNS server could answer differently.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

REDIRECTS = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "switchboard-agent/1"
Resolve = Callable[[str, int, int], Awaitable[list[ResolveResult]]]


class FetchRefused(OSError):
    """The SSRF guard refused a destination (an OSError so aiohttp's connector passes it through)."""


class AddressGuard:
    """Which hosts may be named (`allowed_hosts`) and which addresses may be reached (public + `allow_private`)."""

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


def check_shape(url: URL) -> None:
    """http(s) only, a host, and no credentials in the URL (they would be sent as basic auth)."""
    if url.scheme not in ("http", "https"):
        raise FetchRefused(f"scheme '{url.scheme}' is not allowed (http and https only)")
    if not url.host:
        raise FetchRefused("the URL has no host")
    if url.user or url.password:
        raise FetchRefused("credentials in the URL are not allowed")


def check_url(url: URL, guard: AddressGuard) -> URL:
    """Everything that can be refused before the request: the URL's shape, its host, an IP literal.
    (aiohttp does not call the resolver for an IP literal, so it is checked here.)"""
    check_shape(url)
    assert url.host is not None
    guard.check_host(url.host)
    if is_ip_literal(url.host):
        guard.check_ip(url.host)
    return url


def refusal(exc: aiohttp.ClientConnectorError) -> FetchRefused | None:
    """The guard's refusal inside a connection error (raised by `GuardedResolver`), if that is its cause."""
    cause = exc.os_error if isinstance(exc.os_error, FetchRefused) else exc.__cause__
    return cause if isinstance(cause, FetchRefused) else None


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


def guarded_session(guard: AddressGuard, resolve: Resolve | None = None) -> aiohttp.ClientSession:
    """A client session whose every connection passes `guard` after DNS: no DNS cache (each request is
    resolved and checked afresh), no kept-alive connections, no cookies, no proxy from the environment."""
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(guard, resolve), use_dns_cache=False,
                                     force_close=True)
    return aiohttp.ClientSession(connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar(),
                                 headers={"user-agent": USER_AGENT})
