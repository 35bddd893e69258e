"""The vendors' own SDK types as validators: would the vendor accept this request body?

One set of rules for both sides: the provider unit tests (tests/providers) check every body a
translator builds with these, and the fake vendors (tests/fakes) refuse whatever fails them. Each
`*_problems` function returns what is wrong (empty: valid). The API rules the types cannot express
(conversation structure, auth, signatures) stay with the fakes.

- OpenAI: the openai SDK's `CompletionCreateParams` and, for the Responses API, `ResponseCreateParams`
  (unknown keys refused, lazy members drained); `OPENAI_RESPONSE_EVENT` validates a Responses stream
  event.
- Anthropic: the anthropic SDK's `MessageCreateParams` (lazy iterables forced, unknown members
  refused), plus the sampling parameters version 2023-06-01 still accepts but SDK 2.x dropped.
- Gemini: google-genai's pydantic types (unknown fields forbidden); every piece must round-trip
  through them unchanged (thought signatures compared by their bytes).
- Bedrock: botocore's `bedrock-runtime` service model (`ParamValidator` plus the enum, pattern and
  length rules it skips); `BEDROCK_RUNTIME` is None without botocore (an optional extra).
- Cohere: the parameters of the cohere SDK's `RawV2Client.chat` / `.embed`, strictly (literal enums
  without their forward-compatible `Any` arm, extra keys hunted down on every model); `RawV2Client`
  is None without the cohere SDK.
"""

from __future__ import annotations

import base64
import binascii
import inspect
import re
import typing
from collections.abc import Iterator
from typing import Any

import orjson
import pydantic
from anthropic.types import Message as AnthropicMessage
from anthropic.types import RawMessageStreamEvent
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming, MessageCreateParamsStreaming
from google.genai import types as genai
from openai.types.chat.completion_create_params import (
    CompletionCreateParamsNonStreaming,
    CompletionCreateParamsStreaming,
)
from openai.types.responses import ResponseStreamEvent as OpenAIResponseStreamEvent
from openai.types.responses.response_create_params import (
    ResponseCreateParamsNonStreaming,
    ResponseCreateParamsStreaming,
)

try:  # botocore is an optional extra: without it the Bedrock checks (only) are skipped by their callers
    import botocore.session
    from botocore.validate import ParamValidator

    BEDROCK_RUNTIME = botocore.session.get_session().get_service_model("bedrock-runtime")
except ImportError:  # pragma: no cover
    BEDROCK_RUNTIME = None

try:  # likewise the cohere SDK
    from cohere.v2.raw_client import RawV2Client
except ImportError:  # pragma: no cover
    RawV2Client = None


def materialize(value: Any) -> Any:
    """SDK param types declare `Iterable[...]`, which pydantic validates lazily: force every item."""
    if isinstance(value, dict):
        return {k: materialize(v) for k, v in value.items()}
    if isinstance(value, list | tuple | Iterator):
        return [materialize(v) for v in value]
    return value


# -- OpenAI ----------------------------------------------------------------------------------------
_OPENAI_CHAT = {False: (CompletionCreateParamsNonStreaming, pydantic.TypeAdapter(CompletionCreateParamsNonStreaming)),
                True: (CompletionCreateParamsStreaming, pydantic.TypeAdapter(CompletionCreateParamsStreaming))}


def check_chat_request(body: Any) -> None:
    """Raise unless `body` is a valid OpenAI chat request per the openai SDK's own param types.

    The SDK's TypedDicts ignore unknown keys and validate `Iterable` members lazily, so unknown
    keys are checked here and every lazy iterator is drained to run its validation.
    """
    if not isinstance(body, dict):
        raise ValueError(f"chat request body is not a JSON object: {body!r:.100}")
    cls, adapter = _OPENAI_CHAT[body.get("stream") is True]
    unknown = set(body) - (cls.__required_keys__ | cls.__optional_keys__)
    if unknown:
        raise ValueError(f"keys OpenAI does not accept: {sorted(unknown)}")
    materialize(adapter.validate_python(body))


OPENAI_RESPONSE_EVENT = pydantic.TypeAdapter(OpenAIResponseStreamEvent)
_OPENAI_RESPONSES = {False: (ResponseCreateParamsNonStreaming, pydantic.TypeAdapter(ResponseCreateParamsNonStreaming)),
                     True: (ResponseCreateParamsStreaming, pydantic.TypeAdapter(ResponseCreateParamsStreaming))}


def check_responses_request(body: Any) -> None:
    """Raise unless `body` is a valid Responses API request (`POST /v1/responses`) per the openai SDK's
    `ResponseCreateParams`, checked as `check_chat_request` checks chat (unknown top-level keys refused,
    lazy members drained). The SDK's types are followed as they are: a function tool needs `strict`
    and `parameters` (either may be null), a `reasoning` input item its `summary`."""
    if not isinstance(body, dict):
        raise ValueError(f"responses request body is not a JSON object: {body!r:.100}")
    cls, adapter = _OPENAI_RESPONSES[body.get("stream") is True]
    unknown = set(body) - (cls.__required_keys__ | cls.__optional_keys__)
    if unknown:
        raise ValueError(f"keys OpenAI does not accept: {sorted(unknown)}")
    materialize(adapter.validate_python(body))


# -- Anthropic -------------------------------------------------------------------------------------
ANTHROPIC_MESSAGE = pydantic.TypeAdapter(AnthropicMessage)
ANTHROPIC_EVENT = pydantic.TypeAdapter(RawMessageStreamEvent)  # `ping` and `error` are not members
_ANTHROPIC_PARAMS = {False: pydantic.TypeAdapter(MessageCreateParamsNonStreaming),
                     True: pydantic.TypeAdapter(MessageCreateParamsStreaming)}
# Still accepted with `anthropic-version: 2023-06-01` (what the router sends), but gone from the SDK 2.x
# param types, which target a newer API version: (type, low, high) checked by hand.
_ANTHROPIC_LEGACY = {"temperature": (int | float, 0, 1), "top_p": (int | float, 0, 1), "top_k": (int, 0, None)}
_ANTHROPIC_KNOWN = (MessageCreateParamsStreaming.__required_keys__ | MessageCreateParamsStreaming.__optional_keys__
                    | set(_ANTHROPIC_LEGACY))


def anthropic_request_problems(body: Any, stream: bool) -> list[str]:
    """What the Messages API would refuse in `body` by its types (not by its conversation rules)."""
    if not isinstance(body, dict):
        return ["body is not a JSON object"]
    problems = [f"{key}: Extra inputs are not permitted" for key in sorted(set(body) - _ANTHROPIC_KNOWN)]
    for key, (kind, low, high) in _ANTHROPIC_LEGACY.items():
        value = body.get(key)
        if key in body and (isinstance(value, bool) or not isinstance(value, kind) or value < low
                            or (high is not None and value > high)):
            problems.append(f"{key}: out of range: {value!r}")
    try:
        materialize(_ANTHROPIC_PARAMS[stream].validate_python(body))
    except pydantic.ValidationError as exc:
        problems.append(f"body does not validate against MessageCreateParams: {exc}")
    return problems


# -- Gemini ----------------------------------------------------------------------------------------
BYPASS_SIGNATURE = "skip_thought_signature_validator"  # Google's documented "no signature" value
# GenerateContentRequest members -> the google-genai type of each item (None: not checked by type).
_GENERATE_FIELDS: dict[str, type | None] = {
    "contents": genai.Content, "systemInstruction": genai.Content, "tools": genai.Tool,
    "toolConfig": genai.ToolConfig, "generationConfig": genai.GenerationConfig,
    "safetySettings": genai.SafetySetting, "cachedContent": None}
_GENERATE_LISTS = {"contents", "tools", "safetySettings"}


def sig_bytes(sig: Any) -> bytes | None:
    """A thought signature's bytes (standard or url-safe base64, padded or not); None if it is not base64."""
    if sig == BYPASS_SIGNATURE or not isinstance(sig, str):
        return str(sig).encode()
    try:
        return base64.urlsafe_b64decode(sig.replace("+", "-").replace("/", "_") + "=" * (-len(sig) % 4))
    except (binascii.Error, ValueError):
        return None


def _norm(value: Any) -> Any:
    """Compare thought signatures by their bytes: google-genai re-encodes them as base64url."""
    if isinstance(value, dict):
        return {k: (sig_bytes(v) if k == "thoughtSignature" else _norm(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_norm(v) for v in value]
    return value


def genai_roundtrip_problem(model: type, obj: Any, where: str) -> str | None:
    """None when `obj` validates as the google-genai `model` and dumps back to itself unchanged."""
    try:
        parsed = model.model_validate_json(orjson.dumps(obj))
    except pydantic.ValidationError as exc:
        return f"{where}: not a valid {model.__name__}: {exc}"
    back = parsed.model_dump(mode="json", by_alias=True, exclude_none=True)
    if _norm(back) != _norm(obj):
        return f"{where}: {model.__name__} does not round-trip (a field is misnamed or mistyped): {obj}"
    return None


def generate_content_problems(body: Any) -> list[str]:
    """What `generateContent` would refuse in `body` by its types, plus non-empty user/model turns."""
    if not isinstance(body, dict):
        return ["body is not a JSON object"]
    unknown = sorted(set(body) - set(_GENERATE_FIELDS))
    if unknown:
        return [f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.']
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return ["* GenerateContentRequest.contents: contents is not specified"]
    problems: list[str] = []
    for key, model in _GENERATE_FIELDS.items():
        if key not in body or model is None:
            continue
        if key in _GENERATE_LISTS and not isinstance(body[key], list):
            problems.append(f"{key}: must be a list")
            continue
        items = ({f"{key}[{i}]": item for i, item in enumerate(body[key])} if key in _GENERATE_LISTS
                 else {key: body[key]})
        for where, item in items.items():
            problem = genai_roundtrip_problem(model, item, where)
            if problem:
                problems.append(problem)
    for i, content in enumerate(contents):
        if not isinstance(content, dict) or content.get("role") not in ("user", "model") or not content.get("parts"):
            problems.append(f"contents[{i}]: role must be user or model and parts must not be empty")
    return problems


# -- Bedrock ---------------------------------------------------------------------------------------
def _prepare(value: Any, shape: Any, path: str, problems: list[str]) -> Any:
    """Apply the rules ParamValidator skips (enum, pattern, max length) and decode base64 blobs."""
    if shape is None or shape.metadata.get("document"):
        return value
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        return {k: _prepare(v, shape.members.get(k), f"{path}.{k}", problems) for k, v in value.items()}
    if kind == "list" and isinstance(value, list):
        return [_prepare(v, shape.member, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    if kind == "string" and isinstance(value, str):
        meta = shape.metadata
        if meta.get("enum") and value not in meta["enum"]:
            problems.append(f"{path}: {value!r} not in {meta['enum']}")
        if meta.get("pattern") and path != ".modelId" and not re.fullmatch(meta["pattern"], value):
            problems.append(f"{path}: {value!r} does not match {meta['pattern']}")
        if meta.get("max") is not None and len(value) > meta["max"]:
            problems.append(f"{path}: longer than {meta['max']}")
    if kind == "blob" and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            problems.append(f"{path}: blob is not base64")
    return value


def shape_problems(params: Any, shape: Any) -> list[str]:
    """What is wrong with `params` as a value of the botocore `shape` (input, output or event shape)."""
    problems: list[str] = []
    prepared = _prepare(params, shape, "", problems)
    report = ParamValidator().validate(prepared, shape)
    if report.has_errors():
        problems.append(report.generate_report())
    return problems


def converse_request_problems(body: Any, model_id: str, *, stream: bool = False) -> list[str]:
    """What Bedrock would refuse in a Converse(Stream) body by the service model's input shape."""
    if not isinstance(body, dict):
        return ["body is not a JSON object"]
    shape = BEDROCK_RUNTIME.operation_model("ConverseStream" if stream else "Converse").input_shape
    return shape_problems({"modelId": model_id, **body}, shape)


# -- Cohere ----------------------------------------------------------------------------------------
def _strict(tp: Any) -> Any:
    """Fern types accept `Union[Literal[...], Any]` for forward compatibility; drop the `Any`."""
    if typing.get_origin(tp) is typing.Union:
        args = typing.get_args(tp)
        kept = tuple(_strict(a) for a in args if a is not typing.Any)
        if len(kept) != len(args):
            return typing.Union[kept]  # noqa: UP007 - built from a runtime tuple
    return tp


def cohere_extras(value: Any, path: str) -> list[str]:
    """Members the cohere SDK models let through as extras, anywhere in a parsed value."""
    if isinstance(value, pydantic.BaseModel):
        found = [f"{path}.{key}: unknown member" for key in (value.__pydantic_extra__ or {})]
        for name in type(value).model_fields:
            found += cohere_extras(getattr(value, name), f"{path}.{name}")
        return found
    if isinstance(value, list | tuple):
        return [p for i, v in enumerate(value) for p in cohere_extras(v, f"{path}[{i}]")]
    return []


def cohere_sdk_problems(body: Any, method: Any) -> list[str]:
    """Problems of `body` as the keyword arguments of a cohere SDK method."""
    if not isinstance(body, dict):
        return ["body is not a JSON object"]
    hints = typing.get_type_hints(method, include_extras=True)
    params = inspect.signature(method).parameters
    problems = [f"unknown member {name!r}" for name in body
                if name not in hints or name in ("request_options", "return")]
    problems += [f"missing required {name!r}" for name, p in params.items()
                 if name != "self" and p.default is inspect.Parameter.empty and name not in body]
    for name, value in body.items():
        if name not in hints or name in ("request_options", "return"):
            continue
        try:
            parsed = pydantic.TypeAdapter(_strict(hints[name])).validate_python(value, strict=True)
        except pydantic.ValidationError as exc:
            problems.append(f"{name}: {exc}")
            continue
        problems += cohere_extras(parsed, name)
    return problems


def cohere_chat_problems(body: Any) -> list[str]:
    """What `/v2/chat` would refuse in `body` by the SDK's types (`stream`, if sent, a boolean)."""
    if not isinstance(body, dict):
        return ["body is not a JSON object"]
    body = dict(body)
    if not isinstance(body.pop("stream", False), bool):  # `stream` is set by the SDK method itself
        return ["stream must be a boolean"]
    return cohere_sdk_problems(body, RawV2Client.chat)


def cohere_embed_problems(body: Any) -> list[str]:
    """What `/v2/embed` would refuse in `body` by the SDK's types."""
    return cohere_sdk_problems(body, RawV2Client.embed)
