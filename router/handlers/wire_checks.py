"""The checks every face makes of a JSON body it parses: what a member must be, and a 400 naming its path.

A face's parser checks each member's type where it reads it, so bad input is a clear 400 with the
member's dotted path (`messages.2.content.0.source`) and never an exception from deeper down.
"""

from __future__ import annotations

from typing import Any

from ..errors import ApiError


def bad(message: str, param: str | None) -> ApiError:
    """The 400 for a member that is not what it must be."""
    return ApiError(400, message, param=param, code="invalid_request")


def kind_of(value: Any, where: str) -> str:
    """The `type` of an object member (a content block, an item): it must be an object with a string `type`."""
    if not isinstance(value, dict):
        raise bad(f"'{where}' must be an object", where)
    kind = value.get("type")
    if not isinstance(kind, str):
        raise bad(f"'{where}.type' must be a string", f"{where}.type")
    return kind


def string(value: dict, key: str, where: str, empty: bool = True) -> str:
    """`value[key]`, which must be a string (a non-empty one unless `empty`)."""
    text = value.get(key)
    if not isinstance(text, str) or (not empty and not text):
        raise bad(f"'{where}.{key}' must be a {'' if empty else 'non-empty '}string", f"{where}.{key}")
    return text
