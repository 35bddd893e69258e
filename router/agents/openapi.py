"""The agent part of the OpenAPI document (merged by router/openapi_spec.py): the UI face's path and
schemas, and the agent notes on the OpenAI face's chat operations.

The request schema states what router/agents/ui_face.py enforces (types, ranges, required members;
unknown members are ignored, so `additionalProperties` stays open), so a body the schema rejects is
a 400 (tests/agents/test_ui_face.py holds the two together).
"""

from __future__ import annotations

from typing import Any

from ..config.agents import BUILTIN_TOOLS
from ..openapi_parts import obj, optional, ref
from .sessions import SESSION_HEADER
from .ui_messages import ROLES

Schema = dict[str, Any]
UI_PATH = "/agent/v1/chat/completions"
SESSION_PATTERN = r"^[A-Za-z0-9._:@/+=-]{1,128}$"








_SESSION = optional("string", "Session id (see `x-session-id`).", pattern=SESSION_PATTERN)

_PART = obj({"type": {"type": "string", "description": "`text`, `file` (`mediaType`, `url`, `filename?`), "
                                                        "`tool-<name>`, `dynamic-tool`, `step-start`, `reasoning`, "
                                                        "legacy `tool-invocation`, ..."}},
             ("type",), "One UIMessage part; parts the model cannot use are dropped.")

_MESSAGE = obj({"id": {"type": "string"}, "role": {"type": "string", "enum": list(ROLES)},
                 "parts": {"type": "array", "items": _PART}, "metadata": {}},
                ("role", "parts"), "A Vercel AI SDK UIMessage.")

_INLINE_AGENT = obj({
    "name": optional("string", maxLength=64), "instructions": optional("string", maxLength=16384),
    "instruction": optional("string", "Alias of `instructions`.", maxLength=16384),
    "description": optional("string", maxLength=256),
    "model": optional("string", "Default: the router's default model.", maxLength=256),
    "temperature": optional("number", minimum=0, maximum=1), "creativity": optional("number", "Alias of `temperature`.",
                                                                            minimum=0, maximum=1),
    "capabilities": optional("object", "`webSearch` -> `http_fetch`, `dataAnalyst` -> `calculator`.",
                         additionalProperties={"type": "boolean"}),
    "webSearch": optional("boolean", "Flat form of `capabilities.webSearch`."),
    "dataAnalyst": optional("boolean", "Flat form of `capabilities.dataAnalyst`."),
    "tools": optional("array", "Built-in tools by name.", items={"type": "string", "enum": list(BUILTIN_TOOLS)}),
    "mcp_servers": optional("array", "MCP servers for this request only, when `mcp.request_servers.allowed_hosts` "
                                     "lists their host (SSRF-guarded); their tools are `<name>-<tool>`.",
                            items=obj({"name": {"type": "string", "pattern": "^[A-Za-z0-9_]{1,32}$"},
                                       "url": {"type": "string", "format": "uri"},
                                       "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                                       "allowed_tools": {"type": "array", "items": {"type": "string"}}},
                                      ("url",), additional=False)),
}, description="A temporary agent (Odeus field names; CRUD aliases accepted). Config HTTP tools and MCP servers "
               "are never given to inline agents.")

_OUTPUT = {
    **obj({"type": {"type": "string", "enum": ["object", "array", "enum"]},
            "schema": optional("object", "JSON Schema of the object, or of each array element."),
            "enum": optional("array", items={"type": "string"})}, ("type",),
           "Structured output, enforced with the provider's structured output on the answering step and "
           "validated with JSON Schema (one repair attempt)."),
    "if": {"properties": {"type": {"const": "enum"}}, "required": ["type"]},
    "then": {"properties": {"enum": {"type": "array", "items": {"type": "string"}, "minItems": 1}},
             "required": ["enum"]},
}

_REQUEST = obj({
    "agentId": optional("string", "A configured agent; neither `agentId` nor `agent`: the default agent `main`."),
    "agent": {**optional("object"), **{k: v for k, v in _INLINE_AGENT.items() if k != "type"}},
    "messages": {"type": "array", "items": _MESSAGE, "minItems": 1},
    "stream": optional("boolean",
                       "Absent: streams when the body has `trigger` (useChat) or `Accept: text/event-stream`."),
    "maxSteps": optional("integer", "Lowers the agent's `max_steps` (an inline agent: sets it).",
                         minimum=1, maximum=20),
    "output": {"anyOf": [_OUTPUT, {"type": "null"}]},
    "tools": optional("array", "Client tools: returned as tool parts without output for the client to run.",
                  items=obj({"function": obj({"name": {"type": "string"}}, ("name",))}, ("function",))),
    "imageResponseFormat": {"enum": ["url", "b64_json", None]},
    "sessionId": _SESSION, "session_id": _SESSION,
    "id": {**_SESSION, "description": "useChat's chat id; the session id when no other is given."},
    "user": optional("string", "End user; with no session id, a session is derived from it."),
}, ("messages",), "Agents Completions request (Vercel AI SDK UIMessages). Unknown members (`trigger`, "
                  "`messageId`, ...) are ignored.")

_RESPONSE = obj({
    "id": {"type": "string"}, "role": {"const": "assistant"},
    "parts": {"type": "array", "items": {"type": "object"}, "description": "The UIMessage parts, as "
                                                                         "`readUIMessageStream` builds them."},
    "metadata": {"type": "object"},
    "messages": {"type": "array", "items": obj({"id": {"type": "string"}, "role": {"const": "assistant"},
                                                 "content": {"type": "string"}}, ("id", "role", "content"))},
    "output": {"description": "The structured output (object, array or string), when `output` was given."},
    "usage": obj({"prompt_tokens": {"type": "integer"}, "completion_tokens": {"type": "integer"},
                   "total_tokens": {"type": "integer"}}, ("prompt_tokens", "completion_tokens", "total_tokens")),
    "finishReason": {"type": ["string", "null"]},
    "sessionId": {"type": "string"},
}, ("id", "role", "parts", "messages", "usage"), "The assistant UIMessage plus the Odeus `messages` form.")

_CHUNK = obj({"type": {"type": "string", "description": "start, start-step, text-start/delta/end, "
                                                        "reasoning-start/delta/end, tool-input-start/delta/available, "
                                                        "tool-output-available, tool-output-error, finish-step, "
                                                        "data-output, error, finish"}}, ("type",),
              "One AI SDK UI message stream v1 chunk.")

AGENT_SCHEMAS: dict[str, Schema] = {"AgentUIRequest": _REQUEST, "AgentUIResponse": _RESPONSE,
                                    "UIMessageChunk": _CHUNK}

_UI_EVENT = {"type": "object", "required": ["data"],
             "description": "One SSE event: a `UIMessageChunk` as JSON, then `data: [DONE]`; `: ping` comments "
                            "while quiet.",
             "properties": {"data": {"anyOf": [{"type": "string", "const": "[DONE]"},
                                               {"type": "string", "contentMediaType": "application/json",
                                                "contentSchema": ref("UIMessageChunk")}]}}}

_ERRORS = {
    400: "Invalid parameters (`param` names the member; an unknown `agentId` is `agent_not_found`).",
    401: "Missing or unknown virtual key (when `auth` is configured).",
    402: "The virtual key's budget is spent.",
    403: "The key may not use this agent (`agent:<id>`) or the inline agent's model.",
    404: "Unknown model of the agent, or the endpoint is switched off (`endpoint_disabled`).",
    408: "The request body did not arrive in time (`request_timeout`).",
    413: "Request body too large.",
    415: "The body is not declared JSON (`unsupported_media_type`).",
    429: "Agent rate limit (per IP / per key) or the key's RPM/TPM; see `Retry-After`.",
    502: "Every upstream attempt failed, or the structured output stayed invalid (`output_validation_failed`).",
    503: "No enabled deployment, or keys/limits cannot be checked.",
    504: "Upstreams timed out, or a non-stream run exceeded `agent_settings.non_stream_timeout_s` (`agent_timeout`).",
}


def _ui_path() -> dict[str, Any]:
    errors = {str(s): {"description": f"{text} OpenAI-shaped, with a top-level `message` mirror.",
                       "content": {"application/json": {"schema": ref("Error")}}} for s, text in _ERRORS.items()}
    hello = [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": "What is 2+2?"}]}]
    return {"post": {
        "operationId": "createAgentCompletion",
        "summary": "Run an agent (Vercel AI SDK UIMessages)",
        "description": "Runs an agent through the routing core (fallbacks, accounting, limits). Non-stream: the "
                       "assistant UIMessage; stream: the AI SDK UI message stream v1 (header "
                       "`x-vercel-ai-ui-message-stream: v1`), readable by `readUIMessageStream` and `useChat`.",
        "tags": ["Agents"],
        "parameters": [{"name": SESSION_HEADER, "in": "header", "required": False,
                        "description": "Continue (or create) this session; echoed in the response.",
                        "schema": {"type": "string", "pattern": SESSION_PATTERN}}],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": ref("AgentUIRequest"),
            "examples": {"basic": {"summary": "The default agent", "value": {"messages": hello}},
                         "stream": {"summary": "Streamed, structured", "value": {
                             "messages": hello, "stream": True,
                             "output": {"type": "enum", "enum": ["3", "4", "5"]}}}}}}},
        "responses": {"200": {"description": "The assistant message (JSON) or the UI message stream.",
                              "content": {"application/json": {"schema": ref("AgentUIResponse")},
                                          "text/event-stream": {"schema": _UI_EVENT}}},
                      **errors},
    }}


_OPENAI_NOTE = ("\n\nAgents: `model: \"agent:<id>\"` (or `\"agent\"` for `main`), or the `x-agent-id` header, runs "
                "an agent (router/agents/): server tools run inside, client `tools` come back as `tool_calls`, "
                "`extra_fields` gains `agent`, `session_id`, `stop_reason` and `steps`. Optional members "
                "`session_id` and `max_steps` (1-20); the session is returned in `x-session-id`. The header "
                "`x-agent-id` selects an agent too (a non-agent `model` is then the agent's model).")



def _mcp_path() -> dict[str, Any]:
    rpc_error = obj({"jsonrpc": {"type": "string", "const": "2.0"}, "id": {"type": ["string", "integer", "null"]},
                     "error": obj({"code": {"type": "integer"}, "message": {"type": "string"}}, ("code", "message"))},
                    ("jsonrpc", "id", "error"), "A JSON-RPC error (what the router answers itself keeps its HTTP "
                                                "status: 401 with code -32001, 403 with -32003).")
    message = obj({"jsonrpc": {"type": "string", "const": "2.0"}, "id": {"type": ["string", "integer"]},
                   "method": {"type": "string", "examples": ["initialize", "tools/list", "tools/call", "ping"]},
                   "params": {"type": "object"}}, ("jsonrpc", "method"), "A JSON-RPC request or notification.")
    errors = {str(s): {"description": text, "content": {"application/json": {"schema": (
                {"oneOf": [rpc_error, {"type": "array", "items": {"type": "object"}}]} if s == 400 else rpc_error)}}}
              for s, text in {400: "Not JSON (-32700), an unsupported `MCP-Protocol-Version`, or a message that is "
                                   "not JSON-RPC 2.0 (the answers of a batch are still all there).",
                              401: "Missing or unknown key.", 404: "`mcp.serve` is false.", 413: "Body too large.",
                              415: "Not declared JSON."}.items()}
    return {"post": {
        "operationId": "mcp",
        "summary": "MCP server (Streamable HTTP, stateless): the gateway's tools",
        "description": "Model Context Protocol, revisions 2024-11-05 to 2025-11-25: `initialize`, `ping`, "
                       "`tools/list` and `tools/call` over the built-ins, the config's HTTP tools and the "
                       "configured MCP servers' tools, less what the key's `tools` globs leave out. Answers are "
                       "JSON (no session id, no server-initiated stream). A batch (array) gets an array.",
        "tags": ["Agents"],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"oneOf": [message, {"type": "array", "items": message, "minItems": 1}]},
            "examples": {"list": {"summary": "List the tools",
                                  "value": {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}}}}}},
        "responses": {"200": {"description": "The JSON-RPC response(s).",
                              "content": {"application/json": {"schema": {"type": ["object", "array"]}}}},
                      "202": {"description": "The body held only notifications or responses."},
                      **errors},
    }}


def add_agent_docs(paths: dict[str, Any]) -> None:
    """Add the UI face's path, /mcp and the agent notes of every OpenAI chat-completions operation."""
    for path, item in paths.items():
        op = item.get("post")
        if path.endswith("/chat/completions") and op is not None:
            item["post"] = {**op, "description": op.get("description", "") + _OPENAI_NOTE}
    paths[UI_PATH] = _ui_path()
    paths["/mcp"] = _mcp_path()
