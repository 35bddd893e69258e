"""Chat calls through the official openai SDK for the end-to-end vendor tests (tests/router/test_vendor_*).

One chat call, streamed or not, gives `(message, finish_reason, extra_fields)` either way:
- `ask` returns the SDK's message object; a stream goes through the SDK's own `.stream()` helper,
  which assembles the final completion.
- `ask_dict` returns the message as a dict, as a client would send it back in the next turn; a stream
  is assembled here from the raw chunks (`accumulate`), and its first chunk must name the same
  provider and model as its last.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import BaseModel


def extra(obj: Any) -> dict:
    """The router's `extra_fields` of a response or chunk."""
    return obj.model_extra["extra_fields"]


def trail(extra_fields: dict) -> list[tuple[str, int]]:
    """(model, status) of every attempt the router made, in order."""
    return [(a["model"], a["status"]) for a in extra_fields["attempts"]]


async def collect(client: openai.AsyncOpenAI, **params: Any) -> list[ChatCompletionChunk]:
    """Every raw chunk of one streamed request."""
    stream = await client.chat.completions.create(stream=True, **params)
    return [chunk async for chunk in stream]


def streamed_text(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def finish(chunks: list[ChatCompletionChunk]) -> str | None:
    return next((c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason), None)


def calls_of(message: Any) -> list[tuple[str, str, dict]]:
    """(id, name, parsed arguments) of each tool call of an SDK message."""
    return [(c.id, c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or []]


async def finish_reason(client: openai.AsyncOpenAI, stream: bool, **params: Any) -> str | None:
    """The finish reason of one request; a stream is read as raw chunks (the SDK's stream helper raises
    on `length` and `content_filter` by design)."""
    if stream:
        return finish(await collect(client, **params))
    return (await client.chat.completions.create(**params)).choices[0].finish_reason


async def status_error(client: openai.AsyncOpenAI, stream: bool, **params: Any) -> openai.APIStatusError:
    """The error status the router answers one request with (the test fails if it answers a success)."""
    with pytest.raises(openai.APIStatusError) as info:
        await (collect(client, **params) if stream else client.chat.completions.create(**params))
    return info.value


def assert_relayed_error(err: openai.APIStatusError, status: int, etype: str, message: str,
                         attempts: list[tuple[str, int]], secret: str, retry_after: str | None = None) -> None:
    """How a vendor error reaches the client: the router's status and error type, the vendor's message, the
    attempt trail, the vendor's Retry-After passed on, and neither the provider key nor a traceback."""
    assert err.status_code == status and err.body["type"] == etype and message in err.body["message"]
    assert trail(err.response.json()["extra_fields"]) == attempts
    assert secret not in err.response.text and secret not in str(err.response.headers)
    assert "Traceback" not in err.response.text
    if retry_after is not None:
        assert err.response.headers["retry-after"] == retry_after


async def ask(client: openai.AsyncOpenAI, stream: bool, **params: Any) -> tuple[Any, str | None, dict]:
    """(message, finish_reason, extra_fields) of one request, streamed through the SDK's helper or not."""
    if not stream:
        resp = await client.chat.completions.create(**params)
        assert isinstance(resp, ChatCompletion)
        return resp.choices[0].message, resp.choices[0].finish_reason, extra(resp)
    async with client.chat.completions.stream(**params) as events:
        chunks = [event.chunk async for event in events if event.type == "chunk"]
        final = await events.get_final_completion()
    return final.choices[0].message, final.choices[0].finish_reason, extra(chunks[-1])


async def accumulate(stream: Any) -> tuple[list[ChatCompletionChunk], dict, str | None]:
    """All chunks, the assistant message they add up to (as a client would send it back), the finish."""
    chunks = [c async for c in stream]
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    text, reasoning, calls, finish_reason = "", "", {}, None
    for chunk in chunks:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            reasoning += (choice.delta.model_extra or {}).get("reasoning_content") or ""
            for call in choice.delta.tool_calls or []:
                slot = calls.setdefault(call.index, {"id": None, "type": "function",
                                                     "function": {"name": "", "arguments": ""}})
                slot["id"] = call.id or slot["id"]
                slot["function"]["name"] += (call.function and call.function.name) or ""
                slot["function"]["arguments"] += (call.function and call.function.arguments) or ""
            finish_reason = choice.finish_reason or finish_reason
    message: dict = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    if reasoning:
        message["reasoning_content"] = reasoning
    return chunks, message, finish_reason


async def ask_dict(client: openai.AsyncOpenAI, stream: bool, **params: Any) -> tuple[dict, str | None, dict]:
    """(assistant message as received, finish reason, full extra_fields) of one request, streamed or not."""
    if stream:
        chunks, message, finish_reason = await accumulate(await client.chat.completions.create(stream=True,
                                                                                                **params))
        fields = extra(chunks[-1])
        assert extra(chunks[0]) == {"provider": fields["provider"], "model": fields["model"]}
        return message, finish_reason, fields
    resp = await client.chat.completions.create(**params)
    assert isinstance(resp, ChatCompletion)
    return resp.choices[0].message.model_dump(exclude_unset=True), resp.choices[0].finish_reason, extra(resp)


async def ask_parsed(client: openai.AsyncOpenAI, stream: bool, schema: type[BaseModel],
                     **params: Any) -> tuple[BaseModel, str | None]:
    """(the reply parsed as `schema`, finish reason) of one structured-output request: a stream asks with
    a `json_schema` response format, a non-stream call through the SDK's `parse` helper."""
    if stream:
        response_format = {"type": "json_schema",
                           "json_schema": {"name": schema.__name__, "schema": schema.model_json_schema()}}
        message, finish_reason, _ = await ask_dict(client, True, response_format=response_format, **params)
        return schema.model_validate_json(message["content"]), finish_reason
    resp = await client.chat.completions.parse(response_format=schema, **params)
    return resp.choices[0].message.parsed, resp.choices[0].finish_reason


async def usage_and_extra(client: openai.AsyncOpenAI, stream: bool, **params: Any) -> tuple[Any, dict]:
    """(usage as reported to the client, extra_fields) of one request; a stream asks for its usage chunk."""
    if stream:
        chunks, _, _ = await accumulate(await client.chat.completions.create(
            stream=True, stream_options={"include_usage": True}, **params))
        return chunks[-1].usage, extra(chunks[-1])
    resp = await client.chat.completions.create(**params)
    return resp.usage, extra(resp)


async def read_until_error(stream: Any) -> tuple[list[ChatCompletionChunk], openai.APIError]:
    """The chunks a stream delivers before it fails, and the failure (the test fails if it does not fail)."""
    seen = []
    with pytest.raises(openai.APIError) as info:
        async for chunk in stream:
            seen.append(chunk)
    return seen, info.value
