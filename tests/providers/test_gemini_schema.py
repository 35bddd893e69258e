"""clean_schema: client JSON Schemas -> the Schema subset Gemini accepts.

Every cleaned schema is also validated with google-genai's own `types.Schema` (extra fields are
forbidden there), and must survive its camelCase round trip unchanged.
"""

from __future__ import annotations

import copy
import enum
from typing import Literal

import orjson
import pytest
from google.genai import types
from pydantic import BaseModel, Field

from providers.gemini_schema import clean_schema


def gemini_valid(schema: dict) -> dict:
    """Fail unless google-genai accepts `schema` as a Schema and dumps it back identically."""
    model = types.Schema.model_validate_json(orjson.dumps(schema))
    assert model.model_dump(mode="json", by_alias=True, exclude_none=True) == schema
    return schema


def test_validator_rejects_what_gemini_rejects():
    with pytest.raises(ValueError):
        gemini_valid({"type": "OBJECT", "$schema": "http://json-schema.org/draft-07/schema#"})
    with pytest.raises(ValueError):
        gemini_valid({"type": "OBJECT", "patternProperties": {}})


def test_basic_object_drops_unsupported_keywords_and_uppercases_types():
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "weather",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "city": {"type": "string", "description": "City name", "minLength": 1},
            "days": {"type": "integer", "minimum": 1, "maximum": 14, "multipleOf": 1},
            "verbose": {"type": "boolean", "default": False},
        },
        "required": ["city"],
    }
    out = gemini_valid(clean_schema(schema))
    assert out == {
        "type": "OBJECT",
        "properties": {
            "city": {"type": "STRING", "description": "City name", "minLength": 1},
            "days": {"type": "INTEGER", "minimum": 1, "maximum": 14},
            "verbose": {"type": "BOOLEAN", "default": False},
        },
        "required": ["city"],
    }


def test_input_is_not_modified():
    schema = {"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
              "$defs": {"X": {"type": "string"}}}
    before = copy.deepcopy(schema)
    clean_schema(schema)
    assert schema == before


def test_refs_to_defs_are_inlined():
    schema = {
        "type": "object",
        "properties": {"home": {"$ref": "#/$defs/Address"}, "work": {"$ref": "#/definitions/Address"}},
        "$defs": {"Address": {"type": "object", "properties": {"street": {"type": "string"}},
                              "required": ["street"]}},
        "definitions": {"Address": {"type": "object", "properties": {"street": {"type": "string"}},
                                    "required": ["street"]}},
    }
    out = gemini_valid(clean_schema(schema))
    address = {"type": "OBJECT", "properties": {"street": {"type": "STRING"}}, "required": ["street"]}
    assert out["properties"] == {"home": address, "work": address}
    assert "$defs" not in out


def test_recursive_ref_stops_at_free_object():
    schema = {
        "$defs": {"Node": {"type": "object", "properties": {
            "value": {"type": "integer"},
            "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}},
        "$ref": "#/$defs/Node",
    }
    out = gemini_valid(clean_schema(schema))
    assert out["properties"]["value"] == {"type": "INTEGER"}
    assert out["properties"]["children"] == {"type": "ARRAY", "items": {"type": "OBJECT"}}


def test_anyof_with_null_becomes_nullable():
    schema = {"type": "object", "properties": {
        "age": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None, "title": "Age"},
        "tags": {"type": ["array", "null"], "items": {"type": "string"}},
        "nick": {"type": ["string", "null"], "description": "nickname"},
    }}
    out = gemini_valid(clean_schema(schema))
    assert out["properties"]["age"] == {"type": "INTEGER", "nullable": True, "title": "Age"}
    assert out["properties"]["tags"] == {"type": "ARRAY", "items": {"type": "STRING"}, "nullable": True}
    assert out["properties"]["nick"] == {"type": "STRING", "description": "nickname", "nullable": True}


def test_anyof_of_several_types_stays_anyof_and_oneof_becomes_anyof():
    schema = {"type": "object", "properties": {
        "id": {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}], "description": "id"},
        "shape": {"oneOf": [{"type": "object", "properties": {"r": {"type": "number"}}},
                            {"type": "object", "properties": {"w": {"type": "number"}}}]},
        "mixed": {"type": ["string", "integer"]},
    }}
    out = gemini_valid(clean_schema(schema))
    assert out["properties"]["id"] == {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}],
                                       "description": "id", "nullable": True}
    assert out["properties"]["shape"] == {"anyOf": [
        {"type": "OBJECT", "properties": {"r": {"type": "NUMBER"}}},
        {"type": "OBJECT", "properties": {"w": {"type": "NUMBER"}}}]}
    assert out["properties"]["mixed"] == {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]}


def test_const_and_enums():
    schema = {"type": "object", "properties": {
        "kind": {"const": "circle"},
        "unit": {"type": "string", "enum": ["c", "f", None]},
        "level": {"type": "integer", "enum": [1, 2, 3], "description": "Level."},
        "flag": {"enum": [True, False]},
    }}
    out = gemini_valid(clean_schema(schema))
    assert out["properties"]["kind"] == {"type": "STRING", "enum": ["circle"]}
    assert out["properties"]["unit"] == {"type": "STRING", "enum": ["c", "f"], "nullable": True}
    # Gemini enums are string-only: a numeric enum keeps its type and moves into the description
    assert out["properties"]["level"] == {"type": "INTEGER", "description": "Level. Allowed values: 1, 2, 3."}
    assert out["properties"]["flag"] == {"type": "BOOLEAN", "description": "Allowed values: true, false."}


def test_formats_only_documented_ones_survive():
    schema = {"type": "object", "properties": {
        "site": {"type": "string", "format": "uri"},
        "when": {"type": "string", "format": "date-time"},
        "mail": {"type": "string", "format": "email"},
        "big": {"type": "integer", "format": "int64"},
        "ratio": {"type": "number", "format": "double"},
    }}
    props = gemini_valid(clean_schema(schema))["properties"]
    assert props["site"] == {"type": "STRING"}
    assert props["when"] == {"type": "STRING", "format": "date-time"}
    assert props["mail"] == {"type": "STRING"}
    assert props["big"] == {"type": "INTEGER", "format": "int64"}
    assert props["ratio"] == {"type": "NUMBER", "format": "double"}


def test_allof_is_merged_and_required_filtered():
    schema = {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            {"properties": {"b": {"type": "number"}}, "required": ["b", "ghost"]},
        ],
        "description": "merged",
    }
    out = gemini_valid(clean_schema(schema))
    assert out == {"type": "OBJECT", "description": "merged",
                   "properties": {"a": {"type": "STRING"}, "b": {"type": "NUMBER"}}, "required": ["a", "b"]}


def test_arrays_tuple_items_and_prefix_items_and_implicit_types():
    schema = {"properties": {
        "pair": {"type": "array", "prefixItems": [{"type": "number"}, {"type": "number"}], "minItems": 2},
        "one": {"type": "array", "items": [{"type": "string"}]},
        "implicit": {"items": {"type": "boolean"}},
        "color": {"enum": ["red", "green"]},
    }}
    out = gemini_valid(clean_schema(schema))
    assert out["type"] == "OBJECT"
    props = out["properties"]
    assert props["pair"] == {"type": "ARRAY", "minItems": 2,
                             "items": {"anyOf": [{"type": "NUMBER"}, {"type": "NUMBER"}]}}
    assert props["one"] == {"type": "ARRAY", "items": {"type": "STRING"}}
    assert props["implicit"] == {"type": "ARRAY", "items": {"type": "BOOLEAN"}}
    assert props["color"] == {"type": "STRING", "enum": ["red", "green"]}


def test_exclusive_bounds_and_examples():
    out = gemini_valid(clean_schema({"type": "number", "exclusiveMinimum": 0, "examples": [3.5]}))
    assert out == {"type": "NUMBER", "minimum": 0, "example": 3.5}


def test_property_ordering_for_response_schemas():
    schema = {"type": "object", "properties": {"zeta": {"type": "string"}, "alpha": {
        "type": "object", "properties": {"y": {"type": "string"}, "x": {"type": "string"}}}}}
    out = gemini_valid(clean_schema(schema, ordering=True))
    assert out["propertyOrdering"] == ["zeta", "alpha"]
    assert out["properties"]["alpha"]["propertyOrdering"] == ["y", "x"]
    assert "propertyOrdering" not in clean_schema(schema)


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Address(BaseModel):
    street: str
    zip_code: str | None = Field(default=None, description="Postal code")


class Person(BaseModel):
    name: str = Field(description="Full name")
    age: int | None = None
    favourite: Color
    kind: Literal["human"] = "human"
    home: Address | None = Field(default=None, description="Where they live")
    friends: list[Address] = []


def test_pydantic_generated_schema_is_accepted():
    out = gemini_valid(clean_schema(Person.model_json_schema()))
    props = out["properties"]
    assert props["name"]["type"] == "STRING"
    assert props["age"] == {"type": "INTEGER", "nullable": True, "title": "Age"}
    assert props["favourite"] == {"type": "STRING", "enum": ["red", "green"], "title": "Color"}
    assert props["kind"]["enum"] == ["human"]
    assert props["home"]["nullable"] is True
    assert props["home"]["description"] == "Where they live"  # the field's own description wins
    assert props["home"]["properties"]["zip_code"]["nullable"] is True
    assert props["friends"]["items"]["properties"]["street"] == {"type": "STRING", "title": "Street"}
    assert out["required"] == ["name", "favourite"]


def test_non_dict_input():
    assert clean_schema(None) == {}
    assert clean_schema(["type"]) == {}
