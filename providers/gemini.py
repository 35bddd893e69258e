"""Google Gemini (AI Studio and Vertex AI) behind the OpenAI Chat Completions and Embeddings schema.

AI Studio: `POST {base}/v1beta/models/{model}:generateContent` (and `:streamGenerateContent?alt=sse`),
key in the `x-goog-api-key` header, never in the URL, so an error message that quotes the URL cannot
leak it. Vertex AI is chosen when the provider has both `project` and `region`:
`https://{region}-aiplatform.googleapis.com/v1/projects/{p}/locations/{r}/publishers/google/models/{m}`
(`aiplatform.googleapis.com` for region `global`; `base_url` replaces the host), with the configured
key sent as an OAuth access token (`Authorization: Bearer`).

The translation itself lives in `gemini_request.py` (request), `gemini_response.py` (responses,
finish reasons, usage, errors), `gemini_stream.py` (SSE) and `gemini_schema.py` (JSON Schema
cleaning). The conventions a client can see:

- tool call ids are `call_<hash>_<index>` (or Gemini's own id when it sends one), followed by
  `__thought__<signature>` when Gemini attached a `thoughtSignature`; sending the assistant message
  back unchanged replays the signature on its `functionCall` part (see `gemini_request`);
- thought-summary parts come back as `message.reasoning_content` / `delta.reasoning_content`;
- MALFORMED_FUNCTION_CALL and similar failed tool calls raise INVALID_RESPONSE (see `gemini_response`);
- a prompt blocked by `promptFeedback.blockReason` raises CONTENT_POLICY (`code: content_filter`).

Provider `options` understood: `thought_signature_fallback` (default `skip_thought_signature_validator`,
empty to disable), `json_schema_passthrough` (send tool/response schemas as `parametersJsonSchema` /
`responseJsonSchema` unchanged instead of cleaning them), `safety_settings` (default `safetySettings`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

import orjson

from .base import Capabilities, HttpRequest, Provider, StreamTranslator, invalid_response, load_json
from .citations import citation_members, gemini_citations
from .errors import ErrorKind, UpstreamError
from .gemini_request import build_generate_body
from .gemini_response import (
    check_prompt_blocked,
    completion_id,
    error_from_body,
    error_from_google,
    finish_reason,
    translate_parts,
    usage_from,
)
from .gemini_stream import GeminiStream


class GeminiProvider(Provider):
    type: ClassVar[str] = "gemini"
    default_base_url: ClassVar[str | None] = "https://generativelanguage.googleapis.com"
    # n: native through candidateCount. logprobs: Gemini has responseLogprobs, but its tokens and
    # top candidates do not map faithfully onto OpenAI's (no bytes, thoughts interleaved), so no.
    # seed and penalties map onto generationConfig; logit_bias, verbosity and the OpenAI-only members
    # have never been refused here and are still accepted (and ignored).
    capabilities = Capabilities(logprobs=False, legacy_functions=False, cache_marks=False)

    def __init__(self, settings) -> None:
        super().__init__(settings)
        self.vertex = bool(settings.project and settings.region)
        if self.vertex:
            region = str(settings.region)
            host = "https://aiplatform.googleapis.com" if region == "global" else (
                f"https://{region}-aiplatform.googleapis.com")
            host = (settings.base_url or host).rstrip("/")
            self._api_root = f"{host}/{settings.api_version or 'v1'}"
            self._root = (f"{self._api_root}/projects/{quote(str(settings.project), safe='')}"
                          f"/locations/{quote(region, safe='')}")
        else:
            self._api_root = self._root = f"{self.base_url}/{settings.api_version or 'v1beta'}"
        self._static_headers = {"content-type": "application/json", **settings.headers}

    # -- requests ---------------------------------------------------------------------------
    def _headers(self, api_key: str | None) -> dict[str, str]:
        headers = dict(self._static_headers)
        if api_key:
            if self.vertex:
                headers["authorization"] = f"Bearer {api_key}"
            else:
                headers["x-goog-api-key"] = api_key
        return headers

    def _model_url(self, model: str, method: str) -> str:
        if self.vertex:
            if model.startswith("projects/"):  # a full resource name (tuned model endpoint, …)
                return f"{self._api_root}/{model}:{method}"
            path = model if model.startswith("publishers/") else f"publishers/google/models/{model}"
            return f"{self._root}/{path}:{method}"
        path = model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"
        return f"{self._root}/{path}:{method}"

    def chat_request(self, body: dict, model: str, api_key: str | None, stream: bool) -> HttpRequest:
        out = build_generate_body(body, model, self.name, self.settings.options)
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return HttpRequest("POST", self._model_url(model, method), self._headers(api_key), orjson.dumps(out))

    def embeddings_request(self, body: dict, model: str, api_key: str | None) -> HttpRequest:
        texts = _embedding_inputs(body.get("input"), self.name)
        dims = body.get("dimensions")
        if self.vertex:  # Vertex serves Gemini/text embeddings through the prediction API
            out: dict[str, Any] = {"instances": [{"content": t} for t in texts]}
            if dims is not None:
                out["parameters"] = {"outputDimensionality": dims}
            return HttpRequest("POST", self._model_url(model, "predict"), self._headers(api_key),
                               orjson.dumps(out))
        name = model if model.startswith("models/") else f"models/{model}"
        requests = []
        for text in texts:
            item: dict[str, Any] = {"model": name, "content": {"parts": [{"text": text}]}}
            if dims is not None:
                item["outputDimensionality"] = dims
            requests.append(item)
        return HttpRequest("POST", self._model_url(model, "batchEmbedContents"), self._headers(api_key),
                           orjson.dumps({"requests": requests}))

    # -- responses --------------------------------------------------------------------------
    def chat_response(self, body: bytes, model: str) -> dict:
        data = load_json(self.name, body)
        if isinstance(data, list) and len(data) == 1:
            data = data[0]
        if not isinstance(data, dict):
            raise invalid_response(self.name, "expected a JSON object")
        if data.get("error"):
            raise error_from_google(self.name, data["error"])
        check_prompt_blocked(data, self.name)
        candidates = data.get("candidates")
        if not isinstance(candidates, list) or not candidates:
            raise invalid_response(self.name, "no candidates in response")
        response_id = str(data.get("responseId") or "")
        choices = []
        for pos, cand in enumerate(candidates):
            if not isinstance(cand, dict):
                raise invalid_response(self.name, "candidate is not an object")
            index = cand.get("index", pos)
            content = cand.get("content")
            parts = content.get("parts") if isinstance(content, dict) else None
            pieces, _ = translate_parts(parts or [], response_id, index, 0)
            text = "".join(v for k, v in pieces if k == "content")
            reasoning = "".join(v for k, v in pieces if k == "reasoning")
            calls = [{k: v for k, v in call.items() if k != "index"} for kind, call in pieces
                     if kind == "tool_call"]
            message: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
            if reasoning:
                message["reasoning_content"] = reasoning
            if calls:
                message["tool_calls"] = calls
            message.update(citation_members(gemini_citations(cand.get("groundingMetadata"), text)))
            finish = finish_reason(cand.get("finishReason"), bool(calls), self.name, cand.get("finishMessage"))
            choices.append({"index": index, "message": message, "logprobs": None, "finish_reason": finish})
        result: dict[str, Any] = {
            "id": completion_id(data, f"chatcmpl-{uuid.uuid4().hex}"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": data.get("modelVersion") or model,
            "choices": choices,
        }
        usage = usage_from(data.get("usageMetadata"))
        if usage is not None:
            result["usage"] = usage
        return result

    def chat_stream(self, model: str) -> StreamTranslator:
        return GeminiStream(self.name, model, int(time.time()))

    def embeddings_response(self, body: bytes, model: str, headers: Mapping[str, str] | None = None) -> dict:
        data = load_json(self.name, body)
        if isinstance(data, dict) and data.get("error"):
            raise error_from_google(self.name, data["error"])
        if not isinstance(data, dict):
            raise invalid_response(self.name, "expected a JSON object")
        prompt_tokens = 0
        if isinstance(data.get("predictions"), list):  # Vertex :predict
            vectors = []
            for pred in data["predictions"]:
                emb = pred.get("embeddings") if isinstance(pred, dict) else None
                if not isinstance(emb, dict) or not isinstance(emb.get("values"), list):
                    raise invalid_response(self.name, "prediction without embeddings.values")
                vectors.append(emb["values"])
                stats = emb.get("statistics")
                if isinstance(stats, dict):
                    prompt_tokens += int(stats.get("token_count") or 0)
        elif isinstance(data.get("embeddings"), list):  # AI Studio :batchEmbedContents
            vectors = []
            for emb in data["embeddings"]:
                if not isinstance(emb, dict) or not isinstance(emb.get("values"), list):
                    raise invalid_response(self.name, "embedding without values")
                vectors.append(emb["values"])
            # AI Studio usually reports no token count for embeddings, and providers cannot run a
            # tokenizer (no estimates here): 0 unless the response carries usageMetadata.
            meta = data.get("usageMetadata")
            if isinstance(meta, dict):
                prompt_tokens = int(meta.get("promptTokenCount") or 0)
        else:
            raise invalid_response(self.name, "missing 'embeddings'")
        return {
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
            "model": model,
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
        }

    # -- errors -----------------------------------------------------------------------------
    def error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        return error_from_body(self.name, status, headers, body)


def _embedding_inputs(raw: Any, provider: str) -> list[str]:
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and raw and all(isinstance(x, str) for x in raw):
        return list(raw)
    if isinstance(raw, list) and raw and all(isinstance(x, (int, list)) for x in raw):
        raise UpstreamError(ErrorKind.UNSUPPORTED, f"{provider}: token-array input is not supported",
                            param="input", code="unsupported_parameter")
    raise UpstreamError(ErrorKind.BAD_REQUEST, f"{provider}: 'input' must be a string or a list of strings",
                        param="input", code="invalid_request")
