"""Content and an error event in one network read, end to end: the content is relayed, then the error.

The vendor sent (and bills) that content, so the stream is committed to it exactly as when the error
comes in a later read: the client gets the content, then one `data: {"error": …}` event and never
`[DONE]`; the request is not retried and not sent to the fallback; the streamed content is billed.
The fakes send the whole body in one write (`one_write`), which the router reads at once.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from fakes.anthropic_upstream import Message
from fakes.anthropic_upstream import text as anthropic_text
from fakes.base import Stream, split
from fakes.gemini_upstream import Generate
from fakes.gemini_upstream import text as gemini_text
from fakes.openai_upstream import Reply
from support.vendor_chat import extra, read_until_error, streamed_text, trail

USER = [{"role": "user", "content": "hi"}]
M = "gpt-4o-mini"
P, S = f"primary/{M}", f"second/{M}"
SERVER_ERROR = "The server had an error"
BOUND_S = 5.0


async def openai_router(make_router, fake, max_retries: int = 0) -> str:
    config = {"providers": {"primary": fake.provider("primary", max_retries=max_retries),
                            "second": fake.provider("second", max_retries=max_retries)},
              "routing": {"retry": {"base_s": 0.01, "max_s": 0.02}}}
    return await make_router(config)


def stream_body(model: str, *fallbacks: str) -> dict:
    return {"model": model, "messages": USER, "stream": True, "fallbacks": list(fallbacks)}


def relayed_text(events: list) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or ""
                   for c in events if c != "[DONE]" and "error" not in c and c["choices"])


@pytest.mark.parametrize("max_retries", [0, 1])
async def test_content_and_error_event_in_one_read(fake_openai, make_router, raw, max_retries):
    url = await openai_router(make_router, fake_openai, max_retries) + "/v1/chat/completions"
    fake_openai.queue("primary", Reply(error_after=3, one_write=True))  # role, "Hello ", "from ", error
    async with asyncio.timeout(BOUND_S):
        resp = await raw.post(url, json=stream_body(P, S))
    assert resp.status == 200 and "[DONE]" not in resp.events
    *chunks, last = resp.events
    assert not any("error" in c for c in chunks)
    assert relayed_text(chunks) == "Hello from "
    assert last["error"]["type"] == "upstream_error" and SERVER_ERROR in last["error"]["message"]
    fields = last["extra_fields"]
    assert fields["provider"] == "primary" and trail(fields) == [(P, 200)]
    assert fields["attempts"][0]["error"].startswith("after the first chunk")
    billed = fields["billed_usage"]  # the vendor reported no usage before failing: the streamed text, counted
    assert billed["estimated"] is True and billed["completion_tokens"] > 0 and billed["prompt_tokens"] > 0
    await asyncio.sleep(0.05)
    assert len(fake_openai.calls("primary")) == 1 and fake_openai.calls("second") == []


async def test_sdk_reads_the_content_then_the_error(fake_openai, make_router, openai_client):
    client = openai_client(await openai_router(make_router, fake_openai))
    fake_openai.queue("primary", Reply(error_after=3, one_write=True))
    stream = await client.chat.completions.create(model=P, messages=USER, stream=True,
                                                  stream_options={"include_usage": True},
                                                  extra_body={"fallbacks": [S]})
    seen, error = await read_until_error(stream)
    assert streamed_text(seen) == "Hello from " and SERVER_ERROR in str(error)
    assert extra(seen[0])["provider"] == "primary"
    assert len(fake_openai.calls("primary")) == 1 and fake_openai.calls("second") == []


@pytest.mark.parametrize(("error_after", "content"), [(1, False), (3, True)], ids=["before-content", "after-content"])
async def test_vendor_that_keeps_the_connection_open_after_its_error(fake_openai, make_router, raw, error_after,
                                                                     content):
    """The error counts when it is read, not when the vendor finally ends the body (3 s later here)."""
    url = await openai_router(make_router, fake_openai) + "/v1/chat/completions"
    # one write, then a pause before the body ends (the pause falls after the single write)
    fake_openai.queue("primary", Reply(error_after=error_after, one_write=True, stall_after=1, stall_s=3))
    t0 = time.monotonic()
    async with asyncio.timeout(BOUND_S):
        resp = await raw.post(url, json=stream_body(P, S))
    assert time.monotonic() - t0 < 1.5
    if content:  # committed: the content, then the error
        assert relayed_text(resp.events) == "Hello from " and "error" in resp.events[-1]
        assert fake_openai.calls("second") == []
    else:  # nothing but the role chunk came first: the fallback serves the whole answer
        assert resp.events[-1] == "[DONE]" and relayed_text(resp.events) == "Hello from the fake."
        assert trail(resp.events[-2]["extra_fields"]) == [(P, 200), (S, 200)]


async def test_anthropic_content_and_overloaded_event_in_one_read(anthropic, make_router, openai_client):
    model = "claude-haiku-4-5"
    providers = {"claude": anthropic.provider("claude"), "backup": anthropic.provider("backup")}
    client = openai_client(await make_router({"providers": providers}))
    words = "Hello there, friend"
    # message_start, ping, content_block_start, the first text delta, then the error event
    anthropic.queue("claude", Message(content=[anthropic_text(words)], error_after=4, stream=Stream(one_write=True)))
    stream = await client.chat.completions.create(model=f"claude/{model}", messages=USER, stream=True,
                                                  extra_body={"fallbacks": [f"backup/{model}"]})
    seen, error = await read_until_error(stream)
    assert streamed_text(seen) == split(words, 3)[0] and "Overloaded" in str(error)
    assert len(anthropic.calls("claude")) == 1 and anthropic.calls("backup") == []


async def test_gemini_content_and_error_event_in_one_read(gemini, make_router, openai_client):
    model = "gemini-2.5-flash"
    providers = {"gem": gemini.provider("gem", models=[model]), "backup": gemini.provider("backup")}
    client = openai_client(await make_router({"providers": providers}))
    words = "Hello there, my friend"
    gemini.queue("gem", Generate(parts=[gemini_text(words)], error_after=2, stream=Stream(one_write=True)))
    stream = await client.chat.completions.create(model=f"gem/{model}", messages=USER, stream=True,
                                                  extra_body={"fallbacks": [f"backup/{model}"]})
    seen, error = await read_until_error(stream)
    assert streamed_text(seen) == "".join(split(words, 3)[:2]) and "overloaded" in str(error)
    assert len(gemini.calls("gem")) == 1 and gemini.calls("backup") == []
