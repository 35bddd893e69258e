"""Citations reach the client: Anthropic, Bedrock Converse and Cohere, stream and non-stream.

The recorded answers with citations (tests/providers/recordings) are read twice: here, straight from
the vendor's bytes (which text each citation belongs to, what it cites), and by the translators. Every
citation must come back once, over the span of `message.content` holding the text it belongs to, as a
`url_citation` in `annotations` when it names a URL and as a `document_citation` otherwise. What comes
out must validate against the openai SDK's own types (`annotations` entries are a closed union there).
"""

from __future__ import annotations

import orjson
import pytest
from openai.types.chat import ChatCompletion
from test_recordings import RECORDINGS as RECORDED
from test_recordings import corpus

from providers import ProviderSettings, create_provider

RECORDINGS = {r.name: r for r in RECORDED}


def _provider(kind: str):
    return create_provider(ProviderSettings(name=kind, type=kind))


def _translate(rec) -> dict:
    """The message a client gets: the completion's, or the chunks' folded (content joined, lists merged)."""
    provider = _provider(rec.provider_type)
    if not rec.stream:
        completion = provider.chat_response(rec.body, rec.model)
        ChatCompletion.model_validate(completion)
        return completion["choices"][0]["message"]
    translator = provider.chat_stream(rec.model)
    chunks = []
    for piece in corpus.read_patterns(rec)["awkward reads"]:
        chunks += translator.feed(piece)
    chunks += translator.close()
    message: dict = {"content": ""}
    for chunk in chunks:
        for choice in chunk["choices"]:
            delta = choice["delta"]
            message["content"] += delta.get("content") or ""
            for key in ("annotations", "document_citations"):
                if key in delta:
                    assert key not in message, f"{key} must come in one delta"
                    message[key] = delta[key]
    return message


def _anthropic_cited(rec) -> list[tuple[str, dict]]:
    """(text of the block, citation) for every citation of an Anthropic answer, read from the recording."""
    if not rec.stream:
        return [(b["text"], c) for b in orjson.loads(rec.body)["content"] if b["type"] == "text"
                for c in b.get("citations") or []]
    blocks: dict[int, tuple[list[str], list[dict]]] = {}
    for _, event in corpus.sse_json(rec.body):
        if event["type"] == "content_block_start" and event["content_block"]["type"] == "text":
            blocks[event["index"]] = ([event["content_block"]["text"]], list(event["content_block"]["citations"]))
        elif event["type"] == "content_block_delta" and event["index"] in blocks:
            delta = event["delta"]
            if delta["type"] == "text_delta":
                blocks[event["index"]][0].append(delta["text"])
            elif delta["type"] == "citations_delta":
                blocks[event["index"]][1].append(delta["citation"])
    return [("".join(text), c) for text, cites in blocks.values() for c in cites]


def _bedrock_cited(rec) -> list[tuple[str, dict]]:
    if not rec.stream:
        content = orjson.loads(rec.body)["output"]["message"]["content"]
        return [("".join(p["text"] for p in b["citationsContent"]["content"]), c) for b in content
                if "citationsContent" in b for c in b["citationsContent"]["citations"]]
    blocks: dict[int, tuple[list[str], list[dict]]] = {}
    for headers, payload in corpus.eventstream_frames(rec.body):
        event = orjson.loads(payload)
        if headers[":event-type"] == "contentBlockDelta":
            text, cites = blocks.setdefault(event["contentBlockIndex"], ([], []))
            text.append(event["delta"].get("text", ""))
            if "citation" in event["delta"]:
                cites.append(event["delta"]["citation"])
    return [("".join(text), c) for text, cites in blocks.values() for c in cites]


def _cited_source(citation: dict) -> str:
    """What a citation cites, as the vendor says it: the quoted passage."""
    if "sourceContent" in citation:
        return "".join(p["text"] for p in citation["sourceContent"])
    return citation["cited_text"]


@pytest.mark.parametrize("name", ["anthropic/chat_citations", "anthropic/stream_citations",
                                  "bedrock/converse_citations", "bedrock/stream_citations"])
def test_block_citations_span_their_text_and_keep_the_passage(name):
    rec = RECORDINGS[name]
    cited = _anthropic_cited(rec) if rec.family == "anthropic" else _bedrock_cited(rec)
    assert cited, "the recording holds citations"
    message = _translate(rec)
    assert "annotations" not in message  # documents, not web pages
    got = message["document_citations"]
    assert len(got) == len(cited)
    for (text, citation), out in zip(cited, got, strict=True):
        assert out["type"] == "document_citation"
        doc = out["document_citation"]
        assert message["content"][doc["start_index"]:doc["end_index"]] == text
        assert doc["cited_text"] == _cited_source(citation)
        assert doc["location"]["type"] == "char" and doc["document_index"] == 0
        place = citation.get("location", {}).get("documentChar", citation)
        assert doc["location"]["start"] == place.get("start", place.get("start_char_index"))
        assert doc["location"]["end"] == place.get("end", place.get("end_char_index"))


def test_bedrock_cited_text_is_part_of_the_answer():
    rec = RECORDINGS["bedrock/converse_citations"]
    want = "".join(p["text"] for p in orjson.loads(rec.body)["output"]["message"]["content"][0]
                   ["citationsContent"]["content"])
    assert _translate(rec)["content"] == want


@pytest.mark.parametrize("name", ["cohere/chat_document_citations", "cohere/chat_tool_citations"])
def test_cohere_citations_keep_their_span_and_source(name):
    rec = RECORDINGS[name]
    vendor = orjson.loads(rec.body)["message"]
    message = _translate(rec)
    got = message["document_citations"]
    want = [(c, s) for c in vendor["citations"] for s in c["sources"]]
    assert len(got) == len(want)
    for (citation, source), out in zip(want, got, strict=True):
        doc = out["document_citation"]
        assert message["content"][doc["start_index"]:doc["end_index"]] == citation["text"]
        assert doc["document_id"] == source["id"]
        if source["type"] == "tool":
            assert doc["location"] == {"type": "tool_output", "tool_call_id": source["id"].rsplit(":", 1)[0]}
        else:
            assert doc["location"] == {"type": "document"}


# -- URL citations: no recording of a web search answer here, so the documented vendor shapes ---------
WEB = {"type": "web_search_result_location", "url": "https://www.ruby-lang.org/en/", "title": "Ruby",
       "encrypted_index": "Eo8BCioIAhgBIiQ", "cited_text": "A dynamic, open source programming language"}


def _anthropic_web_answer(stream: bool) -> bytes:
    text1, text2 = "Ruby is ", "a dynamic language."
    if not stream:
        return orjson.dumps({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [{"type": "text", "text": text1}, {"type": "text", "text": text2, "citations": [WEB]}],
            "stop_reason": "end_turn", "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 7}})
    events = [
        {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [],
                                              "model": "claude-sonnet-4-5", "stop_reason": None,
                                              "usage": {"input_tokens": 5, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text1}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": "", "citations": []}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "citations_delta", "citation": WEB}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": text2}},
        {"type": "content_block_stop", "index": 1},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 7}},
        {"type": "message_stop"}]
    return b"".join(b"event: %s\ndata: %s\n\n" % (e["type"].encode(), orjson.dumps(e)) for e in events)


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_web_citation_is_an_openai_url_citation(stream):
    provider = _provider("anthropic")
    body = _anthropic_web_answer(stream)
    if stream:
        translator = provider.chat_stream("claude-sonnet-4-5")
        chunks = translator.feed(body) + translator.close()
        content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        annotations = [a for c in chunks if c["choices"] for a in c["choices"][0]["delta"].get("annotations", [])]
        assert not any("document_citations" in c["choices"][0]["delta"] for c in chunks if c["choices"])
    else:
        completion = provider.chat_response(body, "claude-sonnet-4-5")
        message = ChatCompletion.model_validate(completion).choices[0].message
        content = message.content
        annotations = [a.model_dump() for a in message.annotations]
        assert "document_citations" not in completion["choices"][0]["message"]
    assert annotations == [{"type": "url_citation", "url_citation": {
        "start_index": 8, "end_index": 27, "url": WEB["url"], "title": "Ruby"}}]
    assert content[8:27] == "a dynamic language."


def test_cohere_document_with_a_url_is_a_url_citation():
    body = orjson.dumps({"id": "c1", "finish_reason": "COMPLETE", "message": {
        "role": "assistant", "content": [{"type": "text", "text": "Ruby was made in 1995."}],
        "citations": [{"start": 17, "end": 21, "text": "1995", "type": "TEXT_CONTENT", "sources": [
            {"type": "document", "id": "doc-0",
             "document": {"url": "https://en.wikipedia.org/wiki/Ruby", "title": "Ruby", "snippet": "1995"}}]}]},
        "usage": {"billed_units": {"input_tokens": 3, "output_tokens": 5}}})
    completion = _provider("cohere").chat_response(body, "command-a-03-2025")
    message = ChatCompletion.model_validate(completion).choices[0].message
    assert [a.model_dump() for a in message.annotations] == [{"type": "url_citation", "url_citation": {
        "start_index": 17, "end_index": 21, "url": "https://en.wikipedia.org/wiki/Ruby", "title": "Ruby"}}]


def test_cohere_stream_citations_come_once_before_the_finish():
    text = "The sky is green."
    events = [
        {"type": "message-start", "id": "c1", "delta": {"message": {"role": "assistant"}}},
        {"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}},
        {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": text}}}},
        {"type": "citation-start", "index": 0, "delta": {"message": {"citations": {
            "start": 11, "end": 17, "text": "green.", "content_index": 0, "type": "TEXT_CONTENT",
            "sources": [{"type": "document", "id": "doc-0", "document": {"id": "doc-0", "text": text}}]}}}},
        {"type": "citation-end", "index": 0},
        {"type": "content-end", "index": 0},
        {"type": "message-end", "delta": {"finish_reason": "COMPLETE",
                                          "usage": {"billed_units": {"input_tokens": 3, "output_tokens": 5}}}}]
    body = b"".join(b"event: %s\ndata: %s\n\n" % (e["type"].encode(), orjson.dumps(e)) for e in events)
    translator = _provider("cohere").chat_stream("command-a-03-2025")
    chunks = translator.feed(body) + translator.close()
    with_cites = [i for i, c in enumerate(chunks) if c["choices"] and "document_citations" in c["choices"][0]["delta"]]
    finish = [i for i, c in enumerate(chunks) if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(with_cites) == 1 and with_cites[0] == finish[0] - 1
    doc = chunks[with_cites[0]]["choices"][0]["delta"]["document_citations"][0]["document_citation"]
    assert text[doc["start_index"]:doc["end_index"]] == "green." and doc["document_id"] == "doc-0"


def test_an_answer_without_citations_has_neither_member():
    rec = RECORDINGS["anthropic/chat_text"]
    message = _translate(rec)
    assert "annotations" not in message and "document_citations" not in message


# -- Gemini grounding: supports over byte offsets of the text, citing grounding chunks ---------------
def _grounding(metadata: dict, text: str) -> list[tuple[str, str]]:
    """(cited text, url) for every web citation, read from the vendor's own figures (byte offsets)."""
    encoded = text.encode()
    return [(encoded[s["segment"].get("startIndex", 0):s["segment"]["endIndex"]].decode(),
             metadata["groundingChunks"][i]["web"]["uri"])
            for s in metadata["groundingSupports"] for i in s["groundingChunkIndices"]]


def test_gemini_grounding_is_url_citations():
    rec = RECORDINGS["gemini/chat_grounding"]
    candidate = orjson.loads(rec.body)["candidates"][0]
    text = "".join(p["text"] for p in candidate["content"]["parts"])
    completion = _provider("gemini").chat_response(rec.body, rec.model)
    message = ChatCompletion.model_validate(completion).choices[0].message
    got = [(message.content[a.url_citation.start_index:a.url_citation.end_index], a.url_citation.url)
           for a in message.annotations]
    assert got == _grounding(candidate["groundingMetadata"], text) and len(got) == 3
    assert [a.url_citation.title for a in message.annotations] == ["ruby-lang.org", "wikipedia.org", "github.com"]


def test_gemini_stream_grounding_counts_characters_not_bytes():
    """The segment offsets are UTF-8 bytes; the annotation spans are characters of the content."""
    text1, text2 = "Zürich liegt am ", "Zürichsee."
    metadata = {"groundingChunks": [{"web": {"uri": "https://de.wikipedia.org/wiki/Z%C3%BCrich", "title": "Zürich"}}],
                "groundingSupports": [{"segment": {"startIndex": len(text1.encode()),
                                                   "endIndex": len((text1 + text2).encode()), "text": text2},
                                       "groundingChunkIndices": [0]}]}
    events = [{"candidates": [{"content": {"role": "model", "parts": [{"text": text1}]}, "index": 0}]},
              {"candidates": [{"content": {"role": "model", "parts": [{"text": text2}]}, "index": 0,
                               "finishReason": "STOP", "groundingMetadata": metadata}],
               "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 9, "totalTokenCount": 14}}]
    body = b"".join(b"data: " + orjson.dumps(e) + b"\r\n\r\n" for e in events)
    translator = _provider("gemini").chat_stream("gemini-2.5-flash")
    chunks = translator.feed(body) + translator.close()
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    cited = [(i, c["choices"][0]["delta"]["annotations"]) for i, c in enumerate(chunks)
             if c["choices"] and "annotations" in c["choices"][0]["delta"]]
    finish = [i for i, c in enumerate(chunks) if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(cited) == 1 and cited[0][0] == finish[0] - 1
    [annotation] = cited[0][1]
    span = annotation["url_citation"]
    assert content[span["start_index"]:span["end_index"]] == text2 and span["title"] == "Zürich"
