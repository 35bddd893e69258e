"""Real vendor traffic, replayed byte for byte through the translators.

The corpus (tests/providers/recordings, sources in its PROVENANCE.md) holds responses recorded against
the live APIs of OpenAI-compatible vendors, Anthropic, Gemini, Bedrock and Cohere. Each one is fed to
its provider as the router would feed it: a body to `chat_response`, a stream to `chat_stream` in
several patterns of network reads (whole, a few bytes at a time, random, and cut exactly where it hurts:
between the two newlines that end an SSE event, inside a UTF-8 character, inside an event-stream
frame's prelude). What comes out is compared with `corpus.expected`, the recording's own reading of
the same bytes by independent parsers: text, reasoning, tool calls (ids, names, parsed arguments),
finish reason in OpenAI's terms and token usage. Streams must also keep the OpenAI chunk contract
and, cut short at an event boundary, fail as STREAM_CUT. Signatures a client must send back (Anthropic
thinking blocks, Gemini thought signatures on tool calls) must survive exactly. Vendor error bodies
must map to the right error kind, client status and message.

A recording that shows a translator defect is marked `xfail(strict=True)` with the defect named
(`DEFECTS`, `SHAPE_DEFECTS`, `ERROR_DEFECTS`, `ERROR_MESSAGE_DEFECTS`): it fails today, and passes (so
fails the strict mark) once fixed. tests/router/test_recordings_e2e.py replays the same corpus through
the router and reuses these tables.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from providers import ErrorKind, ProviderSettings, UpstreamError, create_provider


def _corpus():
    name = "recordings_corpus"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).parent / "recordings" / "corpus.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


corpus = _corpus()
RECORDINGS = corpus.load()
SUCCESS = [r for r in RECORDINGS if not r.is_error]
STREAMS = [r for r in SUCCESS if r.stream]
BODIES = [r for r in SUCCESS if not r.stream]
ERRORS = [r for r in RECORDINGS if r.is_error]

# Translator defects that real responses show (the translation test of each fails today).
DEFECTS: dict[str, str] = {}

# How each recorded vendor error must be classified: (kind, client status, why).
ERROR_EXPECT = {
    "openai/error_invalid_api_key": (ErrorKind.AUTH, 502, "401 invalid_api_key: the provider's key is bad"),
    "openai/error_context_length": (ErrorKind.CONTEXT_WINDOW, 400, "400 code context_length_exceeded"),
    "deepseek/error_auth": (ErrorKind.AUTH, 502, "401 authentication_error"),
    "deepseek/error_context_length": (ErrorKind.CONTEXT_WINDOW, 400, "400 'maximum context length is ...'"),
    "mistral/error_auth": (ErrorKind.AUTH, 502, "401 {'detail': 'Invalid API Key'}"),
    "openrouter/error_context_length": (ErrorKind.CONTEXT_WINDOW, 400, "400 'maximum context length is ...'"),
    "perplexity/error_auth": (ErrorKind.AUTH, 502, "401 invalid_api_key"),
    "perplexity/error_prompt_too_long": (ErrorKind.CONTEXT_WINDOW, 400, "400 too_many_prompt_tokens"),
    "anthropic/error_auth": (ErrorKind.AUTH, 502, "401 authentication_error"),
    "anthropic/error_prompt_too_long": (ErrorKind.CONTEXT_WINDOW, 400, "400 'prompt is too long'"),
    "gemini/error_api_key_invalid": (ErrorKind.AUTH, 502, "400 INVALID_ARGUMENT with reason API_KEY_INVALID"),
    "gemini/error_quota": (ErrorKind.RATE_LIMIT, 429, "429 RESOURCE_EXHAUSTED"),
    "bedrock/error_auth": (ErrorKind.AUTH, 502, "403 UnrecognizedClientException"),
    "bedrock/error_input_too_long": (ErrorKind.CONTEXT_WINDOW, 400, "400 ValidationException 'Input Tokens Exceeded'"),
    "cohere/error_model_removed": (ErrorKind.NOT_FOUND, 502, "404: the model is gone at the vendor"),
}

# Streams whose chunks break the OpenAI chunk contract once relayed (content is right: see the replay test).
SHAPE_DEFECTS: dict[str, str] = {}

ERROR_DEFECTS: dict[str, str] = {}
ERROR_MESSAGE_DEFECTS: dict[str, str] = {}


def params(recs, defects=None):
    defects = defects or {}
    return [pytest.param(r, id=r.name, marks=[pytest.mark.xfail(strict=True, reason=defects[r.name])]
                         if r.name in defects else []) for r in recs]


def provider_for(rec):
    return create_provider(ProviderSettings(name=rec.vendor.lower(), type=rec.provider_type))


# -- the corpus itself ----------------------------------------------------------------------------
def test_corpus_covers_every_wire_format_and_feature():
    assert len(RECORDINGS) >= 40
    families = {r.family for r in RECORDINGS}
    assert families == {"openai", "anthropic", "gemini", "bedrock", "cohere"}
    for family in families:
        mine = [r for r in SUCCESS if r.family == family]
        assert any(r.stream for r in mine) and any(not r.stream for r in mine), family
    covers = " | ".join(c for r in RECORDINGS for c in r.covers)
    for feature in ("tool without arguments", "parallel tool calls", "thinking", "reasoning", "cache read",
                    "cache write", "citations", "error 4"):
        assert feature in covers, feature
    assert {r.family for r in ERRORS} == families
    assert {r.name for r in ERRORS} == set(ERROR_EXPECT)
    assert set(DEFECTS) | set(SHAPE_DEFECTS) <= {r.name for r in SUCCESS}
    assert set(ERROR_DEFECTS) | set(ERROR_MESSAGE_DEFECTS) <= set(ERROR_EXPECT)


def test_every_recording_has_its_provenance():
    provenance = (corpus.ROOT / "PROVENANCE.md").read_text("utf-8")
    for rec in RECORDINGS:
        src = rec.source
        assert re.fullmatch(r"[0-9a-f]{40}", src["commit"]), rec
        rows = [line for line in provenance.splitlines() if line.startswith(f"| `{rec.name}` |")]
        assert len(rows) == 1, f"{rec} must have one row in PROVENANCE.md"
        row = rows[0]
        assert src["repository"] in row and src["commit"][:12] in row and src["path"] in row, rec


@pytest.mark.parametrize("rec", params([r for r in STREAMS if r.family == "bedrock"]))
def test_event_streams_are_intact(rec):
    """Every frame's two CRCs check out: the binary bodies are the bytes AWS sent, not a re-encoding."""
    frames = corpus.eventstream_frames(rec.body)
    assert frames and all(h[":message-type"] == "event" for h, _ in frames)
    assert [h[":event-type"] for h, _ in frames][-2:] == ["messageStop", "metadata"]


@pytest.mark.parametrize("rec", params(SUCCESS))
def test_recording_answers_the_request_switchboard_sends(rec):
    """The recorded exchange is one Switchboard would make: same endpoint, same stream mode."""
    body = {"model": rec.model, "messages": [{"role": "user", "content": "Hi"}]}
    sent = provider_for(rec).chat_request(body, rec.model, "key", rec.stream)
    sent_url, recorded_url = urlsplit(sent.url), urlsplit(rec.request["url"])
    segments = {"openai": 2, "anthropic": 2, "cohere": 2, "gemini": 1, "bedrock": 3}[rec.family]
    tail = "/".join(unquote(recorded_url.path).split("/")[-segments:])
    assert unquote(sent_url.path).endswith("/" + tail), (sent.url, rec.request["url"])
    assert ("alt=sse" in sent_url.query) == ("alt=sse" in recorded_url.query)
    if rec.family in ("openai", "anthropic", "cohere"):
        assert bool(json.loads(sent.body).get("stream")) == rec.stream


# -- successes --------------------------------------------------------------------------------------
@pytest.mark.parametrize("rec", params(BODIES, DEFECTS))
def test_response_body_replay(rec):
    completion = provider_for(rec).chat_response(rec.body, rec.model)
    assert completion["object"] == "chat.completion"
    message = completion["choices"][0]["message"]
    assert message["role"] == "assistant"
    for call in message.get("tool_calls") or []:
        assert call["type"] == "function" and isinstance(call["function"]["arguments"], str)
    got = corpus.Collected.from_completion(completion)
    assert isinstance(got.raw_content, str) or (got.raw_content is None and got.tool_calls), got.raw_content
    assert not corpus.mismatches(got, corpus.expected(rec))


def _check_chunks(rec, chunks: list[dict]) -> None:
    """The shape every client relies on, whatever the vendor: one id, chunk objects, tool-call indices
    counted from 0 with id and name on their first fragment, one finish, nothing but usage after it."""
    assert chunks
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    if rec.family != "openai":
        assert chunks[0]["choices"][0]["delta"].get("role") == "assistant"
    seen: list[int] = []
    finishes = 0
    for chunk in chunks:
        for choice in chunk["choices"]:
            assert finishes == 0, "a choice delta after the finish chunk"
            for call in choice["delta"].get("tool_calls") or []:
                if call["index"] not in seen:
                    assert call["index"] == len(seen), "tool-call indices must count from 0 in order"
                    assert call.get("id") and call["function"].get("name"), call
                    seen.append(call["index"])
            finishes += bool(choice.get("finish_reason"))
    assert finishes == 1


def _replay(rec, reads: list[bytes]) -> list[dict]:
    translator = provider_for(rec).chat_stream(rec.model)
    chunks: list[dict] = []
    for data in reads:
        chunks += translator.feed(data)
        translator.check()
    return chunks + translator.close()


@pytest.mark.parametrize("rec", params(STREAMS, DEFECTS))
def test_stream_replay_in_any_reads(rec):
    want = corpus.expected(rec)
    for pattern, reads in corpus.read_patterns(rec).items():
        problems = corpus.mismatches(corpus.Collected.from_chunks(_replay(rec, reads)), want)
        assert not problems, f"{pattern}: {problems}"


@pytest.mark.parametrize("rec", params(STREAMS, SHAPE_DEFECTS))
def test_stream_chunks_keep_the_openai_contract(rec):
    _check_chunks(rec, _replay(rec, corpus.read_patterns(rec)["awkward reads"]))


@pytest.mark.parametrize("rec", params(STREAMS))
def test_stream_cut_before_its_end_fails(rec):
    """The recording's first whole events with the rest missing: what came is relayed, then STREAM_CUT
    (a stream cut short never passes as a finished answer)."""
    cut = corpus.cut_before_end(rec)
    translator = provider_for(rec).chat_stream(rec.model)
    chunks = translator.feed(rec.body[:cut]) if cut else []
    with pytest.raises(UpstreamError) as info:
        translator.check()
        translator.close()
    assert info.value.kind is ErrorKind.STREAM_CUT
    contents = [ch["delta"].get("content") for c in chunks for ch in c["choices"]]
    text = "".join(c for c in contents if isinstance(c, str))
    assert corpus.expected(rec).text.startswith(text)
    assert not any(ch.get("finish_reason") for c in chunks for ch in c["choices"])


# -- vendor errors ----------------------------------------------------------------------------------
def _vendor_message(rec) -> str | None:
    """The human message of a recorded error body, read the vendor's way."""
    data = json.loads(rec.body)
    if isinstance(data, list):
        data = data[0]
    err = data.get("error", data)
    if isinstance(err, str):  # {"error": "..."}
        return err
    return err.get("message") or err.get("detail")


@pytest.mark.parametrize("rec", params(ERRORS, ERROR_DEFECTS))
def test_vendor_error_kind_and_status(rec):
    kind, client_status, _why = ERROR_EXPECT[rec.name]
    err = provider_for(rec).error(rec.status, rec.headers, rec.body)
    assert isinstance(err, UpstreamError)
    assert (err.kind, err.client_status) == (kind, client_status)
    assert err.upstream_status == rec.status
    assert err.is_caller_error == (kind in (ErrorKind.CONTEXT_WINDOW, ErrorKind.BAD_REQUEST))


@pytest.mark.parametrize("rec", params(ERRORS, ERROR_MESSAGE_DEFECTS))
def test_vendor_error_message_reaches_the_error(rec):
    err = provider_for(rec).error(rec.status, rec.headers, rec.body)
    message = _vendor_message(rec)
    assert message and message.strip() in err.message
    assert err.to_openai()["message"] == err.message


def test_gemini_quota_error_carries_the_recorded_retry_delay():
    rec = next(r for r in ERRORS if r.name == "gemini/error_quota")
    details = json.loads(rec.body)["error"]["details"]
    delay = next(d["retryDelay"] for d in details if d["@type"].endswith("google.rpc.RetryInfo"))
    err = provider_for(rec).error(rec.status, rec.headers, rec.body)
    assert err.retry_after == float(delay.removesuffix("s"))


# -- what a client must send back: signatures --------------------------------------------------------
def _translate(rec) -> tuple[list[dict], list[dict]]:
    """(thinking blocks, tool calls) of the OpenAI-side answer, streamed or not."""
    if not rec.stream:
        message = provider_for(rec).chat_response(rec.body, rec.model)["choices"][0]["message"]
        return message.get("thinking_blocks") or [], message.get("tool_calls") or []
    blocks, calls = [], {}
    for chunk in _replay(rec, corpus.read_patterns(rec)["awkward reads"]):
        for choice in chunk["choices"]:
            blocks += choice["delta"].get("thinking_blocks") or []
            for call in choice["delta"].get("tool_calls") or []:
                calls.setdefault(call["index"], call)
    return blocks, [calls[i] for i in sorted(calls)]


ANTHROPIC_THINKING = [r for r in SUCCESS if r.family == "anthropic" and "thinking" in r.covers]
GEMINI_SIGNED_CALLS = [r for r in SUCCESS if r.family == "gemini" and b"thoughtSignature" in r.body
                       and b"functionCall" in r.body]


@pytest.mark.parametrize("rec", params(ANTHROPIC_THINKING))
def test_anthropic_thinking_signatures_come_back_exactly(rec):
    """Thinking blocks are relayed with their signatures byte for byte, so the next turn can replay them."""
    if rec.stream:
        recorded: dict[int, dict] = {}
        for _name, event in corpus.sse_json(rec.body):
            if event["type"] == "content_block_start" and event["content_block"]["type"] == "thinking":
                recorded[event["index"]] = {"type": "thinking", "thinking": "", "signature": ""}
            elif event["type"] == "content_block_delta" and event["index"] in recorded:
                delta = event["delta"]
                recorded[event["index"]]["thinking"] += delta.get("thinking", "")
                recorded[event["index"]]["signature"] += delta.get("signature", "")
        want = [recorded[i] for i in sorted(recorded)]
    else:
        want = [{k: b[k] for k in ("type", "thinking", "signature")}
                for b in json.loads(rec.body)["content"] if b["type"] == "thinking"]
    blocks, _calls = _translate(rec)
    assert want and all(w["signature"] for w in want)
    assert blocks == want


@pytest.mark.parametrize("rec", params(GEMINI_SIGNED_CALLS))
def test_gemini_thought_signatures_survive_the_next_turn(rec):
    """A function call's thoughtSignature rides on the tool call id; sending the calls back in the next
    turn must put each recorded signature, byte for byte, on its `functionCall` part again (Gemini
    rejects a replayed signed call without it)."""
    responses = [e for _n, e in corpus.sse_json(rec.body)] if rec.stream else [json.loads(rec.body)]
    parts = [part for response in responses for cand in response.get("candidates") or []
             for part in cand["content"].get("parts") or [] if "functionCall" in part]
    _blocks, calls = _translate(rec)
    assert len(calls) == len(parts)
    calls = [{"id": c["id"], "type": "function", "function": c["function"]} for c in calls]
    turn = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": None, "tool_calls": calls},
                         *({"role": "tool", "tool_call_id": c["id"], "content": "done"} for c in calls)]}
    sent = json.loads(provider_for(rec).chat_request(turn, rec.model, "key", False).body)
    replayed = [part for content in sent["contents"] if content["role"] == "model"
                for part in content["parts"] if "functionCall" in part]
    assert [p["functionCall"]["name"] for p in replayed] == [p["functionCall"]["name"] for p in parts]
    for recorded, again in zip(parts, replayed, strict=True):
        if recorded.get("thoughtSignature"):
            assert again.get("thoughtSignature") == recorded["thoughtSignature"]
