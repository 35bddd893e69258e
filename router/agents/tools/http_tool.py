"""HTTP tools declared in config: the validated arguments go to the operator's endpoint as JSON.

POST/PUT/PATCH/DELETE send the arguments as the JSON body; GET sends them as the query string
(scalar values only). The URL is the operator's, so it is not subject to the `http_fetch` SSRF
guard. A non-2xx answer is a tool error the model reads; a JSON answer is passed on parsed.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from ...config.agents import AgentHttpToolConfig
from .base import Tool, ToolError

MAX_RESPONSE_BYTES = 1024 * 1024


class HttpTools:
    """One client session for every configured HTTP tool (created lazily, closed with the app)."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(trust_env=False, cookie_jar=aiohttp.DummyCookieJar(),
                                                  headers={"user-agent": "switchboard-agent/1"})
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def tool(self, spec: AgentHttpToolConfig) -> Tool:
        async def run(args: dict[str, Any]) -> Any:
            return await self.call(spec, args)

        return Tool(spec.name, spec.description, spec.parameters, run, timeout_s=spec.timeout_s)

    async def call(self, spec: AgentHttpToolConfig, args: dict[str, Any]) -> Any:
        headers = dict(spec.headers)
        kwargs: dict[str, Any] = {}
        if spec.method == "GET":
            kwargs["params"] = {k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in args.items()}
        else:
            kwargs["data"] = orjson.dumps(args)
            headers.setdefault("content-type", "application/json")
        timeout = aiohttp.ClientTimeout(total=spec.timeout_s)
        try:
            async with self._client().request(spec.method, spec.url, headers=headers, timeout=timeout,
                                              **kwargs) as resp:
                body = await resp.content.read(MAX_RESPONSE_BYTES)
                status, content_type = resp.status, resp.content_type
        except aiohttp.ClientError as exc:
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
