"""Cohere Embed's wire format, spoken by Cohere's own API (`POST /v2/embed`) and by Cohere models on
Bedrock (InvokeModel): the request members a canonical embeddings request becomes, and the float
vectors and billed tokens of a response.
"""

from __future__ import annotations

from typing import Any


def embed_body(body: dict, texts: list[str]) -> dict[str, Any]:
    """The Cohere Embed members for `texts` (float vectors; `input_type`, `dimensions` and `truncate` honoured)."""
    out: dict[str, Any] = {"texts": texts, "input_type": body.get("input_type") or "search_document",
                           "embedding_types": ["float"]}
    if body.get("dimensions") is not None:
        out["output_dimension"] = body["dimensions"]
    if body.get("truncate") in ("NONE", "START", "END"):
        out["truncate"] = body["truncate"]
    return out


def float_embeddings(data: Any) -> list | None:
    """The float vectors of a response (by type, `{"float": [[...]]}`, or a bare list); None if there are none."""
    embeddings = data.get("embeddings") if isinstance(data, dict) else None
    if isinstance(embeddings, dict):  # `embedding_types` asked for
        embeddings = embeddings.get("float")
    return embeddings if isinstance(embeddings, list) else None


def billed_input_tokens(data: dict) -> int:
    """`meta.billed_units.input_tokens` of a response (0 when absent)."""
    billed = (data.get("meta") or {}).get("billed_units") or {}
    return int(billed.get("input_tokens") or 0)
