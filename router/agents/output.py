"""Structured output (`output: {type: object|array|enum, schema?, enum?}`): what the provider is asked
for, and how the answer is checked.

The provider's own structured-output support does the enforcing: the step that must answer gets
`response_format: json_schema` (or `json_object` for a schema-less object), which each provider
translates (OpenAI json_schema, Anthropic output_config, Gemini responseSchema, ...). As in the AI
SDK, an array is asked for as `{"elements": [...]}` and an enum as `{"result": "..."}` (providers
want an object at the top), then unwrapped. The answer is then validated with `jsonschema`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from ..errors import ApiError
from .tools import schema_problem

_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n?(.*?)\n?\s*```\s*$", re.S)


def _bad(param: str, message: str) -> ApiError:
    return ApiError(400, message, param=param, code="invalid_value")


@dataclass(frozen=True, slots=True)
class OutputSpec:
    type: str  # object | array | enum
    schema: dict[str, Any] | None = None
    enum: tuple[str, ...] | None = None

    @classmethod
    def parse(cls, value: Any, param: str = "output") -> OutputSpec:
        """A request's or config's `output`; 400 naming the member when it is malformed."""
        if not isinstance(value, dict):
            raise _bad(param, f"'{param}' must be an object {{type, schema?, enum?}}")
        kind = value.get("type")
        if kind not in ("object", "array", "enum"):
            raise _bad(f"{param}.type", f"'{param}.type' must be 'object', 'array' or 'enum'")
        schema = value.get("schema")
        if schema is not None:
            if not isinstance(schema, dict):
                raise _bad(f"{param}.schema", f"'{param}.schema' must be a JSON Schema object")
            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as exc:
                raise _bad(f"{param}.schema", f"'{param}.schema' is not a valid JSON Schema: {exc.message}") from None
        enum = value.get("enum")
        if kind == "enum":
            if not (isinstance(enum, list) and enum and all(isinstance(e, str) for e in enum)):
                raise _bad(f"{param}.enum", f"'{param}.enum' must be a non-empty array of strings")
            return cls("enum", None, tuple(enum))
        if enum is not None and not (isinstance(enum, list) and all(isinstance(e, str) for e in enum)):
            raise _bad(f"{param}.enum", f"'{param}.enum' must be an array of strings")
        return cls(kind, schema or None, None)

    # -- what the provider is asked for ------------------------------------------------------------
    def wire_schema(self) -> dict[str, Any] | None:
        if self.type == "enum":
            return {"type": "object", "properties": {"result": {"type": "string", "enum": list(self.enum or ())}},
                    "required": ["result"], "additionalProperties": False}
        if self.type == "array":
            return {"type": "object", "properties": {"elements": {"type": "array", "items": self.schema or {}}},
                    "required": ["elements"], "additionalProperties": False}
        return self.schema

    def response_format(self) -> dict[str, Any]:
        schema = self.wire_schema()
        if schema is None:
            return {"type": "json_object"}
        return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}

    def instruction(self) -> str:
        """A system note so a capable model answers in the format even on steps where tools are offered."""
        if self.type == "enum":
            return ("When you give your final answer, reply with only a JSON object "
                    f'{{"result": <one of {orjson.dumps(list(self.enum or ())).decode()}>}}.')
        schema = self.wire_schema()
        if schema is None:
            return "When you give your final answer, reply with only a single JSON object."
        return ("When you give your final answer, reply with only JSON matching this JSON Schema: "
                + orjson.dumps(schema).decode())

    # -- checking the answer -----------------------------------------------------------------------
    def extract(self, text: str | None) -> tuple[Any, str | None]:
        """(output, problem): the answer parsed, unwrapped and validated; `problem` says what is wrong."""
        if not text or not text.strip():
            return None, "the answer is empty"
        raw = text.strip()
        fenced = _FENCE.match(raw)
        if fenced:
            raw = fenced.group(1).strip()
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            if self.type == "enum" and raw in (self.enum or ()):
                return raw, None
            return None, "the answer is not valid JSON"
        if self.type == "enum":
            if isinstance(value, dict) and set(value) == {"result"}:
                value = value["result"]
            if value not in (self.enum or ()):
                return None, f"the answer must be one of {list(self.enum or ())}"
            return value, None
        if self.type == "array":
            if isinstance(value, dict) and set(value) == {"elements"}:
                value = value["elements"]
            if not isinstance(value, list):
                return None, "the answer must be a JSON array (wrapped as {\"elements\": [...]})"
            problem = schema_problem({"type": "array", "items": self.schema or {}}, value)
            return (None, problem) if problem else (value, None)
        if not isinstance(value, dict):
            return None, "the answer must be a JSON object"
        problem = schema_problem(self.schema, value) if self.schema else None
        return (None, problem) if problem else (value, None)

    def repair_message(self, problem: str) -> dict[str, Any]:
        """The user turn asking for one corrected answer."""
        return {"role": "user", "content": f"Your answer does not have the required format ({problem}). "
                                           f"{self.instruction()} Reply with the JSON only."}
