"""OpenAI Responses API answers read as canonical (Chat Completions) objects.

A Responses request sent to OpenAI is forwarded unchanged and OpenAI's bytes are relayed to the client
as they came (same-dialect passthrough, `HttpRequest.dialect`). The router still reads those bytes, for
accounting, the commit decision and the cache, and it reads canonical objects only: this module turns
a `Response` body into a `chat.completion` (`response_to_completion`) and a Responses event stream
into `chat.completion.chunk`s (`ResponsesStream`). It translates nothing for the client.

The mapping: `output_text` parts are the content, `refusal` parts the refusal, the `reasoning` items'
summary (and `reasoning_text`) parts the `reasoning_content` (parts joined by a blank line),
`function_call` items the tool calls (`custom_tool_call` items custom tool calls), `url_citation`
annotations `message.annotations`. Hosted tools' items (web search, file search …) ran at OpenAI and
are no client tool calls: skipped, their billed searches kept as `usage.server_tool_use`. Finish: an
incomplete Response is `content_filter` (reason content_filter) or `length` (any other reason, a call
it cut included); a complete one `tool_calls` when it called a tool, else `stop`. A failed Response
and an `error` event are an `UpstreamError`; a stream without its terminal event is `STREAM_CUT`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from .base import SingleChoiceStream, chat_completion, invalid_response, load_json, tool_arguments
from .citations import StreamCitations, url_citation
from .errors import ErrorKind, UpstreamError, is_context_window
from .sse import SSEDecoder

REASONING_SEPARATOR = "\n\n"  # between two reasoning parts (summary parts stand apart as paragraphs)
FINAL_STATUSES = (None, "completed", "incomplete")

# `ResponseError.code` (and the codes of error events) -> kind; image_* codes are bad requests too.
_ERROR_KINDS: dict[str, ErrorKind] = {
    "server_error": ErrorKind.SERVER,
    "rate_limit_exceeded": ErrorKind.RATE_LIMIT,
    "insufficient_quota": ErrorKind.RATE_LIMIT,  # as its HTTP 429 is classified
    "context_length_exceeded": ErrorKind.CONTEXT_WINDOW,
    "invalid_prompt": ErrorKind.BAD_REQUEST,
    "invalid_request_error": ErrorKind.BAD_REQUEST,
    "bio_policy": ErrorKind.CONTENT_POLICY,
    "misalignment_policy_violation": ErrorKind.CONTENT_POLICY,
    "image_content_policy_violation": ErrorKind.CONTENT_POLICY,
    "content_filter": ErrorKind.CONTENT_POLICY,
    "vector_store_timeout": ErrorKind.TIMEOUT,
    "data_residency_mismatch": ErrorKind.AUTH,  # our key's project, not the caller's request
    "overloaded_error": ErrorKind.OVERLOADED,
}


def _count(data: Any, key: str) -> int:
    value = data.get(key) if isinstance(data, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def classify_error(provider: str, err: Any) -> UpstreamError:
    """A Responses `error` object (`{code, message, param, type}`) from a body or an event -> UpstreamError."""
    err = err if isinstance(err, Mapping) else {}
    code, etype, message = _str(err.get("code")), _str(err.get("type")), _str(err.get("message"))
    kind = _ERROR_KINDS.get(code) or _ERROR_KINDS.get(etype)
    if kind is None and ("image" in code or code.startswith("invalid_")):
        kind = ErrorKind.BAD_REQUEST
    if kind in (None, ErrorKind.BAD_REQUEST) and is_context_window(message, code, etype):
        kind = ErrorKind.CONTEXT_WINDOW
    return UpstreamError(kind or ErrorKind.SERVER, f"{provider}: {message or 'the response failed'}",
                         code=code or etype or None, param=_str(err.get("param")) or None)


def canonical_usage(usage: Any) -> dict | None:
    """Responses usage -> canonical usage (`input_tokens` includes cached and cache-written tokens, as
    `prompt_tokens` does); `tool_usage` (the Response's hosted tools) adds the billed web searches."""
    if not isinstance(usage, Mapping):
        return None
    prompt, completion = _count(usage, "input_tokens"), _count(usage, "output_tokens")
    details = usage.get("input_tokens_details")
    prompt_details = {"cached_tokens": _count(details, "cached_tokens")}
    if _count(details, "cache_write_tokens"):
        prompt_details["cache_creation_tokens"] = _count(details, "cache_write_tokens")
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": _count(usage, "total_tokens") or prompt + completion,
            "prompt_tokens_details": prompt_details,
            "completion_tokens_details": {
                "reasoning_tokens": _count(usage.get("output_tokens_details"), "reasoning_tokens")}}


def _usage_of(response: Mapping[str, Any]) -> dict | None:
    usage = canonical_usage(response.get("usage"))
    tools = response.get("tool_usage")
    searches = _count(tools.get("web_search"), "num_requests") if isinstance(tools, Mapping) else 0
    if usage is not None and searches:
        usage["server_tool_use"] = {"web_search_requests": searches}
    return usage


def finish_reason(response: Mapping[str, Any], called: bool) -> str:
    """The canonical finish of a final Response; `called`: it called a client tool."""
    if response.get("status") == "incomplete":
        details = response.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, Mapping) else None
        return "content_filter" if reason == "content_filter" else "length"
    return "tool_calls" if called else "stop"


def _citation(annotation: Any, start: int) -> dict | None:
    """A `url_citation` annotation of a text part that starts at `start` in the content (others: None)."""
    if not isinstance(annotation, Mapping) or annotation.get("type") != "url_citation" \
            or not isinstance(annotation.get("url"), str):
        return None
    return url_citation(start + _count(annotation, "start_index"), start + _count(annotation, "end_index"),
                        annotation["url"], _str(annotation.get("title")) or None)


def _tool_call(item: Mapping[str, Any]) -> dict:
    """A `function_call` or `custom_tool_call` item -> a canonical tool call."""
    name = _str(item.get("name"))
    if item.get("type") == "custom_tool_call":
        return {"id": item.get("call_id"), "type": "custom", "custom": {"name": name, "input": _str(item.get("input"))}}
    return {"id": item.get("call_id"), "type": "function",
            "function": {"name": name, "arguments": tool_arguments(item.get("arguments"))}}


def _check_final(provider: str, response: Any) -> Mapping[str, Any]:
    """`response` when it is a finished Response; a failed one raises its error."""
    if not isinstance(response, Mapping):
        raise invalid_response(provider, "expected a Response object")
    if response.get("error") or response.get("status") == "failed":
        raise classify_error(provider, response.get("error"))
    if not isinstance(response.get("output"), list):
        raise invalid_response(provider, "expected a Response with an 'output' array")
    if response.get("status") not in FINAL_STATUSES:
        raise invalid_response(provider, f"response status {response.get('status')!r} is not final")
    return response


def response_to_completion(provider: str, body: bytes, model: str) -> dict:
    """An OpenAI Responses `Response` body -> a canonical `chat.completion` (see the module doc)."""
    data = _check_final(provider, load_json(provider, body))
    texts: list[str] = []
    refusals: list[str] = []
    reasoning: list[str] = []
    calls: list[dict] = []
    cited: list[dict] = []
    for item in data["output"]:
        kind = item.get("type") if isinstance(item, Mapping) else None
        if kind == "message":
            for part in _list(item.get("content")):
                if isinstance(part, Mapping) and part.get("type") == "output_text":
                    start = sum(map(len, texts))
                    texts.append(_str(part.get("text")))
                    cited += filter(None, (_citation(a, start) for a in _list(part.get("annotations"))))
                elif isinstance(part, Mapping) and part.get("type") == "refusal":
                    refusals.append(_str(part.get("refusal")))
        elif kind == "reasoning":
            parts = [*_list(item.get("summary")), *_list(item.get("content"))]
            reasoning += [p["text"] for p in parts if isinstance(p, Mapping) and _str(p.get("text"))]
        elif kind in ("function_call", "custom_tool_call"):
            calls.append(_tool_call(item))
    usage = _usage_of(data)
    out = chat_completion(model, texts, calls, [REASONING_SEPARATOR.join(reasoning)] if reasoning else [],
                          finish_reason(data, bool(calls)), usage, _str(data.get("id")) or None)
    message = out["choices"][0]["message"]
    message["refusal"] = "".join(refusals) or None
    if cited:
        message["annotations"] = cited
    if isinstance(data.get("created_at"), (int, float)) and not isinstance(data.get("created_at"), bool):
        out["created"] = int(data["created_at"])
    return out


class ResponsesStream(SingleChoiceStream):
    """Stateful reader of one Responses event stream (fed raw SSE bytes, returns canonical chunks).

    A role chunk first (at `response.created`); text, refusal and reasoning deltas as they come; one
    tool call per `function_call` (or `custom_tool_call`) item, its `index` counted from 0 in order, the
    first fragment with id, type and name (a custom call's: id and `custom`, no `type`, which the openai
    SDK's chunk type allows only as `function`); at `response.completed` / `response.incomplete` the
    citations (one delta), the finish chunk and, when the Response has usage, a usage chunk with no
    choice. Event types not named here (the API adds new ones) are ignored.
    """

    __slots__ = ("_calls", "_cites", "_created", "_custom", "_decoder", "_done", "_id", "_model", "_provider",
                 "_reasoning_part", "_started", "_streamed")

    def __init__(self, provider: str, model: str) -> None:
        super().__init__()
        self._provider = provider
        self._model = model
        self._decoder = SSEDecoder()
        self._id = "chatcmpl-responses"
        self._created = int(time.time())
        self._started = False
        self._done = False
        self._calls: dict[Any, int] = {}  # item id, and output index, of a call item -> its tool call index
        self._streamed: dict[int, bool] = {}  # tool call index -> argument (or input) text sent
        self._custom: set[int] = set()  # the indices of custom tool calls
        self._reasoning_part: Any = None  # the reasoning part the last reasoning delta belonged to
        self._cites = StreamCitations()

    def _feed(self, data: bytes, out: list[dict]) -> None:
        self._events(self._decoder.feed(data), out)

    def _close(self, out: list[dict]) -> None:
        try:
            self._events(self._decoder.close(), out)
        except UpstreamError as exc:  # an event cut in half at end of input is a truncated stream
            if exc.kind is not ErrorKind.INVALID_RESPONSE or self._done:
                raise
        if not self._done:
            raise UpstreamError(ErrorKind.STREAM_CUT, f"{self._provider}: stream ended before response.completed",
                                code="stream_truncated")

    def _events(self, events: list[tuple[str | None, bytes]], out: list[dict]) -> None:
        for name, data in events:
            if self._done:
                break
            if data.strip() == b"[DONE]":  # not OpenAI's, but compatible servers may end so
                continue
            try:
                event = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise invalid_response(self._provider, f"stream event '{name}' is not JSON") from None
            if not isinstance(event, dict):
                raise invalid_response(self._provider, "stream event is not a JSON object")
            handler = _HANDLERS.get(event.get("type") or name)
            if handler is not None:
                handler(self, event, out)

    # -- events -----------------------------------------------------------------------------
    def _on_created(self, event: dict, out: list[dict]) -> None:
        response = event.get("response")
        if isinstance(response, Mapping):
            self._id = _str(response.get("id")) or self._id
            created = response.get("created_at")
            if isinstance(created, (int, float)) and not isinstance(created, bool):
                self._created = int(created)
        self._start(out)

    def _emit(self, delta: dict, out: list[dict]) -> None:
        self._start(out)
        self._cites.count(delta)
        out.append(self._chunk(delta))

    def _on_text(self, event: dict, out: list[dict]) -> None:
        if _str(event.get("delta")):
            self._cites.open((event.get("item_id"), event.get("content_index")))  # where the part starts
            self._emit({"content": event["delta"]}, out)

    def _on_refusal(self, event: dict, out: list[dict]) -> None:
        if _str(event.get("delta")):
            self._emit({"refusal": event["delta"]}, out)

    def _on_reasoning(self, event: dict, out: list[dict]) -> None:
        text = _str(event.get("delta"))
        if not text:
            return
        part = (event.get("item_id"), event.get("type"), event.get("summary_index", event.get("content_index")))
        if self._reasoning_part is not None and part != self._reasoning_part:
            text = REASONING_SEPARATOR + text
        self._reasoning_part = part
        self._emit({"reasoning_content": text}, out)

    def _on_annotation(self, event: dict, out: list[dict]) -> None:
        start = self._cites.start((event.get("item_id"), event.get("content_index")))
        found = _citation(event.get("annotation"), self._cites.length if start is None else start)
        if found is not None:
            self._cites.add([found])

    def _on_item_added(self, event: dict, out: list[dict]) -> None:
        item = event.get("item")
        if not isinstance(item, Mapping) or item.get("type") not in ("function_call", "custom_tool_call"):
            return
        index = len(self._streamed)
        self._calls[("id", item.get("id"))] = self._calls[("at", event.get("output_index"))] = index
        custom = item["type"] == "custom_tool_call"
        if custom:
            self._custom.add(index)
        text = _str(item.get("input" if custom else "arguments"))  # "" from OpenAI: the text comes in deltas
        self._streamed[index] = bool(text.strip())
        member = {"custom": {"name": _str(item.get("name")), "input": text}} if custom else \
            {"type": "function", "function": {"name": _str(item.get("name")), "arguments": text}}
        self._emit({"tool_calls": [{"index": index, "id": item.get("call_id"), **member}]}, out)

    def _piece(self, index: int | None, text: str, out: list[dict], whole: bool = False) -> None:
        """Argument (or custom input) text of call `index`; `whole`: the full text a done event repeats,
        sent only when no piece was (a server that streams none)."""
        if index is None or index not in self._streamed or not text or (whole and self._streamed[index]):
            return
        self._streamed[index] = True
        member = {"custom": {"input": text}} if index in self._custom else {"function": {"arguments": text}}
        self._emit({"tool_calls": [{"index": index, **member}]}, out)

    def _call_index(self, item_id: Any, output_index: Any) -> int | None:
        index = self._calls.get(("id", item_id))
        return self._calls.get(("at", output_index)) if index is None else index

    def _on_arguments(self, event: dict, out: list[dict]) -> None:
        self._piece(self._call_index(event.get("item_id"), event.get("output_index")), _str(event.get("delta")), out)

    def _on_arguments_done(self, event: dict, out: list[dict]) -> None:
        self._piece(self._call_index(event.get("item_id"), event.get("output_index")),
                    _str(event.get("arguments", event.get("input"))), out, whole=True)

    def _on_item_done(self, event: dict, out: list[dict]) -> None:
        item = event.get("item")
        if isinstance(item, Mapping) and item.get("type") in ("function_call", "custom_tool_call"):
            self._piece(self._call_index(item.get("id"), event.get("output_index")),
                        _str(item.get("arguments", item.get("input"))), out, whole=True)

    def _on_final(self, event: dict, out: list[dict]) -> None:
        response = _check_final(self._provider, event.get("response"))
        self._start(out)
        self._done = True
        self._cites.flush(self._chunk, out)
        out.append(self._chunk({}, finish_reason(response, bool(self._streamed))))
        usage = _usage_of(response)
        if usage is not None:  # none reported: no made-up zeros, so the router estimates instead
            out.append(self._usage_chunk(usage))

    def _on_failed(self, event: dict, out: list[dict]) -> None:
        response = event.get("response")
        raise classify_error(self._provider, response.get("error") if isinstance(response, Mapping) else None)

    def _on_error(self, event: dict, out: list[dict]) -> None:
        raise classify_error(self._provider, event.get("error") if isinstance(event.get("error"), Mapping) else event)


_HANDLERS = {
    "response.created": ResponsesStream._on_created,
    "response.output_text.delta": ResponsesStream._on_text,
    "response.refusal.delta": ResponsesStream._on_refusal,
    "response.reasoning_summary_text.delta": ResponsesStream._on_reasoning,
    "response.reasoning_text.delta": ResponsesStream._on_reasoning,
    "response.output_text.annotation.added": ResponsesStream._on_annotation,
    "response.output_item.added": ResponsesStream._on_item_added,
    "response.function_call_arguments.delta": ResponsesStream._on_arguments,
    "response.custom_tool_call_input.delta": ResponsesStream._on_arguments,
    "response.function_call_arguments.done": ResponsesStream._on_arguments_done,
    "response.custom_tool_call_input.done": ResponsesStream._on_arguments_done,
    "response.output_item.done": ResponsesStream._on_item_done,
    "response.completed": ResponsesStream._on_final,
    "response.incomplete": ResponsesStream._on_final,
    "response.failed": ResponsesStream._on_failed,
    "error": ResponsesStream._on_error,
}
