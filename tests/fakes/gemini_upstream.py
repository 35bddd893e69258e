"""A fake Gemini API (AI Studio): `POST /{upstream}/v1beta/models/{model}:generateContent` and
`:streamGenerateContent?alt=sse`, scripted per test.

Point a router provider at `fake.base_url(name)` (`fake.provider(name)` gives the whole config).
Every request must carry `x-goog-api-key` (one of `fake.keys`, else the real 400 `API_KEY_INVALID`;
the key in the URL is refused) and a body whose every piece validates against google-genai's own
pydantic types (which forbid unknown fields) and round-trips through them unchanged (the provider
tests' check too, `support.vendor_schemas`), plus the rules
the types cannot express: roles `user`/`model` with non-empty parts, each model turn's function
calls answered by the same number of `functionResponse`s with the same names in the next turn,
every `thoughtSignature` one this fake issued (or Google's documented bypass value) and, for
`gemini-3*` models, a signature on the first function call of every model turn (Gemini 3 answers
400 without it). A failing request is answered 400 `INVALID_ARGUMENT` and recorded in
`fake.problems` (see `fakes.base`).

Streams are SSE `data:` lines only, one whole `GenerateContentResponse` per event, and no `[DONE]`:
the body simply ends.

Behaviours:
  Generate(...)   a `GenerateContentResponse` (or its SSE stream); `stream=Stream(cut_after=...)` or
                  `error_after` break it
  Fail(status)    a Google error body (`{"error": {code, message, status, details}}`)
Parts for `Generate(parts=[...])`: `text`, `thought`, `call` (a functionCall, signed by default).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
import pydantic
from aiohttp import web
from google.genai import types
from support.vendor_schemas import BYPASS_SIGNATURE, generate_content_problems, sig_bytes

from .base import FakeVendor, Received, Stream, VendorRejected, json_response, next_id, signature, split
from .openai_upstream import SECRET

DEFAULT_USAGE = {"promptTokenCount": 120, "candidatesTokenCount": 14, "thoughtsTokenCount": 25,
                 "cachedContentTokenCount": 64, "totalTokenCount": 159}
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
_MISSING_SIGNATURE = ("Function call is missing a thought_signature in functionCall parts. This is required for "
                      "tools to work correctly, and missing thought_signature may lead to degraded model "
                      "performance. Additional data, function call `default_api:{name}` , position {pos}.")


# -- parts -----------------------------------------------------------------------------------------
def text(value: str) -> dict:
    return {"text": value}


def thought(value: str) -> dict:
    return {"text": value, "thought": True}


def call(name: str, args: dict, signed: bool = True) -> dict:
    part: dict[str, Any] = {"functionCall": {"name": name, "args": args}}
    if signed:
        part["thoughtSignature"] = signature("gemini")
    return part


def google_error(status: int, gstatus: str | None = None, message: str | None = None,
                 details: list | None = None) -> dict:
    gstatus = gstatus or _STATUS.get(status, "UNKNOWN")
    error: dict[str, Any] = {"code": status, "message": message or f"fake {gstatus}", "status": gstatus}
    if details is not None:
        error["details"] = details
    return {"error": error}


def retry_info(seconds: int) -> dict:
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{seconds}s"}


def _frame(obj: dict) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\r\n\r\n"  # Google's SSE uses CRLF line ends


# -- behaviours ------------------------------------------------------------------------------------
@dataclass
class Generate:
    """A successful reply. Streams send text in `pieces` events and each functionCall whole."""

    parts: list[dict] = field(default_factory=lambda: [text("Hello from Gemini.")])
    finish_reason: str = "STOP"
    finish_message: str | None = None
    usage: dict | None = field(default_factory=lambda: dict(DEFAULT_USAGE))
    model_version: str | None = None  # default: the model in the URL
    candidates: int | None = None  # default: the request's candidateCount, else 1
    block_reason: str | None = None  # promptFeedback.blockReason: no candidates at all
    response_id: str | None = None  # default: a fresh one per reply
    pieces: int = 3
    delay_s: float = 0.0
    stream: Stream = field(default_factory=Stream)
    error_after: int | None = None  # stream: a Google error event after this many events
    error: dict = field(default_factory=lambda: google_error(503, message="The model is overloaded."))

    def _candidate(self, index: int, parts: list[dict] | None, finish: bool) -> dict:
        cand: dict[str, Any] = {"index": index}
        if parts:
            cand["content"] = {"parts": parts, "role": "model"}
        if finish:
            cand["finishReason"] = self.finish_reason
            if self.finish_message:
                cand["finishMessage"] = self.finish_message
            if self.finish_reason == "SAFETY":
                cand["safetyRatings"] = [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH",
                                          "blocked": True}]
        return cand

    def _response(self, model: str, rid: str, candidates: list[dict], usage: dict | None) -> dict:
        out: dict[str, Any] = {"candidates": candidates, "modelVersion": model, "responseId": rid}
        if usage is not None:
            out["usageMetadata"] = usage
        return out

    def responses(self, model: str, count: int, stream: bool) -> list[dict]:
        rid = self.response_id or f"fakeResp{next_id()}"
        if self.block_reason:
            return [{"promptFeedback": {"blockReason": self.block_reason}, "usageMetadata": self.usage,
                     "modelVersion": model, "responseId": rid}]
        if not stream:
            return [self._response(model, rid, [self._candidate(i, self.parts, True) for i in range(count)],
                                   self.usage)]
        steps: list[list[dict]] = []
        for part in self.parts:
            if "text" in part:
                steps += [[{**part, "text": piece}] for piece in split(part["text"], self.pieces)]
            else:
                steps.append([part])
        steps = steps or [[]]
        prompt_only = None if self.usage is None else {
            k: v for k, v in self.usage.items() if k in ("promptTokenCount", "cachedContentTokenCount")}
        out = []
        for n, parts in enumerate(steps):
            last = n == len(steps) - 1
            out.append(self._response(model, rid, [self._candidate(i, parts, last) for i in range(count)],
                                      self.usage if last else prompt_only))
        return out

    async def __call__(self, fake: FakeGemini, request: web.Request, received: Received) -> web.StreamResponse:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        config = received.body.get("generationConfig") or {}
        count = self.candidates or config.get("candidateCount") or 1
        for part in self.parts:
            if part.get("thoughtSignature"):
                fake.signatures.add(sig_bytes(part["thoughtSignature"]))
        bodies = self.responses(self.model_version or received.model or "", count, received.stream)
        for body in bodies:
            fake.vet(body)
        if not received.stream:
            return json_response(bodies[0])
        error = None
        if self.error_after is not None:
            bodies = bodies[:self.error_after]
            error = _frame(self.error)
        return await self.stream.send(fake, request, [_frame(b) for b in bodies], error)


@dataclass
class Fail:
    """A Google API error response."""

    status: int
    gstatus: str | None = None
    message: str | None = None
    details: list | None = None
    retry_after: str | None = None

    async def __call__(self, fake: FakeGemini, request: web.Request, received: Received) -> web.Response:
        headers = {"retry-after": self.retry_after} if self.retry_after is not None else None
        return json_response(google_error(self.status, self.gstatus, self.message, self.details), self.status,
                             headers)


# -- the server ------------------------------------------------------------------------------------
class FakeGemini(FakeVendor):
    def __init__(self, keys: tuple[str, ...] = (SECRET,)) -> None:
        super().__init__()
        self.keys = set(keys)
        self.signatures: set[bytes] = set()  # thought signatures issued so far

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{upstream}/v1beta/models/{target}", self._handle)
        return app

    def base_url(self, upstream: str) -> str:
        return f"{self.url}/{upstream}"

    def provider(self, upstream: str, **overrides: Any) -> dict:
        """Router config of a `gemini` provider served here as `upstream` (no retries by default)."""
        return {"type": "gemini", "base_url": self.base_url(upstream), "keys": [{"value": SECRET}],
                "max_retries": 0, **overrides}

    def default(self, received: Received) -> Generate:
        return Generate()

    def vet(self, body: dict) -> None:
        try:
            types.GenerateContentResponse.model_validate_json(orjson.dumps(body))
        except pydantic.ValidationError as exc:
            self.problems.append(f"scripted reply is not a GenerateContentResponse: {exc}")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await self.read_body(request)
        model, _, method = request.match_info["target"].partition(":")
        headers = {k.lower(): v for k, v in request.headers.items()}
        received = Received(request.match_info["upstream"], request.path, dict(request.query), headers, body,
                            model=model, stream=method == "streamGenerateContent")
        if request.method != "POST" or method not in ("generateContent", "streamGenerateContent"):
            self.requests.append(received)
            self.problems.append(f"unexpected {request.method} {request.path_qs}")
            return json_response(google_error(404, message=f"unknown method {method!r}"), 404)
        return await self.dispatch(request, received)

    # -- what the real API would refuse ---------------------------------------------------------
    async def check(self, request: web.Request, received: Received) -> None:
        if "key" in received.query:
            _reject("the API key was sent in the URL (it would leak into logs and error messages)")
        if received.headers.get("x-goog-api-key") not in self.keys:
            details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com"}]
            raise VendorRejected("bad x-goog-api-key", json_response(
                google_error(400, message="API key not valid. Please pass a valid API key.", details=details), 400))
        if received.stream and received.query.get("alt") != "sse":
            _reject("streamGenerateContent without alt=sse answers a JSON array, not SSE")
        problems = generate_content_problems(received.body)
        if problems:
            _reject("; ".join(problems))
        self._check_calls(received.body["contents"], received.model or "")

    def _check_calls(self, contents: list[dict], model: str) -> None:
        for i, content in enumerate(contents):
            calls = [p for p in content["parts"] if "functionCall" in p]
            for p in content["parts"]:
                sig = p.get("thoughtSignature")
                if sig is not None and sig_bytes(sig) not in self.signatures and sig != BYPASS_SIGNATURE:
                    _reject(f"contents[{i}]: Corrupted thought signature.")
            if not calls or content["role"] != "model":
                continue
            if model.startswith("gemini-3") and "thoughtSignature" not in calls[0]:
                _reject(_MISSING_SIGNATURE.format(name=calls[0]["functionCall"]["name"], pos=1))
            answer = contents[i + 1]["parts"] if i + 1 < len(contents) else []
            names = Counter(p["functionResponse"]["name"] for p in answer if "functionResponse" in p)
            if names != Counter(p["functionCall"]["name"] for p in calls):
                _reject(f"contents[{i + 1}]: Please ensure that the number of function response parts is equal "
                        "to the number of function call parts of the function call turn.")


def _reject(problem: str) -> None:
    raise VendorRejected(problem, json_response(google_error(400, message=problem), 400))
