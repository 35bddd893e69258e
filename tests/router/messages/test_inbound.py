"""Messages request -> canonical body (`router/handlers/messages/inbound.py`).

Every input body is first checked against the anthropic SDK's `MessageCreateParams` (so the tests feed
what a real client may send), every output against the openai SDK's `CompletionCreateParams` once our
extension members are set aside, and the captured Claude Code requests also go back through the
Anthropic translator to a body the Messages API would take, cache marks included.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import pydantic
import pytest
from anthropic.types.beta.message_create_params import MessageCreateParamsStreaming as BetaStreamingParams
from support.mutations import paths, replaced
from support.vendor_schemas import anthropic_request_problems, check_chat_request, materialize

from providers.anthropic_request import build_body
from router.errors import ApiError
from router.handlers.messages.inbound import Inbound, to_canonical

CAPTURED = Path(__file__).resolve().parents[2] / "faces" / "claude_code" / "captured"
PDF = "JVBERi0xLjQKJcfsj6IK"
PNG = "iVBORw0KGgoAAAANSUhEUg=="
EXTENSIONS = ("cache_control", "thinking_blocks", "reasoning_content")  # ours, read by the translators


# -- helpers ----------------------------------------------------------------------------------
def req(messages: list | str = "Hi", **members: Any) -> dict:
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    return {"model": "claude-x", "max_tokens": 256, "messages": messages, **members}


def strip_extensions(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_extensions(v) for k, v in value.items() if k not in EXTENSIONS}
    if isinstance(value, list):
        return [strip_extensions(v) for v in value]
    return value


BETA_PARAMS = pydantic.TypeAdapter(BetaStreamingParams)
BETA_KEYS = BetaStreamingParams.__required_keys__ | BetaStreamingParams.__optional_keys__


def check_beta_request(body: dict) -> None:
    """Claude Code sends beta members (`context_management`): its requests are checked by the beta types."""
    assert set(body) <= BETA_KEYS, set(body) - BETA_KEYS
    materialize(BETA_PARAMS.validate_python(body))


def translate(body: dict, *, sdk_valid: bool = True) -> Inbound:
    """to_canonical, with the input checked by the anthropic SDK and the output by the openai SDK."""
    if sdk_valid:
        problems = anthropic_request_problems(body, body.get("stream") is True)
        assert not problems, problems
    result = to_canonical(copy.deepcopy(body))
    assert result.dropped == sorted(set(result.dropped))
    canonical = strip_extensions({k: v for k, v in result.body.items() if k != "thinking"})
    check_chat_request(canonical)
    return result


def canonical(body: dict) -> dict:
    return translate(body).body


def refused(body: Any) -> ApiError:
    with pytest.raises(ApiError) as info:
        to_canonical(body)
    err = info.value
    assert err.status == 400 and err.code == "invalid_request"
    return err


def user_blocks(*blocks: dict) -> list[dict]:
    return [{"role": "user", "content": list(blocks)}]


def cache_marks(value: Any) -> int:
    if isinstance(value, dict):
        return ("cache_control" in value) + sum(cache_marks(v) for v in value.values())
    if isinstance(value, list):
        return sum(cache_marks(v) for v in value)
    return 0


def captured(name: str) -> dict:
    return json.loads((CAPTURED / name).read_text())["body"]


# -- scalars ----------------------------------------------------------------------------------
def test_minimal_request() -> None:
    result = translate(req())
    assert result.body == {"model": "claude-x", "messages": [{"role": "user", "content": "Hi"}],
                           "stream": False, "max_tokens": 256}
    assert result.dropped == []


def test_scalar_members() -> None:
    body = canonical(req(stream=True, temperature=0.5, top_p=0.9, stop_sequences=["END", "STOP"],
                         metadata={"user_id": "user-42"}))
    assert body["stream"] is True
    assert (body["temperature"], body["top_p"], body["stop"], body["user"]) == (0.5, 0.9, ["END", "STOP"], "user-42")


def test_metadata_without_a_user_id_sets_no_user() -> None:
    assert "user" not in canonical(req(metadata={"user_id": None}))
    assert "user" not in canonical(req(metadata={}))


# -- system -----------------------------------------------------------------------------------
def test_system_string_stays_a_string() -> None:
    body = canonical(req(system="Be brief."))
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}


def test_system_blocks_keep_cache_control() -> None:
    body = canonical(req(system=[{"type": "text", "text": "A"},
                                 {"type": "text", "text": "B", "cache_control": {"type": "ephemeral"}}]))
    assert body["messages"][0] == {"role": "system", "content": [
        {"type": "text", "text": "A"}, {"type": "text", "text": "B", "cache_control": {"type": "ephemeral"}}]}
    assert body["messages"][1]["role"] == "user"


def test_system_messages_inside_messages_stay_in_place() -> None:
    body = canonical(req([
        {"role": "user", "content": "Q1"},
        {"role": "system", "content": "Env: linux"},
        {"role": "assistant", "content": "A1"},
        {"role": "system", "content": [{"type": "text", "text": "Later", "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": "Q2"},
    ]))
    assert [m["role"] for m in body["messages"]] == ["user", "system", "assistant", "system", "user"]
    assert body["messages"][1] == {"role": "system", "content": "Env: linux"}
    assert body["messages"][3]["content"] == [{"type": "text", "text": "Later", "cache_control": {"type": "ephemeral"}}]


# -- user content -----------------------------------------------------------------------------
def test_user_text_and_images() -> None:
    body = canonical(req(user_blocks(
        {"type": "text", "text": "Look", "cache_control": {"type": "ephemeral"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    )))
    assert body["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "Look", "cache_control": {"type": "ephemeral"}},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]}]


def test_documents() -> None:
    result = translate(req(user_blocks(
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
         "title": "report.pdf", "cache_control": {"type": "ephemeral"}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Line one."},
         "title": "Notes", "citations": {"enabled": True}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Untitled."}},
    )))
    assert result.body["messages"][0]["content"] == [
        {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PDF}", "filename": "report.pdf"},
         "cache_control": {"type": "ephemeral"}},
        {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PDF}", "filename": "document.pdf"}},
        {"type": "text", "text": "# Notes\n\nLine one."},
        {"type": "text", "text": "Untitled."},
    ]
    assert result.dropped == ["citations"]


def test_url_pdf_documents_are_refused() -> None:
    body = req(user_blocks({"type": "text", "text": "Summarise"},
                           {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}))
    assert not anthropic_request_problems(body, False)
    err = refused(body)
    assert err.param == "messages.0.content.1.source"
    assert "URL documents" in err.message and "translation" in err.message


def test_tool_results_come_before_the_other_parts() -> None:
    body = canonical(req([
        {"role": "user", "content": "Weather in Paris and Oslo?"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {"city": "Oslo"}}]},
        {"role": "user", "content": [
            {"type": "text", "text": "Here you go."},
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
            {"type": "tool_result", "tool_use_id": "toolu_2",
             "content": [{"type": "text", "text": "9C"}, {"type": "text", "text": "rain"}]},
        ]},
    ]))
    assert body["messages"][1]["content"] is None
    assert body["messages"][2:] == [
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "9C\nrain"},
        {"role": "user", "content": [{"type": "text", "text": "Here you go."}]},
    ]


def test_tool_result_errors_cache_marks_and_empty_content() -> None:
    body = canonical(req([
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "run", "input": {}},
                                          {"type": "tool_use", "id": "t2", "name": "run", "input": {}},
                                          {"type": "tool_use", "id": "t3", "name": "run", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": "no such file", "is_error": True},
            {"type": "tool_result", "tool_use_id": "t2", "is_error": True},
            {"type": "tool_result", "tool_use_id": "t3", "cache_control": {"type": "ephemeral"}},
        ]},
    ]))
    assert body["messages"][1:] == [
        {"role": "tool", "tool_call_id": "t1", "content": "Error: no such file"},
        {"role": "tool", "tool_call_id": "t2", "content": "Error"},
        {"role": "tool", "tool_call_id": "t3", "content": "", "cache_control": {"type": "ephemeral"}},
    ]


def test_tool_result_images_follow_in_a_user_message() -> None:
    body = canonical(req([
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "screenshot", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": [
                {"type": "text", "text": "Captured."},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]},
            {"type": "text", "text": "What do you see?"},
        ]},
    ]))
    assert body["messages"][1] == {"role": "tool", "tool_call_id": "t1", "content": "Captured."}
    assert body["messages"][2] == {"role": "user", "content": [
        {"type": "text", "text": "[attachments of tool result t1]"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "text", "text": "What do you see?"},
    ]}
    assert len(body["messages"]) == 3


@pytest.mark.parametrize("block", [
    {"type": "search_result", "source": "https://a.example", "title": "A",
     "content": [{"type": "text", "text": "x"}]},
    {"type": "container_upload", "file_id": "file_1"},
    {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "x"}},
    {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
])
def test_other_block_types_are_refused_by_path(block: dict) -> None:
    body = req(user_blocks({"type": "text", "text": "Hi"}, block))
    assert not anthropic_request_problems(body, False)
    err = refused(body)
    assert err.param == "messages.0.content.1.type"
    assert block["type"] in err.message


def test_mcp_tool_use_in_an_assistant_turn_is_refused() -> None:
    err = refused(req([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": [
        {"type": "mcp_tool_use", "id": "mcptoolu_1", "name": "x", "server_name": "s", "input": {}}]}]))
    assert err.param == "messages.1.content.0.type" and "mcp_tool_use" in err.message


# -- assistant content ------------------------------------------------------------------------
def test_assistant_blocks() -> None:
    body = canonical(req([
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Need the city.", "signature": "sig-1"},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "thinking", "thinking": " Paris.", "signature": "sig-2"},
            {"type": "text", "text": "Checking "},
            {"type": "text", "text": "now."},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris", "days": [1, 2]}},
            {"type": "tool_use", "id": "toolu_2", "name": "clock", "input": {}},
        ]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                                     {"type": "tool_result", "tool_use_id": "toolu_2", "content": "noon"}]},
    ]))
    assistant = body["messages"][1]
    assert assistant == {
        "role": "assistant", "content": "Checking now.",
        "tool_calls": [
            {"id": "toolu_1", "type": "function",
             "function": {"name": "weather", "arguments": '{"city":"Paris","days":[1,2]}'}},
            {"id": "toolu_2", "type": "function", "function": {"name": "clock", "arguments": "{}"}}],
        "reasoning_content": "Need the city. Paris.",
        "thinking_blocks": [{"type": "thinking", "thinking": "Need the city.", "signature": "sig-1"},
                            {"type": "redacted_thinking", "data": "opaque"},
                            {"type": "thinking", "thinking": " Paris.", "signature": "sig-2"}],
    }


def test_assistant_text_with_a_cache_mark_stays_in_parts() -> None:
    body = canonical(req([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": [
        {"type": "text", "text": "Hello", "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": "Again"}]))
    assert body["messages"][1]["content"] == [{"type": "text", "text": "Hello", "cache_control": {"type": "ephemeral"}}]


def test_assistant_string_content_and_prefill() -> None:
    body = canonical(req([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "The answer is ("}]))
    assert body["messages"][1] == {"role": "assistant", "content": "The answer is ("}


# -- tools ------------------------------------------------------------------------------------
def test_tools() -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    result = translate(req(tools=[
        {"name": "search", "description": "Search the web", "input_schema": schema,
         "cache_control": {"type": "ephemeral"}},
        {"type": "custom", "name": "now", "input_schema": {"type": "object"}, "defer_loading": True,
         "strict": True},
        {"name": "ping", "input_schema": {}, "input_examples": [{}], "eager_input_streaming": True},
    ]))
    assert result.body["tools"] == [
        {"type": "function", "function": {"name": "search", "description": "Search the web", "parameters": schema},
         "cache_control": {"type": "ephemeral"}},
        {"type": "function", "function": {"name": "now", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "ping", "parameters": {"type": "object", "properties": {}}}},
    ]
    assert result.dropped == ["defer_loading", "eager_input_streaming", "input_examples", "strict"]


def test_a_tool_without_input_schema_gets_an_empty_object_schema() -> None:
    body = to_canonical(req(tools=[{"name": "now"}])).body  # the SDK types require input_schema
    assert body["tools"][0]["function"]["parameters"] == {"type": "object", "properties": {}}


@pytest.mark.parametrize("tool", [
    {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
    {"type": "bash_20250124", "name": "bash"},
    {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
    {"type": "code_execution_20250825", "name": "code_execution"},
    {"type": "web_fetch_20250910", "name": "web_fetch"},
    {"type": "memory_20250818", "name": "memory"},
    {"type": "tool_search_tool_regex_20251119", "name": "tool_search_tool_regex"},
    {"type": "computer_20250124", "name": "computer", "display_width_px": 1024, "display_height_px": 768},
    {"type": "mcp_toolset", "mcp_server_name": "files"},
])
def test_anthropic_defined_tools_are_refused(tool: dict) -> None:
    err = refused(req(tools=[{"name": "ok", "input_schema": {"type": "object"}}, tool]))
    assert err.param == "tools.1.type" and tool["type"] in err.message


@pytest.mark.parametrize(("choice", "expected", "parallel"), [
    ({"type": "auto"}, "auto", None),
    ({"type": "any"}, "required", None),
    ({"type": "none"}, "none", None),
    ({"type": "tool", "name": "search"}, {"type": "function", "function": {"name": "search"}}, None),
    ({"type": "auto", "disable_parallel_tool_use": True}, "auto", False),
    ({"type": "any", "disable_parallel_tool_use": False}, "required", None),
])
def test_tool_choice(choice: dict, expected: Any, parallel: bool | None) -> None:
    body = canonical(req(tools=[{"name": "search", "input_schema": {"type": "object"}}], tool_choice=choice))
    assert body["tool_choice"] == expected
    assert body.get("parallel_tool_calls") == parallel


def test_tool_choice_without_tools() -> None:
    assert "tool_choice" not in canonical(req(tool_choice={"type": "auto"}))
    assert refused(req(tool_choice={"type": "any"})).param == "tool_choice"


# -- thinking, output_config, dropped members ---------------------------------------------------
@pytest.mark.parametrize("thinking", [
    {"type": "enabled", "budget_tokens": 2048},
    {"type": "disabled"},
    {"type": "adaptive"},
    {"type": "adaptive", "display": "omitted"},
])
def test_thinking_is_kept_as_given(thinking: dict) -> None:
    assert canonical(req(max_tokens=4096, thinking=thinking))["thinking"] == thinking


def test_output_config_format_becomes_response_format() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"],
              "additionalProperties": False}
    result = translate(req(output_config={"format": {"type": "json_schema", "schema": schema}}))
    assert result.body["response_format"] == {"type": "json_schema",
                                              "json_schema": {"name": "output", "schema": schema, "strict": True}}
    assert result.dropped == []
    result = translate(req(output_config={"effort": "high", "format": {"type": "json_schema", "schema": schema}}))
    assert "response_format" in result.body and result.dropped == ["output_config"]
    result = translate(req(output_config={"effort": "low"}))
    assert "response_format" not in result.body and result.dropped == ["output_config"]


def test_tuning_members_are_dropped_and_listed() -> None:
    body = req(top_k=5, context_management={"edits": []}, service_tier="auto", inference_geo="us",
               container="container_1", cache_control={"type": "ephemeral"}, speed="fast")
    body["betas"] = ["x-beta"]
    body["some_future_member"] = {"a": 1}
    result = translate(body, sdk_valid=False)
    assert result.dropped == ["betas", "cache_control", "container", "context_management", "inference_geo",
                              "service_tier", "some_future_member", "speed", "top_k"]
    assert set(result.body) == {"model", "messages", "stream", "max_tokens"}


def test_mcp_servers_are_refused() -> None:
    err = refused(req(mcp_servers=[{"type": "url", "url": "https://mcp.example/sse", "name": "files"}]))
    assert err.param == "mcp_servers"


# -- invalid input ----------------------------------------------------------------------------
TOOL = {"name": "search", "input_schema": {"type": "object"}}
BAD: list[tuple[Any, str | None]] = [
    ([], None),
    ({"max_tokens": 5, "messages": []}, "model"),
    (req(model=""), "model"),
    (req(model=7), "model"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
    (req(max_tokens="10"), "max_tokens"),
    (req(max_tokens=0), "max_tokens"),
    (req(max_tokens=True), "max_tokens"),
    (req(max_tokens=1.5), "max_tokens"),
    ({"model": "m", "max_tokens": 5}, "messages"),
    (req([]), "messages"),
    ({**req(), "messages": "hi"}, "messages"),
    (req(["hi"]), "messages.0"),
    (req([{"role": "tool", "content": "x"}]), "messages.0.role"),
    (req([{"role": "user"}]), "messages.0.content"),
    (req([{"role": "user", "content": 5}]), "messages.0.content"),
    (req([{"role": "user", "content": []}]), "messages.0.content"),
    (req(user_blocks("hi")), "messages.0.content.0"),  # type: ignore[arg-type]
    (req(user_blocks({"type": 3})), "messages.0.content.0.type"),
    (req(user_blocks({"type": "text", "text": 5})), "messages.0.content.0.text"),
    (req(user_blocks({"type": "text", "text": "x", "cache_control": "ephemeral"})),
     "messages.0.content.0.cache_control"),
    (req(user_blocks({"type": "image"})), "messages.0.content.0.source"),
    (req(user_blocks({"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "x"}})),
     "messages.0.content.0.source.media_type"),
    (req(user_blocks({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": 5}})),
     "messages.0.content.0.source.data"),
    (req(user_blocks({"type": "image", "source": {"type": "file", "file_id": "f"}})), "messages.0.content.0.source"),
    (req(user_blocks({"type": "image", "source": {"type": "ftp"}})), "messages.0.content.0.source.type"),
    (req(user_blocks({"type": "document", "source": {"type": "base64", "media_type": "text/csv", "data": "x"}})),
     "messages.0.content.0.source.media_type"),
    (req(user_blocks({"type": "document", "title": 5, "source": {"type": "text", "data": "x"}})),
     "messages.0.content.0.title"),
    (req(user_blocks({"type": "tool_result"})), "messages.0.content.0.tool_use_id"),
    (req(user_blocks({"type": "tool_result", "tool_use_id": "t", "content": 5})), "messages.0.content.0.content"),
    (req(user_blocks({"type": "tool_result", "tool_use_id": "t", "is_error": "yes"})),
     "messages.0.content.0.is_error"),
    (req(user_blocks({"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text"}]})),
     "messages.0.content.0.content.0.text"),
    (req([{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "n", "input": "x"}]}]),
     "messages.0.content.0.input"),
    (req([{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "input": {}}]}]),
     "messages.0.content.0.name"),
    (req([{"role": "assistant", "content": [{"type": "thinking", "thinking": None, "signature": "s"}]}]),
     "messages.0.content.0.thinking"),
    (req([{"role": "assistant", "content": [{"type": "redacted_thinking"}]}]), "messages.0.content.0.data"),
    (req([{"role": "assistant", "content": [{"type": "tool_result", "tool_use_id": "t"}]}]),
     "messages.0.content.0.type"),
    (req(system=5), "system"),
    (req(system=[{"type": "image"}]), "system.0.type"),
    (req([{"role": "system", "content": [{"type": "text", "text": 1}]}]), "messages.0.content.0.text"),
    (req(stream="yes"), "stream"),
    (req(temperature="hot"), "temperature"),
    (req(temperature=2), "temperature"),
    (req(top_p=True), "top_p"),
    (req(stop_sequences="END"), "stop_sequences"),
    (req(stop_sequences=[1]), "stop_sequences"),
    (req(metadata="x"), "metadata"),
    (req(metadata={"user_id": 5}), "metadata.user_id"),
    (req(tools={}), "tools"),
    (req(tools=[5]), "tools.0"),
    (req(tools=[{"name": ""}]), "tools.0.name"),
    (req(tools=[{"name": "x", "input_schema": "x"}]), "tools.0.input_schema"),
    (req(tools=[{"name": "x", "description": 5}]), "tools.0.description"),
    (req(tools=[{"name": "x", "cache_control": []}]), "tools.0.cache_control"),
    (req(tools=[TOOL], tool_choice="auto"), "tool_choice"),
    (req(tools=[TOOL], tool_choice={"type": "bogus"}), "tool_choice.type"),
    (req(tools=[TOOL], tool_choice={"type": "tool"}), "tool_choice.name"),
    (req(tools=[TOOL], tool_choice={"type": "auto", "disable_parallel_tool_use": "no"}),
     "tool_choice.disable_parallel_tool_use"),
    (req(thinking="on"), "thinking"),
    (req(thinking={"type": "enabled"}), "thinking.budget_tokens"),
    (req(thinking={"type": "enabled", "budget_tokens": "big"}), "thinking.budget_tokens"),
    (req(thinking={"type": "sometimes"}), "thinking.type"),
    (req(output_config=5), "output_config"),
    (req(output_config={"format": {"type": "text"}}), "output_config.format.type"),
    (req(output_config={"format": {"type": "json_schema"}}), "output_config.format.schema"),
]


@pytest.mark.parametrize(("body", "param"), BAD)
def test_invalid_input_names_the_member(body: Any, param: str | None) -> None:
    assert refused(body).param == param


WRONG = [None, 0, -1, 2.5, True, "", "x", [], [None], {}, {"type": "text"}]


def test_fuzz_wrong_types_give_400s_or_valid_bodies() -> None:
    """Any member of a rich request swapped for a value of another type: a 400 naming a member, or a body."""
    base = req([
        {"role": "user", "content": [
            {"type": "text", "text": "Look", "cache_control": {"type": "ephemeral"}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
             "title": "t"}]},
        {"role": "system", "content": [{"type": "text", "text": "env"}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hm", "signature": "s"},
            {"type": "text", "text": "ok"},
            {"type": "tool_use", "id": "t1", "name": "search", "input": {"q": "x"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "is_error": False,
             "content": [{"type": "text", "text": "r"}]}]},
    ], system=[{"type": "text", "text": "sys"}], stream=True, temperature=0.2, top_p=0.5, stop_sequences=["x"],
        metadata={"user_id": "u"}, tools=[{"name": "search", "description": "d", "input_schema": {"type": "object"}}],
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        thinking={"type": "enabled", "budget_tokens": 1024},
        output_config={"format": {"type": "json_schema", "schema": {"type": "object"}}})
    translate(base)
    rng = random.Random(20250101)
    outcomes = {"ok": 0, "400": 0}
    for path in paths(base):
        for new in rng.sample(WRONG, 4):
            try:
                result = to_canonical(replaced(base, path, new))
            except ApiError as err:
                assert err.status == 400 and err.code == "invalid_request", (path, new)
                assert isinstance(err.param, str) and err.param, (path, new)
                outcomes["400"] += 1
            else:
                assert isinstance(result.body["messages"], list), (path, new)
                outcomes["ok"] += 1
    assert outcomes["400"] > 100 and outcomes["ok"] > 10


# -- Claude Code ------------------------------------------------------------------------------
def test_claude_code_first_request() -> None:
    original = captured("first_request.json")
    check_beta_request(original)
    result = translate(original, sdk_valid=False)
    body = result.body
    assert body["model"] == "smart" and body["stream"] is True and body["max_tokens"] == 32000
    assert [t["function"]["name"] for t in body["tools"]] == [t["name"] for t in original["tools"]]
    assert len(body["tools"]) == 12
    assert body["thinking"] == {"type": "adaptive", "display": "omitted"}
    assert body["user"] == original["metadata"]["user_id"]
    assert result.dropped == ["context_management", "defer_loading", "output_config"]
    assert [m["role"] for m in body["messages"]] == ["system", "user", "system"]  # the mid-conversation one kept
    assert body["messages"][2]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert "context_management" not in body and "output_config" not in body


def test_claude_code_tool_result_request() -> None:
    original = captured("tool_result_request.json")
    check_beta_request(original)
    result = translate(original, sdk_valid=False)
    messages = result.body["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "system", "assistant", "tool"]
    assert messages[2]["content"].startswith("# Environment")
    assert messages[3]["tool_calls"] == [{"id": "toolu_01FakeRead000000000001", "type": "function", "function": {
        "name": "Read", "arguments": json.dumps(original["messages"][2]["content"][0]["input"],
                                                separators=(",", ":"))}}]
    assert messages[4] == {"role": "tool", "tool_call_id": "toolu_01FakeRead000000000001",
                           "content": "1\tthe secret is 1234\n2\t", "cache_control": {"type": "ephemeral"}}
    assert len(result.body["tools"]) == 12


@pytest.mark.parametrize("name", ["first_request.json", "tool_result_request.json"])
def test_claude_code_requests_go_back_to_valid_anthropic_bodies(name: str) -> None:
    """Routed to Anthropic through the canonical form, the request keeps every cache mark and tool."""
    original = captured(name)
    body = to_canonical(original).body
    rebuilt = build_body(body, "claude-sonnet-4-5", True, {})
    assert not anthropic_request_problems(rebuilt, True)
    assert cache_marks(rebuilt) == cache_marks(original)
    assert [t["name"] for t in rebuilt["tools"]] == [t["name"] for t in original["tools"]]
    assert rebuilt["thinking"] == original["thinking"]
