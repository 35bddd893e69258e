"""Cache keys: a SHA-256 of the canonical request, scoped to the tenant.

Two requests share an entry only when they would get the same answer: same endpoint, same tenant,
same requested model, same streamed-ness and the same body once the members that cannot change the
answer are removed. The encoding is orjson with sorted keys, so member order never matters.

Conservative by design: a member wrongly kept only costs hit rate; a member wrongly dropped serves
one request's answer to another. So unknown members (vendor extensions passed through) are kept,
and only the members listed in `IGNORED_FIELDS` are dropped.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

# Bump when the canonical encoding or the entry format changes: old entries become unreachable
# (they expire on their own) instead of being served in a shape the new code does not expect.
KEY_VERSION = 1

# The tenant used when auth is off. Virtual key ids are never empty, so the anonymous tenant cannot
# collide with a real one.
ANONYMOUS_TENANT = ""

# Endpoint names the handlers pass (any stable string works; these keep chat and embeddings apart).
CHAT = "chat.completions"
EMBEDDINGS = "embeddings"

# Members that never change the answer, and why. Everything else is part of the key.
IGNORED_FIELDS: dict[str, str] = {
    "user": "end-user id for the vendor's abuse monitoring; the output does not depend on it",
    "safety_identifier": "OpenAI's successor of `user`; same reason",
    "stream": "carried by the `streamed` argument (stream and non-stream entries differ in shape)",
    "fallbacks": "router-only: which deployments may serve; a hit may come from any of them anyway",
    "metadata": "tags for the vendor's stored-completions dashboard; no effect on the output",
    "store": "whether the vendor keeps the completion for evals/distillation; no effect on the output",
    "model": "replaced by the `model` argument (the requested name)",
}
# Kept on purpose (listed so nobody "fixes" them away):
#   service_tier       - echoed in the response body and priced differently (flex/priority).
#   prompt_cache_key   - clients use it as a namespace; keeping it can only lower the hit rate.
#   seed, n, temperature, top_p, max_*tokens, stop, logprobs, tools, tool_choice, response_format,
#   reasoning_effort, modalities, audio, prediction, encoding_format, dimensions, ... - all change
#   the output.
# `stream_options` is dropped for non-stream requests (meaningless there) but kept for streams:
# `include_usage` adds a usage chunk to what the client receives, and entries replay chunk by chunk.


def canonical_body(body: dict[str, Any], streamed: bool) -> dict[str, Any]:
    """The request members that can change the answer, normalised.

    Top-level `null` equals absent (OpenAI's semantics for every parameter), and a top-level
    integral float equals its integer (`temperature: 1` vs `1.0` are the same JSON number, parsed
    differently). Nested values are left alone: walking whole message lists would cost more than it
    could save.
    """
    out: dict[str, Any] = {}
    for name, value in body.items():
        if value is None or name in IGNORED_FIELDS:
            continue
        if name == "stream_options" and not streamed:
            continue
        if type(value) is float and value.is_integer() and abs(value) < 2**53:
            value = int(value)
        out[name] = value
    return out


def cache_key(endpoint: str, tenant: str, model: str, body: dict[str, Any], streamed: bool) -> str:
    """SHA-256 hex of `[version, endpoint, tenant, model, streamed, canonical body]`.

    `model` is the name the client requested (an alias or `provider/model`), not the deployment
    that will serve: an alias spreads over several deployments, so a hit may come from any
    deployment of the alias (the entry records which one). `tenant` is the virtual key's immutable
    id (never its reusable name), or `ANONYMOUS_TENANT` when auth is off: tenants never share
    entries. Encoding a JSON array keeps the parts unambiguous (no separator a tenant or model name
    could forge).
    """
    canonical = [KEY_VERSION, endpoint, tenant, model, bool(streamed), canonical_body(body, streamed)]
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()
