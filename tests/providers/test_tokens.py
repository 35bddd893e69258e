"""providers/tokens.py: OpenAI-style counts, robustness to junk, and never a download."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import time

import pytest
import requests
import tiktoken_ext

from providers import tokens
from providers.tokens import IMAGE_TOKENS, OFFLINE_ENCODING, count_messages, count_text, encoding_for

O200K_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
BUNDLED_CL100K = os.path.join(tiktoken_ext.__path__[0], "data", "cl100k_base.tiktoken")


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to reach the network fails the test loudly."""
    attempts: list[str] = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args[:2]))
        raise AssertionError(f"network access attempted: {args[:2]!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(requests, "get", refuse)
    return attempts


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """An empty tiktoken cache directory, with the module's memoised encodings forgotten around it."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    tokens.clear_caches()
    yield tmp_path
    tokens.clear_caches()


def cache_name(url: str) -> str:
    return hashlib.sha1(url.encode()).hexdigest()


def test_count_text_basic_and_special_tokens():
    assert count_text("hello world", "gpt-4") == 2
    assert count_text("", "gpt-4") == 0
    # Special-token text is counted as plain text instead of raising.
    assert count_text("a <|endoftext|> b <|fim_prefix|>", "gpt-4") > 5
    assert count_text("\ud800 lone surrogate", "gpt-4") > 0


def test_count_messages_matches_openai_cookbook():
    """The OpenAI cookbook's example: 129 prompt tokens for cl100k models."""
    messages = [
        {"role": "system", "content": "You are a helpful, pattern-following assistant that translates "
                                      "corporate jargon into plain English."},
        {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
        {"role": "system", "name": "example_assistant",
         "content": "Things working well together will increase revenue."},
        {"role": "system", "name": "example_user",
         "content": "Let's circle back when we have more bandwidth to touch base on opportunities for "
                    "increased leverage."},
        {"role": "system", "name": "example_assistant",
         "content": "Let's talk later when we're less busy about how to do better."},
        {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the "
                                    "client deliverable."},
    ]
    assert count_messages(messages, "gpt-4") == 129
    assert count_messages(messages, "openai/gpt-3.5-turbo") == 129


def test_count_messages_parts_images_tool_calls_and_tools():
    text_only = [{"role": "user", "content": [{"type": "text", "text": "What is in this image?"}]}]
    with_image = [{"role": "user", "content": [
        {"type": "text", "text": "What is in this image?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 5000}},
    ]}]
    assert count_messages(with_image, "m") == count_messages(text_only, "m") + IMAGE_TOKENS
    as_string = [{"role": "user", "content": "What is in this image?"}]
    assert count_messages(text_only, "m") == count_messages(as_string, "m")
    assert count_messages([], "m") == 3

    call = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Paris, France"}'}}]}
    bare = {"role": "assistant", "content": None}
    assert count_messages([call], "m") > count_messages([bare], "m") + 8

    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    assert count_messages(as_string, "m", tools) > count_messages(as_string, "m") + 20


JUNK = [
    None, "just a string", 42, 3.5, {"role": "user", "content": "a dict, not a list"}, [None, 1, "x"],
    [{"role": None, "content": {"weird": object()}}],
    [{"role": "user", "content": [None, 7, {"type": "image_url"}, {"type": "text", "text": None},
                                  {"type": "input_audio", "input_audio": {"data": "AAAA"}}, {"foo": [1, 2]}]}],
    [{"role": "assistant", "tool_calls": [None, "x", {"function": None}, {"function": {"arguments": {"a": 1}}}],
      "function_call": {"name": 3}, "name": 5, "tool_call_id": ["x"]}],
    [{"role": "user", "content": b"bytes"}],
    [{1: 2, (1, 2): "tuple key"}],
]


@pytest.mark.parametrize("messages", JUNK)
@pytest.mark.parametrize("model", ["gpt-4o", "unknown-model", None, 17, ["unhashable"]])
def test_count_messages_never_raises_on_junk(messages, model):
    result = count_messages(messages, model, tools=[None, "x", {"function": {"parameters": {"a": object()}}}])
    assert isinstance(result, int) and result >= 3


def test_count_messages_survives_pathological_nesting():
    deep: list = []
    for _ in range(10_000):
        deep = [deep]
    assert count_messages([{"role": "user", "content": [{"type": "other", "x": deep}]}], "m") >= 3


@pytest.mark.parametrize("text", [None, 12, b"bytes", {"a": 1}, ["x"]])
def test_count_text_never_raises(text):
    assert isinstance(count_text(text, ["unhashable"]), int)


def test_unknown_models_use_the_bundled_encoding():
    assert encoding_for("claude-haiku-4-5").name == OFFLINE_ENCODING
    assert encoding_for("echo").name == OFFLINE_ENCODING
    assert encoding_for("claude-haiku-4-5") is encoding_for("claude-haiku-4-5")  # memoised


def test_missing_cache_never_downloads(cache_dir, no_network):
    """gpt-4o needs o200k_base, which is not cached: no download, the bundled cl100k instead, fast."""
    start = time.perf_counter()
    enc = encoding_for("gpt-4o")
    assert enc.name == OFFLINE_ENCODING
    assert count_text("hello world", "gpt-4o") == 2
    assert time.perf_counter() - start < 2.0
    assert no_network == []
    assert os.listdir(cache_dir) == []


def test_disabled_cache_never_downloads(monkeypatch, no_network):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # tiktoken would download on every load
    tokens.clear_caches()
    try:
        assert encoding_for("gpt-4o-mini").name == OFFLINE_ENCODING
        assert encoding_for("text-davinci-003").name == OFFLINE_ENCODING
    finally:
        tokens.clear_caches()
    assert no_network == []


def test_corrupt_cache_file_is_not_replaced_by_a_download(cache_dir, no_network):
    bad = cache_dir / cache_name(O200K_URL)
    bad.write_bytes(b"not a tokenizer")
    assert encoding_for("gpt-4o").name == OFFLINE_ENCODING
    assert bad.exists()  # tiktoken itself would have deleted it and re-downloaded
    assert no_network == []


def test_cached_encoding_is_used(cache_dir, no_network):
    """With the model's file in tiktoken's cache, the model gets its own encoding."""
    shutil.copy(BUNDLED_CL100K, cache_dir / cache_name(CL100K_URL))
    assert encoding_for("gpt-4").name == "cl100k_base"
    assert count_text("hello world", "gpt-4") == 2
    assert no_network == []


def test_download_guard_blocks_remote_reads(cache_dir, no_network, monkeypatch):
    """Even if the cache check were wrong, loading an encoding cannot reach the network."""
    monkeypatch.setattr(tokens, "_is_cached", lambda name: True)
    assert encoding_for("gpt-4o").name == OFFLINE_ENCODING
    assert no_network == []  # the guard refused before requests was called
    assert getattr(tokens._guard, "active", False) is False
