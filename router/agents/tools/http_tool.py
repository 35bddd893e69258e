"""HTTP tools declared in config: the validated arguments go to the operator's endpoint as JSON.

POST/PUT/PATCH/DELETE send the arguments as the JSON body; GET sends them as the query string
(scalar values only). A non-2xx answer is a tool error the model reads; a JSON answer is passed on
parsed.

Redirects. A tool's `headers` usually carry a secret for its endpoint, so a redirect is never
followed blindly:
- By default (`follow_redirects: false`) a 3xx with a `Location` is a tool error naming where the
  endpoint pointed (scheme, host, port and path only: no query string, no credentials).
- With `follow_redirects: true` redirects are followed by hand, at most `max_redirects`. A 303, and
  a 301/302 answering a POST, become a GET without a body (as browsers do); 307/308 repeat the
  request. As soon as a hop leaves the configured URL's origin (scheme, host, port) the configured
  `headers` are dropped, and they stay dropped for the rest of the chain, even if it comes back:
  a third party must not be able to steer a credentialed request to the endpoint.

What the SSRF guard covers, and why. The configured URL is the operator's and is trusted: it may
well be a private service (`http://orders.internal/...`), so neither the first hop nor a later hop
on that same origin is checked (the operator named that origin; checking it again on a redirect
would only break `/lookup` -> `/lookup/`). Every hop on any *other* origin was chosen by the
endpoint's answer, not by the operator, and passes exactly the guard of `http_fetch` (`guard.py`):
http(s) only, no credentials in the URL, and only public addresses, checked before connecting and
after DNS resolution, with the CIDRs of `agent_settings.http_fetch.allow_private` exempt (the one
place that lists the private networks agent traffic may reach). `http_fetch.allowed_hosts` is not
applied: it scopes the URLs the *model* may ask for, and here the operator opted into the redirect.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import orjson
from yarl import URL

from ...config.agents import AgentHttpToolConfig
from .base import Tool, ToolError
from .guard import (
    REDIRECTS,
    USER_AGENT,
    AddressGuard,
    FetchRefused,
    Resolve,
    check_shape,
    check_url,
    guarded_session,
    refusal,
)

MAX_RESPONSE_BYTES = 1024 * 1024


def origin(url: URL) -> tuple[str, str, int | None]:
    return url.scheme, (url.host or "").lower().rstrip("."), url.port


def shown(url: URL) -> str:
    """A redirect target as the model may read it: no credentials, no query string, no fragment."""
    bare = url.with_query(None).with_fragment(None)
    text = str(bare.with_user(None) if bare.host else bare)  # drops the password too
    return text if len(text) <= 300 else text[:300] + "…"


@dataclass(frozen=True, slots=True)
class Hop:
    """One request of a redirect chain."""

    method: str
    url: URL
    data: bytes | None
    credentialed: bool  # still on the configured origin since the start: the configured headers are sent

    def headers(self, spec: AgentHttpToolConfig) -> dict[str, str]:
        out = dict(spec.headers) if self.credentialed else {}
        if self.data is not None:
            out.setdefault("content-type", "application/json")
        return out

    def redirected(self, status: int, target: URL, start: tuple[str, str, int | None]) -> Hop:
        method, data = self.method, self.data
        if status == 303 or (status in (301, 302) and method == "POST"):
            method, data = "GET", None
        return replace(self, method=method, url=target, data=data,
                       credentialed=self.credentialed and origin(target) == start)


def first_hop(spec: AgentHttpToolConfig, args: dict[str, Any]) -> Hop:
    url = URL(spec.url)
    if spec.method == "GET":
        query = {k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in args.items()}
        return Hop("GET", url.extend_query(query) if query else url, None, True)
    return Hop(spec.method, url, orjson.dumps(args), True)


class HttpTools:
    """The client sessions of every configured HTTP tool (created lazily, closed with the app): a plain
    one for the configured origins and a guarded one for redirect hops anywhere else."""

    def __init__(self, guard: AddressGuard | None = None, resolve: Resolve | None = None) -> None:
        self.guard = guard or AddressGuard(["*"], [])
        self._resolve = resolve
        self._session: aiohttp.ClientSession | None = None
        self._guarded: aiohttp.ClientSession | None = None

    def _client(self, trusted: bool) -> aiohttp.ClientSession:
        if trusted:
            if self._session is None or self._session.closed:
                self._session = aiohttp.ClientSession(trust_env=False, cookie_jar=aiohttp.DummyCookieJar(),
                                                      headers={"user-agent": USER_AGENT})
            return self._session
        if self._guarded is None or self._guarded.closed:
            self._guarded = guarded_session(self.guard, self._resolve)
        return self._guarded

    async def close(self) -> None:
        for session in (self._session, self._guarded):
            if session is not None:
                await session.close()
        self._session = self._guarded = None

    def tool(self, spec: AgentHttpToolConfig) -> Tool:
        async def run(args: dict[str, Any]) -> Any:
            return await self.call(spec, args)

        return Tool(spec.name, spec.description, spec.parameters, run, timeout_s=spec.timeout_s)

    async def call(self, spec: AgentHttpToolConfig, args: dict[str, Any]) -> Any:
        hop = first_hop(spec, args)
        start = origin(hop.url)
        timeout = aiohttp.ClientTimeout(total=spec.timeout_s)
        redirects = 0
        try:
            while True:
                trusted = origin(hop.url) == start
                if redirects and trusted:
                    check_shape(hop.url)
                elif redirects:
                    check_url(hop.url, self.guard)
                async with self._client(trusted).request(hop.method, hop.url, headers=hop.headers(spec),
                                                         data=hop.data, allow_redirects=False,
                                                         timeout=timeout) as resp:
                    status, location = resp.status, resp.headers.get("location")
                    if status not in REDIRECTS or not location:
                        body = await resp.content.read(MAX_RESPONSE_BYTES)
                        content_type = resp.content_type
                        break
                    target = resp.url.join(URL(location))
                if not spec.follow_redirects:
                    raise ToolError(f"{spec.name}: the endpoint redirected (HTTP {status}) to {shown(target)};"
                                    " this tool does not follow redirects")
                redirects += 1
                if redirects > spec.max_redirects:
                    raise ToolError(f"{spec.name}: more than {spec.max_redirects} redirects (the last to "
                                    f"{shown(target)})")
                hop = hop.redirected(status, target, start)
        except FetchRefused as exc:
            raise ToolError(f"{spec.name}: refused the redirect to {shown(hop.url)}: {exc}") from None
        except aiohttp.ClientConnectorError as exc:
            refused = refusal(exc)
            if refused is not None:
                raise ToolError(f"{spec.name}: refused the redirect to {shown(hop.url)}: {refused}") from None
            raise ToolError(f"{spec.name}: the request failed ({type(exc).__name__})") from None
        except (aiohttp.ClientError, ValueError) as exc:
            raise ToolError(f"{spec.name}: the request failed ({type(exc).__name__})") from None
        text = body.decode("utf-8", "replace")
        if status >= 300:
            raise ToolError(f"{spec.name}: HTTP {status}: {text[:500]}")
        if content_type == "application/json" or content_type.endswith("+json"):
            try:
                return orjson.loads(body)
            except orjson.JSONDecodeError:
                pass
        return text
