"""Gemini `streamGenerateContent?alt=sse` -> OpenAI `chat.completion.chunk`s (sans-I/O).

Each SSE event is a whole `GenerateContentResponse` holding only the new parts. There is no
`[DONE]`: the stream ends when the connection closes, so completeness is judged by whether every
candidate reported a finishReason, and the usage chunk (`choices: []`, from the last
`usageMetadata` seen) can only be emitted at `close()`.

Tool calls arrive whole in one event; each becomes one tool-call delta with its id, name and the
complete arguments, and its `index` keeps counting across events so parallel calls split over
several events stay distinct.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from .base import StreamTranslator, invalid_response
from .citations import citation_members, gemini_citations
from .errors import ErrorKind, UpstreamError
from .gemini_response import (
    check_prompt_blocked,
    completion_id,
    error_from_google,
    finish_reason,
    translate_parts,
    usage_from,
)
from .sse import SSEDecoder


class GeminiStream(StreamTranslator):
    __slots__ = ("_calls", "_created", "_decoder", "_finished", "_id", "_model", "_next_call",
                 "_provider", "_response_id", "_started", "_texts", "_usage")

    def __init__(self, provider: str, model: str, created: int) -> None:
        super().__init__()
        self._provider = provider
        self._model = model
        self._created = created
        self._decoder = SSEDecoder()
        self._id: str | None = None
        self._response_id = ""
        self._started: set[int] = set()  # candidates whose role chunk went out
        self._next_call: dict[int, int] = {}  # candidate -> next tool call index
        self._calls: set[int] = set()  # candidates that made at least one tool call
        self._finished: set[int] = set()
        self._usage: dict | None = None
        self._texts: dict[int, list[str]] = {}  # candidate -> its text so far, where grounding points

    def _feed(self, data: bytes, out: list[dict]) -> None:
        self._events(self._decoder.feed(data), out)

    def _close(self, out: list[dict]) -> None:
        try:
            self._events(self._decoder.close(), out)
        except UpstreamError as exc:  # the connection closed in the middle of an event
            if exc.kind is not ErrorKind.INVALID_RESPONSE:
                raise
            raise self._cut("stream ended in the middle of an event") from None
        if not self._started or not self._started <= self._finished:
            raise self._cut("stream ended before a finishReason")
        if self._usage is not None:
            out.append(self._chunk([], usage=self._usage))

    # -- events ----------------------------------------------------------------------------------
    def _events(self, events: list[tuple[str | None, bytes]], chunks: list[dict]) -> None:
        for _event, data in events:
            if not data.strip() or data == b"[DONE]":
                continue
            try:
                event = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise invalid_response(self._provider, "stream event is not JSON") from None
            if isinstance(event, list) and len(event) == 1:
                event = event[0]
            if not isinstance(event, dict):
                raise invalid_response(self._provider, "stream event is not a JSON object")
            if event.get("error"):
                raise error_from_google(self._provider, event["error"])
            self._response(event, chunks)

    def _response(self, event: dict, chunks: list[dict]) -> None:
        """One `GenerateContentResponse`; its chunks go to `chunks` part by part, so the text of an
        event that then fails (a finishReason that is an error) is kept."""
        if self._id is None:
            self._response_id = str(event.get("responseId") or "")
            self._id = completion_id(event, f"chatcmpl-{uuid.uuid4().hex}")
            if isinstance(event.get("modelVersion"), str) and event["modelVersion"]:
                self._model = event["modelVersion"]
        check_prompt_blocked(event, self._provider)
        if "usageMetadata" in event:
            self._usage = usage_from(event["usageMetadata"])
        candidates = event.get("candidates")
        if not isinstance(candidates, list):
            return
        for pos, cand in enumerate(candidates):
            if not isinstance(cand, dict):
                continue
            index = cand.get("index", pos)
            if index not in self._started:
                self._started.add(index)
                chunks.append(self._chunk([_choice(index, {"role": "assistant", "content": ""})]))
            content = cand.get("content")
            parts = content.get("parts") if isinstance(content, dict) else None
            pieces, self._next_call[index] = translate_parts(parts or [], self._response_id, index,
                                                             self._next_call.get(index, 0))
            for kind, value in pieces:
                if kind == "tool_call":
                    self._calls.add(index)
                    delta: dict[str, Any] = {"tool_calls": [value]}
                elif kind == "reasoning":
                    delta = {"reasoning_content": value}
                else:
                    delta = {"content": value}
                    self._texts.setdefault(index, []).append(value)
                chunks.append(self._chunk([_choice(index, delta)]))
            reason = cand.get("finishReason")
            if reason and reason != "FINISH_REASON_UNSPECIFIED" and index not in self._finished:
                # grounding comes with the last event: its citations, in one delta, before the finish
                cited = gemini_citations(cand.get("groundingMetadata"), "".join(self._texts.get(index, ())))
                if cited:
                    chunks.append(self._chunk([_choice(index, citation_members(cited))]))
                mapped = finish_reason(reason, index in self._calls, self._provider, cand.get("finishMessage"))
                self._finished.add(index)
                chunks.append(self._chunk([_choice(index, {}, mapped)]))

    def _cut(self, detail: str) -> UpstreamError:
        return UpstreamError(ErrorKind.STREAM_CUT, f"{self._provider}: {detail}", code="stream_truncated")

    def _chunk(self, choices: list[dict], usage: dict | None = None) -> dict:
        chunk: dict[str, Any] = {"id": self._id, "object": "chat.completion.chunk", "created": self._created,
                                 "model": self._model, "choices": choices}
        if usage is not None:
            chunk["usage"] = usage
        return chunk


def _choice(index: int, delta: dict, finish: str | None = None) -> dict:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
