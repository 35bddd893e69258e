"""What the mock provider says: deterministic text, JSON Schema instances and token-exact slicing.

Kept apart from `providers/mock.py` (the wire format) so the generators can be reused, e.g. by the
benchmark's mock upstream, and tested on their own. Everything here is a pure function of its input.
"""

from __future__ import annotations

import codecs
import functools
import math
from typing import Any

from .tokens import encoding_for

LOREM = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut "
    "labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco "
    "laboris nisi ut aliquip ex ea commodo consequat. Duis aute irure dolor in reprehenderit in "
    "voluptate velit esse cillum dolore eu fugiat nulla pariatur. Excepteur sint occaecat cupidatat "
    "non proident, sunt in culpa qui officia deserunt mollit anim id est laborum."
)
_FILLER = " et"  # one token in every BPE we load: pads lorem text to an exact length


def _lorem_pieces() -> list[str]:
    """LOREM as pre-token pieces (' word' and bare punctuation), which BPE never merges across."""
    pieces: list[str] = []
    for word in LOREM.split(" "):
        head = word.rstrip(",.")
        pieces.append(" " + head)
        pieces.extend(word[len(head):])
    pieces[0] = pieces[0].lstrip()
    return pieces


@functools.lru_cache(maxsize=256)
def lorem(n_tokens: int, model: str) -> str:
    """Lorem ipsum text exactly `n_tokens` long in `model`'s encoding (so benchmarks control output)."""
    enc = encoding_for(model)
    if n_tokens <= 0:
        return ""
    pieces = _lorem_pieces()
    sizes = {p: len(enc.encode_ordinary(p)) for p in {*pieces, _FILLER}}
    out: list[str] = []
    total = 0
    i = 0
    while total < n_tokens:
        piece = pieces[i % len(pieces)]
        if i and i % len(pieces) == 0:
            piece = " " + piece
        i += 1
        size = sizes.get(piece) or len(enc.encode_ordinary(piece))
        if total + size > n_tokens:
            piece, size = _FILLER, sizes[_FILLER]
        out.append(piece)
        total += size
    text = "".join(out)
    # Piece sums are exact for the regex-split BPEs we know; verify and repair for any other.
    for _ in range(64):
        actual = len(enc.encode_ordinary(text))
        if actual == n_tokens:
            break
        if actual < n_tokens:
            text += _FILLER * (n_tokens - actual)
        else:
            text = enc.decode(enc.encode_ordinary(text)[:n_tokens])
    return text


def truncate_tokens(text: str, limit: int, model: str) -> tuple[str, bool]:
    """(text cut to at most `limit` tokens, whether it was cut). Cuts on a UTF-8 character boundary."""
    enc = encoding_for(model)
    tokens = enc.encode_ordinary(text)
    if len(tokens) <= limit:
        return text, False
    return enc.decode_bytes(tokens[:max(limit, 0)]).decode("utf-8", "ignore"), True


def split_tokens(text: str, size: int, model: str) -> list[str]:
    """`text` in pieces of about `size` tokens that join back to exactly `text` (stream deltas).

    Token boundaries can fall inside a UTF-8 character; an incremental decoder holds such bytes back
    until the character is complete, so no piece carries a replacement character.
    """
    if not text:
        return []
    enc = encoding_for(model)
    tokens = enc.encode_ordinary(text)
    size = max(1, size)
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    pieces = []
    for start in range(0, len(tokens), size):
        piece = decoder.decode(enc.decode_bytes(tokens[start:start + size]))
        if piece:
            pieces.append(piece)
    tail = decoder.decode(b"", final=True)
    if tail:
        pieces.append(tail)
    return pieces


def apply_stop(text: str, stop: Any) -> tuple[str, bool]:
    """(text cut before the earliest stop sequence, whether one was found). `stop`: str or list."""
    sequences = [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else []
    cut = min((i for s in sequences if isinstance(s, str) and s and (i := text.find(s)) >= 0),
              default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def message_text(message: Any) -> str:
    """The text of a message's content: a string, or the text parts of an array, joined."""
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def last_user_text(messages: list) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return message_text(message)
    return ""


def tool_results_reply(messages: list) -> str:
    """The answer after tool results: names each trailing tool message's tool and quotes its content."""
    names: dict[str, str] = {}
    for message in messages:
        if isinstance(message, dict) and isinstance(message.get("tool_calls"), list):
            for call in message["tool_calls"]:
                if isinstance(call, dict) and isinstance(call.get("function"), dict):
                    names[str(call.get("id"))] = str(call["function"].get("name") or "tool")
    results = []
    for message in reversed(messages):
        if not (isinstance(message, dict) and message.get("role") in ("tool", "function")):
            break
        name = names.get(str(message.get("tool_call_id")), message.get("name") or "tool")
        results.append(f"The {name} tool returned: {message_text(message)}")
    return "\n".join(reversed(results))


# -- JSON Schema instances ----------------------------------------------------------------------
_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00",
    "email": "user@example.com",
    "uri": "https://example.com",
    "url": "https://example.com",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "192.0.2.1",
    "hostname": "example.com",
}


def schema_instance(schema: Any, root: Any = None, name: str = "value", depth: int = 0) -> Any:
    """A deterministic instance of a JSON Schema: required properties, enums, consts, formats, bounds.

    Used for tool-call arguments and `json_schema` answers, so agents and structured-output clients
    get something that validates. Unknown constructs fall back to a plain string.
    """
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > 12:
        return f"example {name}"
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#"):
        target: Any = root
        for key in ref.lstrip("#").strip("/").split("/"):
            target = target.get(key) if isinstance(target, dict) and key else target
        return schema_instance(target, root, name, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            non_null = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
            return schema_instance((non_null or options)[0], root, name, depth + 1)
    if isinstance(schema.get("allOf"), list):
        merged: dict = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            if isinstance(part, dict):
                merged["properties"] = {**_dict(merged.get("properties")), **_dict(part.get("properties"))}
                merged["required"] = [*_list(merged.get("required")), *_list(part.get("required"))]
                merged.update({k: v for k, v in part.items() if k not in ("properties", "required")})
        return schema_instance(merged, root, name, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        required = schema.get("required")
        keys = [k for k in required if isinstance(k, str)] if isinstance(required, list) else list(props)
        return {k: schema_instance(props.get(k, {}), root, k, depth + 1) for k in keys}
    if kind == "array":
        prefix = schema.get("prefixItems")
        if isinstance(prefix, list):
            return [schema_instance(s, root, name, depth + 1) for s in prefix]
        low, high = schema.get("minItems"), schema.get("maxItems")
        count = min(max(1, low if isinstance(low, int) else 0), 100)
        if isinstance(high, int):
            count = min(count, max(high, 0))
        return [schema_instance(schema.get("items", {}), root, name, depth + 1) for _ in range(count)]
    if kind in ("integer", "number"):
        return _number(schema, kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string(schema, name)


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _number(schema: dict, integer: bool) -> int | float:
    value: float = 1 if integer else 1.5
    lo, hi = schema.get("minimum"), schema.get("maximum")
    xlo, xhi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if isinstance(lo, int | float):
        value = max(value, lo)
    if isinstance(xlo, int | float) and value <= xlo:
        value = math.floor(xlo) + 1 if integer else xlo + 0.5
    if isinstance(hi, int | float):
        value = min(value, hi)
    if isinstance(xhi, int | float) and value >= xhi:
        value = math.ceil(xhi) - 1 if integer else xhi - 0.5
    return math.ceil(value) if integer else float(value)


def _string(schema: dict, name: str) -> str:
    value = _FORMATS.get(str(schema.get("format")), f"example {name}")
    min_len, max_len = schema.get("minLength"), schema.get("maxLength")
    if isinstance(min_len, int) and len(value) < min_len:
        value += "x" * (min_len - len(value))
    if isinstance(max_len, int):
        value = value[:max_len]
    return value
