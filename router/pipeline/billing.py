"""Estimate, then bill: what a call may cost before it runs, and what it did cost after.

Before: the prompt is counted with tiktoken and the output is taken at its most (what the vendor
will be sent as its limit: the request's `max_tokens`, plus a thinking budget where a translator adds
one; else the model's configured maximum, else `auth.max_output_tokens`), priced at the dearest
deployment the call may reach, so the reservation covers any answer a fallback could give.
After: the vendor's own usage figures, or, when a vendor reported none, a tiktoken count of the
prompt and of everything generated (text, reasoning, tool-call arguments), marked estimated.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from providers.tokens import count_messages, count_text

from ..accounting.billed import Billed
from ..pricing import Pricer
from ..routing.table import Target
from .request import ModelRequest, Route


def bill(pricer: Pricer, target: Target, usage: dict[str, Any] | None, estimated: bool = False) -> Billed:
    """The bill of one answer from `target`: tokens as the vendor counted them, and their cost."""
    usage = usage or {}
    details = usage.get("prompt_tokens_details") or {}
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    return Billed(prompt, completion, int(usage.get("total_tokens") or prompt + completion),
                  int(details.get("cached_tokens") or 0),
                  pricer.cost(target.runtime.provider.settings.type, target.label, target.model, usage), estimated)


def estimate_usage(body: dict[str, Any], model: str, generated: str) -> dict[str, Any]:
    """OpenAI-shaped usage counted with tiktoken, for answers whose vendor reported none."""
    prompt = prompt_tokens("chat", body, model)
    completion = count_text(generated, model) if generated else 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def generated_text(deltas: Iterable[dict[str, Any]]) -> list[str]:
    """Everything a model wrote in these messages or stream deltas: text, refusal, reasoning and
    tool-call arguments (all are billed as output)."""
    parts: list[str] = []
    for delta in deltas:
        for name in ("content", "refusal", "reasoning_content"):
            value = delta.get(name)
            if isinstance(value, str) and value:
                parts.append(value)
        for tool_call in delta.get("tool_calls") or ():
            if isinstance(tool_call, dict):
                arguments = (tool_call.get("function") or {}).get("arguments")
                if isinstance(arguments, str) and arguments:
                    parts.append(arguments)
    return parts


def completion_text(result: dict[str, Any]) -> str:
    """The generated text of a `chat.completion`, for estimates."""
    return "".join(generated_text(c.get("message") or {} for c in result.get("choices") or ()
                                  if isinstance(c, dict)))


def prompt_tokens(kind: str, body: dict[str, Any], model: str) -> int:
    """Tokens of a request's input: chat messages and tools, or embeddings `input`."""
    if kind == "embeddings":
        data = body.get("input")
        items = [data] if isinstance(data, str) else data if isinstance(data, list) else []
        if items and all(isinstance(x, int) for x in items):
            return len(items)
        return sum(count_text(x, model) if isinstance(x, str) else len(x) if isinstance(x, list) else 0
                   for x in items)
    messages = body.get("messages")
    return count_messages(messages if isinstance(messages, list) else [], model, body.get("tools"))


def reservation(pricer: Pricer, route: Route, mreq: ModelRequest, prompt: int,
                default_output: int) -> tuple[int, float]:
    """(tokens, USD) to hold against a key's limits before the call: the prompt plus the most the
    answer may be, priced at the dearest deployment of the route. Tokens count the output only when
    the request bounds it (as vendors' own per-minute token limits do)."""
    n = mreq.choices if mreq.kind == "chat" else 1
    tokens = prompt + (mreq.requested_tokens or 0) * n
    dearest = 0.0
    for target in route.plan.targets:
        if mreq.kind == "embeddings":
            output = 0
        else:  # what the vendor is sent (a translator may add a thinking budget), else the most it writes
            output = (target.runtime.provider.output_limit(route.body_for(target), target.model)
                      or pricer.max_output_tokens(target.label) or default_output)
        calls = n if route.fan else 1  # fanned out, each call pays the prompt; native `n` pays it once
        usage = {"prompt_tokens": prompt * calls, "completion_tokens": output * n}
        cost = pricer.cost(target.runtime.provider.settings.type, target.label, target.model, usage)
        dearest = max(dearest, cost or 0.0)
    return tokens, dearest
