"""A fake AWS Bedrock Runtime: Converse, ConverseStream and InvokeModel, scripted per test.

Routes: `POST /model/{modelId}/converse` (JSON), `/converse-stream` (`application/vnd.amazon.eventstream`
binary frames with valid CRCs, built with `providers.eventstream`) and `/invoke` (Titan and Cohere
embeddings). Errors are what Bedrock sends: an `x-amzn-errortype` header and a JSON `{"message"}` body.

Auth: `Authorization: Bearer <api key>`, or, when the fake is built with `aws=AwsCreds(...)`, a SigV4
signature that is checked field by field and then recomputed with botocore from the received method,
raw path, signed headers, body and the request's own `x-amz-date`, so only an exact signature passes.

Every received Converse/ConverseStream body is validated with botocore's service model for
`bedrock-runtime` (`ParamValidator` on the operation's input shape, plus the enum/pattern/length rules
ParamValidator skips: the provider tests' check too, `support.vendor_schemas`) and with the
conversation rules Bedrock enforces at runtime (alternating roles, every toolUse answered by a
toolResult in the next turn, a toolConfig whenever tool blocks appear, no blank text). A body that
fails gets Bedrock's 400 `ValidationException` and lands in `fake.problems`.
The fake's own replies are validated against the output shapes, so they cannot drift from Bedrock's.

For each (modelId, action) a test queues behaviours; each request takes the next one, else the default
(`Reply()` for chat, `Embedding()` for invoke) answers. Every request is recorded in `fake.requests`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from support.vendor_schemas import BEDROCK_RUNTIME as SERVICE
from support.vendor_schemas import converse_request_problems, shape_problems

from providers.bedrock_request import JSON_TOOL
from providers.eventstream import event_frame, exception_frame

from .base import Drop as Drop  # re-exported with the other behaviours
from .base import FakeVendor, VendorRejected, json_response, send_body, vector, words
from .base import split as split_text  # `Reply.split` is a byte count

API_KEY = "br-SECRET-bedrock-api-key"  # the Bedrock API key routers get; must never leak
REGION = "us-east-1"
CLAUDE = "anthropic.claude-3-5-sonnet-20240620-v1:0"
TITAN = "amazon.titan-embed-text-v2:0"
COHERE_EMBED = "cohere.embed-english-v3"
EVENTSTREAM = "application/vnd.amazon.eventstream"
DEFAULT_USAGE = {"inputTokens": 12, "outputTokens": 5, "totalTokens": 17}
_SIGV4_RE = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/,]+)/(\d{8})/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request, "
                       r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})")


@dataclass(frozen=True)
class AwsCreds:
    access_key: str = "AKIDFAKEEXAMPLE1234"
    secret_key: str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYFAKESECRET"
    token: str | None = "FQoGZXIvYXdzFAKESESSIONTOKEN"

    def options(self) -> dict:
        out = {"aws_access_key_id": self.access_key, "aws_secret_access_key": self.secret_key}
        return out | ({"aws_session_token": self.token} if self.token else {})


# -- validation -----------------------------------------------------------------------------------
def converse_problems(body: Any, model_id: str = CLAUDE, *, stream: bool = False) -> list[str]:
    """Everything Bedrock would reject in a Converse(Stream) body: schema first, then runtime rules."""
    return converse_request_problems(body, model_id, stream=stream) or _conversation_problems(body)


def _conversation_problems(body: dict) -> list[str]:
    problems: list[str] = []
    turns = body["messages"]
    specs = [t["toolSpec"]["name"] for t in (body.get("toolConfig") or {}).get("tools", []) if "toolSpec" in t]
    if turns and turns[0]["role"] != "user":
        problems.append("messages[0]: a conversation must start with a user message")
    pending: set[str] = set()
    for i, turn in enumerate(turns):
        if i and turn["role"] == turns[i - 1]["role"]:
            problems.append(f"messages[{i}]: roles must alternate between user and assistant")
        blocks = turn["content"]
        if not blocks:
            problems.append(f"messages[{i}].content: empty")
        uses = {b["toolUse"]["toolUseId"] for b in blocks if "toolUse" in b}
        results = {b["toolResult"]["toolUseId"] for b in blocks if "toolResult" in b}
        if results != pending:
            problems.append(f"messages[{i}]: toolResult ids {sorted(results)} do not answer the previous "
                            f"turn's toolUse ids {sorted(pending)}")
        pending = uses
        for b in blocks:
            if "text" in b and not b["text"].strip():
                problems.append(f"messages[{i}]: the text field in the ContentBlock object is blank")
            if "toolUse" in b and b["toolUse"]["name"] not in specs:
                problems.append(f"messages[{i}]: toolUse {b['toolUse']['name']!r} has no toolSpec")
    if any("toolUse" in b or "toolResult" in b for t in turns for b in t["content"]) and not specs:
        problems.append("toolConfig field must be defined when using toolUse and toolResult content blocks")
    forced = ((body.get("toolConfig") or {}).get("toolChoice") or {}).get("tool")
    if forced and forced["name"] not in specs:
        problems.append(f"toolChoice names unknown tool {forced['name']!r}")
    for s in body.get("system", []):
        if "text" in s and not s["text"].strip():
            problems.append("system: blank text")
    return problems


def embed_problems(body: Any, model_id: str) -> list[str]:
    """InvokeModel bodies for Titan Text Embeddings v2 and Cohere Embed on Bedrock (documented fields)."""
    if not isinstance(body, dict):
        return ["body is not a JSON object"]
    if "titan-embed" in model_id:
        allowed = {"inputText", "dimensions", "normalize", "embeddingTypes"}
        problems = [f"unknown member {k!r}" for k in set(body) - allowed]
        if not isinstance(body.get("inputText"), str) or not body["inputText"]:
            problems.append("inputText must be a non-empty string")
        if body.get("dimensions", 1024) not in (256, 512, 1024):
            problems.append("dimensions must be 256, 512 or 1024")
        return problems
    allowed = {"texts", "images", "input_type", "truncate", "embedding_types", "output_dimension", "max_tokens"}
    problems = [f"unknown member {k!r}" for k in set(body) - allowed]
    texts = body.get("texts")
    if not (isinstance(texts, list) and 0 < len(texts) <= 96 and all(isinstance(t, str) for t in texts)):
        problems.append("texts must be 1..96 strings")
    if body.get("input_type") not in ("search_document", "search_query", "classification", "clustering"):
        problems.append(f"input_type {body.get('input_type')!r} is not valid")
    if not set(body.get("embedding_types", [])) <= {"float", "int8", "uint8", "binary", "ubinary"}:
        problems.append("embedding_types has an unknown type")
    if body.get("truncate", "END") not in ("NONE", "START", "END"):
        problems.append("truncate must be NONE, START or END")
    return problems


# -- behaviours -----------------------------------------------------------------------------------
@dataclass
class Received:
    model_id: str
    action: str
    path: str  # the raw path as sent (percent-encoding kept)
    headers: dict[str, str]
    body: Any  # parsed JSON, or the raw bytes when it is not JSON


@dataclass
class Reply:
    """A Converse answer; as ConverseStream event frames when the request is a stream.

    `tool_calls` are `(name, input)` pairs (ids `tooluse_<i>_<name>`); `json_output` answers through the
    router's response_format tool. In a stream, text is sent in `pieces` and the frames' bytes in writes
    of `split` bytes (so frames straddle reads). `cut_after=N` ends after N frames (`mid_frame` adds half
    of the next one; `abort` closes the socket, else the body ends cleanly); `exception_after=N` sends
    an exception frame (`exception` = (type, message)) after N frames and ends. `pause_s` waits before
    the failure, so the frames ahead of it reach the router in an earlier read.
    """

    text: str | None = "Hello from Bedrock."
    tool_calls: list[tuple[str, dict]] = field(default_factory=list)
    reasoning: str | None = None
    json_output: dict | None = None
    stop_reason: str | None = None
    usage: dict = field(default_factory=lambda: dict(DEFAULT_USAGE))
    pieces: list[str] | None = None
    split: int = 7
    cut_after: int | None = None
    mid_frame: bool = False
    abort: bool = True
    exception_after: int | None = None
    exception: tuple[str, str] = ("throttlingException", "Too many tokens, please wait before trying again.")
    delay_s: float = 0.0
    pause_s: float = 0.0

    def blocks(self) -> list[dict]:
        out: list[dict] = []
        if self.reasoning:
            out.append({"reasoningContent": {"reasoningText": {"text": self.reasoning, "signature": "c2ln"}}})
        if self.text:
            out.append({"text": self.text})
        for i, (name, args) in enumerate(self.tool_calls):
            out.append({"toolUse": {"toolUseId": f"tooluse_{i}_{name}", "name": name, "input": args}})
        if self.json_output is not None:
            out.append({"toolUse": {"toolUseId": "tooluse_json", "name": JSON_TOOL, "input": self.json_output}})
        return out

    def _stop(self) -> str:
        return self.stop_reason or ("tool_use" if self.tool_calls or self.json_output is not None else "end_turn")

    def converse(self) -> dict:
        out = {"output": {"message": {"role": "assistant", "content": self.blocks()}}, "stopReason": self._stop(),
               "usage": self.usage, "metrics": {"latencyMs": 42}}
        problems = shape_problems(out, SERVICE.operation_model("Converse").output_shape)
        assert not problems, f"fake Bedrock reply is not a valid Converse response: {problems}"
        return out

    def events(self) -> list[tuple[str, dict]]:
        events: list[tuple[str, dict]] = [("messageStart", {"role": "assistant"})]
        for i, block in enumerate(self.blocks()):
            if "reasoningContent" in block:
                reasoning = block["reasoningContent"]["reasoningText"]
                events += [("contentBlockDelta", {"contentBlockIndex": i, "delta": {"reasoningContent": {
                    "text": reasoning["text"]}}}),
                    ("contentBlockDelta", {"contentBlockIndex": i, "delta": {"reasoningContent": {
                        "signature": reasoning["signature"]}}})]
            elif "text" in block:
                pieces = self.pieces or words(block["text"])
                events += [("contentBlockDelta", {"contentBlockIndex": i, "delta": {"text": p}}) for p in pieces]
            else:
                use = block["toolUse"]
                events.append(("contentBlockStart", {"contentBlockIndex": i, "start": {"toolUse": {
                    "toolUseId": use["toolUseId"], "name": use["name"]}}}))
                events += [("contentBlockDelta", {"contentBlockIndex": i, "delta": {"toolUse": {"input": f}}})
                           for f in split_text(orjson.dumps(use["input"]).decode(), 3)]
            events.append(("contentBlockStop", {"contentBlockIndex": i}))
        events += [("messageStop", {"stopReason": self._stop()}),
                   ("metadata", {"usage": self.usage, "metrics": {"latencyMs": 42}})]
        union = SERVICE.shape_for("ConverseStreamOutput")
        for name, payload in events:
            problems = shape_problems(payload, union.members[name])
            assert not problems, f"fake Bedrock event {name} is not valid: {problems}"
        return events

    def frames(self) -> list[bytes]:
        # Real Bedrock pads every event with an opaque `p` member; the translator must ignore it.
        return [event_frame(name, orjson.dumps({**payload, "p": "abcdefghijklmnopqrstuvw"[: 3 + i % 20]}))
                for i, (name, payload) in enumerate(self.events())]

    async def __call__(self, fake: FakeBedrock, request: web.Request, rec: Received) -> web.StreamResponse:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        headers = {"x-amzn-requestid": str(uuid.uuid4())}
        if rec.action == "converse":
            return json_response(self.converse(), headers=headers)
        frames, failure = self.frames(), b""
        if self.cut_after is not None:
            frames, tail = frames[:self.cut_after], frames[self.cut_after]
            failure = tail[: len(tail) // 2] if self.mid_frame else b""
        elif self.exception_after is not None:
            name, message = self.exception
            frames = frames[:self.exception_after]
            failure = exception_frame(name, orjson.dumps({"message": message}))
        data = b"".join(frames)
        pieces = [data[i:i + self.split] for i in range(0, len(data), self.split)]
        pauses = {len(pieces): self.pause_s} if self.pause_s else None  # before the failure, or the end
        if failure:
            pieces.append(failure)
        return await send_body(request, pieces, headers={**headers, "content-type": EVENTSTREAM}, pauses=pauses,
                               abort=self.cut_after is not None and self.abort)


@dataclass
class Fail:
    """A Bedrock error: `x-amzn-errortype` plus `{"message"}` (the coral suffix included, as AWS sends it)."""

    status: int
    error_type: str
    message: str = "Something went wrong."
    retry_after: str | None = None

    async def __call__(self, fake: FakeBedrock, request: web.Request, rec: Received) -> web.Response:
        return error(self.status, self.error_type, self.message, self.retry_after)


@dataclass
class Embedding:
    """InvokeModel embeddings: Titan (one `embedding`) or Cohere (`embeddings`), by model id."""

    dims: int = 4
    tokens: int = 6

    async def __call__(self, fake: FakeBedrock, request: web.Request, rec: Received) -> web.Response:
        body = rec.body
        if "titan-embed" in rec.model_id:
            dims = body.get("dimensions") or self.dims
            out: dict = {"embedding": [round(0.01 * (d + 1), 4) for d in range(dims)],
                         "inputTextTokenCount": self.tokens}
        else:
            vectors = [vector(i, self.dims) for i, _ in enumerate(body["texts"])]
            by_type = bool(body.get("embedding_types"))
            out = {"id": str(uuid.uuid4()), "texts": body["texts"],
                   "embeddings": {"float": vectors} if by_type else vectors,
                   "response_type": "embeddings_by_type" if by_type else "embeddings_floats"}
        return json_response(out, headers={"x-amzn-bedrock-input-token-count": str(self.tokens)})


def error(status: int, error_type: str, message: str, retry_after: str | None = None) -> web.Response:
    headers = {"x-amzn-errortype": f"{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/",
               "x-amzn-requestid": str(uuid.uuid4())}
    if retry_after is not None:
        headers["retry-after"] = retry_after
    return json_response({"message": message}, status, headers)


# -- the server -----------------------------------------------------------------------------------
class FakeBedrock(FakeVendor):
    """The scripted server: `await fake.start()`, point a provider at `fake.provider()`, `await fake.close()`."""

    def __init__(self, api_key: str | None = API_KEY, aws: AwsCreds | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.aws = aws
        self.sigv4_verified = 0  # requests whose SigV4 signature was recomputed and matched

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/model/{model_id:.+}/{action:converse|converse-stream|invoke}", self._handle)
        return app

    def provider(self, **overrides: Any) -> dict:
        """Router config of a `bedrock` provider served here (Bearer key, no retries by default)."""
        config: dict = {"type": "bedrock", "base_url": self.url, "region": REGION, "max_retries": 0}
        if self.api_key:
            config["keys"] = [{"value": self.api_key}]
        return config | overrides

    def queue(self, model_id: str, *behaviours: Any, action: str = "chat") -> None:
        """Answer the next `chat` (converse or converse-stream) or `invoke` requests for `model_id`."""
        self._queues[(model_id, action)].extend(behaviours)

    def calls(self, action: str | None = None) -> list[Received]:
        return [r for r in self.requests if action is None or r.action == action
                or (action == "chat" and r.action.startswith("converse"))]

    def queue_key(self, rec: Received) -> tuple[str, str]:
        return rec.model_id, "invoke" if rec.action == "invoke" else "chat"

    def default(self, rec: Received) -> Any:
        return Embedding() if rec.action == "invoke" else Reply()

    # -- request handling -------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        rec = Received(request.match_info["model_id"], request.match_info["action"], request.raw_path,
                       dict(request.headers), await self.read_body(request))
        return await self.dispatch(request, rec)

    async def check(self, request: web.Request, rec: Received) -> None:
        self._check_auth(request, await request.read())
        if isinstance(rec.body, bytes):
            raise VendorRejected("body is not JSON", error(400, "SerializationException",
                                                           "Failed to parse the request body as JSON."), record=False)
        if request.headers.get("content-type", "").split(";")[0] != "application/json":
            raise VendorRejected("content-type is not application/json", error(
                400, "ValidationException", "content-type must be application/json"), record=False)
        if rec.action == "invoke":
            problems = embed_problems(rec.body, rec.model_id)
        else:
            problems = converse_problems(rec.body, rec.model_id, stream=rec.action == "converse-stream")
        if problems:
            raise VendorRejected("; ".join(problems), error(400, "ValidationException", "; ".join(problems)))

    def _check_auth(self, request: web.Request, body: bytes) -> None:
        auth = request.headers.get("authorization", "")
        if auth.startswith("Bearer "):
            if self.api_key and auth == f"Bearer {self.api_key}":
                return
            raise VendorRejected("bad api key", error(
                403, "UnrecognizedClientException", "The security token included in the request is invalid."),
                record=False)
        if self.aws is None or not auth.startswith("AWS4-HMAC-SHA256 "):
            raise VendorRejected("no authentication", error(
                403, "MissingAuthenticationTokenException", "Missing Authentication Token"), record=False)
        problem = self._sigv4_problem(request, body)
        if problem:
            raise VendorRejected(f"sigv4: {problem}", error(
                403, "InvalidSignatureException", f"The request signature we calculated does not match "
                f"the signature you provided ({problem})."))
        self.sigv4_verified += 1

    def _sigv4_problem(self, request: web.Request, body: bytes) -> str | None:
        assert self.aws is not None
        match = _SIGV4_RE.fullmatch(request.headers["authorization"])
        if not match:
            return "malformed Authorization header"
        key_id, date, region, service, signed, signature = match.groups()
        amz_date = request.headers.get("x-amz-date", "")
        if key_id != self.aws.access_key:
            return "unknown access key"
        if (region, service) != (REGION, "bedrock") or not amz_date.startswith(date):
            return f"wrong credential scope {date}/{region}/{service}"
        try:
            sent = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
        except ValueError:
            return "x-amz-date is not an ISO 8601 basic timestamp"
        if abs((dt.datetime.now(dt.UTC) - sent).total_seconds()) > 300:
            return "signature expired"
        names = signed.split(";")
        required = {"host", "x-amz-date", "content-type"} | ({"x-amz-security-token"} if self.aws.token else set())
        if not required <= set(names) or names != sorted(names):
            return f"SignedHeaders {signed} must be sorted and include {sorted(required)}"
        if self.aws.token and request.headers.get("x-amz-security-token") != self.aws.token:
            return "wrong security token"
        if any(n not in request.headers for n in names):
            return "a signed header was not sent"
        host = request.headers["host"]
        aws_request = AWSRequest(method=request.method, url=f"http://{host}{request.raw_path}", data=body,
                                 headers={n: request.headers[n] for n in names})
        aws_request.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(self.aws.access_key, self.aws.secret_key, self.aws.token), "bedrock", REGION)
        expected = signer.signature(signer.string_to_sign(aws_request, signer.canonical_request(aws_request)),
                                    aws_request)
        return None if expected == signature else "signature mismatch"
