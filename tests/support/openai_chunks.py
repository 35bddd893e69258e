"""A provider's stream translator, fed and read back as OpenAI chunks (for the tests in tests/providers)."""

from __future__ import annotations

from openai.types.chat import ChatCompletionChunk

from providers.base import StreamTranslator


def feed(translator: StreamTranslator, data: bytes, step: int | None = None) -> list[dict]:
    """Feed a whole vendor stream (or `step` bytes at a time) and close it; every chunk is SDK-validated."""
    chunks: list[dict] = []
    if step is None:
        chunks += translator.feed(data)
    else:
        for i in range(0, len(data), step):
            chunks += translator.feed(data[i:i + step])
    chunks += translator.close()
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    return chunks


def assemble(chunks: list[dict]) -> dict:
    """What the chunks of one choice add up to: content, reasoning, tool calls by index, finish, usage, roles."""
    content, reasoning, calls, finish, usage, roles = "", "", {}, None, None, []
    for chunk in chunks:
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk["choices"]:
            delta = choice["delta"]
            if "role" in delta:
                roles.append(delta["role"])
            content += delta.get("content") or ""
            reasoning += delta.get("reasoning_content") or ""
            for call in delta.get("tool_calls") or []:
                slot = calls.setdefault(call["index"], {"id": None, "name": "", "arguments": ""})
                slot["id"] = call.get("id") or slot["id"]
                slot["name"] += (call.get("function") or {}).get("name") or ""
                slot["arguments"] += (call.get("function") or {}).get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    return {"content": content, "reasoning": reasoning, "calls": calls, "finish": finish, "usage": usage,
            "roles": roles}
