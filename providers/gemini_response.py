"""Gemini responses and errors -> canonical (OpenAI) shapes; shared by the whole and streamed paths.

Both paths translate parts with the same functions so that a stream rebuilt chunk by chunk equals
the non-stream translation of the same answer, tool call ids included.

MALFORMED_FUNCTION_CALL (and its siblings UNEXPECTED_TOOL_CALL, TOO_MANY_TOOL_CALLS,
MISSING_THOUGHT_SIGNATURE, MALFORMED_RESPONSE) is raised as `UpstreamError(INVALID_RESPONSE,
code="malformed_function_call"…)`, never mapped to a finish reason: the model meant to call a tool
and produced nothing usable, so "stop" would be a silent wrong answer (LiteLLM #21744) and a made-up
finish reason breaks typed OpenAI clients. As an upstream failure it is retried or falls back to the
next model like any other bad upstream answer, and mid-stream it ends the stream with an error event.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from .base import tool_arguments
from .errors import ErrorKind, UpstreamError, is_context_window, kind_for_status, parse_retry_after
from .gemini_request import encode_tool_call_id, synth_tool_call_id

_FINISH: dict[str, str] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    **dict.fromkeys(("SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
                     "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "MODEL_ARMOR"), "content_filter"),
}
# The model tried to call a tool and failed: an upstream failure, not an answer.
_FAILED_CALL = {
    "MALFORMED_FUNCTION_CALL": "malformed_function_call",
    "UNEXPECTED_TOOL_CALL": "unexpected_tool_call",
    "TOO_MANY_TOOL_CALLS": "too_many_tool_calls",
    "MISSING_THOUGHT_SIGNATURE": "missing_thought_signature",
    "MALFORMED_RESPONSE": "malformed_response",
}

_STATUS_KIND: dict[str, ErrorKind] = {
    "INVALID_ARGUMENT": ErrorKind.BAD_REQUEST,
    "FAILED_PRECONDITION": ErrorKind.BAD_REQUEST,
    "OUT_OF_RANGE": ErrorKind.BAD_REQUEST,
    "PERMISSION_DENIED": ErrorKind.AUTH,
    "UNAUTHENTICATED": ErrorKind.AUTH,
    "NOT_FOUND": ErrorKind.NOT_FOUND,
    "RESOURCE_EXHAUSTED": ErrorKind.RATE_LIMIT,
    "UNAVAILABLE": ErrorKind.OVERLOADED,
    "INTERNAL": ErrorKind.SERVER,
    "UNKNOWN": ErrorKind.SERVER,
    "DEADLINE_EXCEEDED": ErrorKind.TIMEOUT,
}
_TOO_LARGE_RE = re.compile(r"payload size exceeds|request (entity|payload) too large", re.IGNORECASE)
# Deployment problems reported as FAILED_PRECONDITION: no caller can fix them, another provider can.
_DEPLOYMENT_RE = re.compile(r"location is not supported|enable billing|free tier is not available",
                            re.IGNORECASE)
_SECRET_RES = (re.compile(r"AIza[0-9A-Za-z_\-]{20,}"), re.compile(r"ya29\.[0-9A-Za-z_\-.]+"),
               re.compile(r"(?<=[?&]key=)[^&\s\"']+"))


# -- candidates ------------------------------------------------------------------------------------
def translate_parts(parts: list, response_id: str, candidate: int, first_call: int
                    ) -> tuple[list[tuple[str, Any]], int]:
    """Gemini parts -> ordered pieces: ("content", text), ("reasoning", text), ("tool_call", call).

    `first_call` is the index the next tool call gets: indices keep counting across stream events
    (a fresh 0 per event was LiteLLM PR #16194). Returns the pieces and the next free call index.
    """
    pieces: list[tuple[str, Any]] = []
    index = first_call
    for part in parts:
        if not isinstance(part, dict):
            continue
        call = part.get("functionCall")
        if isinstance(call, dict):
            name = str(call.get("name") or "")
            args = call.get("args")
            arguments = tool_arguments(args if isinstance(args, dict) else None)
            base = call.get("id") or synth_tool_call_id(response_id, candidate, index, name, arguments)
            pieces.append(("tool_call", {
                "index": index,
                "id": encode_tool_call_id(str(base), part.get("thoughtSignature")),
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }))
            index += 1
            continue
        text = part.get("text")
        if isinstance(text, str) and text:
            kind = "reasoning" if part.get("thought") is True else "content"
            if pieces and pieces[-1][0] == kind:
                pieces[-1] = (kind, pieces[-1][1] + text)
            else:
                pieces.append((kind, text))
        # executableCode / codeExecutionResult / inlineData outputs have no OpenAI chat field.
    return pieces, index


def finish_reason(reason: str | None, has_calls: bool, provider: str, message: str | None = None) -> str:
    """Gemini finishReason -> OpenAI finish_reason (raising for failed tool calls, see module doc)."""
    if reason in _FAILED_CALL:
        detail = f": {message}" if message else ""
        raise UpstreamError(ErrorKind.INVALID_RESPONSE,
                            f"{provider}: model returned finishReason {reason}{detail}",
                            code=_FAILED_CALL[reason])
    mapped = _FINISH.get(reason or "", "stop")  # LANGUAGE, OTHER, NO_IMAGE…: the model stopped
    if mapped == "stop" and has_calls:
        return "tool_calls"
    return mapped


def check_prompt_blocked(data: Mapping[str, Any], provider: str) -> None:
    """promptFeedback.blockReason: the prompt itself was refused and there are no candidates.

    Raised as CONTENT_POLICY with code `content_filter`, the error Azure OpenAI gives for a filtered
    prompt, so clients that handle that handle this; as a caller error it is not fallen back on."""
    feedback = data.get("promptFeedback")
    if isinstance(feedback, dict) and feedback.get("blockReason") and not data.get("candidates"):
        reason = feedback["blockReason"]
        extra = feedback.get("blockReasonMessage")
        raise UpstreamError(ErrorKind.CONTENT_POLICY,
                            f"{provider}: prompt blocked by Gemini ({reason})" + (f": {extra}" if extra else ""),
                            code="content_filter", param="messages", upstream_status=400)


def usage_from(meta: Any) -> dict | None:
    """usageMetadata -> OpenAI usage.

    promptTokenCount already includes cachedContentTokenCount; candidatesTokenCount excludes
    thoughtsTokenCount, so thoughts are added to completion tokens (they are billed as output).
    toolUsePromptTokenCount (tool results Gemini fetched itself) is billed as input. Audio and image
    tokens, in and out, are billed at prices of their own, so the per-modality counts of
    promptTokensDetails and candidatesTokensDetails become OpenAI's `audio_tokens` / `image_tokens`
    details (only where there are some)."""
    if not isinstance(meta, dict):
        return None
    prompt = int(meta.get("promptTokenCount") or 0) + int(meta.get("toolUsePromptTokenCount") or 0)
    thoughts = int(meta.get("thoughtsTokenCount") or 0)
    completion = int(meta.get("candidatesTokenCount") or 0) + thoughts
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": int(meta.get("cachedContentTokenCount") or 0),
                                  **_modalities(meta.get("promptTokensDetails"))},
        "completion_tokens_details": {"reasoning_tokens": thoughts,
                                      **_modalities(meta.get("candidatesTokensDetails"))},
    }


_PRICED_MODALITIES = {"AUDIO": "audio_tokens", "IMAGE": "image_tokens"}


def _modalities(details: Any) -> dict[str, int]:
    """A `[{"modality", "tokenCount"}]` breakdown -> {"audio_tokens": n, "image_tokens": n}: the
    modalities a price list may price apart from text (video and documents are billed as text is),
    each only when it has tokens."""
    out: dict[str, int] = {}
    for item in details if isinstance(details, list) else ():
        key = _PRICED_MODALITIES.get(item.get("modality")) if isinstance(item, dict) else None
        count = item.get("tokenCount") if key else None
        if isinstance(count, int) and not isinstance(count, bool) and count > 0:
            out[key] = out.get(key, 0) + count
    return out


def completion_id(data: Mapping[str, Any], fallback: str) -> str:
    response_id = data.get("responseId")
    return f"chatcmpl-{response_id}" if isinstance(response_id, str) and response_id else fallback


# -- errors ----------------------------------------------------------------------------------------
def error_from_google(provider: str, err: Any, status: int | None = None,
                      headers: Mapping[str, str] | None = None) -> UpstreamError:
    """Classify a Google `{"code", "message", "status", "details"}` error object."""
    if not isinstance(err, dict):
        kind = kind_for_status(status) if status else ErrorKind.SERVER
        text = redact(str(err)) if err else f"upstream returned HTTP {status}"
        return UpstreamError(kind, f"{provider}: {text}", upstream_status=status,
                             retry_after=parse_retry_after(headers or {}))
    code = err.get("code")
    if status is None and isinstance(code, int):
        status = code
    gstatus = err.get("status") if isinstance(err.get("status"), str) else None
    message = redact(str(err.get("message") or f"upstream returned HTTP {status}"))
    kind = _STATUS_KIND.get(gstatus or "") or (kind_for_status(status) if status else ErrorKind.SERVER)
    details = err.get("details") if isinstance(err.get("details"), list) else []
    reasons = {d.get("reason") for d in details if isinstance(d, dict) and d.get("reason")}
    if any(str(r).startswith("API_KEY") for r in reasons) or "api key not valid" in message.lower():
        kind = ErrorKind.AUTH  # AI Studio reports a bad key as 400 INVALID_ARGUMENT: ours, not the caller's
    elif kind is ErrorKind.BAD_REQUEST and is_context_window(message):
        kind = ErrorKind.CONTEXT_WINDOW
    elif kind is ErrorKind.BAD_REQUEST and _TOO_LARGE_RE.search(message):
        kind = ErrorKind.TOO_LARGE
    elif gstatus == "FAILED_PRECONDITION" and _DEPLOYMENT_RE.search(message):
        kind = ErrorKind.AUTH
    retry_after = parse_retry_after(headers or {})
    if retry_after is None:
        retry_after = _retry_delay(details)
    return UpstreamError(kind, f"{provider}: {message}", upstream_status=status,
                         code=gstatus or (str(code) if code is not None else None), retry_after=retry_after)


def error_from_body(provider: str, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
    """A non-2xx Gemini/Vertex response (the error object may be wrapped in a one-element list)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = redact(body[:200].decode("utf-8", "replace").strip())
        return error_from_google(provider, f"non-JSON error body: {text}" if text else None, status, headers)
    if isinstance(data, list) and data:
        data = data[0]
    err = data.get("error") if isinstance(data, dict) else None
    return error_from_google(provider, err, status, headers)


def _retry_delay(details: list) -> float | None:
    """google.rpc.RetryInfo `retryDelay` ("37s", "1.5s") from the error details."""
    for detail in details:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = detail.get("retryDelay")
            if isinstance(delay, str) and delay.endswith("s"):
                try:
                    return max(0.0, float(delay[:-1]))
                except ValueError:
                    return None
    return None


def redact(text: str) -> str:
    """Strip anything that looks like a Google API key or OAuth token from an upstream message."""
    for pattern in _SECRET_RES:
        text = pattern.sub("[redacted]", text)
    return text
