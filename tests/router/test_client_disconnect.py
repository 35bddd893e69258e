"""A client that hangs up must take the upstream request down with it (no orphaned vendor streams)."""

from __future__ import annotations

import asyncio

import aiohttp
from fakes.openai_upstream import Reply

USER = [{"role": "user", "content": "hi"}]
LONG = " ".join(f"word{i}" for i in range(200))  # 200 chunks at 50 ms: a 10 s stream if nobody hangs up
CANCEL_WITHIN_S = 5.0
BODY = {"model": "up/gpt-4o-mini", "messages": USER, "fallbacks": ["second/gpt-4o-mini"]}


async def start(fake_openai, make_router) -> str:
    providers = {name: fake_openai.provider(name) for name in ("up", "second")}
    return await make_router({"providers": providers})


async def assert_upstream_cancelled(fake_openai) -> None:
    async with asyncio.timeout(CANCEL_WITHIN_S):
        await fake_openai.aborted.wait()
    assert fake_openai.completed == 0
    await asyncio.sleep(0.1)  # give a (wrong) retry or fallback the chance to show up
    assert len(fake_openai.calls("up")) == 1 and fake_openai.calls("second") == []  # no retry, no fallback


async def test_disconnect_mid_stream_cancels_upstream(fake_openai, make_router):
    url = await start(fake_openai, make_router) + "/v1/chat/completions"
    fake_openai.queue("up", Reply(text=LONG, chunk_delay_s=0.05))
    async with aiohttp.ClientSession() as session, asyncio.timeout(CANCEL_WITHIN_S):
        resp = await session.post(url, json={**BODY, "stream": True})
        assert resp.status == 200
        first = await resp.content.readuntil(b"\n\n")
        assert first.startswith(b"data: {")
        resp.close()  # hang up mid-stream
    await assert_upstream_cancelled(fake_openai)


async def test_sdk_closing_a_stream_cancels_upstream(fake_openai, make_router, openai_client):
    client = openai_client(await start(fake_openai, make_router))
    fake_openai.queue("up", Reply(text=LONG, chunk_delay_s=0.05))
    async with asyncio.timeout(CANCEL_WITHIN_S):
        stream = await client.chat.completions.create(model="up/gpt-4o-mini", messages=USER, stream=True,
                                                      extra_body={"fallbacks": BODY["fallbacks"]})
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break
        await stream.close()
    await assert_upstream_cancelled(fake_openai)


async def test_disconnect_while_waiting_for_first_byte_cancels_upstream(fake_openai, make_router):
    url = await start(fake_openai, make_router) + "/v1/chat/completions"
    fake_openai.queue("up", Reply(delay_s=10))
    async with aiohttp.ClientSession() as session:
        request = asyncio.ensure_future(session.post(url, json=BODY))
        async with asyncio.timeout(CANCEL_WITHIN_S):
            while not fake_openai.calls("up"):  # the router has reached the vendor
                await asyncio.sleep(0.01)
        request.cancel()  # the client gives up before any response byte
    await assert_upstream_cancelled(fake_openai)
