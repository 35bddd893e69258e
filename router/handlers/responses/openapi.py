"""The Responses part of the OpenAPI document (merged by router/openapi_spec.py): `POST /v1/responses`,
`GET`/`DELETE /v1/responses/{id}` and `GET /v1/responses/{id}/input_items`, with their schemas.

The request schema states what `inbound.py` and `items.py` enforce (types, required members, ranges,
the item and part types each role may hold, the members refused with a 400); members that are
dropped are not constrained and `additionalProperties` stays open, so a body the schema rejects is a
400. What a schema cannot say (a function name offered twice, an `item_reference` naming no earlier
item, a `tool_choice` naming a function not offered) is a 400 too. The response schemas are what
`output.py` and `outbound.py` render; the request members a Response echoes are left open. Errors
are OpenAI's shape (`Error`) with the chat route's statuses and headers.
"""

from __future__ import annotations

from typing import Any

from ...openapi_parts import const, obj, optional, ref

Schema = dict[str, Any]
RESPONSES_PATH = "/v1/responses"
RESPONSE_PATH = "/v1/responses/{id}"
INPUT_ITEMS_PATH = "/v1/responses/{id}/input_items"
_TAG = "Responses"










def _typed(kind: str, properties: dict[str, Schema], required: tuple[str, ...] = (), description: str = "") -> Schema:
    return obj({"type": const(kind), **properties}, ("type", *required), description)


_STRING = {"type": "string"}
_NON_EMPTY = {"type": "string", "minLength": 1}
_COUNT = {"type": "integer", "minimum": 0}
_NULL = {"type": "null"}
_BREAKPOINT = optional("object", "An explicit end of a cached prefix: the canonical cache mark.")
_EFFORTS = ["none", "minimal", "low", "medium", "high", "xhigh", "max"]


# -- request: content parts -------------------------------------------------------------------------
def _text_part(kind: str) -> Schema:
    return _typed(kind, {"text": _STRING, "prompt_cache_breakpoint": _BREAKPOINT}, ("text",))


def _image_part() -> Schema:
    return _typed("input_image", {
        "image_url": {**_NON_EMPTY, "description": "A URL or a base64 data URL."},
        "detail": optional("string", enum=["auto", "low", "high", "original", None]),
        "file_id": {**_NULL, "description": "Files API images cannot be translated for other vendors (400)."},
        "prompt_cache_breakpoint": _BREAKPOINT,
    }, ("image_url",))


def _file_part() -> Schema:
    return _typed("input_file", {
        "file_data": {"type": "string", "pattern": "^data:", "description": "A base64 data URL."},
        "filename": optional("string"),
        "file_id": {**_NULL, "description": "Files by id are refused (400)."},
        "file_url": {**_NULL, "description": "Files by URL are refused (400)."},
        "prompt_cache_breakpoint": _BREAKPOINT,
    }, ("file_data",))


def _audio_part() -> Schema:
    audio = obj({"data": _NON_EMPTY, "format": {"type": "string", "enum": ["mp3", "wav"]}}, ("data", "format"))
    return _typed("input_audio", {"input_audio": audio}, ("input_audio",))


def _parts(names: list[str], min_items: int = 0) -> Schema:
    array: Schema = {"type": "array", "items": {"anyOf": [ref(name) for name in names]}}
    if min_items:
        array["minItems"] = min_items
    return {"anyOf": [_STRING, array]}


_INPUT_TEXT = "ResponseInputText"
_USER_PARTS = [_INPUT_TEXT, "ResponseInputImage", "ResponseInputFile", "ResponseInputAudio"]
_ASSISTANT_PARTS = ["ResponseOutputTextParam", _INPUT_TEXT, "ResponseRefusalParam"]


# -- request: items ---------------------------------------------------------------------------------
def _message_item() -> Schema:
    def when(roles: list[str], content: Schema) -> Schema:
        return {"if": {"properties": {"role": {"enum": roles}}, "required": ["role"]},
                "then": {"properties": {"content": content}}}

    return {
        **obj({"type": {"enum": [None, "message"], "description": "Absent for the SDK's easy input messages."},
                "role": {"type": "string", "enum": ["user", "system", "developer", "assistant"]},
                "content": {"anyOf": [_STRING, {"type": "array"}],
                            "description": "A string or content parts: `user` input_text, input_image, "
                                           "input_file and input_audio (at least one); `system`/`developer` "
                                           "input_text; `assistant` output_text, input_text and refusal."}},
               ("role", "content"), "A message. `developer` is a system message; `id` and `status` are not carried."),
        "allOf": [when(["user"], _parts(_USER_PARTS, 1)), when(["system", "developer"], _parts([_INPUT_TEXT])),
                  when(["assistant"], _parts(_ASSISTANT_PARTS))],
    }


def _function_call_item() -> Schema:
    return _typed("function_call", {"call_id": _NON_EMPTY, "name": _NON_EMPTY,
                                    "arguments": {"type": "string", "description": "JSON text of the arguments."}},
                  ("call_id", "name", "arguments"),
                  "A call the model made (`id`, `status`, `namespace` are accepted and not carried).")


def _function_call_output_item() -> Schema:
    output = {"anyOf": [_STRING, {"type": "array", "items": {"anyOf": [
        ref(_INPUT_TEXT), ref("ResponseInputImage"), ref("ResponseInputFile")]}}],
        "description": "Text, or parts: images and files follow the tool message in a user message."}
    return _typed("function_call_output", {"call_id": _NON_EMPTY, "output": output}, ("call_id", "output"))


def _reasoning_item() -> Schema:
    def texts(kind: str) -> Schema:
        return optional("array", items=_typed(kind, {"text": _STRING}, ("text",)))

    out = _typed("reasoning", {
        "summary": texts("summary_text"),
        "encrypted_content": optional("string", "Switchboard's own (`sb1:`) carries the exact thinking blocks back; "
                                            "OpenAI's encrypted reasoning is ignored."),
    }, (), "Reasoning: rides on the next assistant turn. `content` (reasoning_text parts) is read when "
           "`summary` is empty.")
    out["if"] = {"properties": {"summary": {"type": "array", "minItems": 1}}, "required": ["summary"]}
    out["else"] = {"properties": {"content": texts("reasoning_text")}}
    return out


def _item_reference() -> Schema:
    return {"anyOf": [
        _typed("item_reference", {"id": _NON_EMPTY}, ("id",)),
        {**obj({"type": _NULL, "id": _NON_EMPTY}, ("id",)), "not": {"required": ["role"]}},
    ], "description": "An earlier item of this conversation (the previous_response_id chain or this input); "
                      "a reference to anything else is a 400."}


def _input_item() -> Schema:
    return {"anyOf": [ref("ResponseInputMessage"), ref("ResponseFunctionCallItem"),
                      ref("ResponseFunctionCallOutputItem"), ref("ResponseReasoningItemParam"),
                      ref("ResponseItemReference")],
            "description": "Items of OpenAI's hosted tools (web search, computer, MCP, ...) are refused (400)."}


# An item that becomes a non-system message (at least one is needed when nothing is continued).
_CONVERSATIONAL = {"anyOf": [
    {"type": "object", "required": ["role"],
     "properties": {"role": {"enum": ["user", "assistant"]}, "type": {"enum": [None, "message"]}}},
    {"type": "object", "required": ["type"],
     "properties": {"type": {"enum": ["function_call", "function_call_output", "item_reference"]}}},
    {"type": "object", "required": ["id"], "properties": {"type": _NULL}, "not": {"required": ["role"]}},
]}


# -- request: tools and the rest --------------------------------------------------------------------
def _function_tool() -> Schema:
    return _typed("function", {
        "name": _NON_EMPTY, "description": optional("string"),
        "parameters": optional("object", "JSON Schema of the arguments; absent: no parameters."),
        "strict": optional("boolean"),
    }, ("name",), "A function tool; each name at most once. Other members are dropped.")


def _tool() -> Schema:
    namespace = _typed("namespace", {
        "name": _NON_EMPTY,
        "tools": {"type": "array", "items": {"anyOf": [ref("ResponseFunctionTool"), _typed("custom", {})]}},
    }, ("name", "tools"), "Tools grouped under a name (Codex): flattened into plain functions; the calls carry "
                          "the namespace again. `custom` members are dropped.")
    hosted = {**obj({"type": {"type": "string", "not": {"enum": ["function", "namespace"]}}}, ("type",)),
              "description": "A hosted tool (`web_search`, `file_search`, `mcp`, `custom`, ...): it runs at "
                             "OpenAI, so it is not offered and is named in `x-switchboard-dropped`."}
    return {"anyOf": [ref("ResponseFunctionTool"), namespace, hosted]}


_HAS_FUNCTION = {"anyOf": [
    {"type": "object", "required": ["type"], "properties": {"type": {"const": "function"}}},
    {"type": "object", "required": ["type", "tools"], "properties": {
        "type": {"const": "namespace"},
        "tools": {"type": "array", "contains": {"type": "object", "required": ["type"],
                                                "properties": {"type": {"const": "function"}}}}}},
]}


def _tool_choice() -> Schema:
    return {"anyOf": [
        _NULL,
        {"type": "string", "enum": ["auto", "none", "required"]},
        _typed("function", {"name": _NON_EMPTY}, ("name",)),
        _typed("allowed_tools", {"mode": {"type": "string", "enum": ["auto", "required"]}}, ("mode",),
               "The mode is kept; the subset is not (every function stays offered)."),
    ], "description": "`required` and a function need a function tool in `tools` (the function: one offered). "
                      "Forcing a hosted tool is refused (400)."}


def _text() -> Schema:
    json_schema = _typed("json_schema", {"name": _NON_EMPTY, "schema": {"type": "object"},
                                         "description": optional("string"), "strict": optional("boolean")},
                         ("name", "schema"))
    fmt = {"anyOf": [_NULL, _typed("text", {}), _typed("json_object", {}), json_schema]}
    return optional("object", "`format` (structured output) and `verbosity` are mapped; other members are dropped.",
                properties={"format": fmt, "verbosity": optional("string", enum=["low", "medium", "high", None])})


def _request() -> Schema:
    forcing = {"anyOf": [
        {"const": "required"},
        {"type": "object", "required": ["type"], "properties": {"type": {"const": "function"}}},
        {"type": "object", "required": ["type", "mode"],
         "properties": {"type": {"const": "allowed_tools"}, "mode": {"const": "required"}}},
    ]}
    out = obj({
        "model": {"type": "string", "minLength": 1, "examples": ["demo/echo"],
                  "description": "An alias, `provider/model` or a bare model name, as on chat completions."},
        "input": {"anyOf": [_STRING, {"type": "array", "items": ref("ResponseInputItem")}, _NULL],
                  "description": "A string (one user message) or input items. Needs at least one user, assistant "
                                 "or function item unless `previous_response_id` continues a conversation."},
        "instructions": optional("string", "A system message before the conversation."),
        "previous_response_id": optional("string", "A stored response (of this key) to continue: a 404 when unknown, "
                                               "expired, deleted or another key's.", minLength=1),
        "store": optional("boolean", "Store the response (default true) for retrieval and `previous_response_id`."),
        "stream": optional("boolean", "`true`: the Responses event stream (`text/event-stream`)."),
        "max_output_tokens": optional("integer", "A JSON integer: `1.0` is a 400.", minimum=1),
        "temperature": optional("number", minimum=0, maximum=2),
        "top_p": optional("number", minimum=0, maximum=1),
        "user": optional("string"),
        "safety_identifier": optional("string"),
        "metadata": optional("object", "Echoed on the Response.", additionalProperties=_STRING),
        "tools": optional("array", items=ref("ResponseTool")),
        "tool_choice": _tool_choice(),
        "parallel_tool_calls": {"description": "A boolean, read when a function tool is offered."},
        "reasoning": optional("object", "`effort` becomes `reasoning_effort`; `summary` and the rest are dropped.",
                          properties={"effort": optional("string", enum=[*_EFFORTS, None])}),
        "text": _text(),
        "background": {"enum": [None, False], "description": "Background responses are refused (400)."},
        "conversation": {**_NULL, "description": "Conversations API state lives at OpenAI: refused (400)."},
        "prompt": {**_NULL, "description": "Stored prompt templates live at OpenAI: refused (400)."},
    }, ("model",), "OpenAI Responses request. Members that only tune OpenAI's own service (`include`, "
                   "`prompt_cache_key`, `service_tier`, `truncation`, ...) and unknown members are dropped and "
                   "named in `x-switchboard-dropped`.")
    out["allOf"] = [
        {"if": {"properties": {"previous_response_id": _NULL}},  # nothing continued: the input must talk
         "then": {"required": ["input"],
                  "properties": {"input": {"anyOf": [_STRING, {"type": "array", "contains": _CONVERSATIONAL}]}}}},
        {"if": {"required": ["tool_choice"], "properties": {"tool_choice": forcing}},
         "then": {"required": ["tools"], "properties": {"tools": {"type": "array", "contains": _HAS_FUNCTION}}}},
        {"if": {"required": ["tools"], "properties": {"tools": {"type": "array", "contains": _HAS_FUNCTION}}},
         "then": {"properties": {"parallel_tool_calls": optional("boolean")}}},
    ]
    return out


# -- response ---------------------------------------------------------------------------------------
def _output_item() -> Schema:
    status = {"type": "string", "enum": ["in_progress", "completed", "incomplete"]}
    text = _typed("output_text", {"text": _STRING, "annotations": {"type": "array", "items": _typed(
        "url_citation", {"start_index": _COUNT, "end_index": _COUNT, "url": _STRING, "title": _STRING},
        ("start_index", "end_index", "url", "title"))}}, ("text", "annotations"))
    refusal = _typed("refusal", {"refusal": _STRING}, ("refusal",))
    return {"anyOf": [
        _typed("reasoning", {"id": _STRING, "summary": {"type": "array", "items": _typed(
            "summary_text", {"text": _STRING}, ("text",))}, "encrypted_content": optional("string")},
            ("id", "summary")),
        _typed("message", {"id": _STRING, "status": status, "role": const("assistant"),
                           "content": {"type": "array", "items": {"anyOf": [text, refusal]}}},
               ("id", "status", "role", "content")),
        _typed("function_call", {"id": _STRING, "status": status, "call_id": _STRING, "name": _STRING,
                                 "arguments": _STRING, "namespace": _STRING},
               ("id", "status", "call_id", "name", "arguments")),
    ], "description": "A reasoning item first, then the message, then one function_call per call."}


def _usage() -> Schema:
    return obj({
        "input_tokens": {**_COUNT, "description": "Including the cached and cache-written tokens."},
        "input_tokens_details": obj({"cached_tokens": _COUNT, "cache_write_tokens": _COUNT}, ("cached_tokens",)),
        "output_tokens": _COUNT,
        "output_tokens_details": obj({"reasoning_tokens": _COUNT}, ("reasoning_tokens",)),
        "total_tokens": _COUNT,
    }, ("input_tokens", "input_tokens_details", "output_tokens", "output_tokens_details", "total_tokens"))


def _response() -> Schema:
    return obj({
        "id": _STRING, "object": const("response"), "created_at": {"type": "integer", "description": "Unix seconds."},
        "status": {"type": "string", "enum": ["in_progress", "completed", "incomplete", "failed"]},
        "error": {"anyOf": [_NULL, obj({"code": _STRING, "message": _STRING}, ("code", "message"))],
                  "description": "Why a streamed response failed (`response.failed`)."},
        "incomplete_details": {"anyOf": [_NULL, obj({"reason": {"type": "string", "enum": [
            "max_output_tokens", "content_filter"]}}, ("reason",))]},
        "model": {"type": "string", "description": "The model the client asked for."},
        "output": {"type": "array", "items": ref("ResponseOutputItem")},
        "usage": {"anyOf": [_NULL, ref("ResponseUsage")]},
        "instructions": optional("string"), "max_output_tokens": optional("integer"),
        "previous_response_id": optional("string"), "store": {"type": "boolean"},
        "parallel_tool_calls": {"type": "boolean"}, "temperature": optional("number"), "top_p": optional("number"),
        "reasoning": obj({"effort": optional("string"), "summary": {}}), "text": obj({"format": {"type": "object"}}),
        "tool_choice": {"type": ["string", "object"]}, "tools": {"type": "array"},
        "truncation": {"type": "string", "enum": ["auto", "disabled"]}, "user": optional("string"),
        "metadata": {"type": "object"},
        "extra_fields": ref("ExtraFields"),
    }, ("id", "object", "created_at", "status", "error", "incomplete_details", "model", "output", "usage"),
        "An OpenAI Response, echoing the request's members, plus `extra_fields` (absent when "
        "`server.extra_fields: false`, and on a stored or retrieved Response).")


def _stream_events() -> dict[str, Schema]:
    seq = {"sequence_number": _COUNT}
    at = {"item_id": _STRING, "output_index": _COUNT}
    part = {"content_index": _COUNT}
    summary = {"summary_index": _COUNT}
    text_part = obj({"type": {"type": "string", "enum": ["output_text", "refusal"]}}, ("type",))

    def event(kind: str, members: dict[str, Schema]) -> Schema:
        return _typed(kind, {**seq, **members}, ("sequence_number", *members))

    response = {"response": ref("Response")}
    item = {"output_index": _COUNT, "item": ref("ResponseOutputItem")}
    summary_part = _typed("summary_text", {"text": _STRING}, ("text",))
    return {
        "response.created": event("response.created", response),
        "response.in_progress": event("response.in_progress", response),
        "response.output_item.added": event("response.output_item.added", item),
        "response.output_item.done": event("response.output_item.done", item),
        "response.reasoning_summary_part.added": event("response.reasoning_summary_part.added",
                                                       {**at, **summary, "part": summary_part}),
        "response.reasoning_summary_text.delta": event("response.reasoning_summary_text.delta",
                                                       {**at, **summary, "delta": _STRING}),
        "response.reasoning_summary_text.done": event("response.reasoning_summary_text.done",
                                                      {**at, **summary, "text": _STRING}),
        "response.reasoning_summary_part.done": event("response.reasoning_summary_part.done",
                                                      {**at, **summary, "part": summary_part}),
        "response.content_part.added": event("response.content_part.added", {**at, **part, "part": text_part}),
        "response.output_text.delta": event("response.output_text.delta", {**at, **part, "delta": _STRING}),
        "response.output_text.annotation.added": event("response.output_text.annotation.added", {
            **at, **part, "annotation_index": _COUNT, "annotation": {"type": "object"}}),
        "response.output_text.done": event("response.output_text.done", {**at, **part, "text": _STRING}),
        "response.refusal.delta": event("response.refusal.delta", {**at, **part, "delta": _STRING}),
        "response.refusal.done": event("response.refusal.done", {**at, **part, "refusal": _STRING}),
        "response.content_part.done": event("response.content_part.done", {**at, **part, "part": text_part}),
        "response.function_call_arguments.delta": event("response.function_call_arguments.delta",
                                                        {**at, "delta": _STRING}),
        "response.function_call_arguments.done": event("response.function_call_arguments.done",
                                                       {**at, "name": _STRING, "arguments": _STRING}),
        "response.completed": event("response.completed", response),
        "response.incomplete": event("response.incomplete", response),
        "response.failed": event("response.failed", response),
    }


_SSE_EVENT = {
    "description": "One Server-Sent Event of the Responses stream (`event:` is the `type`; `sequence_number` "
                   "counts from 0): `response.created`, `response.in_progress`, then each output item added, "
                   "filled and done, then `response.completed` (or `response.incomplete`) with the whole "
                   "Response and its `extra_fields`. A failure after the stream started ends it with "
                   "`response.failed`.",
    "anyOf": [{"type": "object", "required": ["event", "data"],
               "properties": {"event": const(kind),
                              "data": {"type": "string", "contentMediaType": "application/json",
                                       "contentSchema": ref(f"ResponseStreamEvent_{kind}")}}}
              for kind in _stream_events()],
}


def _input_item_list() -> Schema:
    return obj({
        "object": const("list"),
        "data": {"type": "array", "items": {**obj({"id": _STRING, "type": _STRING}, ("id", "type")),
                                            "description": "An input item as sent (a string input as a user "
                                                           "message), with an id."}},
        "first_id": optional("string"), "last_id": optional("string"), "has_more": {"type": "boolean"},
    }, ("object", "data", "first_id", "last_id", "has_more"))


RESPONSES_SCHEMAS: dict[str, Schema] = {
    "ResponsesRequest": _request(),
    "ResponseInputItem": _input_item(),
    "ResponseInputMessage": _message_item(),
    "ResponseFunctionCallItem": _function_call_item(),
    "ResponseFunctionCallOutputItem": _function_call_output_item(),
    "ResponseReasoningItemParam": _reasoning_item(),
    "ResponseItemReference": _item_reference(),
    "ResponseInputText": _text_part("input_text"),
    "ResponseOutputTextParam": _text_part("output_text"),
    "ResponseRefusalParam": _typed("refusal", {"refusal": _STRING}, ("refusal",)),
    "ResponseInputImage": _image_part(),
    "ResponseInputFile": _file_part(),
    "ResponseInputAudio": _audio_part(),
    "ResponseTool": _tool(),
    "ResponseFunctionTool": _function_tool(),
    "Response": _response(),
    "ResponseOutputItem": _output_item(),
    "ResponseUsage": _usage(),
    **{f"ResponseStreamEvent_{kind}": schema for kind, schema in _stream_events().items()},
    "ResponseDeleted": obj({"id": _STRING, "object": const("response.deleted"), "deleted": {"const": True}},
                            ("id", "object", "deleted")),
    "ResponseInputItemList": _input_item_list(),
}


# -- operations -------------------------------------------------------------------------------------
_DROPPED = {"x-switchboard-dropped": {
    "description": "The request members not carried to the vendor, comma-separated (a name that is not a plain "
                   "token percent-encoded): OpenAI-only tuning, hosted tools and unknown members.",
    "schema": {"type": "string"}}}
_TEXT_400 = ("Invalid JSON or members (`param` names the member by its path: `input[2].content[0].type`), a "
             "member refused here (`background`, `conversation`, `prompt`, hosted-tool items, Files API "
             "parts, a `tool_choice` forcing a hosted tool), a bad `x-switchboard-cache-ttl` header, a parameter "
             "no deployment can honour, or a vendor refusing the request as the caller's error.")
_TEXT_404 = ("Unknown model (`model_not_found`), its provider disabled (`provider_disabled`), or a "
             "`previous_response_id` not stored for this key (`previous_response_not_found`).")
_ID = {"name": "id", "in": "path", "required": True, "description": "A response id (`resp_...`).",
       "schema": {"type": "string", "minLength": 1}}
_NOT_FOUND = "No stored response by that id for this key: unknown, expired, deleted or another key's " \
             "(`response_not_found`)."

_HELLO = "Hello, how are you?"
_EXAMPLES = {
    "basic": ("A string input", {"model": "demo/echo", "input": _HELLO}),
    "stream": ("An alias, streamed, with instructions", {"model": "fast", "input": _HELLO, "stream": True,
                                                         "instructions": "Be brief."}),
    "tools": ("A function the model may call", {
        "model": "demo/echo", "input": [{"role": "user", "content": _HELLO}],
        "tools": [{"type": "function", "name": "get_weather", "description": "The weather in a city",
                   "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        "tool_choice": "auto"}),
}


def _body(schema: str, examples: dict[str, Any]) -> dict[str, Any]:
    named = {name: {"summary": summary, "value": value} for name, (summary, value) in examples.items()}
    return {"required": True, "content": {"application/json": {"schema": ref(schema), "examples": named}}}


def _json(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": ref(schema)}}


def _error(chat: dict[str, Any], status: int, description: str | None = None,
           proxied: bool = True) -> dict[str, Any]:
    """The chat operation's error response for `status` (its headers too: a stored response has no cache or
    rate-limit state), with this face's description."""
    response = dict(chat["responses"][str(status)])
    if description:
        response["description"] = description
    if not proxied and "headers" in response:
        headers = {name: spec for name, spec in response["headers"].items() if not name.startswith("x-")}
        response = {key: value for key, value in response.items() if key != "headers"}
        if headers:
            response["headers"] = headers
    return response


def _create(chat: dict[str, Any]) -> dict[str, Any]:
    ok = {"description": "The Response (`stream` absent or false) or the Responses event stream (`stream: true`). "
                         "A cache hit has the same output (a stream: the same events) under a new id, nothing "
                         "billed, no attempts. Stored unless `store: false` or the response failed.",
          "headers": {**chat["responses"]["200"]["headers"], **_DROPPED},
          "content": {"application/json": {"schema": ref("Response")},
                      "text/event-stream": {"schema": _SSE_EVENT}}}
    statuses = [int(status) for status in chat["responses"] if status[0] in "45"]
    text = {400: _TEXT_400, 404: _TEXT_404}
    return {"post": {
        "operationId": "createResponse",
        "summary": "Create a response (OpenAI Responses)",
        "description": "OpenAI's Responses API, for Codex, the Agents SDK and the openai SDK, on any vendor: the "
                       "request becomes a canonical chat request and goes through the same routing core (keys, "
                       "limits, budget, cache, fallbacks, accounting). `previous_response_id` continues a stored "
                       "response of the same key without resending its conversation.",
        "tags": [_TAG],
        "parameters": list(chat["parameters"]),
        "requestBody": _body("ResponsesRequest", _EXAMPLES),
        "responses": {"200": ok, **{str(s): _error(chat, s, text.get(s)) for s in statuses}},
    }}


def _stored(chat: dict[str, Any], operation_id: str, summary: str, description: str, ok: dict[str, Any],
            *errors: int, **extra: Any) -> dict[str, Any]:
    responses = {"200": ok, **{str(s): _error(chat, s, _NOT_FOUND if s == 404 else None, proxied=False)
                               for s in errors}}
    return {"operationId": operation_id, "summary": summary, "description": description, "tags": [_TAG],
            "parameters": [_ID, *extra.pop("parameters", ())], **extra, "responses": responses}


def _response_path(chat: dict[str, Any]) -> dict[str, Any]:
    return {
        "get": _stored(chat, "retrieveResponse", "Retrieve a stored response",
                       "The Response as it was created (without `extra_fields`).",
                       {"description": "The Response.", "content": _json("Response")}, 401, 404),
        "delete": _stored(chat, "deleteResponse", "Delete a stored response",
                          "It can no longer be retrieved nor continued.",
                          {"description": "Deleted.", "content": _json("ResponseDeleted")}, 401, 404),
    }


def _input_items_path(chat: dict[str, Any]) -> dict[str, Any]:
    def query(name: str, description: str, schema: Schema) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}

    parameters = [
        query("order", "`desc` (default: newest first) or `asc`.", {"type": "string", "enum": ["asc", "desc"]}),
        query("limit", "Items per page, 1 to 100 (default 20).", {"type": "integer", "minimum": 1, "maximum": 100}),
        query("after", "List the items after this item id (in `order`); an id not listed gives an empty page.",
              {"type": "string"}),
    ]
    responses = {**chat["responses"]}
    responses["400"] = {**responses["400"], "description": "`order` or `limit` out of range (`param` names it)."}
    return {"get": _stored({"responses": responses}, "listInputItems", "List a stored response's input items",
                           "This request's input items (not those of the responses it continued), each with an "
                           "id: the client's, else one given when stored.",
                           {"description": "A page of items.", "content": _json("ResponseInputItemList")},
                           400, 401, 404, parameters=parameters)}


def add_responses_docs(paths: dict[str, Any]) -> None:
    """Add the Responses paths (their cache parameters, headers and errors are the chat operation's)."""
    chat = paths["/v1/chat/completions"]["post"]
    paths[RESPONSES_PATH] = _create(chat)
    paths[RESPONSE_PATH] = _response_path(chat)
    paths[INPUT_ITEMS_PATH] = _input_items_path(chat)
