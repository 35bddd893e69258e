"""JSON Schema -> the OpenAPI-3.0 subset Gemini accepts in `parameters` and `responseSchema`.

Clients send the JSON Schema their SDK generated (pydantic, zod, hand-written): `$defs`/`$ref`,
`anyOf` with `{"type": "null"}`, type arrays, `const`, `additionalProperties: false` from strict
mode, formats like `uri`. Gemini's `Schema` object rejects most of that with a 400 naming an
unknown field, so every tool definition is rewritten here into the shape the API documents:
upper-case `type`, `nullable`, string-only `enum`, `anyOf`, and the validation keywords it lists.

Nothing the caller wrote is silently turned into something different: keywords Gemini cannot
express are dropped (they only narrowed the schema), non-string enums are moved into the
description, and recursive `$ref`s stop at a free-form OBJECT.
"""

from __future__ import annotations

from typing import Any

# Gemini's Schema keeps: type, format, title, description, nullable, enum, properties, required,
# items, anyOf, propertyOrdering, default, example, min/maxItems, min/maxLength,
# min/maxProperties, pattern, minimum, maximum. Everything else is dropped.
_TYPES = {"string": "STRING", "number": "NUMBER", "integer": "INTEGER", "boolean": "BOOLEAN",
          "array": "ARRAY", "object": "OBJECT", "null": "NULL"}
# The formats the Gemini API documents per type; others (uri, email, uuid, date…) are dropped.
_FORMATS = {"STRING": {"enum", "date-time"}, "NUMBER": {"float", "double"},
            "INTEGER": {"int32", "int64"}}
_MAX_DEPTH = 64


def clean_schema(schema: Any, *, ordering: bool = False) -> dict:
    """Return a Gemini-acceptable copy of a JSON Schema (the input is not modified).

    `ordering=True` adds `propertyOrdering` to objects: Gemini otherwise emits structured-output
    keys in alphabetical order, while OpenAI clients expect the order of their schema.
    """
    if not isinstance(schema, dict):
        return {}
    defs: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        if isinstance(schema.get(key), dict):
            defs.update(schema[key])
    return _Cleaner(defs, ordering).clean(schema, frozenset(), 0)


class _Cleaner:
    __slots__ = ("defs", "ordering")

    def __init__(self, defs: dict[str, Any], ordering: bool) -> None:
        self.defs = defs
        self.ordering = ordering

    def clean(self, node: Any, refs: frozenset[str], depth: int) -> dict:
        if not isinstance(node, dict) or depth > _MAX_DEPTH:
            return {}
        node, refs = self._resolve(node, refs)
        if node.get("$ref") is not None:  # a cycle: Gemini has no recursion, stop at a free object
            out = {"type": "OBJECT"}
            if isinstance(node.get("description"), str):
                out["description"] = node["description"]
            return out
        node = self._merge_all_of(node, refs, depth)

        nullable = node.get("nullable") is True
        # `type: [a, b, "null"]`
        raw_type = node.get("type")
        variants: list[Any] | None = None
        if isinstance(raw_type, list):
            kinds = [t for t in raw_type if t != "null"]
            nullable = nullable or len(kinds) < len(raw_type)
            if len(kinds) == 1:
                raw_type = kinds[0]
            else:
                base = {k: v for k, v in node.items() if k not in ("description", "title", "nullable")}
                variants = [{**base, "type": t} for t in kinds]
                raw_type = None
        # `anyOf` / `oneOf` (oneOf's exclusivity cannot be expressed; anyOf is the closest)
        union = node.get("anyOf") if isinstance(node.get("anyOf"), list) else node.get("oneOf")
        if variants is None and isinstance(union, list):
            kept = []
            for sub in union:
                resolved = self._resolve(sub, refs)[0] if isinstance(sub, dict) else sub
                if isinstance(resolved, dict) and resolved.get("type") == "null" and len(resolved) == 1:
                    nullable = True
                else:
                    kept.append(sub)
            if len(kept) == 1:  # Optional[X]: fold X into this node, keeping this node's description
                base = {k: v for k, v in node.items() if k not in ("anyOf", "oneOf")}
                inner = self.clean(kept[0], refs, depth + 1)
                merged = {**inner, **self._scalars(base)}  # the field's own description wins
                if nullable:
                    merged["nullable"] = True
                return merged
            variants = kept or None

        out: dict[str, Any] = {}
        if variants:
            out["anyOf"] = [self.clean(v, refs, depth + 1) for v in variants]
            out.update(self._scalars(node))
            if nullable:
                out["nullable"] = True
            return out

        gtype = _TYPES.get(raw_type.lower()) if isinstance(raw_type, str) else None
        enum = node.get("enum")
        if "const" in node:
            enum = [node["const"]]
        if gtype is None:  # infer what JSON Schema leaves implicit
            if isinstance(node.get("properties"), dict):
                gtype = "OBJECT"
            elif "items" in node:
                gtype = "ARRAY"
            elif isinstance(enum, list) and enum:
                gtype = _infer_enum_type(enum)
        if gtype == "NULL":
            gtype, nullable = None, True
        if gtype:
            out["type"] = gtype
        out.update(self._scalars(node))

        if isinstance(enum, list):
            if None in enum:
                nullable = True
                enum = [e for e in enum if e is not None]
            if enum and all(isinstance(e, str) for e in enum) and gtype in (None, "STRING"):
                out["type"] = "STRING"
                out["enum"] = enum
            elif enum:  # Gemini enums are strings only: keep the constraint as an instruction
                allowed = ", ".join(_json_literal(e) for e in enum)
                desc = out.get("description")
                note = f"Allowed values: {allowed}."
                out["description"] = f"{desc} {note}" if desc else note
        fmt = node.get("format")
        if isinstance(fmt, str) and fmt in _FORMATS.get(out.get("type", ""), ()):
            out["format"] = fmt
        if out.get("type") == "STRING" and "enum" in out:
            out.pop("format", None)

        if out.get("type") == "OBJECT" or isinstance(node.get("properties"), dict):
            props = node.get("properties")
            if isinstance(props, dict) and props:
                out["properties"] = {str(k): self.clean(v, refs, depth + 1) for k, v in props.items()}
                required = node.get("required")
                if isinstance(required, list):
                    names = [r for r in required if isinstance(r, str) and r in props]
                    if names:
                        out["required"] = names
                if self.ordering and len(props) > 1:
                    out["propertyOrdering"] = list(out["properties"])
        if out.get("type") == "ARRAY":
            items = node.get("items")
            if isinstance(items, list):  # tuple form: Gemini has one item schema
                items = items[0] if len(items) == 1 else ({"anyOf": items} if items else None)
            if items is None and isinstance(node.get("prefixItems"), list) and node["prefixItems"]:
                pref = node["prefixItems"]
                items = pref[0] if len(pref) == 1 else {"anyOf": pref}
            if isinstance(items, dict):
                cleaned = self.clean(items, refs, depth + 1)
                if cleaned:
                    out["items"] = cleaned
        if nullable:
            out["nullable"] = True
        return out

    # -- helpers -------------------------------------------------------------------------------
    def _resolve(self, node: dict, refs: frozenset[str]) -> tuple[dict, frozenset[str]]:
        """Inline `$ref: #/$defs/X` (siblings of `$ref` win over the target's keys).

        Returns the node and the refs on the path to it; a node still holding `$ref` afterwards is
        unresolvable or recursive (the path already went through it)."""
        while isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            name = ref.rsplit("/", 1)[-1] if ref.startswith("#/") else None
            target = self.defs.get(name) if name else None
            if not isinstance(target, dict) or ref in refs:
                return node, refs
            refs = refs | {ref}
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            node = {**target, **siblings}
        return node, refs

    def _merge_all_of(self, node: dict, refs: frozenset[str], depth: int) -> dict:
        """`allOf` (pydantic emits it around a single `$ref`): merge the parts into one schema."""
        parts = node.get("allOf")
        if not isinstance(parts, list):
            return node
        merged: dict[str, Any] = {k: v for k, v in node.items() if k != "allOf"}
        for part in parts:
            if not isinstance(part, dict):
                continue
            part, _ = self._resolve(part, refs)
            if part.get("$ref") is not None:
                continue
            part = self._merge_all_of(part, refs, depth + 1)
            for key, value in part.items():
                if key == "properties" and isinstance(value, dict):
                    merged["properties"] = {**value, **(merged.get("properties") or {})}
                elif key == "required" and isinstance(value, list):
                    merged["required"] = list(dict.fromkeys([*(merged.get("required") or []), *value]))
                else:
                    merged.setdefault(key, value)
        return merged

    @staticmethod
    def _scalars(node: dict) -> dict:
        """The plain annotation/validation keywords Gemini accepts, copied as they are."""
        out: dict[str, Any] = {}
        for key in ("title", "description", "minItems", "maxItems", "minLength", "maxLength",
                    "minProperties", "maxProperties", "pattern", "minimum", "maximum"):
            value = node.get(key)
            if value is None:
                continue
            if key in ("title", "description", "pattern"):
                if isinstance(value, str):
                    out[key] = value
            elif _is_number(value):
                out[key] = value
        if "exclusiveMinimum" in node and "minimum" not in out and _is_number(node["exclusiveMinimum"]):
            out["minimum"] = node["exclusiveMinimum"]  # close enough: the bound itself is allowed
        if "exclusiveMaximum" in node and "maximum" not in out and _is_number(node["exclusiveMaximum"]):
            out["maximum"] = node["exclusiveMaximum"]
        if node.get("default") is not None:
            out["default"] = node["default"]
        example = node.get("example")
        if example is None and isinstance(node.get("examples"), list) and node["examples"]:
            example = node["examples"][0]
        if example is not None:
            out["example"] = example
        return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _infer_enum_type(enum: list) -> str | None:
    values = [e for e in enum if e is not None]
    if values and all(isinstance(e, str) for e in values):
        return "STRING"
    if values and all(isinstance(e, bool) for e in values):
        return "BOOLEAN"
    if values and all(isinstance(e, int) and not isinstance(e, bool) for e in values):
        return "INTEGER"
    if values and all(_is_number(e) for e in values):
        return "NUMBER"
    return None


def _json_literal(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)
