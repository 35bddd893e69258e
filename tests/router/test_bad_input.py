"""Bad requests and bad upstreams: exact status and OpenAI error shape, never a traceback or a key.

Every response here goes through the `raw` fixture, which fails the test if the provider key
(`SECRET`) or a traceback appears in any header or body.
"""

from __future__ import annotations

import logging
import time

import pytest
from fakes.openai_upstream import SECRET, Fail, Html, Reply, Truncated

USER = [{"role": "user", "content": "hi"}]
OK = {"model": "up/gpt-4o-mini", "messages": USER}


@pytest.fixture
async def base(fake_openai, make_router):
    return await make_router({"server": {"max_body_bytes": 2048},
                              "providers": {"up": fake_openai.provider("up", timeouts={"first_byte_s": 0.3})}})


def body(**changes) -> dict:
    out = {**OK, **changes}
    return {k: v for k, v in out.items() if v is not ...}


# (request body: bytes or a JSON-able value, status, param, code)
CASES = {
    "invalid-json": (b'{"model": "up/gpt-4o-mini", "messages": [', 400, None, "invalid_json"),
    "empty-body": (b"", 400, None, "invalid_json"),
    "json-array": ([OK], 400, None, "invalid_json"),
    "json-string": ("hello", 400, None, "invalid_json"),
    "missing-model": (body(model=...), 400, "model", "missing_required_parameter"),
    "model-not-string": (body(model=42), 400, "model", "invalid_type"),
    "missing-messages": (body(messages=...), 400, "messages", "missing_required_parameter"),
    "empty-messages": (body(messages=[]), 400, "messages", "invalid_value"),
    "messages-not-array": (body(messages="hi"), 400, "messages", "invalid_type"),
    "message-not-object": (body(messages=["hi"]), 400, "messages[0]", "invalid_type"),
    "bad-role": (body(messages=[{"role": "robot", "content": "hi"}]), 400, "messages[0].role", "invalid_type"),
    "content-wrong-type": (body(messages=[{"role": "user", "content": 5}]), 400, "messages[0].content",
                           "invalid_type"),
    "temperature-hot": (body(temperature="hot"), 400, "temperature", "invalid_type"),
    "temperature-range": (body(temperature=3), 400, "temperature", "invalid_type"),
    "n-float": (body(n=1.5), 400, "n", "invalid_type"),
    "stream-yes": (body(stream="yes"), 400, "stream", "invalid_type"),
    "max-tokens-0": (body(max_tokens=0), 400, "max_tokens", "invalid_type"),
    "stop-5": (body(stop=["a", "b", "c", "d", "e"]), 400, "stop", "invalid_type"),
    "tools-not-array": (body(tools={"type": "function"}), 400, "tools", "invalid_type"),
    "tool-without-name": (body(tools=[{"type": "function", "function": {"description": "x"}}]), 400, "tools[0]",
                          "invalid_type"),
    "tool-not-object": (body(tools=["get_weather"]), 400, "tools[0]", "invalid_type"),
    "response-format": (body(response_format={"type": "yaml"}), 400, "response_format", "invalid_type"),
    "fallbacks-not-list": (body(fallbacks="up/x"), 400, "fallbacks", "invalid_type"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_bad_chat_requests(base, raw, fake_openai, case):
    payload, status, param, code = case
    kwargs = {"data": payload, "headers": {"content-type": "application/json"}} if isinstance(payload, bytes) \
        else {"json": payload}
    resp = await raw.post(f"{base}/v1/chat/completions", **kwargs)
    assert resp.status == status, resp.body
    error = resp.error
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")
    if param:
        assert param.split("[")[0] in error["message"]
    assert fake_openai.calls() == []  # rejected before any upstream is called


@pytest.mark.parametrize("payload, param", [
    ({"model": "up/text-embedding-3-small"}, "input"),
    ({"model": "up/text-embedding-3-small", "input": [1.5]}, "input"),
    ({"model": "up/text-embedding-3-small", "input": "x", "encoding_format": "hex"}, "encoding_format"),
    ({"input": "x"}, "model"),
])
async def test_bad_embeddings_requests(base, raw, fake_openai, payload, param):
    resp = await raw.post(f"{base}/v1/embeddings", json=payload)
    assert resp.status == 400 and resp.error["param"] == param
    assert fake_openai.calls() == []


async def test_oversize_body_with_content_length(base, raw, fake_openai):
    big = body(messages=[{"role": "user", "content": "x" * 4096}])
    resp = await raw.post(f"{base}/v1/chat/completions", json=big)
    assert resp.status == 413
    assert resp.error["code"] == "request_too_large" and resp.error["type"] == "invalid_request_error"
    assert "2048" in resp.error["message"]
    assert fake_openai.calls() == []


async def test_oversize_body_chunked(base, raw, fake_openai):
    async def chunks():  # no Content-Length: aiohttp sends Transfer-Encoding: chunked
        yield b'{"model": "up/gpt-4o-mini", "messages": [{"role": "user", "content": "'
        for _ in range(8):
            yield b"x" * 512
        yield b'"}]}'

    resp = await raw.post(f"{base}/v1/chat/completions", data=chunks(), headers={"content-type": "application/json"})
    assert resp.status == 413 and resp.error["code"] == "request_too_large"
    assert fake_openai.calls() == []
    # Just under the limit, chunked, still works.
    resp = await raw.post(f"{base}/v1/chat/completions", data=_once(b'{"model": "up/gpt-4o-mini", "messages": '
                                                                    b'[{"role": "user", "content": "hi"}]}'))
    assert resp.status == 200


async def _once(data: bytes):
    yield data


async def test_unknown_model_is_404(base, raw):
    resp = await raw.post(f"{base}/v1/chat/completions", json=body(model="nope/gpt-9"))
    assert resp.status == 404
    assert (resp.error["code"], resp.error["param"]) == ("model_not_found", "model")
    assert "nope/gpt-9" in resp.error["message"]
    resp = await raw.post(f"{base}/v1/embeddings", json={"model": "no-such-alias", "input": "x"})
    assert resp.status == 404 and resp.error["code"] == "model_not_found"


async def test_unknown_request_fallback_is_400(base, raw, fake_openai):
    resp = await raw.post(f"{base}/v1/chat/completions", json=body(fallbacks=["up/gpt-4o", "nope/x"]))
    assert resp.status == 400
    assert (resp.error["param"], resp.error["code"]) == ("fallbacks", "model_not_found")
    assert "nope/x" in resp.error["message"]
    assert fake_openai.calls() == []


async def test_unknown_route_and_wrong_method_are_json(base, raw):
    resp = await raw.request("GET", f"{base}/v1/nothing-here")
    assert resp.status == 404 and resp.error["code"] == "not_found"
    resp = await raw.request("GET", f"{base}/v1/chat/completions")
    assert resp.status == 405 and resp.error["code"] == "method_not_allowed"
    assert resp.headers["Allow"] == "POST"
    resp = await raw.request("DELETE", f"{base}/v1/models")
    assert resp.status == 405 and resp.headers["Content-Type"].startswith("application/json")


async def test_upstream_html_is_502_with_short_message(base, raw, fake_openai):
    fake_openai.queue("up", Html(502))
    resp = await raw.post(f"{base}/v1/chat/completions", json=OK)
    assert resp.status == 502
    error = resp.error
    assert "json" in error["message"].lower() and error["type"] == "upstream_error"
    assert len(error["message"]) < 300 and "</html>" not in error["message"]  # a snippet, not the page


async def test_upstream_truncated_json_is_502(base, raw, fake_openai):
    fake_openai.queue("up", Truncated())
    resp = await raw.post(f"{base}/v1/chat/completions", json=OK)
    assert resp.status == 502
    assert resp.error["code"] == "invalid_upstream_response" and resp.error["type"] == "upstream_error"
    assert "not JSON" in resp.error["message"]


@pytest.mark.parametrize("stream", [False, True])
async def test_upstream_timeout_is_504(base, raw, fake_openai, stream):
    fake_openai.queue("up", Reply(delay_s=5))
    t0 = time.monotonic()
    resp = await raw.post(f"{base}/v1/chat/completions", json=body(stream=stream))
    assert time.monotonic() - t0 < 2.5
    assert resp.status == 504
    assert resp.error["type"] == "timeout_error" and resp.error["code"] == "first_byte_timeout"


async def test_provider_key_never_leaks(base, raw, fake_openai, caplog):
    """Even when a vendor echoes our key back, neither the client nor the log sees it."""
    caplog.set_level(logging.DEBUG)
    echoed = f"Incorrect API key provided: {SECRET}. You can find your API key at https://platform.openai.com."
    mid_stream = Reply(error_after=2, chunk_delay_s=0.05, error={"message": echoed, "type": "server_error"})
    cases = [(OK, Fail(401, echoed, code="invalid_api_key"), 502), (body(stream=True), Fail(401, echoed), 502),
             (body(fallbacks=["up/gpt-4o"]), Fail(500, echoed), 200),  # the echo lands in the attempt trail
             (body(stream=True), mid_stream, 200)]
    for request, behaviour, status in cases:
        fake_openai.queue("up", behaviour)
        resp = await raw.post(f"{base}/v1/chat/completions", json=request)  # `raw` asserts SECRET is absent
        assert resp.status == status
        assert "Incorrect API key provided" in resp.body.decode()
    assert resp.events[-1]["error"]["message"].startswith("up: Incorrect API key")  # the mid-stream path
    assert all(c.headers["Authorization"] == f"Bearer {SECRET}" for c in fake_openai.calls())
    assert SECRET not in caplog.text
