"""Responses request -> canonical body (`router/handlers/responses/inbound.py`, `items.py`).

Every input body is first checked against the openai SDK's `ResponseCreateParams` (so the tests feed what
a real client may send; a few shapes real clients send that the SDK types refuse, such as Codex's
`content: null` on reasoning items, are fed unchecked and say so), every output against the SDK's
`CompletionCreateParams` once our extension members are set aside.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import pydantic
import pytest
from openai.types.responses.response_create_params import (
    ResponseCreateParamsNonStreaming,
    ResponseCreateParamsStreaming,
)
from support.mutations import paths, replaced
from support.vendor_schemas import check_chat_request, materialize

from router.errors import ApiError
from router.handlers.responses.inbound import Inbound, to_canonical
from router.handlers.responses.thinking import seal, unseal

PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg=="
PDF = "data:application/pdf;base64,JVBERi0xLjQKJcfsj6IK"
EXTENSIONS = ("cache_control", "thinking_blocks", "reasoning_content")  # ours, read by the translators
PARAMS = {False: (ResponseCreateParamsNonStreaming, pydantic.TypeAdapter(ResponseCreateParamsNonStreaming)),
          True: (ResponseCreateParamsStreaming, pydantic.TypeAdapter(ResponseCreateParamsStreaming))}


# -- helpers ----------------------------------------------------------------------------------
def req(input: Any = "Hi", **members: Any) -> dict:
    return {"model": "gpt-x", "input": input, **members}


def user(text: str) -> dict:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def call(call_id: str, name: str = "weather", arguments: str = '{"city":"Paris"}', **extra: Any) -> dict:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments, **extra}


def output(call_id: str, out: Any = "18C", **extra: Any) -> dict:
    return {"type": "function_call_output", "call_id": call_id, "output": out, **extra}


def said(text: str, **extra: Any) -> dict:
    return {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}], **extra}


def reasoning(*summaries: str, encrypted: str | None = None) -> dict:
    return {"type": "reasoning", "id": "rs_1", "encrypted_content": encrypted,
            "summary": [{"type": "summary_text", "text": s} for s in summaries]}


def fn(name: str, **extra: Any) -> dict:
    return {"type": "function", "name": name, "parameters": {"type": "object", "properties": {}}, "strict": False,
            **extra}


def sdk_problems(body: dict) -> str | None:
    """What the openai SDK's ResponseCreateParams refuses in `body` (first lines only), else None."""
    cls, adapter = PARAMS[body.get("stream") is True]
    unknown = set(body) - (cls.__required_keys__ | cls.__optional_keys__)
    if unknown:
        return f"unknown members {sorted(unknown)}"
    try:
        materialize(adapter.validate_python(body))
    except pydantic.ValidationError as exc:
        return "\n".join(str(exc).splitlines()[:4])
    return None


def strip_extensions(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_extensions(v) for k, v in value.items() if k not in EXTENSIONS}
    if isinstance(value, list):
        return [strip_extensions(v) for v in value]
    return value


def translate(body: dict, history: list[dict] | None = None, *, sdk_valid: bool = True) -> Inbound:
    """to_canonical, with the input checked by the SDK's Responses types and the output by its Chat types."""
    if sdk_valid:
        problem = sdk_problems(body)
        assert problem is None, problem
    result = to_canonical(copy.deepcopy(body), copy.deepcopy(history))
    assert result.dropped == sorted(set(result.dropped))
    check_chat_request(strip_extensions(result.body))
    return result


def canonical(body: dict, history: list[dict] | None = None) -> dict:
    return translate(body, history).body


def refused(body: Any, history: list[dict] | None = None) -> ApiError:
    with pytest.raises(ApiError) as info:
        to_canonical(body, history)
    err = info.value
    assert err.status == 400 and err.code == "invalid_request"
    return err


# -- scalars ----------------------------------------------------------------------------------
def test_string_input() -> None:
    result = translate(req())
    assert result.body == {"model": "gpt-x", "messages": [{"role": "user", "content": "Hi"}], "stream": False}
    assert result.dropped == []
    assert result.input_items == [user("Hi")]


def test_scalar_members() -> None:
    result = translate(req(instructions="Be brief.", stream=True, max_output_tokens=300, temperature=1.5, top_p=0.9,
                           user="u-1", safety_identifier="sid", metadata={"k": "v"}, store=False,
                           previous_response_id="resp_0"))
    assert result.body == {"model": "gpt-x", "stream": True, "max_completion_tokens": 300, "temperature": 1.5,
                           "top_p": 0.9, "user": "u-1", "safety_identifier": "sid",
                           "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}
    assert result.dropped == []  # metadata, store and previous_response_id are the face's


def test_reasoning_effort_and_summary() -> None:
    result = translate(req(reasoning={"effort": "high", "summary": "auto"}))
    assert result.body["reasoning_effort"] == "high" and result.dropped == ["reasoning.summary"]
    result = translate(req(reasoning={"effort": None, "summary": None}))
    assert "reasoning_effort" not in result.body and result.dropped == []


@pytest.mark.parametrize(("text", "expected"), [
    ({"format": {"type": "json_schema", "name": "city", "strict": True, "description": "A city",
                 "schema": {"type": "object", "properties": {"n": {"type": "string"}}, "required": ["n"],
                            "additionalProperties": False}}},
     {"response_format": {"type": "json_schema", "json_schema": {
         "name": "city", "description": "A city", "strict": True,
         "schema": {"type": "object", "properties": {"n": {"type": "string"}}, "required": ["n"],
                    "additionalProperties": False}}}}),
    ({"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}},
     {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}}),
    ({"format": {"type": "json_object"}}, {"response_format": {"type": "json_object"}}),
    ({"format": {"type": "text"}, "verbosity": "low"}, {"verbosity": "low"}),
    ({}, {}),
])
def test_text_format_and_verbosity(text: dict, expected: dict) -> None:
    body = canonical(req(text=text))
    assert {k: v for k, v in body.items() if k in ("response_format", "verbosity")} == expected


def test_tuning_members_are_dropped_and_listed() -> None:
    body = req(include=["reasoning.encrypted_content"], prompt_cache_key="k", service_tier="flex", truncation="auto",
               top_logprobs=3, max_tool_calls=2, background=False, prompt_cache_retention="24h",
               stream_options={"include_obfuscation": False})
    body["client_metadata"] = {"x-codex-installation-id": "i"}  # Codex's, not in the SDK types
    result = translate(body, sdk_valid=False)
    assert result.dropped == ["client_metadata", "include", "max_tool_calls", "prompt_cache_key",
                              "prompt_cache_retention", "service_tier", "stream_options", "top_logprobs",
                              "truncation"]
    assert set(result.body) == {"model", "messages", "stream"}


@pytest.mark.parametrize(("member", "value"), [
    ("background", True), ("conversation", "conv_1"), ("conversation", {"id": "conv_1"}),
    ("prompt", {"id": "pmpt_1", "version": "2"}),
])
def test_members_that_change_the_meaning_are_refused(member: str, value: Any) -> None:
    body = req(**{member: value})
    assert sdk_problems(body) is None
    err = refused(body)
    assert err.param == member


# -- messages ---------------------------------------------------------------------------------
def test_roles_and_easy_input_messages() -> None:
    result = translate(req([
        {"role": "developer", "content": "Use tools."},
        {"role": "system", "content": [{"type": "input_text", "text": "Sys"}]},
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "A1"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Q2"}]},
    ], instructions="Top."))
    assert result.body["messages"] == [
        {"role": "system", "content": "Top."},
        {"role": "system", "content": "Use tools."},
        {"role": "system", "content": [{"type": "text", "text": "Sys"}]},
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "A1"},
        {"role": "user", "content": [{"type": "text", "text": "Q2"}]},
    ]
    # the stored items: typed, and string content made a part, as input_items lists them
    assert result.input_items[0] == {"type": "message", "role": "developer",
                                     "content": [{"type": "input_text", "text": "Use tools."}]}
    assert result.input_items[3] == {"type": "message", "role": "assistant",
                                     "content": [{"type": "output_text", "text": "A1", "annotations": []}]}
    assert result.input_items[4] == user("Q2")


def test_user_images_files_audio_and_cache_marks() -> None:
    body = canonical(req([{"role": "user", "content": [
        {"type": "input_text", "text": "Look", "prompt_cache_breakpoint": {"mode": "explicit"}},
        {"type": "input_image", "image_url": "https://example.com/cat.jpg", "detail": "low"},
        {"type": "input_image", "image_url": PNG, "detail": "auto"},
        {"type": "input_file", "file_data": PDF, "filename": "report.pdf"},
        {"type": "input_file", "file_data": PDF},
    ]}]))
    assert body["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "Look", "cache_control": {"type": "ephemeral"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": PNG, "detail": "auto"}},
        {"type": "file", "file": {"file_data": PDF, "filename": "report.pdf"}},
        {"type": "file", "file": {"file_data": PDF}},
    ]}]
    body = to_canonical(req([{"role": "user", "content": [  # audio: not in the Responses message types yet
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}]}])).body
    assert body["messages"][0]["content"] == [{"type": "input_audio", "input_audio": {"data": "UklGRg==",
                                                                                      "format": "wav"}}]


@pytest.mark.parametrize(("part", "param"), [
    ({"type": "input_image", "file_id": "file_1", "detail": "auto"}, "input[0].content[1].file_id"),
    ({"type": "input_image", "detail": "auto"}, "input[0].content[1].image_url"),
    ({"type": "input_image", "image_url": 5, "detail": "auto"}, "input[0].content[1].image_url"),
    ({"type": "input_image", "image_url": PNG, "detail": "max"}, "input[0].content[1].detail"),
    ({"type": "input_file", "file_url": "https://example.com/a.pdf"}, "input[0].content[1].file_url"),
    ({"type": "input_file", "file_id": "file_1"}, "input[0].content[1].file_id"),
    ({"type": "input_file", "file_data": "JVBERi0x"}, "input[0].content[1].file_data"),
    ({"type": "input_file", "filename": "a.pdf"}, "input[0].content[1].file_data"),
    ({"type": "output_text", "text": "x"}, "input[0].content[1].type"),
])
def test_parts_that_cannot_be_carried_are_refused_by_path(part: dict, param: str) -> None:
    err = refused(req([{"role": "user", "content": [{"type": "input_text", "text": "Hi"}, part]}]))
    assert err.param == param


def test_system_messages_take_text_only() -> None:
    err = refused(req([{"role": "developer", "content": [{"type": "input_image", "image_url": PNG,
                                                           "detail": "auto"}]}, user("Hi")]))
    assert err.param == "input[0].content[0].type" and "input_image" in err.message


def test_assistant_output_text_and_refusal_parts() -> None:
    body = canonical(req([user("Q"), {"type": "message", "role": "assistant", "id": "msg_9", "status": "completed",
                                      "phase": "final_answer", "content": [
                                          {"type": "output_text", "text": "Part one. ", "annotations": [
                                              {"type": "url_citation", "start_index": 0, "end_index": 4,
                                               "url": "https://a.example", "title": "A"}]},
                                          {"type": "refusal", "refusal": "I won't do the rest."}]}, user("Ok")]))
    assert body["messages"][1] == {"role": "assistant", "content": "Part one. I won't do the rest."}


# -- function calls ---------------------------------------------------------------------------
def test_a_tool_loop_merges_calls_into_one_assistant_message() -> None:
    result = translate(req([
        user("Weather in Paris and Oslo?"),
        reasoning("Two cities.", encrypted="gAAAAB-openai-own-opaque"),
        said("Checking both."),
        call("call_a", arguments='{"city":"Paris"}', id="fc_1", status="completed"),
        call("call_b", arguments='{"city":"Oslo"}', id="fc_2", status="completed"),
        output("call_a", "18C", id="fco_1"),
        output("call_b", [{"type": "input_text", "text": "9C"}, {"type": "input_text", "text": "rain"}]),
        said("Paris 18C, Oslo 9C and rain."),
        user("Thanks"),
    ], tools=[fn("weather")]))
    assert result.body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Oslo?"}]},
        {"role": "assistant", "content": "Checking both.", "reasoning_content": "Two cities.", "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}},
            {"id": "call_b", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_b", "content": "9C\nrain"},
        {"role": "assistant", "content": "Paris 18C, Oslo 9C and rain."},
        {"role": "user", "content": [{"type": "text", "text": "Thanks"}]},
    ]  # OpenAI's own encrypted reasoning does not open: only its summary rides along


def test_calls_without_a_message_and_sequential_calls() -> None:
    body = canonical(req([user("Go"), call("c1", "now", ""), output("c1", "noon"),
                          call("c2", "now", "null"), output("c2", "one")], tools=[fn("now")]))
    assert body["messages"][1:] == [
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "now", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "noon"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c2", "type": "function", "function": {"name": "now", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c2", "content": "one"},
    ]


def test_agents_sdk_replayed_items_with_extra_null_fields() -> None:
    """The Agents SDK replays the output items it received, null members and all (not SDK-typed input)."""
    items = [
        {"role": "user", "content": "What time is it?"},
        {"id": "rs_1", "type": "reasoning", "summary": [], "content": None, "encrypted_content": None,
         "status": None},
        {"id": "fc_1", "type": "function_call", "call_id": "call_1", "name": "clock", "arguments": "{}",
         "status": "completed", "caller": None, "namespace": None},
        {"type": "function_call_output", "call_id": "call_1", "output": "noon", "id": "fco_1", "status": None,
         "caller": None, "name": None, "namespace": None},
        {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed", "phase": None,
         "content": [{"type": "output_text", "text": "Noon.", "annotations": [], "logprobs": []}]},
        {"role": "user", "content": "Thanks"},
    ]
    assert sdk_problems(req(items)) is not None  # `namespace: null` is outside the SDK's own types
    body = translate(req(items, tools=[fn("clock")]), sdk_valid=False).body
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "tool", "assistant", "user"]
    assert body["messages"][1] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "clock", "arguments": "{}"}}]}


def test_tool_output_images_follow_the_tool_messages() -> None:
    body = canonical(req([
        user("Screens?"), call("c1", "shot", "{}"), call("c2", "shot", "{}"),
        output("c1", [{"type": "input_text", "text": "Captured.", "prompt_cache_breakpoint": {"mode": "explicit"}},
                      {"type": "input_image", "image_url": PNG, "detail": "high"}]),
        output("c2", [{"type": "input_file", "file_data": PDF, "filename": "a.pdf"}]),
        user("Describe"),
    ], tools=[fn("shot")]))
    assert body["messages"][2:] == [
        {"role": "tool", "tool_call_id": "c1", "content": "Captured.", "cache_control": {"type": "ephemeral"}},
        {"role": "tool", "tool_call_id": "c2", "content": ""},
        {"role": "user", "content": [
            {"type": "text", "text": "[attachments of tool result c1]"},
            {"type": "image_url", "image_url": {"url": PNG, "detail": "high"}},
            {"type": "text", "text": "[attachments of tool result c2]"},
            {"type": "file", "file": {"file_data": PDF, "filename": "a.pdf"}}]},
        {"role": "user", "content": [{"type": "text", "text": "Describe"}]},
    ]


# -- reasoning --------------------------------------------------------------------------------
def test_reasoning_rides_on_the_next_assistant_message() -> None:
    blocks = [{"type": "thinking", "thinking": "Need a city.", "signature": "sig-1"},
              {"type": "redacted_thinking", "data": "opaque=="}]
    body = canonical(req([user("Q"), reasoning("Need a city.", encrypted=seal(blocks)), call("c1"),
                          output("c1"), user("and?")], tools=[fn("weather")]))
    assert body["messages"][1]["reasoning_content"] == "Need a city."
    assert body["messages"][1]["thinking_blocks"] == blocks


def test_our_sealed_reasoning_after_its_turn_belongs_to_that_turn() -> None:
    """Codex replays every `output_item.done`: a late-sealed reasoning item comes again after the calls."""
    blocks = [{"type": "thinking", "thinking": "Think.", "signature": "sig"}]
    first = {**reasoning("Think."), "content": None}
    late = {**reasoning(encrypted=seal(blocks)), "content": None}
    body = translate(req([user("Q"), first, said("Running."), call("c1"), call("c2"), late, output("c1"),
                          output("c2")], tools=[fn("weather")]), sdk_valid=False).body
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "tool", "tool"]
    assert body["messages"][1]["thinking_blocks"] == blocks
    assert body["messages"][1]["reasoning_content"] == "Think." and len(body["messages"][1]["tool_calls"]) == 2
    # an OpenAI reasoning item in the same place opens the next turn instead (and is dropped before a result)
    body = canonical(req([user("Q"), said("A"), call("c1"), reasoning("later", encrypted="gAAAA"), output("c1")],
                         tools=[fn("weather")]))
    assert "reasoning_content" not in body["messages"][1] and "thinking_blocks" not in body["messages"][1]


def test_reasoning_content_parts_several_items_and_orphans() -> None:
    body = canonical(req([
        user("Q"),
        {"type": "reasoning", "id": "rs_a", "summary": [], "content": [{"type": "reasoning_text", "text": "raw"}]},
        reasoning("one", "two"),
        said("A"),
        reasoning("orphan"),  # followed by a user message: nothing to ride on
        user("Q2"),
    ]))
    assert body["messages"][1] == {"role": "assistant", "content": "A", "reasoning_content": "raw\n\none\n\ntwo"}
    assert "reasoning_content" not in body["messages"][2]


def test_thinking_blocks_seal_and_unseal() -> None:
    blocks = [{"type": "thinking", "thinking": "é 🙂", "signature": "s/+="}, {"type": "redacted_thinking", "data": "d"}]
    sealed = seal(blocks)
    assert sealed is not None and sealed.startswith("sb1:") and "=" not in sealed
    assert unseal(sealed) == blocks
    assert seal([]) is None and seal([{"type": "other"}]) is None and seal(None) is None
    for foreign in ("gAAAAABoOpenAI", "sb1:!!!", "sb1:" + "e30", "sb1:W10", "sb1:WzFd", None, 5):
        assert unseal(foreign) is None


# -- history and references -------------------------------------------------------------------
def test_history_comes_before_the_input_and_after_instructions() -> None:
    history = [user("Q1"), said("A1"), call("c1", id="fc_1"),]
    body = canonical(req([output("c1", "18C"), user("Q2")], instructions="Sys"), history)
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "tool", "user"]
    assert body["messages"][2]["tool_calls"][0]["id"] == "c1" and body["messages"][2]["content"] == "A1"


def test_history_alone_may_continue() -> None:
    assert canonical({"model": "gpt-x"}, [user("Q1")])["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "Q1"}]}]


def test_a_bad_stored_item_names_previous_response_id() -> None:
    err = refused(req(), [{"type": "web_search_call", "id": "ws_1", "status": "completed"}])
    assert err.param == "previous_response_id" and "web_search_call" in err.message


def test_item_references() -> None:
    history = [user("Q1"), said("A1", id="msg_a")]
    body = canonical(req([{"type": "item_reference", "id": "msg_a"}, user("Q2")]), history)
    assert body["messages"][-2:] == [{"role": "assistant", "content": "A1"},
                                     {"role": "user", "content": [{"type": "text", "text": "Q2"}]}]
    body = to_canonical(req([{**user("Q"), "id": "in_1"}, {"id": "in_1"}])).body  # type-less, as the SDK allows
    assert len(body["messages"]) == 2
    err = refused(req([user("Q"), {"type": "item_reference", "id": "msg_unknown"}]))
    assert err.param == "input[1].id" and "msg_unknown" in err.message


# -- tools ------------------------------------------------------------------------------------
def test_tools() -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    result = translate(req(tools=[
        {"type": "function", "name": "search", "description": "Search", "parameters": schema, "strict": True},
        {"type": "function", "name": "now", "parameters": None, "strict": None, "defer_loading": True},
        {"type": "web_search", "external_web_access": False},
        {"type": "web_search_preview"},
        {"type": "file_search", "vector_store_ids": ["vs_1"]},
        {"type": "code_interpreter", "container": {"type": "auto"}},
        {"type": "image_generation"},
        {"type": "local_shell"},
        {"type": "mcp", "server_label": "files", "server_url": "https://mcp.example"},
        {"type": "custom", "name": "apply_patch", "format": {"type": "text"}},
    ]))
    assert result.body["tools"] == [
        {"type": "function", "function": {"name": "search", "description": "Search", "parameters": schema,
                                          "strict": True}},
        {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}},
    ]
    assert result.dropped == ["code_interpreter", "custom", "defer_loading", "file_search", "image_generation",
                              "local_shell", "mcp", "web_search", "web_search_preview"]


def test_namespaces_are_flattened() -> None:
    result = translate(req(tools=[fn("exec_command"), {
        "type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents",
        "tools": [fn("spawn_agent", description="Spawn"), fn("wait_agent"),
                  {"type": "custom", "name": "free", "description": "x"}]}]))
    assert [t["function"]["name"] for t in result.body["tools"]] == ["exec_command", "spawn_agent", "wait_agent"]
    assert result.body["tools"][1]["function"]["description"] == "Spawn"
    assert result.dropped == ["custom"]


def test_function_names_must_be_unique_once_flattened() -> None:
    err = refused(req(tools=[fn("wait"), {"type": "namespace", "name": "ns", "description": "d",
                                          "tools": [fn("wait")]}]))
    assert err.param == "tools[1].tools[0].name"


@pytest.mark.parametrize(("choice", "expected"), [
    ("auto", "auto"), ("none", "none"), ("required", "required"),
    ({"type": "function", "name": "search"}, {"type": "function", "function": {"name": "search"}}),
    ({"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "search"}]}, "auto"),
    ({"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "search"}]}, "required"),
])
def test_tool_choice(choice: Any, expected: Any) -> None:
    result = translate(req(tools=[fn("search")], tool_choice=choice, parallel_tool_calls=False))
    assert result.body["tool_choice"] == expected and result.body["parallel_tool_calls"] is False
    assert result.dropped == (["allowed_tools"] if isinstance(choice, dict) and "mode" in choice else [])


@pytest.mark.parametrize("choice", [{"type": "web_search"}, {"type": "web_search_preview"}, {"type": "file_search"},
                                    {"type": "image_generation"}, {"type": "mcp", "server_label": "files"},
                                    {"type": "custom", "name": "apply_patch"}])
def test_forcing_a_hosted_tool_is_refused(choice: dict) -> None:
    err = refused(req(tools=[fn("search"), {"type": "web_search"}], tool_choice=choice))
    assert err.param == "tool_choice" and choice["type"] in err.message


def test_tool_choice_without_function_tools() -> None:
    body = canonical(req(tools=[{"type": "web_search"}], tool_choice="auto", parallel_tool_calls=True))
    assert "tools" not in body and "tool_choice" not in body and "parallel_tool_calls" not in body
    assert refused(req(tools=[{"type": "web_search"}], tool_choice="required")).param == "tool_choice"
    assert refused(req(tools=[fn("a")], tool_choice={"type": "function", "name": "b"})).param == "tool_choice.name"


def test_a_codex_request() -> None:
    """The shape Codex 0.171 sends (`codex exec`, second turn), texts shortened; not SDK-typed (`content: null`)."""
    body = {
        "model": "smart", "stream": True, "tool_choice": "auto", "parallel_tool_calls": True,
        "reasoning": {"summary": "auto"}, "store": False, "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "0199-session", "client_metadata": {"session_id": "0199-session"},
        "input": [
            {"type": "message", "id": "msg_0", "role": "developer",
             "content": [{"type": "input_text", "text": "You are a coding agent running in the Codex CLI."}]},
            {"type": "message", "id": "msg_1", "role": "user",
             "content": [{"type": "input_text", "text": "<environment_context>…</environment_context>"}]},
            {"type": "message", "id": "msg_2", "role": "user", "content": [{"type": "input_text", "text": "Run it"}]},
            {"type": "reasoning", "id": "rs_x_0", "summary": [{"type": "summary_text", "text": "Think."}],
             "content": None, "encrypted_content": seal([{"type": "thinking", "thinking": "Think.",
                                                          "signature": "sig"}])},
            {"type": "message", "status": "completed", "id": "msg_x_1", "role": "assistant",
             "content": [{"type": "output_text", "text": "Running.", "annotations": []}]},
            {"type": "function_call", "status": "completed", "id": "fc_x_2", "name": "exec_command",
             "arguments": '{"cmd":"echo hi"}', "call_id": "call_A"},
            {"type": "function_call", "status": "completed", "id": "fc_x_3", "name": "wait_agent",
             "namespace": "multi_agent_v1", "arguments": '{"targets":["a"]}', "call_id": "call_B"},
            {"type": "function_call_output", "id": "fco_1", "call_id": "call_A", "output": "hi\n"},
            {"type": "function_call_output", "id": "fco_2", "call_id": "call_B", "output": "done"},
        ],
        "tools": [
            fn("exec_command", description="Runs a command in a PTY."),
            {"type": "namespace", "name": "multi_agent_v1", "description": "Tools for sub-agents.",
             "tools": [fn("spawn_agent"), fn("wait_agent")]},
            {"type": "web_search", "external_web_access": False},
        ],
    }
    result = translate(body, sdk_valid=False)
    assert result.dropped == ["client_metadata", "include", "prompt_cache_key", "reasoning.summary", "web_search"]
    messages = result.body["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "user", "assistant", "tool", "tool"]
    assert messages[3]["thinking_blocks"] == [{"type": "thinking", "thinking": "Think.", "signature": "sig"}]
    assert [c["function"]["name"] for c in messages[3]["tool_calls"]] == ["exec_command", "wait_agent"]
    assert [t["function"]["name"] for t in result.body["tools"]] == ["exec_command", "spawn_agent", "wait_agent"]
    assert result.body["stream"] is True and result.body["tool_choice"] == "auto"


# -- invalid input ----------------------------------------------------------------------------
BAD: list[tuple[Any, str | None]] = [
    ([], None),
    ({"input": "x"}, "model"),
    (req(model=""), "model"),
    (req(model=5), "model"),
    (req(None), "input"),
    (req([]), "input"),
    (req(5), "input"),
    (req(["hi"]), "input[0]"),
    (req([{"type": 5}]), "input[0].type"),
    (req([{"type": "message", "role": "tool", "content": "x"}]), "input[0].role"),
    (req([{"role": "user"}]), "input[0].content"),
    (req([{"role": "user", "content": 5}]), "input[0].content"),
    (req([{"role": "user", "content": []}]), "input[0].content"),
    (req([{"role": "user", "content": ["x"]}]), "input[0].content[0]"),
    (req([{"role": "user", "content": [{"type": "input_text"}]}]), "input[0].content[0].text"),
    (req([{"role": "user", "content": [{"type": "input_text", "text": "x", "prompt_cache_breakpoint": "y"}]}]),
     "input[0].content[0].prompt_cache_breakpoint"),
    (req([{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x", "format": "ogg"}}]}]),
     "input[0].content[0].input_audio.format"),
    (req([{"role": "assistant", "content": [{"type": "input_image", "image_url": PNG}]}]),
     "input[0].content[0].type"),
    (req([user("q"), call("", "x")]), "input[1].call_id"),
    (req([user("q"), {"type": "function_call", "call_id": "c", "arguments": "{}"}]), "input[1].name"),
    (req([user("q"), call("c", "x", {"a": 1})]), "input[1].arguments"),  # type: ignore[arg-type]
    (req([user("q"), output("c", None)]), "input[1].output"),
    (req([user("q"), output("c", [{"type": "refusal", "refusal": "x"}])]), "input[1].output[0].type"),
    (req([user("q"), {"type": "function_call_output", "output": "x"}]), "input[1].call_id"),
    (req([user("q"), {"type": "reasoning", "summary": "x"}]), "input[1].summary"),
    (req([user("q"), {"type": "reasoning", "summary": [{"type": "other", "text": "x"}]}]), "input[1].summary[0].type"),
    (req([user("q"), {"type": "reasoning", "summary": [], "encrypted_content": 5}]), "input[1].encrypted_content"),
    (req([user("q"), {"type": "item_reference", "id": 5}]), "input[1].id"),
    (req([user("q"), {"type": "web_search_call", "id": "ws", "status": "completed"}]), "input[1].type"),
    (req([user("q"), {"type": "computer_call_output", "call_id": "c", "output": {}}]), "input[1].type"),
    (req([user("q"), {"type": "custom_tool_call", "call_id": "c", "name": "n", "input": ""}]), "input[1].type"),
    (req(instructions=5), "instructions"),
    (req(stream="yes"), "stream"),
    (req(max_output_tokens=0), "max_output_tokens"),
    (req(max_output_tokens="5"), "max_output_tokens"),
    (req(max_output_tokens=True), "max_output_tokens"),
    (req(temperature=3), "temperature"),
    (req(top_p="x"), "top_p"),
    (req(user=5), "user"),
    (req(safety_identifier=[]), "safety_identifier"),
    (req(metadata="x"), "metadata"),
    (req(metadata={"k": 1}), "metadata"),
    (req(store="no"), "store"),
    (req(previous_response_id=5), "previous_response_id"),
    (req(background="yes"), "background"),
    (req(parallel_tool_calls="yes", tools=[fn("a")]), "parallel_tool_calls"),
    (req(reasoning="high"), "reasoning"),
    (req(reasoning={"effort": "extreme"}), "reasoning.effort"),
    (req(reasoning={"effort": ["high"]}), "reasoning.effort"),
    (req(text="json"), "text"),
    (req(text={"format": {"type": "xml"}}), "text.format.type"),
    (req(text={"format": {"type": "json_schema", "name": "x"}}), "text.format.schema"),
    (req(text={"format": {"type": "json_schema", "schema": {}}}), "text.format.name"),
    (req(text={"format": {"type": "json_schema", "name": "x", "schema": {}, "strict": "y"}}), "text.format.strict"),
    (req(text={"verbosity": "loud"}), "text.verbosity"),
    (req(text={"verbosity": {}}), "text.verbosity"),
    (req(tools={}), "tools"),
    (req(tools=[5]), "tools[0]"),
    (req(tools=[{"name": "x"}]), "tools[0].type"),
    (req(tools=[{"type": "function"}]), "tools[0].name"),
    (req(tools=[fn("x", description=5)]), "tools[0].description"),
    (req(tools=[{"type": "function", "name": "x", "parameters": "y"}]), "tools[0].parameters"),
    (req(tools=[{"type": "function", "name": "x", "strict": "y"}]), "tools[0].strict"),
    (req(tools=[{"type": "namespace", "name": "n", "tools": {}}]), "tools[0].tools"),
    (req(tools=[{"type": "namespace", "tools": []}]), "tools[0].name"),
    (req(tools=[{"type": "namespace", "name": "n", "tools": [{"type": "web_search"}]}]), "tools[0].tools[0].type"),
    (req(tools=[fn("a")], tool_choice="any"), "tool_choice"),
    (req(tools=[fn("a")], tool_choice=["auto"]), "tool_choice"),
    (req(tools=[fn("a")], tool_choice={"type": "function"}), "tool_choice.name"),
    (req(tools=[fn("a")], tool_choice={"type": "allowed_tools", "mode": "any"}), "tool_choice.mode"),
    (req(tools=[fn("a")], tool_choice={"type": "allowed_tools", "mode": []}), "tool_choice.mode"),
]


@pytest.mark.parametrize(("body", "param"), BAD)
def test_invalid_input_names_the_member(body: Any, param: str | None) -> None:
    assert refused(body).param == param


WRONG = [None, 0, -1, 2.5, True, "", "x", [], [None], {}, {"type": "input_text"}, {"type": "message"}]


def test_fuzz_wrong_types_give_400s_or_valid_bodies() -> None:
    """Any member of a rich request swapped for a value of another type: a 400 naming a member, or a body."""
    base = req([
        {"role": "developer", "content": "Use tools."},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "Look", "prompt_cache_breakpoint": {"mode": "explicit"}},
            {"type": "input_image", "image_url": PNG, "detail": "auto"},
            {"type": "input_file", "file_data": PDF, "filename": "a.pdf"}]},
        reasoning("Hm.", encrypted=seal([{"type": "thinking", "thinking": "Hm.", "signature": "s"}])),
        said("Checking."),
        call("call_1", "search", '{"q":"x"}', id="fc_1", status="completed"),
        output("call_1", [{"type": "input_text", "text": "r"}, {"type": "input_image", "image_url": PNG,
                                                                 "detail": "low"}]),
        {"type": "item_reference", "id": "msg_1"},
    ], instructions="Sys", stream=True, max_output_tokens=100, temperature=0.2, top_p=0.5, user="u",
        metadata={"k": "v"}, store=True, previous_response_id="resp_0", parallel_tool_calls=True,
        reasoning={"effort": "low", "summary": "auto"},
        text={"format": {"type": "json_schema", "name": "o", "schema": {"type": "object"}, "strict": True},
              "verbosity": "low"},
        tools=[fn("search", description="d"), {"type": "namespace", "name": "ns", "description": "d",
                                               "tools": [fn("inner")]}, {"type": "web_search"}],
        tool_choice={"type": "function", "name": "search"})
    history = [user("Q0"), said("A0", id="msg_0")]
    translate(base, history)
    rng = random.Random(20250601)
    outcomes = {"ok": 0, "400": 0}
    for target, members in (("body", paths(base)), ("history", paths(history))):
        for path in members:
            for new in rng.sample(WRONG, 4):
                body, hist = (replaced(base, path, new), history) if target == "body" else (
                    base, replaced(history, path, new))
                try:
                    result = to_canonical(body, hist)
                except ApiError as err:
                    assert err.status == 400 and err.code == "invalid_request", (target, path, new)
                    assert isinstance(err.param, str) and err.param, (target, path, new)
                    outcomes["400"] += 1
                else:
                    assert isinstance(result.body["messages"], list), (target, path, new)
                    outcomes["ok"] += 1
    assert outcomes["400"] > 150 and outcomes["ok"] > 30, outcomes
