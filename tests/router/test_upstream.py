"""The transport's stream bodies against a real HTTP server: the idle timeout, kept by one sweep.

A stream body's idle timeout is not aiohttp's per-read timer but `IdleWatch`: it must fire when the
vendor goes silent mid-stream, and must not when the vendor has sent everything and it is the
reader (the client behind it) that is slow.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web

from providers import ErrorKind, HttpRequest, UpstreamError
from router.config import TimeoutsConfig
from router.upstream import Transport

IDLE_S = 0.3


async def _serve(handler) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/stream", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}/stream"


def _chunks(stall_after: int, stall_s: float, count: int = 4):
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        try:
            for i in range(count):
                if i == stall_after:
                    await asyncio.sleep(stall_s)
                await response.write(b"data: %d\n\n" % i)
            await response.write_eof()
        except ConnectionError:  # the router gave up on this stream and closed it
            pass
        return response
    return handler


@pytest.fixture
async def transport():
    t = Transport({"up": TimeoutsConfig(connect_s=2, first_byte_s=5, idle_s=IDLE_S, total_s=30)})
    await t.start()
    yield t
    await t.close()


async def _read(transport: Transport, url: str, pause_s: float = 0.0) -> list[bytes]:
    resp = await transport.open("up", HttpRequest("POST", url, {}, b"{}"))
    got = []
    try:
        async for data in resp.iter_chunks():
            got.append(data)
            await asyncio.sleep(pause_s)
    finally:
        resp.release()
    return got


async def test_a_vendor_silent_mid_stream_times_out(transport):
    runner, url = await _serve(_chunks(stall_after=2, stall_s=2.0))
    try:
        started = time.monotonic()
        with pytest.raises(UpstreamError) as caught:
            await _read(transport, url)
        waited = time.monotonic() - started
    finally:
        await runner.cleanup()
    assert caught.value.kind is ErrorKind.TIMEOUT and "reading the stream" in caught.value.message
    assert IDLE_S <= waited < IDLE_S + 1.5  # one sweep period late at most (plus a loaded machine)
    assert not transport._idle._streams  # the stream is no longer watched


async def test_a_slow_reader_is_not_an_idle_vendor(transport):
    """Everything was sent at once; the reader takes 3 idle periods per chunk: no timeout."""
    runner, url = await _serve(_chunks(stall_after=-1, stall_s=0.0))
    try:
        got = await _read(transport, url, pause_s=3 * IDLE_S)
    finally:
        await runner.cleanup()
    assert b"".join(got) == b"data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\n"
    assert not transport._idle._streams


async def test_pauses_shorter_than_the_idle_timeout_pass(transport):
    runner, url = await _serve(_chunks(stall_after=1, stall_s=IDLE_S / 2))
    try:
        got = await _read(transport, url)
    finally:
        await runner.cleanup()
    assert b"".join(got).count(b"data:") == 4
