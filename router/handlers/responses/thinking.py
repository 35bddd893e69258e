"""Canonical `thinking_blocks` sealed into a reasoning item's `encrypted_content`, and opened again.

Anthropic-style thinking must be replayed exactly, signatures included, on the next turn of a tool
loop (see `providers/anthropic_request.py`), but a Responses client keeps only what the reasoning
item carries and sends that item back as input (Codex does, with `store: false` and `include:
["reasoning.encrypted_content"]`). So the blocks travel as `sb1:` + unpadded url-safe base64 of their
JSON: opaque to the client, restored exactly by the inbound side. Not encryption: the text is the
client's own conversation, and the vendor checks its signatures itself. Any other value (OpenAI's
genuinely encrypted reasoning) does not open and is ignored.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

PREFIX = "sb1:"


def thinking_blocks(items: Any) -> list[dict]:
    """The well-formed canonical blocks of `items`, as the Anthropic translators read them."""
    blocks: list[dict] = []
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict):
            continue
        if item.get("type") == "thinking" and isinstance(item.get("thinking"), str):
            signature = item.get("signature")
            blocks.append({"type": "thinking", "thinking": item["thinking"],
                           "signature": signature if isinstance(signature, str) else ""})
        elif item.get("type") == "redacted_thinking" and isinstance(item.get("data"), str):
            blocks.append({"type": "redacted_thinking", "data": item["data"]})
    return blocks


def seal(items: Any) -> str | None:
    """The `encrypted_content` carrying these blocks; None when there is none to carry."""
    blocks = thinking_blocks(items)
    if not blocks:
        return None
    return PREFIX + base64.urlsafe_b64encode(orjson.dumps(blocks)).decode().rstrip("=")


def unseal(value: Any) -> list[dict] | None:
    """The blocks `seal` put in `value`, or None when it is not ours (or was tampered into nonsense)."""
    if not isinstance(value, str) or not value.startswith(PREFIX):
        return None
    text = value[len(PREFIX):]
    try:
        items = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError):  # orjson.JSONDecodeError is a ValueError
        return None
    blocks = thinking_blocks(items)
    return blocks if blocks and isinstance(items, list) and len(blocks) == len(items) else None
