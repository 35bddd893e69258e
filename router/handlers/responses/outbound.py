"""Canonical answers -> OpenAI Responses answers: the Response object, or the Responses event stream.

The other half of the Responses face (`inbound.py` is the request side): whichever vendor served, the
client gets what the Responses API would have sent, so the openai SDK's stream accumulator, the Agents
SDK and Codex fold it without knowing. The Response itself is built in `output.py`; this module plays
the canonical chunks out as OpenAI's typed events and ends with the same Response `to_response` makes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from providers.base import tool_arguments

from .output import (
    annotations,
    call_item,
    finish_status,
    item_id,
    message_item,
    namespaces,
    reasoning_item,
    response_object,
    responses_usage,
    text_part,
    to_response,
)
from .thinking import seal

__all__ = ["ResponseEvents", "responses_usage", "to_response"]

# Canonical error kinds (`providers.ErrorKind`) under the codes OpenAI (and Codex) know them by.
_ERROR_CODES = {"rate_limit": "rate_limit_exceeded", "context_window": "context_length_exceeded"}


class ResponseEvents:
    """Canonical `chat.completion.chunk`s -> the Responses SSE events, for one streamed answer.

    `response.created` and `response.in_progress` go out with the first chunk; then one output item
    is open at a time (a change of kind closes it): a `reasoning` item from `reasoning_content`, whose
    deltas are summary text; a `message` from `content` (an `output_text` part) and `refusal` (a
    `refusal` part); one `function_call` per canonical call index, its arguments as deltas. Every event
    has the next `sequence_number`. `finish()` closes the open item and sends `response.completed`, or
    `response.incomplete` for a length or content-filter finish, carrying the whole Response (usage from
    the canonical usage chunk, null without one). `fail()` sends `response.failed`, and nothing follows.

    Two things come whole just before the finish and may find their item closed already: the
    `thinking_blocks` delta (sealed into the reasoning item's `encrypted_content`, see `thinking.py`)
    and the `annotations` delta (url citations of the text). Either reaches the item's
    `output_item.done` when the item is still open, and the final Response in any case. Thinking
    blocks matter more (Anthropic refuses a tool loop with thinking on when they are not replayed, and
    Codex replays the items of the `output_item.done` events, not the final Response): when their
    reasoning item is done already, `finish()` sends its `output_item.done` once more, carrying them;
    thinking blocks with no reasoning item at all open one. Argument pieces of a call whose item a later
    call closed (no vendor is known to interleave calls) reach the final Response only.
    """

    __slots__ = ("_calls", "_created_at", "_done", "_finish", "_late", "_model", "_namespaces", "_open", "_output",
                 "_part", "_request", "_response", "_response_id", "_seq", "_started", "_summaries", "_usage",
                 "extra_fields")

    def __init__(self, response_id: str, model: str, request: dict, created_at: int) -> None:
        self._response_id = response_id
        self.extra_fields: Callable[[], dict] | None = None  # `extra_fields` for the final event, built then
        self._model = model
        self._request = request if isinstance(request, dict) else {}
        self._created_at = created_at
        self._namespaces = namespaces(self._request)
        self._seq = 0
        self._started = False
        self._done = False
        self._output: list[dict] = []  # the items, as they will be in the final Response
        self._open: int | None = None  # output index of the open item
        self._part: int | None = None  # content index of the open message part
        self._summaries: dict[int, str] = {}  # output index of a reasoning item -> its summary so far
        self._calls: dict[int, int] = {}  # canonical call index -> output index
        self._late: int | None = None  # a done reasoning item that got its thinking blocks afterwards
        self._finish: Any = None
        self._usage: dict | None = None
        self._response: dict | None = None

    @property
    def response(self) -> dict | None:
        """The final Response once `finish()` or `fail()` ran (for the face to store), else None."""
        return self._response

    def batch(self, chunks: list[dict]) -> bytes:
        """The events for these chunks (b"" when none is due yet)."""
        if self._done:
            return b""
        out: list[bytes] = []
        for chunk in chunks:
            if not isinstance(chunk, dict):
                continue
            self._start(out)
            if isinstance(chunk.get("usage"), dict):
                self._usage = chunk["usage"]
            for choice in chunk.get("choices") or () if isinstance(chunk.get("choices"), list) else ():
                if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                    continue  # a Response has one answer
                if isinstance(choice.get("delta"), dict):
                    self._delta(choice["delta"], out)
                if choice.get("finish_reason"):
                    self._finish = choice["finish_reason"]
        return b"".join(out)

    def finish(self) -> bytes:
        """End of the stream: close the open item, then `response.completed` (or `.incomplete`)."""
        if self._done:
            return b""
        out: list[bytes] = []
        self._start(out)
        status, incomplete = finish_status(self._finish)
        if status == "incomplete" and self._open is not None and self._output[self._open]["type"] != "reasoning":
            self._output[self._open]["status"] = "incomplete"  # the item the limit cut
        self._close(out)
        if self._late is not None:
            # The blocks came after their reasoning item was done. Its `output_item.done` once more, with them
            # and without the summary already shown: a client that keeps done items (Codex) replays it after
            # the turn's other items, where the inbound side attaches it to that turn (`items.py`).
            item = {**self._output[self._late], "summary": []}
            self._event("response.output_item.done", {"output_index": self._late, "item": item}, out)
        self._end(f"response.{status}", status, out, incomplete_details=incomplete)
        return b"".join(out)

    def fail(self, error: dict) -> bytes:
        """`response.failed` with `error: {code, message}` (from the caller's `{code, message}`); the stream
        ends with it. An item left open stays unfinished (`status: incomplete`) in the failed Response."""
        if self._done:
            return b""
        out: list[bytes] = []
        self._start(out)
        if self._open is not None:
            item = self._output[self._open]
            if "status" in item:
                item["status"] = "incomplete"
            if self._open in self._summaries:
                item["summary"] = [{"type": "summary_text", "text": self._summaries[self._open]}]
        code = error.get("code") if isinstance(error, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        code = _ERROR_CODES.get(code, code) if isinstance(code, str) and code else "server_error"
        self._end("response.failed", "failed", out, error={
            "code": code, "message": message if isinstance(message, str) and message else "The response failed."})
        return b"".join(out)

    # -- internals --------------------------------------------------------------------------
    def _event(self, kind: str, data: dict, out: list[bytes]) -> None:
        event = {"type": kind, "sequence_number": self._seq, **data}
        self._seq += 1
        out.append(b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n")

    def _snapshot(self, status: str, **members: Any) -> dict:
        return response_object(self._request, response_id=self._response_id, model=self._model,
                               created_at=self._created_at, status=status, **members)

    def _start(self, out: list[bytes]) -> None:
        if self._started:
            return
        self._started = True
        snapshot = self._snapshot("in_progress", output=[])
        self._event("response.created", {"response": snapshot}, out)
        self._event("response.in_progress", {"response": snapshot}, out)

    def _end(self, kind: str, status: str, out: list[bytes], **members: Any) -> None:
        self._done = True
        usage = responses_usage(self._usage) if self._usage is not None else None
        self._response = self._snapshot(status, output=self._output, usage=usage, **members)
        extra = self.extra_fields() if self.extra_fields is not None else None  # on the event, not the stored one
        self._event(kind, {"response": {**self._response, "extra_fields": extra} if extra else self._response}, out)

    def _delta(self, delta: dict, out: list[bytes]) -> None:
        reasoning = delta.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            self._reasoning(reasoning, out)
        for kind, key in (("output_text", "content"), ("refusal", "refusal")):
            text = delta.get(key)
            if isinstance(text, str) and text:
                self._message(kind, text, out)
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                if isinstance(call, dict):
                    self._tool_call(call, out)
        cited = annotations(delta.get("annotations"))
        if cited:
            self._annotate(cited, out)
        sealed = seal(delta.get("thinking_blocks"))
        if sealed:
            self._seal(sealed, out)

    def _where(self) -> dict:
        assert self._open is not None
        return {"item_id": self._output[self._open]["id"], "output_index": self._open}

    def _open_item(self, item: dict, added: dict, out: list[bytes]) -> None:
        self._close(out)
        self._open = len(self._output)
        self._output.append(item)
        self._event("response.output_item.added", {"output_index": self._open, "item": added}, out)

    def _reasoning(self, text: str, out: list[bytes]) -> None:
        if self._open is None or self._output[self._open]["type"] != "reasoning":
            item = reasoning_item(item_id("rs", self._response_id, len(self._output)), "", None)
            self._open_item(item, {**item, "summary": []}, out)
        assert self._open is not None
        if self._open not in self._summaries:
            self._summaries[self._open] = ""
            self._event("response.reasoning_summary_part.added", {
                **self._where(), "summary_index": 0, "part": {"type": "summary_text", "text": ""}}, out)
        self._summaries[self._open] += text
        self._event("response.reasoning_summary_text.delta", {**self._where(), "summary_index": 0, "delta": text},
                    out)

    def _message(self, kind: str, text: str, out: list[bytes]) -> None:
        if self._open is None or self._output[self._open]["type"] != "message":
            item = message_item(item_id("msg", self._response_id, len(self._output)), [], "in_progress")
            self._open_item(item, {**item, "content": []}, out)
        assert self._open is not None
        content = self._output[self._open]["content"]
        if self._part is None or content[self._part]["type"] != kind:
            self._close_part(out)
            content.append(text_part() if kind == "output_text" else {"type": "refusal", "refusal": ""})
            self._part = len(content) - 1
            self._event("response.content_part.added", {**self._where(), "content_index": self._part,
                                                        "part": dict(content[self._part])}, out)
        if kind == "output_text":
            content[self._part]["text"] += text
            self._event("response.output_text.delta", {**self._where(), "content_index": self._part,
                                                       "delta": text, "logprobs": []}, out)
        else:
            content[self._part]["refusal"] += text
            self._event("response.refusal.delta", {**self._where(), "content_index": self._part, "delta": text}, out)

    def _tool_call(self, call: dict, out: list[bytes]) -> None:
        index = call.get("index")
        if isinstance(index, bool) or not isinstance(index, int):  # no index: the open call, else a new one
            index = next((i for i, at in self._calls.items() if at == self._open), max(self._calls, default=-1) + 1)
        fn = call.get("function") if isinstance(call.get("function"), dict) else {}
        if index not in self._calls:
            name = fn.get("name") if isinstance(fn.get("name"), str) else ""
            call_id = call.get("id") if isinstance(call.get("id"), str) and call["id"] else item_id(
                "call", self._response_id, len(self._output))
            item = call_item(item_id("fc", self._response_id, len(self._output)), call_id, name, "",
                             self._namespaces.get(name), "in_progress")
            self._open_item(item, dict(item), out)
            self._calls[index] = len(self._output) - 1
        arguments = fn.get("arguments")
        if isinstance(arguments, str) and arguments:
            at = self._calls[index]
            self._output[at]["arguments"] += arguments
            if at == self._open:
                self._event("response.function_call_arguments.delta", {**self._where(), "delta": arguments}, out)

    def _annotate(self, cited: list[dict], out: list[bytes]) -> None:
        messages = [i for i, item in enumerate(self._output) if item["type"] == "message"]
        parts = [part for part in self._output[messages[-1]]["content"] if part["type"] == "output_text"] \
            if messages else []
        if not parts:
            return  # no text to cite in
        part = parts[-1]
        live = self._open == messages[-1] and self._part is not None and \
            self._output[messages[-1]]["content"][self._part] is part
        for annotation in cited:
            part["annotations"].append(annotation)
            if live:
                self._event("response.output_text.annotation.added", {
                    **self._where(), "content_index": self._part, "annotation_index": len(part["annotations"]) - 1,
                    "annotation": annotation}, out)

    def _seal(self, sealed: str, out: list[bytes]) -> None:
        at = next((i for i in reversed(range(len(self._output))) if self._output[i]["type"] == "reasoning"), None)
        if at is None:  # thinking without text (redacted only): its item still has to carry it back
            item = reasoning_item(item_id("rs", self._response_id, len(self._output)), "", None)
            self._open_item(item, dict(item), out)
            at = self._open
        assert at is not None
        self._output[at]["encrypted_content"] = sealed
        self._late = None if at == self._open else at  # done already: `finish()` says it again

    def _close_part(self, out: list[bytes]) -> None:
        if self._part is None or self._open is None:
            return
        part = self._output[self._open]["content"][self._part]
        where = {**self._where(), "content_index": self._part}
        if part["type"] == "output_text":
            self._event("response.output_text.done", {**where, "text": part["text"], "logprobs": []}, out)
        else:
            self._event("response.refusal.done", {**where, "refusal": part["refusal"]}, out)
        self._event("response.content_part.done", {**where, "part": part}, out)
        self._part = None

    def _close(self, out: list[bytes]) -> None:
        if self._open is None:
            return
        item = self._output[self._open]
        if item["type"] == "reasoning" and self._open in self._summaries:
            text = self._summaries[self._open]
            item["summary"] = [{"type": "summary_text", "text": text}]
            where = {**self._where(), "summary_index": 0}
            self._event("response.reasoning_summary_text.done", {**where, "text": text}, out)
            self._event("response.reasoning_summary_part.done", {**where, "part": item["summary"][0]}, out)
        elif item["type"] == "message":
            self._close_part(out)
        elif item["type"] == "function_call":
            item["arguments"] = tool_arguments(item["arguments"])
            self._event("response.function_call_arguments.done", {**self._where(), "name": item["name"],
                                                                  "arguments": item["arguments"]}, out)
        if item.get("status") == "in_progress":
            item["status"] = "completed"
        self._event("response.output_item.done", {"output_index": self._open, "item": item}, out)
        self._open = None
