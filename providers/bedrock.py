"""AWS Bedrock Runtime: Converse / ConverseStream for chat, InvokeModel for embeddings.

Converse is Bedrock's one chat shape for every model family, so one translator covers Claude,
Nova, Llama, Mistral, ... on Bedrock. The request side lives in `bedrock_request.py`; this module
holds the provider (URLs, auth), the response and stream translators and the error taxonomy.

Auth is either a Bedrock API key (`Authorization: Bearer`) or SigV4 with AWS credentials from
`options` (`aws_access_key_id`, `aws_secret_access_key`, `aws_session_token`). SigV4 uses botocore,
imported lazily because it is an optional extra. Signing reads the clock but does no I/O, so the
provider stays sans-I/O.

The model id (an id, inference profile or ARN) is percent-encoded in the path and the SigV4
signature covers the exact path sent. aiohttp/yarl re-quote URLs and would turn `%3A` back into
`:`, so the id is encoded the way yarl leaves it (`:` and the other path-legal sub-delimiters
literal, `/` as `%2F`): the signed path is the wire path whether or not the transport re-quotes.

A `citationsContent` block (a model citing the documents of the request) holds text of the answer:
it is part of the content, and its citations come back over that text as `message.annotations` (URL
citations) and `message.document_citations` (see `citations.py`); a stream's citation deltas likewise,
sent in one delta just before the finish chunk.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

import orjson

from .base import (
    Capabilities,
    HttpRequest,
    Provider,
    ProviderSettings,
    SingleChoiceStream,
    StreamTranslator,
    cached_prompt_usage,
    chat_completion,
    embedding_list,
    invalid_response,
    load_json,
    tool_arguments,
)
from .bedrock_request import JSON_TOOL, build_converse, build_embeddings, embedding_family, output_limit
from .citations import StreamCitations, bedrock_citation, bedrock_cited_text, with_citations
from .cohere_embed import billed_input_tokens, float_embeddings
from .errors import ErrorKind, UpstreamError, is_context_window, kind_for_status, parse_retry_after
from .eventstream import EventStreamDecoder, EventStreamMessage

DEFAULT_REGION = "us-east-1"
# RFC 3986 path characters that yarl never re-encodes: left literal so the URL is stable (see above).
_PATH_SAFE = "!$&'()*,:;=@"

# Converse stopReason -> OpenAI finish_reason. The two `malformed_*` reasons are not a finish at all:
# the model produced something unusable, which must not pass as success (see `_finish_reason`).
FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}

# `x-amzn-errortype` / exception event name (lower-cased) -> kind.
ERROR_KINDS: dict[str, ErrorKind] = {
    "throttlingexception": ErrorKind.RATE_LIMIT,
    "servicequotaexceededexception": ErrorKind.RATE_LIMIT,
    "toomanyrequestsexception": ErrorKind.RATE_LIMIT,
    "validationexception": ErrorKind.BAD_REQUEST,
    "serializationexception": ErrorKind.BAD_REQUEST,
    "accessdeniedexception": ErrorKind.AUTH,
    "unrecognizedclientexception": ErrorKind.AUTH,
    "invalidsignatureexception": ErrorKind.AUTH,
    "incompletesignatureexception": ErrorKind.AUTH,
    "missingauthenticationtokenexception": ErrorKind.AUTH,
    "expiredtokenexception": ErrorKind.AUTH,
    "resourcenotfoundexception": ErrorKind.NOT_FOUND,
    "modelnotreadyexception": ErrorKind.OVERLOADED,
    "serviceunavailableexception": ErrorKind.OVERLOADED,
    "internalserverexception": ErrorKind.SERVER,
    "modelerrorexception": ErrorKind.SERVER,
    "modelstreamerrorexception": ErrorKind.SERVER,
    "modeltimeoutexception": ErrorKind.TIMEOUT,
    "requesttimeoutexception": ErrorKind.TIMEOUT,
}


class SigV4Signer:
    """Signs requests with botocore's SigV4 for service `bedrock`. Built once, at start-up."""

    __slots__ = ("_auth", "_request_cls")

    def __init__(self, access_key: str, secret_key: str, token: str | None, region: str) -> None:
        try:
            from botocore.auth import SigV4Auth
            from botocore.awsrequest import AWSRequest
            from botocore.credentials import Credentials
        except ImportError:
            raise ValueError(
                "bedrock: SigV4 signing with AWS credentials needs botocore; install it with "
                "`pip install 'switchboard[bedrock]'` (or use a Bedrock API key instead)") from None
        self._auth = SigV4Auth(Credentials(access_key, secret_key, token or None), "bedrock", region)
        self._request_cls = AWSRequest

    def sign(self, method: str, url: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        request = self._request_cls(method=method, url=url, data=body, headers=headers)
        self._auth.add_auth(request)
        return dict(request.headers.items())


class BedrockProvider(Provider):
    type: ClassVar[str] = "bedrock"
    capabilities = Capabilities(n=False, logprobs=False, seed=False, penalties=False, logit_bias=False,
                                openai_only=False, legacy_functions=False)

    def __init__(self, settings: ProviderSettings) -> None:
        options = settings.options or {}
        self.region = settings.region or options.get("region") or DEFAULT_REGION
        self.default_base_url = f"https://bedrock-runtime.{self.region}.amazonaws.com"
        super().__init__(settings)
        self._static_headers = {"content-type": "application/json", **settings.headers}
        self._signer: SigV4Signer | None = None
        access_key, secret_key = options.get("aws_access_key_id"), options.get("aws_secret_access_key")
        if access_key or secret_key:
            if not (access_key and secret_key):
                raise ValueError(f"bedrock provider '{settings.name}': options need both "
                                 "aws_access_key_id and aws_secret_access_key")
            self._signer = SigV4Signer(str(access_key), str(secret_key),
                                       options.get("aws_session_token"), self.region)

    # -- requests ---------------------------------------------------------------------------
    def model_id(self, model: str) -> str:
        """The Bedrock model id (or inference profile / ARN) for a configured model name."""
        return self.settings.deployments.get(model, model)

    def _request(self, model: str, action: str, body: bytes, api_key: str | None, accept: str) -> HttpRequest:
        url = f"{self.base_url}/model/{quote(self.model_id(model), safe=_PATH_SAFE)}/{action}"
        headers = {**self._static_headers, "accept": accept}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        elif self._signer is not None:
            headers = self._signer.sign("POST", url, headers, body)
        return HttpRequest("POST", url, headers, body)

    def chat_request(self, body: dict, model: str, api_key: str | None, stream: bool) -> HttpRequest:
        converse = build_converse(body, self.model_id(model))
        if stream:
            return self._request(model, "converse-stream", orjson.dumps(converse), api_key,
                                 "application/vnd.amazon.eventstream")
        return self._request(model, "converse", orjson.dumps(converse), api_key, "application/json")

    def output_limit(self, body: dict, model: str) -> int | None:
        return output_limit(body, self.model_id(model))

    def embeddings_request(self, body: dict, model: str, api_key: str | None) -> HttpRequest:
        payload = build_embeddings(body, self.model_id(model))
        return self._request(model, "invoke", orjson.dumps(payload), api_key, "application/json")

    # -- responses --------------------------------------------------------------------------
    def chat_response(self, body: bytes, model: str) -> dict:
        data = load_json(self.name, body)
        if not isinstance(data, dict):
            raise invalid_response(self.name, "expected a JSON object")
        output = data.get("output")
        message = output.get("message") if isinstance(output, dict) else None
        if not isinstance(message, dict) or not isinstance(message.get("content"), list):
            raise invalid_response(self.name, "missing 'output.message.content'")
        text: list[str] = []
        reasoning: list[str] = []
        tool_calls: list[dict] = []
        json_content: str | None = None
        citations: list[dict] = []
        for block in message["content"]:
            if not isinstance(block, dict):
                continue
            if isinstance(block.get("text"), str):
                text.append(block["text"])
            elif isinstance(block.get("citationsContent"), dict):  # cited text: part of the answer
                cited, found = bedrock_cited_text(block["citationsContent"], sum(map(len, text)))
                text.append(cited)
                citations += found
            elif isinstance(block.get("toolUse"), dict):
                use = block["toolUse"]
                arguments = tool_arguments(use.get("input"))
                if use.get("name") == JSON_TOOL:
                    json_content = arguments
                else:
                    tool_calls.append({"id": use.get("toolUseId") or f"call_{uuid.uuid4().hex[:24]}",
                                       "type": "function",
                                       "function": {"name": use.get("name", ""), "arguments": arguments}})
            elif isinstance(block.get("reasoningContent"), dict):
                reasoning_text = (block["reasoningContent"].get("reasoningText") or {}).get("text")
                if isinstance(reasoning_text, str):
                    reasoning.append(reasoning_text)
        finish = _finish_reason(self.name, data.get("stopReason"))
        if json_content is not None:  # response_format emulated with a forced tool: it *is* the content
            text = [json_content]
            if finish == "tool_calls" and not tool_calls:
                finish = "stop"
        usage = converse_usage(data["usage"]) if isinstance(data.get("usage"), dict) else None
        return with_citations(chat_completion(model, text, tool_calls, reasoning, finish, usage),
                              citations if json_content is None else [])

    def chat_stream(self, model: str) -> StreamTranslator:
        return BedrockStream(self.name, model)

    def embeddings_response(self, body: bytes, model: str, headers: Mapping[str, str] | None = None) -> dict:
        data = load_json(self.name, body)
        if not isinstance(data, dict):
            raise invalid_response(self.name, "expected a JSON object")
        family = embedding_family(self.model_id(model))
        if family == "titan":
            vector = data.get("embedding")
            if not isinstance(vector, list):
                raise invalid_response(self.name, "missing 'embedding'")
            vectors = [vector]
            tokens = int(data.get("inputTextTokenCount") or 0)
        else:  # Cohere Embed on Bedrock answers in Cohere's own format
            embeddings = float_embeddings(data)
            if embeddings is None:
                raise invalid_response(self.name, "missing float 'embeddings'")
            vectors = embeddings
            tokens = billed_input_tokens(data)
        if not tokens and headers:  # Bedrock reports InvokeModel token counts in a header
            tokens = int(_header(headers, "x-amzn-bedrock-input-token-count") or 0)
        return embedding_list(model, vectors, tokens)

    # -- errors -----------------------------------------------------------------------------
    def error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        error_type = _header(headers, "x-amzn-errortype")
        message = None
        try:
            data = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            data = None
            text = body[:200].decode("utf-8", "replace").strip()
            message = f"non-JSON error body: {text}" if text else None
        if isinstance(data, dict):
            raw = data.get("message") or data.get("Message")
            message = raw if isinstance(raw, str) else None
            error_type = error_type or data.get("__type") or data.get("code")
        return classify_error(self.name, error_type, message, status=status,
                              retry_after=parse_retry_after(_lower(headers)))


def classify_error(provider: str, error_type: Any, message: str | None, *, status: int | None = None,
                   retry_after: float | None = None) -> UpstreamError:
    """One `UpstreamError` from a Bedrock error name (HTTP header or stream exception) and message."""
    name = str(error_type or "").split(":", 1)[0].rsplit("#", 1)[-1].strip()
    kind = ERROR_KINDS.get(name.lower())
    if kind is None:
        kind = kind_for_status(status) if status else ErrorKind.SERVER
    if kind is ErrorKind.BAD_REQUEST and is_context_window(message):
        kind = ErrorKind.CONTEXT_WINDOW
    text = message or (f"upstream returned HTTP {status}" if status else "upstream error")
    return UpstreamError(kind, f"{provider}: {text}", upstream_status=status, code=name or None,
                         retry_after=retry_after)


def converse_usage(usage: Mapping[str, Any]) -> dict:
    """Converse `usage` -> OpenAI usage. `inputTokens` excludes cache reads and writes, OpenAI's
    `prompt_tokens` includes both (`base.cached_prompt_usage`); `cacheDetails` splits the writes by
    time to live, and those kept an hour (`ttl: "1h"`) are billed at their own rate, so reported apart."""
    def num(value: Any) -> int:
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0

    details = usage.get("cacheDetails")
    one_hour = sum(num(d.get("inputTokens")) for d in (details if isinstance(details, list) else ())
                   if isinstance(d, Mapping) and d.get("ttl") == "1h")
    return cached_prompt_usage(num(usage.get("inputTokens")), num(usage.get("cacheReadInputTokens")),
                               num(usage.get("cacheWriteInputTokens")), one_hour, num(usage.get("outputTokens")))


def _finish_reason(provider: str, stop_reason: Any) -> str:
    finish = FINISH_REASONS.get(str(stop_reason))
    if finish is not None:
        return finish
    if stop_reason in ("malformed_model_output", "malformed_tool_use"):
        raise UpstreamError(ErrorKind.INVALID_RESPONSE, f"{provider}: model output was malformed ({stop_reason})",
                            code=str(stop_reason))
    if stop_reason is None:
        raise invalid_response(provider, "missing 'stopReason'")
    return "stop"  # a reason newer than this table: the turn did end


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        for key, val in headers.items():
            if key.lower() == name:
                return val
    return value


class BedrockStream(SingleChoiceStream):
    """ConverseStream event frames -> OpenAI chunks.

    Text deltas become `content`, reasoning deltas `reasoning_content`, and each toolUse block a tool
    call whose `index` counts tool calls in order of appearance (Bedrock's `contentBlockIndex` also
    counts text blocks, so it cannot be used as is). `messageStop` gives the finish chunk and
    `metadata` the usage chunk (`choices: []`); a stream missing either was cut short. Citation
    deltas belong to the text block they come in: at the block's stop each becomes an annotation over
    its text, and all of them go out in one delta just before the finish chunk (`citations.py`).
    """

    __slots__ = ("_blocks", "_cites", "_created", "_decoder", "_finished", "_id", "_json_blocks", "_model",
                 "_provider", "_started", "_tool_count", "_usage_seen")

    def __init__(self, provider: str, model: str) -> None:
        super().__init__()
        self._provider = provider
        self._model = model
        self._decoder = EventStreamDecoder(provider)
        self._id = f"chatcmpl-{uuid.uuid4().hex}"
        self._created = int(time.time())
        self._started = False
        self._finished = False
        self._usage_seen = False
        self._blocks: dict[int, int] = {}  # contentBlockIndex -> OpenAI tool-call index
        self._json_blocks: set[int] = set()  # blocks of the response_format tool: streamed as content
        self._tool_count = 0
        self._cites = StreamCitations(bedrock_citation)

    def _feed(self, data: bytes, out: list[dict]) -> None:
        for message in self._decoder.frames(data):  # one by one: a bad frame after content keeps the content
            self._handle(message, out)

    def _close(self, out: list[dict]) -> None:
        if self._decoder.pending:
            detail = "in the middle of a frame"
        elif not self._finished:
            detail = "before messageStop"
        elif not self._usage_seen:
            detail = "before its metadata (usage) event"
        else:
            return
        raise UpstreamError(ErrorKind.STREAM_CUT, f"{self._provider}: stream ended {detail}",
                            code="stream_truncated")

    # -- frames -----------------------------------------------------------------------------
    def _handle(self, message: EventStreamMessage, chunks: list[dict]) -> None:
        headers = message.headers
        message_type = headers.get(":message-type", "event")
        if message_type == "exception":
            raise classify_error(self._provider, headers.get(":exception-type"), self._message(message.payload))
        if message_type == "error":
            raise classify_error(self._provider, headers.get(":error-code"),
                                 str(headers.get(":error-message") or "stream error"))
        if message_type != "event":
            return
        event = headers.get(":event-type")
        try:
            payload = orjson.loads(message.payload) if message.payload else {}
        except orjson.JSONDecodeError:
            raise invalid_response(self._provider, f"{event} event payload is not JSON") from None
        if not isinstance(payload, dict):
            raise invalid_response(self._provider, f"{event} event payload is not an object")
        if event == "messageStart":
            self._start(chunks)
        elif event == "contentBlockStart":
            self._block_start(payload, chunks)
        elif event == "contentBlockDelta":
            self._block_delta(payload, chunks)
        elif event == "messageStop":
            finish = _finish_reason(self._provider, payload.get("stopReason"))  # may fail: before any chunk
            self._start(chunks)
            if finish == "tool_calls" and self._tool_count == 0 and self._json_blocks:
                finish = "stop"
            self._finished = True
            self._cites.flush(self._chunk, chunks)
            chunks.append(self._chunk({}, finish))
        elif event == "metadata":
            self._usage_seen = True
            if isinstance(payload.get("usage"), dict):
                chunks.append(self._usage_chunk(converse_usage(payload["usage"])))
        elif event == "contentBlockStop":
            self._cites.close(payload.get("contentBlockIndex", 0))
        # unknown events carry nothing for the client

    def _block_start(self, payload: dict, chunks: list[dict]) -> None:
        start = payload.get("start") or {}
        use = start.get("toolUse") if isinstance(start, dict) else None
        if not isinstance(use, dict):
            return
        self._start(chunks)
        block = payload.get("contentBlockIndex", 0)
        if use.get("name") == JSON_TOOL:
            self._json_blocks.add(block)
            return
        index = self._blocks[block] = self._tool_count
        self._tool_count += 1
        call = {"index": index, "id": use.get("toolUseId") or f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                "function": {"name": use.get("name", ""), "arguments": ""}}
        chunks.append(self._chunk({"tool_calls": [call]}))

    def _block_delta(self, payload: dict, chunks: list[dict]) -> None:
        delta = payload.get("delta")
        if not isinstance(delta, dict):
            raise invalid_response(self._provider, "contentBlockDelta without 'delta'")
        self._start(chunks)
        block = payload.get("contentBlockIndex", 0)
        if isinstance(delta.get("text"), str):
            self._cites.open(block)  # its citations span its text, which starts with its first delta
            if delta["text"]:
                chunks.append(self._chunk({"content": delta["text"]}))
        elif isinstance(delta.get("citation"), dict):
            self._cites.cite(block, delta["citation"])
        elif isinstance(delta.get("toolUse"), dict):
            fragment = delta["toolUse"].get("input") or ""
            if block in self._json_blocks:
                if fragment:
                    chunks.append(self._chunk({"content": fragment}))
                return
            if block not in self._blocks:
                raise invalid_response(self._provider, "toolUse delta for a block that never started")
            if fragment:
                chunks.append(self._chunk({"tool_calls": [{"index": self._blocks[block],
                                                           "function": {"arguments": fragment}}]}))
        elif isinstance(delta.get("reasoningContent"), dict):
            text = delta["reasoningContent"].get("text")
            if isinstance(text, str) and text:
                chunks.append(self._chunk({"reasoning_content": text}))

    # -- helpers ----------------------------------------------------------------------------
    def _chunk(self, delta: dict, finish: str | None = None) -> dict:
        """Every chunk is made here, so the content sent so far, where citations are placed, is counted here."""
        self._cites.count(delta)
        return super()._chunk(delta, finish)

    @staticmethod
    def _message(payload: bytes) -> str:
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return payload[:200].decode("utf-8", "replace") or "stream exception"
        if isinstance(data, dict):
            message = data.get("message") or data.get("Message")
            if isinstance(message, str):
                return message
        return "stream exception"
