"""The building blocks of the OpenAPI document's schemas, shared by every part of it (the core routes,
the admin API, the agents, each face): small functions with no imports of the router's own, so any
module that describes routes can use them.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict[str, Schema], required: tuple[str, ...] = (), description: str | None = None, *,
        additional: bool | Schema = True) -> Schema:
    out: Schema = {"type": "object", "properties": properties}
    if required:
        out["required"] = list(required)
    if additional is not True:
        out["additionalProperties"] = additional
    if description:
        out["description"] = description
    return out


def typed(kind: str | list[str], description: str | None = None, **keywords: Any) -> Schema:
    out: Schema = {"type": kind, **keywords}
    if description:
        out["description"] = description
    return out


def optional(kind: str, description: str = "", **keywords: Any) -> Schema:
    """An optional request member: `null` means absent, as the faces' parsers read it."""
    return typed([kind, "null"], description, **keywords)


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def const(value: str) -> Schema:
    return {"type": "string", "const": value}
