"""MCP servers a request names (an inline agent's `mcp_servers`), behind the SSRF guard.

The operator's servers (`mcp.servers`) are trusted as configured. A server a request names is not:
its host must be in `mcp.request_servers.allowed_hosts` and every address it resolves to must be
public (or in `allow_private`), exactly the guard of `http_fetch`. The URL is checked before
anything is sent (a 400 naming the member), and the connections the SDK makes go through a network
backend that resolves, checks and then connects to exactly the checked addresses, so a rebinding
DNS server gets no second lookup. TLS still verifies the certificate against the host name.

Such a server lives for one request: connected when the run starts, closed when the response is over.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable
from typing import Any

from yarl import URL

from ...config.mcp import SERVER_NAME, McpServerConfig, RequestServersConfig
from ...errors import ApiError
from .guard import AddressGuard, FetchRefused, GuardedResolver, Resolve, check_url
from .mcp import McpServer

_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,64}$")
MAX_HEADERS = 16


def parse_servers(value: Any, policy: RequestServersConfig, param: str) -> tuple[tuple[str, McpServerConfig], ...]:
    """(name, config) of each server a request names; 400 naming the member that is wrong."""
    if value is None:
        return ()
    if not policy.allowed_hosts:
        raise ApiError(400, "this router takes no MCP servers from requests (mcp.request_servers.allowed_hosts)",
                       param=param, code="request_mcp_disabled")
    if not isinstance(value, list) or not 1 <= len(value) <= policy.max_servers:
        raise ApiError(400, f"'{param}' must be an array of 1 to {policy.max_servers} servers", param=param,
                       code="invalid_value")
    out: list[tuple[str, McpServerConfig]] = []
    for i, spec in enumerate(value):
        at = f"{param}[{i}]"
        if not isinstance(spec, dict) or set(spec) - {"name", "url", "headers", "allowed_tools"}:
            raise ApiError(400, f"'{at}' must be an object of name, url, headers and allowed_tools", param=at,
                           code="invalid_value")
        name, url, headers, allowed = spec.get("name", f"mcp{i}"), spec.get("url"), spec.get("headers") or {}, \
            spec.get("allowed_tools")
        if not isinstance(name, str) or not re.match(SERVER_NAME, name) or name in (n for n, _ in out):
            raise ApiError(400, f"'{at}.name' must be 1-32 letters, digits or '_', unique", param=f"{at}.name",
                           code="invalid_value")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 2048:
            raise ApiError(400, f"'{at}.url' must be an http(s) URL", param=f"{at}.url", code="invalid_value")
        if not isinstance(headers, dict) or len(headers) > MAX_HEADERS or not all(
                isinstance(k, str) and _HEADER_NAME.match(k) and isinstance(v, str) and len(v) <= 4096
                and "\n" not in v and "\r" not in v for k, v in headers.items()):
            raise ApiError(400, f"'{at}.headers' must be an object of at most {MAX_HEADERS} string headers",
                           param=f"{at}.headers", code="invalid_value")
        if allowed is not None and not (isinstance(allowed, list) and len(allowed) <= 256
                                        and all(isinstance(t, str) and t for t in allowed)):
            raise ApiError(400, f"'{at}.allowed_tools' must be an array of tool names or globs",
                           param=f"{at}.allowed_tools", code="invalid_value")
        out.append((name, McpServerConfig(url=url, headers=headers, allowed_tools=allowed)))
    return tuple(out)


class RequestServers:
    """Opens the servers of one request through the guard, and closes them."""

    def __init__(self, policy: RequestServersConfig, resolve: Resolve | None = None) -> None:
        self.guard = AddressGuard(policy.allowed_hosts, policy.allow_private)
        self.resolve = resolve

    async def open(self, specs: Iterable[tuple[str, McpServerConfig]], param: str) -> list[McpServer]:
        """Every server connected and its tools listed; 400 when the guard refuses one, 502 when one cannot
        be reached (nothing stays open then)."""
        servers: list[McpServer] = []
        resolver = GuardedResolver(self.guard, self.resolve)
        try:
            for i, (name, config) in enumerate(specs):
                assert config.url is not None
                try:
                    url = check_url(URL(config.url), self.guard)
                    assert url.host is not None
                    await resolver.resolve(url.host, url.port or 0)
                except (FetchRefused, ValueError) as exc:
                    raise ApiError(400, f"MCP server '{name}' is refused: {exc}", param=f"{param}[{i}].url",
                                   code="mcp_server_refused") from None
                servers.append(McpServer(name, config, http_client=self._client_factory()))
            await asyncio.gather(*(s.start() for s in servers))
            down = next((s for s in servers if s.state != "up"), None)
            if down is not None:
                raise ApiError(502, f"MCP server '{down.name}' cannot be reached: {down.error or 'no answer'}",
                               param=param, code="mcp_server_unavailable")
        except BaseException:
            await close_all(servers)
            raise
        finally:
            await resolver.close()
        return servers

    def _client_factory(self) -> Callable[[dict[str, str]], Any]:
        guard, resolve = self.guard, self.resolve

        def make(headers: dict[str, str]) -> Any:
            import httpx2

            transport = httpx2.AsyncHTTPTransport(trust_env=False)
            # The pool's connections go through the guard (httpx2 has no public hook for this).
            transport._pool._network_backend = _GuardedBackend(guard, resolve)
            return httpx2.AsyncClient(headers=headers, transport=transport, trust_env=False, follow_redirects=False,
                                      timeout=httpx2.Timeout(30.0, read=300.0))

        return make


class _GuardedBackend:
    """An httpcore2 network backend: resolve, check every address, connect to a checked one."""

    def __init__(self, guard: AddressGuard, resolve: Resolve | None) -> None:
        import httpcore2

        self._inner = httpcore2.AnyIOBackend()
        self._resolver = GuardedResolver(guard, resolve)

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Any = None) -> Any:
        results = await self._resolver.resolve(host, port)
        failure: Exception | None = None
        for result in results:
            try:
                return await self._inner.connect_tcp(result["host"], port, timeout, local_address, socket_options)
            except Exception as exc:  # httpcore2.ConnectError, OSError: try the next checked address
                failure = exc
        raise failure or FetchRefused(f"host '{host}' has no address")

    async def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:
        raise FetchRefused("unix sockets are not reachable from a request")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


async def close_all(servers: Iterable[McpServer]) -> None:
    await asyncio.gather(*(s.close() for s in servers), return_exceptions=True)
