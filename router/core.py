"""The routing core for chat: one call walks the attempt chain and accounts for what it cost.

Every chat path uses these two functions: the `/v1/chat/completions` handler (non-stream and
stream) and each step of the agents loop. So fallbacks, retries, `n` emulation, usage estimation
and accounting behave the same whoever asks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from .gateway import Gateway
from .routing import Target
from .routing.chain import Call, ChainFailed, OpenStream
from .routing.fanout import MergedStream, complete_n, open_stream_n
from .routing.table import Plan
from .usage import billed_usage, estimate_usage


class Recorder(Protocol):
    """Where an outcome is reported: the request's `Scope` (router/handlers/scope.py)."""

    def record(self, call: Call, target: Target | None, billed: dict[str, Any] | None, *, ok: bool,
               cache_hit: bool = False, served_by: tuple[str, str] | None = None) -> None: ...


async def complete_chat(gw: Gateway, recorder: Recorder, call: Call, targets: Plan, send_body: dict[str, Any],
                        fan: int = 0) -> tuple[dict, dict[str, Any], bytes]:
    """(canonical response, billed usage, raw vendor body); records the outcome either way.

    Raises `ChainFailed` (already recorded) when no deployment served.
    """

    def build(target: Target, key: str | None):
        return target.runtime.provider.chat_request(send_body, target.model, key, False)

    def parse(target: Target, raw: bytes, headers: Mapping[str, str]) -> dict:
        return target.runtime.provider.chat_response(raw, target.model)

    try:
        if fan:
            result, raw = await complete_n(gw.chain, targets, call, fan, build, parse)
        else:
            result, raw = await gw.chain.complete(targets, call, build, parse)
    except ChainFailed:
        recorder.record(call, None, None, ok=False)
        raise
    target = call.target
    usage = result.get("usage")
    estimated = not usage
    if estimated:
        usage = estimate_usage(send_body.get("messages"), target.model, message_text(result), send_body.get("tools"))
    billed = billed_usage(gw.pricer, target, usage, estimated)
    recorder.record(call, target, billed, ok=True)
    return result, billed, raw


async def open_chat_stream(gw: Gateway, recorder: Recorder, call: Call, targets: Plan, send_body: dict[str, Any],
                           fan: int = 0) -> OpenStream | MergedStream:
    """A committed stream (first content read); the caller relays it and records the outcome.

    Raises `ChainFailed` (already recorded) when no deployment produced a first chunk.
    """

    def build(target: Target, key: str | None):
        return target.runtime.provider.chat_request(send_body, target.model, key, True)

    try:
        if fan:
            return await open_stream_n(gw.chain, targets, call, fan, build)
        return await gw.chain.open_stream(targets, call, build)
    except ChainFailed:
        recorder.record(call, None, None, ok=False)
        raise


def message_text(result: dict) -> str:
    """The generated text of a chat completion (content and tool-call arguments), for estimates."""
    parts = []
    for choice in result.get("choices") or ():
        message = choice.get("message") or {}
        if isinstance(message.get("content"), str):
            parts.append(message["content"])
        for tool_call in message.get("tool_calls") or ():
            parts.append((tool_call.get("function") or {}).get("arguments") or "")
    return "".join(parts)
