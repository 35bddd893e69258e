"""Access log (one JSON line per request, off the loop), `x-request-id`, and optional OpenTelemetry spans."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

CHAT = "/v1/chat/completions"
PROMPT = "my very private prompt about the launch"
PROVIDER_SECRET = "sk-provider-secret-access"
CLIENT_SECRET = "sk-client-secret-access"




def config(**logging_: Any) -> dict[str, Any]:
    return {"providers": {"acc": {"type": "mock", "models": ["echo"], "keys": [{"value": PROVIDER_SECRET}]}},
            "auth": {"keys": [{"name": "team-log", "key": CLIENT_SECRET}]},
            "cache": {"backend": "memory"},
            "logging": logging_}


AUTH = {"authorization": f"Bearer {CLIENT_SECRET}"}


def rid(resp) -> str:
    """The response's x-request-id (aiohttp spells it X-Request-ID; RawResponse.headers is a plain dict)."""
    return {k.lower(): v for k, v in resp.headers.items()}["x-request-id"]


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "acc/echo", "messages": [{"role": "user", "content": PROMPT}], **extra}


async def test_one_line_per_request_with_the_fields_and_no_prompt_or_secret(make_router, raw, access_lines) -> None:
    url = await make_router(config())
    ok = await raw.post(url + CHAT, json=chat(), headers={**AUTH, "x-request-id": "trace-me-42"})
    stream = await raw.post(url + CHAT, json=chat(stream=True), headers=AUTH)
    missing = await raw.post(url + CHAT, json=chat(model="nope"), headers=AUTH)
    unauthorized = await raw.post(url + CHAT, json=chat())
    await raw.request("GET", url + "/metrics")  # scrapes and probes are not logged
    await raw.request("GET", url + "/healthz")
    lines = await access_lines.wait(4)
    await asyncio.sleep(0.1)
    assert len(access_lines.lines) == 4
    by_id = {line["request_id"]: line for line in lines}
    first = by_id["trace-me-42"]
    assert rid(ok) == "trace-me-42"
    for field in ("ts", "request_id", "method", "path", "status", "latency_ms", "key", "model_requested",
                  "provider", "model", "cache", "prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd",
                  "attempts", "error"):
        assert field in first, field
    billed = ok.json()["extra_fields"]["billed_usage"]
    assert first["status"] == 200 and first["key"] == "team-log" and first["model_requested"] == "acc/echo"
    assert first["provider"] == "acc" and first["model"] == "acc/echo" and first["cache"] == "miss"
    assert first["prompt_tokens"] == billed["prompt_tokens"] and first["completion_tokens"] == billed[
        "completion_tokens"]
    assert [a["model"] for a in first["attempts"]] == ["acc/echo"] and first["latency_ms"] > 0
    streamed = by_id[rid(stream)]
    assert streamed["request_type"] == "chat.completion.chunk" and streamed["ttft_ms"] > 0
    assert by_id[rid(missing)]["status"] == 404
    assert by_id[rid(missing)]["error"] == "caller"
    assert by_id[rid(unauthorized)]["status"] == 401
    everything = "\n".join(access_lines.lines)
    assert PROMPT not in everything and "launch" not in everything  # the answer echoes it, too
    assert PROVIDER_SECRET not in everything and CLIENT_SECRET not in everything


async def test_include_content_logs_the_prompt(make_router, raw, access_lines) -> None:
    url = await make_router(config(include_content=True))
    resp = await raw.post(url + CHAT, json=chat(), headers=AUTH)
    [line] = await access_lines.wait(1)
    assert line["request_id"] == rid(resp)
    assert line["content"] == {"messages": [{"role": "user", "content": PROMPT}]}
    assert CLIENT_SECRET not in access_lines.lines[0] and PROVIDER_SECRET not in access_lines.lines[0]


async def test_access_log_off(make_router, raw, access_lines) -> None:
    url = await make_router(config(access_log=False))
    resp = await raw.post(url + CHAT, json=chat(), headers=AUTH)
    assert resp.status == 200 and rid(resp)
    await asyncio.sleep(0.1)
    assert access_lines.lines == []


async def test_request_id_on_every_response_generated_or_sanitised(make_router, raw) -> None:
    url = await make_router(config(access_log=False))
    seen = set()
    cases = [("POST", CHAT, orjson.dumps(chat()), AUTH),  # ok
             ("POST", CHAT, b"{not json", AUTH),  # 400 from the handler
             ("GET", "/no/such/route", None, {}),  # 404 from routing
             ("POST", CHAT, orjson.dumps(chat(stream=True)), AUTH),  # a stream
             ("GET", "/metrics", None, {}), ("GET", "/healthz", None, {})]
    for method, path, body, headers in cases:
        resp = await raw.request(method, url + path, data=body, headers={"content-type": "application/json",
                                                                          **headers})
        request_id = rid(resp)
        assert 16 <= len(request_id) <= 128 and request_id not in seen
        seen.add(request_id)
    for bad in ("has spaces in it", "x" * 129, "quote\"d", "new\\line"):
        resp = await raw.request("GET", url + "/healthz", headers={"x-request-id": bad})
        assert rid(resp) != bad and rid(resp).isalnum()
    good = "0af7651916cd43dd8448eb211c80319c:span-1/retry=2"
    assert rid(await raw.request("GET", url + "/healthz", headers={"x-request-id": good})) == good


# -- OpenTelemetry ----------------------------------------------------------------------------------
async def test_otel_spans_carry_genai_attributes(make_router, raw, monkeypatch) -> None:
    pytest.importorskip("opentelemetry.sdk", reason="the `otel` extra (opentelemetry-sdk) is not installed")
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import router.tracing

    exporter = InMemorySpanExporter()
    tracers: list[router.tracing.Tracing] = []
    real = router.tracing.build_tracing

    def build(endpoint, types, exporter_=None):
        tracing = real(endpoint, types, exporter)
        tracers.append(tracing)
        return tracing

    monkeypatch.setattr(router.tracing, "build_tracing", build)
    url = await make_router(config(access_log=False, otlp_endpoint="http://127.0.0.1:9/v1/traces"))
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    resp = await raw.post(url + CHAT, json=chat(), headers={**AUTH, "traceparent": parent})
    assert resp.status == 200
    tracers[0].provider.force_flush()
    [span] = exporter.get_finished_spans()
    attrs = dict(span.attributes)
    billed = resp.json()["extra_fields"]["billed_usage"]
    assert span.name == "chat acc/echo"
    assert attrs["gen_ai.operation.name"] == "chat" and attrs["gen_ai.request.model"] == "acc/echo"
    assert attrs["gen_ai.response.model"] == "echo" and attrs["gen_ai.system"] == "mock"
    assert attrs["gen_ai.usage.input_tokens"] == billed["prompt_tokens"]
    assert attrs["gen_ai.usage.output_tokens"] == billed["completion_tokens"]
    assert attrs["switchboard.request_id"] == rid(resp)
    assert attrs["http.response.status_code"] == 200
    assert format(span.context.trace_id, "032x") == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert span.end_time > span.start_time
    assert PROMPT not in str(attrs) and CLIENT_SECRET not in str(attrs)


def test_no_tracing_without_an_endpoint() -> None:
    from router.app import build_app
    from router.config import parse_config
    from router.observe import OBSERVER

    assert build_app(parse_config(config()))[OBSERVER].tracing is None
