"""The OpenAI Embeddings face: `POST /v1/embeddings`, through the same pipeline as chat."""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping
from typing import Any

from ..cache import EMBEDDINGS
from ..pipeline import Completion, LiveStream, ModelRequest, Replay
from ..validation import validate_embeddings
from .chat import OpenAIFace, upstream_body


class EmbeddingsFace(OpenAIFace):
    def parse(self, body: dict[str, Any], headers: Mapping[str, str]) -> ModelRequest:
        model, fallbacks = validate_embeddings(body)
        return ModelRequest("embeddings", model, upstream_body(body), "embedding", fallbacks, False, EMBEDDINGS)

    def render(self, mreq: ModelRequest, answer: Completion) -> dict[str, Any]:
        out = super().render(mreq, answer)
        if mreq.body.get("encoding_format") == "base64":
            out = {**out, "data": [_to_base64(item) for item in out.get("data") or ()]}
        return out

    def chunks(self, mreq: ModelRequest, answer: Replay | LiveStream):
        raise AssertionError("embeddings are never streamed")


def _to_base64(item: Any) -> Any:
    """Vendors without base64 output return floats: encode them as OpenAI does (float32, little-endian)."""
    vector = item.get("embedding") if isinstance(item, dict) else None
    if not isinstance(vector, list):
        return item
    return {**item, "embedding": base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")}
