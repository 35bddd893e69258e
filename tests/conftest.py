"""Shared fixtures: the fake vendor, a real router on a free port, and clients for both.

Imports: the repository root (for `router`, `providers`) and this `tests/` directory (for
`fakes.*`) are put on `sys.path` here, explicitly, so the suite runs from any working directory
without installing the package and without `__init__.py` files in the test folders.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from aiohttp.test_utils import TestServer

TESTS = Path(__file__).resolve().parent
for _path in (str(TESTS.parent), str(TESTS)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from fakes.openai_upstream import SECRET, FakeOpenAI  # noqa: E402

from router.app import build_app  # noqa: E402
from router.config import parse_config  # noqa: E402

WAIT_S = 10.0  # bound on any single request a test makes


async def _serve(app) -> tuple[TestServer, str]:
    """Serve `app` on a free loopback port in this test's event loop (cancelling handlers on disconnect,
    as `switchboard serve` does)."""
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    return server, str(server.make_url("")).rstrip("/")


@pytest.fixture
async def fake_openai():
    fake = FakeOpenAI()
    server, fake.url = await _serve(fake.app())
    yield fake
    await server.close()


@pytest.fixture
def refused_url() -> str:
    """A base URL on a loopback port nobody listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.fixture
async def make_router():
    """`await make_router(config_dict)` -> base URL of a router built from that config."""
    servers: list[TestServer] = []

    async def start(config: dict) -> str:
        server, url = await _serve(build_app(parse_config(config)))
        servers.append(server)
        return url

    yield start
    for server in servers:
        await server.close()


@pytest.fixture
async def openai_client():
    """`openai_client(base_url)` -> the official SDK's AsyncOpenAI pointed at the router."""
    clients: list[openai.AsyncOpenAI] = []

    def make(base_url: str, **kwargs: Any) -> openai.AsyncOpenAI:
        client = openai.AsyncOpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0, timeout=WAIT_S,
                                    **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    events: list[Any] = field(default_factory=list)  # SSE `data:` payloads, JSON-decoded except "[DONE]"

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def error(self) -> dict:
        """The OpenAI error object, after checking the body has exactly that shape."""
        body = self.json()
        assert set(body) <= {"error", "extra_fields"}, body
        assert set(body["error"]) == {"message", "type", "param", "code"}, body
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]
        return body["error"]


class RawClient:
    """Plain HTTP against the router. Every response is checked for leaked keys and tracebacks."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def request(self, method: str, url: str, *, json: Any = None, data: Any = None,
                      headers: dict[str, str] | None = None) -> RawResponse:
        if json is not None:
            data = orjson.dumps(json)
        if data is not None and not any(k.lower() == "content-type" for k in headers or {}):
            headers = {"content-type": "application/json", **(headers or {})}  # raw bytes, declared JSON
        async with asyncio.timeout(WAIT_S), self.session.request(method, url, data=data, headers=headers) as resp:
            body = await resp.read()
            out = RawResponse(resp.status, dict(resp.headers), body)
        if resp.content_type == "text/event-stream":
            out.events = parse_sse(body)
        assert_clean(out)
        return out

    async def post(self, url: str, **kwargs: Any) -> RawResponse:
        return await self.request("POST", url, **kwargs)


def parse_sse(body: bytes) -> list[Any]:
    events = []
    for block in body.replace(b"\r\n", b"\n").split(b"\n\n"):
        data = [line[6:] if line.startswith(b"data: ") else line[5:]
                for line in block.split(b"\n") if line.startswith(b"data:")]
        if data:
            payload = b"\n".join(data)
            events.append("[DONE]" if payload == b"[DONE]" else orjson.loads(payload))
    return events


def assert_clean(resp: RawResponse) -> None:
    """No provider key in any header or body; no Python traceback in any body."""
    everything = resp.body.decode("utf-8", "replace") + "\n".join(f"{k}: {v}" for k, v in resp.headers.items())
    assert SECRET not in everything
    assert "Traceback" not in everything and 'File "' not in everything


@pytest.fixture
def access_lines():
    """The access log's lines of this test (`support.access_lines.Lines`)."""
    from support.access_lines import Lines

    from router.access_log import LOGGER

    handler = Lines()
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


@pytest.fixture
async def raw():
    async with aiohttp.ClientSession() as session:
        yield RawClient(session)


# -- real Redis -----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def redis_server():
    """One private redis-server for the session (tests may kill and restart it)."""
    from support.redis_server import RedisServer

    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture
def redis_url(redis_server) -> str:
    """The session's Redis, running and emptied for this test."""
    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.start()
    redis_server.cli("flushall")
    return redis_server.url


@pytest.fixture(scope="session")
def redis_cluster():
    """A private Redis Cluster of 3 masters on loopback, started on first use."""
    from support.redis_server import RedisClusterServers

    cluster = RedisClusterServers().start()
    yield cluster
    cluster.cleanup()


# -- fake vendors ---------------------------------------------------------------------------------
def _fake_vendor(name: str, module: str, cls: str):
    """Fixture `name`: a fresh `fakes.<module>.<cls>`, served for the test, which fails on exit if the
    router sent it anything invalid (`fakes.base.serving`). Imported on first use: each fake needs its
    vendor's SDK."""

    @pytest.fixture(name=name)
    async def fixture():
        import importlib

        from fakes.base import serving

        fake_type = getattr(importlib.import_module(f"fakes.{module}"), cls)
        async with serving(fake_type()) as fake:
            yield fake

    return fixture


anthropic = _fake_vendor("anthropic", "anthropic_upstream", "FakeAnthropic")
gemini = _fake_vendor("gemini", "gemini_upstream", "FakeGemini")
bedrock = _fake_vendor("bedrock", "bedrock_upstream", "FakeBedrock")
cohere = _fake_vendor("cohere", "cohere_upstream", "FakeCohere")


class LogAudit(logging.Handler):
    """Every log record of the whole run, checked: no traceback and no key, whatever a test threw at
    the router (hostile input included). Client keys look like `sk-…` in every test config; the fake
    vendors' keys all hold `SECRET`."""

    KEY = re.compile(r"\bsk-[A-Za-z0-9][A-Za-z0-9_-]{2,}")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.problems: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a record that cannot format is not ours to judge
            return
        if record.exc_info or record.exc_text or "Traceback" in text:
            self.problems.append(f"{record.name}: a traceback: {text[:200]}")
        if self.KEY.search(text) or "SECRET" in text:  # client keys; the fake vendors' keys
            self.problems.append(f"{record.name}: a key in the log: {self.KEY.sub('sk-…', text)[:200]}")


@pytest.fixture(autouse=True, scope="session")
def _log_audit():
    audit = LogAudit()
    logging.getLogger().addHandler(audit)
    yield audit
    logging.getLogger().removeHandler(audit)
    assert not audit.problems, "log lines the router must never write:\n" + "\n".join(audit.problems[:20])


@pytest.fixture(autouse=True, scope="session")
def _quiet_access_log():
    """Access-log lines of in-process routers go nowhere (tests that read them attach their own handler)."""
    import logging

    logger = logging.getLogger("switchboard.access")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    yield


@pytest.fixture
async def make_conn():
    """`await make_conn(url, **redis_config)`: a started `RedisConn`, closed after the test."""
    from router.config.schema import RedisConfig
    from router.redis_conn import RedisConn

    conns: list[RedisConn] = []

    async def make(url: str, **kw: Any) -> RedisConn:
        conn = RedisConn(RedisConfig(url=url, **kw))
        await conn.start()
        conns.append(conn)
        return conn

    yield make
    for conn in conns:
        await conn.close()
