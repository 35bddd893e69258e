"""Usage as billed: the vendor's own figures, or a tiktoken estimate marked as such."""

from __future__ import annotations

from typing import Any

from .pricing import Pricer
from .routing import Target


def billed_usage(pricer: Pricer, target: Target, usage: dict[str, Any] | None,
                 estimated: bool = False) -> dict[str, Any]:
    """`extra_fields.billed_usage`: tokens as the serving vendor counted them, and their cost."""
    usage = usage or {}
    details = usage.get("prompt_tokens_details") or {}
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": int(usage.get("total_tokens") or prompt + completion),
        "cached_tokens": int(details.get("cached_tokens") or 0),
        "cost_usd": pricer.cost(target.runtime.provider.settings.type, target.label, target.model, usage),
    }
    if estimated:
        out["estimated"] = True
    return out


def estimate_usage(messages: Any, model: str, completion_text: str, tools: Any = None) -> dict[str, Any]:
    """OpenAI-shaped usage counted with tiktoken, for streams whose vendor reported none."""
    from providers.tokens import count_messages, count_text

    prompt = count_messages(messages if isinstance(messages, list) else [], model, tools)
    completion = count_text(completion_text, model) if completion_text else 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
