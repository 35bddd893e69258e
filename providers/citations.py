"""Vendor citations as OpenAI `annotations` and `document_citations`: one shape for every vendor, both paths.

OpenAI's Chat Completions carry the sources of an answer in `message.annotations`, a list whose only
member type is the web search's

    {"type": "url_citation", "url_citation": {"start_index", "end_index", "url", "title"}}

Gemini's grounding (`groundingMetadata`: supports over segments of the text, each citing grounding
chunks) comes back the same way: web pages as `url_citation`s, retrieved contexts as
`document_citation`s. Anthropic, Bedrock Converse and Cohere cite more than web pages: the documents, search results and
tool outputs a request supplied. Every citation that names a URL becomes a `url_citation` in
`message.annotations` (`title` is "" when the vendor gives none). Every other one becomes a
`document_citation`, this gateway's extension, shaped like OpenAI's (the type names the member that
holds the details), in a list of its own, `message.document_citations`:

    {"type": "document_citation", "document_citation": {
        "start_index": int, "end_index": int,
        "document_index": int | None,  # 0-based position of the cited document among those the request
                                       # sent (Anthropic `document_index`, Bedrock `documentIndex`)
        "document_id": str | None,     # the vendor's id of the source: Cohere's document or tool-output
                                       # id, Anthropic's `file_id` for a document sent as a file
        "document_title": str | None,
        "cited_text": str | None,      # the passage of the source that was cited, where the vendor quotes it
        "location": {...}}}            # where in the source, one of:
            {"type": "char" | "page" | "block", "start": int, "end": int}
                # characters (0-based), pages (1-based) or content blocks (0-based) of the document,
                # end exclusive, as the vendor counts them
            {"type": "search_result", "search_result_index": int, "source": str | None, "start", "end"}
                # blocks of a search result the request sent, whose `source` is not a URL
            {"type": "tool_output", "tool_call_id": str | None}
                # the output of a tool call (Cohere)
            {"type": "document"}
                # the document as a whole (Cohere names no finer place)

Not in `annotations`, because clients validate that list against OpenAI's one member type: the
openai SDK's types, and the Vercel AI SDK's OpenAI provider, which fails the whole response (or
chunk) on any other entry. Cohere cites the tool results of every tool loop, so a foreign entry there
would break those clients on ordinary answers. The two lists can be joined into one (same shape).

Every key is always present (None when the vendor does not say). `start_index`/`end_index` place the
cited claim in `message.content`, counted in characters (Unicode code points) from its start, end
exclusive, as OpenAI's do: for Anthropic and Bedrock, whose citations belong to a block of text, the
span of that block once the blocks are joined; for Cohere, the span it gives, moved by the offset of
its content item. Citations of anything but the content (Cohere's of the reasoning or tool plan) and
citation types newer than this mapping are left out. A message without citations has neither member.

A stream sends both lists in one delta just before its finish chunk (`StreamCitations`): once and
whole, because the openai SDK's stream accumulator (`client.chat.completions.stream`) fails on a
second list delta whose entries have no `index`, and by then every cited span has been sent.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any

Convert = Callable[[Any, int, int], dict | None]

_ANTHROPIC_SPANS = {"char_location": ("char", "start_char_index", "end_char_index"),
                    "page_location": ("page", "start_page_number", "end_page_number"),
                    "content_block_location": ("block", "start_block_index", "end_block_index")}
_BEDROCK_SPANS = {"documentChar": "char", "documentPage": "page", "documentChunk": "block"}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _is_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("https://", "http://"))


def url_citation(start: int, end: int, url: str, title: str | None) -> dict:
    return {"type": "url_citation",
            "url_citation": {"start_index": start, "end_index": end, "url": url, "title": title or ""}}


def document_citation(start: int, end: int, location: dict, *, index: int | None = None, doc_id: str | None = None,
                      title: str | None = None, cited_text: str | None = None) -> dict:
    return {"type": "document_citation", "document_citation": {
        "start_index": start, "end_index": end, "document_index": index, "document_id": doc_id,
        "document_title": title, "cited_text": cited_text, "location": location}}


def _search_result(start: int, end: int, index: Any, source: str | None, first: Any, last: Any,
                   title: str | None, cited_text: str | None) -> dict:
    """A cited search result: a web citation when its source is a URL, else a document citation."""
    if _is_url(source):
        return url_citation(start, end, str(source), title)
    location = {"type": "search_result", "search_result_index": _int(index), "source": source,
                "start": _int(first), "end": _int(last)}
    return document_citation(start, end, location, title=title, cited_text=cited_text)


# -- vendors ----------------------------------------------------------------------------------------
def anthropic_citation(citation: Any, start: int, end: int) -> dict | None:
    """One Anthropic text-block citation (`TextCitation`), over the block's span `start`..`end`."""
    if not isinstance(citation, Mapping):
        return None
    kind = citation.get("type")
    cited = _str(citation.get("cited_text"))
    if kind == "web_search_result_location":
        return url_citation(start, end, citation["url"], _str(citation.get("title"))) \
            if _is_url(citation.get("url")) else None
    if kind == "search_result_location":
        return _search_result(start, end, citation.get("search_result_index"), _str(citation.get("source")),
                              citation.get("start_block_index"), citation.get("end_block_index"),
                              _str(citation.get("title")), cited)
    span = _ANTHROPIC_SPANS.get(kind)
    if span is None:
        return None
    name, first, last = span
    return document_citation(start, end, {"type": name, "start": _int(citation.get(first)),
                                          "end": _int(citation.get(last))},
                             index=_int(citation.get("document_index")), doc_id=_str(citation.get("file_id")),
                             title=_str(citation.get("document_title")), cited_text=cited)


def bedrock_citation(citation: Any, start: int, end: int) -> dict | None:
    """One Converse `Citation` (or stream `CitationsDelta`), over its block's span `start`..`end`."""
    if not isinstance(citation, Mapping):
        return None
    location = citation.get("location")
    if not isinstance(location, Mapping):
        return None
    title, source = _str(citation.get("title")), _str(citation.get("source"))
    quoted = citation.get("sourceContent")
    cited = "".join(p["text"] for p in quoted if isinstance(p, Mapping) and isinstance(p.get("text"), str)) \
        if isinstance(quoted, list) else ""
    web = location.get("web")
    if isinstance(web, Mapping):
        return url_citation(start, end, web["url"], title) if _is_url(web.get("url")) else None
    found = location.get("searchResultLocation")
    if isinstance(found, Mapping):
        return _search_result(start, end, found.get("searchResultIndex"), source, found.get("start"),
                              found.get("end"), title, cited or None)
    for key, name in _BEDROCK_SPANS.items():
        place = location.get(key)
        if isinstance(place, Mapping):
            return document_citation(start, end, {"type": name, "start": _int(place.get("start")),
                                                  "end": _int(place.get("end"))},
                                     index=_int(place.get("documentIndex")), title=title, cited_text=cited or None)
    return None


def cohere_citations(citation: Any, offset: int = 0) -> list[dict]:
    """A Cohere v2 `Citation` as one annotation per source; `offset` is where its content item starts
    in the message content. Citations of the reasoning (`THINKING_CONTENT`) or tool plan (`PLAN`) point
    into text that is not the content: left out."""
    if not isinstance(citation, Mapping) or citation.get("type") not in (None, "TEXT_CONTENT"):
        return []
    first, last = _int(citation.get("start")), _int(citation.get("end"))
    sources = citation.get("sources")
    if first is None or last is None or not isinstance(sources, list):
        return []
    start, end = offset + first, offset + last
    out = []
    for source in sources:
        if not isinstance(source, Mapping):
            continue
        source_id = _str(source.get("id"))
        if source.get("type") == "tool":  # id "<tool call id>:<n>", the n-th output of that call
            call_id = (source_id.rpartition(":")[0] or source_id) if source_id else None
            out.append(document_citation(start, end, {"type": "tool_output", "tool_call_id": call_id},
                                         doc_id=source_id))
            continue
        document = source.get("document") if isinstance(source.get("document"), Mapping) else {}
        title = _str(document.get("title"))
        if _is_url(document.get("url")):
            out.append(url_citation(start, end, document["url"], title))
        else:
            out.append(document_citation(start, end, {"type": "document"},
                                         doc_id=source_id or _str(document.get("id")), title=title))
    return out


def cohere_message_citations(message: Mapping[str, Any]) -> list[dict]:
    """The citations of a Cohere v2 `message`: each one moved by the offset of the text item
    its `content_index` names (the content is the text items joined, as `CohereProvider` builds it)."""
    offsets: dict[int, int] = {}
    length = 0
    for i, item in enumerate(message.get("content") or []):
        if isinstance(item, Mapping) and item.get("type", "text") == "text" and isinstance(item.get("text"), str):
            offsets[i] = length
            length += len(item["text"])
    citations = message.get("citations")
    return [a for c in citations if isinstance(c, Mapping)
            for a in cohere_citations(c, offsets.get(c.get("content_index"), 0))] \
        if isinstance(citations, list) else []


def gemini_citations(metadata: Any, text: str) -> list[dict]:
    """Gemini's grounding (`groundingMetadata`) over the candidate's `text`: each support's segment,
    whose offsets count UTF-8 bytes of that text, cited by its grounding chunks: a web page as a
    `url_citation`, a retrieved context (Vertex RAG) as a `document_citation`."""
    if not isinstance(metadata, Mapping):
        return []
    chunks, supports = metadata.get("groundingChunks"), metadata.get("groundingSupports")
    if not isinstance(chunks, list) or not isinstance(supports, list):
        return []
    encoded = text.encode()
    out: list[dict] = []
    for support in supports:
        segment = support.get("segment") if isinstance(support, Mapping) else None
        if not isinstance(segment, Mapping):
            continue
        first, last = _int(segment.get("startIndex")) or 0, _int(segment.get("endIndex"))
        if last is None or not 0 <= first <= last <= len(encoded):
            continue
        start = len(encoded[:first].decode(errors="ignore"))
        end = len(encoded[:last].decode(errors="ignore"))
        for i in support.get("groundingChunkIndices") or ():
            chunk = chunks[i] if _int(i) is not None and 0 <= i < len(chunks) else None
            if not isinstance(chunk, Mapping):
                continue
            web, context = chunk.get("web"), chunk.get("retrievedContext")
            if isinstance(web, Mapping) and _is_url(web.get("uri")):
                out.append(url_citation(start, end, web["uri"], _str(web.get("title"))))
            elif isinstance(context, Mapping):
                out.append(document_citation(start, end, {"type": "document"}, doc_id=_str(context.get("uri")),
                                             title=_str(context.get("title")), cited_text=_str(context.get("text"))))
    return out


def bedrock_cited_text(block: Mapping[str, Any], start: int) -> tuple[str, list[dict]]:
    """The text of a Converse `citationsContent` block (its generated `content`, part of the answer)
    and its citations over that text, which starts at `start` in the message content."""
    parts = block.get("content")
    text = "".join(p["text"] for p in parts if isinstance(p, Mapping) and isinstance(p.get("text"), str)) \
        if isinstance(parts, list) else ""
    return text, citations_over(bedrock_citation, block.get("citations"), start, start + len(text))


def citations_over(convert: Convert, citations: Any, start: int, end: int) -> list[dict]:
    """The citations of one block of text, every one over the block's span."""
    if not isinstance(citations, list):
        return []
    return [a for a in (convert(c, start, end) for c in citations) if a is not None]


def citation_members(found: list[dict]) -> dict:
    """The message (or delta) members that carry `found`: `annotations` for the URL citations,
    `document_citations` for the rest (see the module doc); an empty list is left out."""
    members: dict[str, list[dict]] = {}
    for citation in found:
        key = "annotations" if citation.get("type") == "url_citation" else "document_citations"
        members.setdefault(key, []).append(citation)
    return members


def with_citations(completion: dict, found: list[dict]) -> dict:
    """`completion` with `found` on its (one) message."""
    completion["choices"][0]["message"].update(citation_members(found))
    return completion


# -- streams ----------------------------------------------------------------------------------------
class StreamCitations:
    """The citations of one streamed answer, placed in its content and sent in one delta.

    The stream `count`s every delta it sends, so `length` is the content sent so far. A vendor whose
    citations belong to a block of text (Anthropic, Bedrock) `open`s the block when it starts, `cite`s
    the citations as they come (before or after the text) and `close`s the block at its end: each is
    converted by `convert` over the block's span. Cohere, whose citations carry their own span, reads
    where its content items started (`start`) and `add`s converted ones.
    `flush` sends them all, once, just before the finish chunk (see the module doc).
    """

    __slots__ = ("_blocks", "_convert", "_found", "length")

    def __init__(self, convert: Convert | None = None) -> None:
        self._convert = convert
        self._blocks: dict[Hashable, tuple[int, list]] = {}  # block -> (content length at its start, citations)
        self._found: list[dict] = []
        self.length = 0

    def count(self, delta: Mapping[str, Any]) -> None:
        content = delta.get("content")
        if isinstance(content, str):
            self.length += len(content)

    def open(self, block: Hashable, citations: Any = None) -> None:
        """Mark where `block` starts (a second call keeps the first place), with any citations it opens with."""
        self._blocks.setdefault(block, (self.length, []))
        if isinstance(citations, list):
            self._blocks[block][1].extend(citations)

    def start(self, block: Hashable) -> int | None:
        place = self._blocks.get(block)
        return place[0] if place is not None else None

    def cite(self, block: Hashable, citation: Any) -> None:
        self.open(block)
        self._blocks[block][1].append(citation)

    def close(self, block: Hashable) -> None:
        start, citations = self._blocks.pop(block, (self.length, []))
        if citations and self._convert is not None:
            self._found += citations_over(self._convert, citations, start, self.length)

    def add(self, found: list[dict]) -> None:
        self._found += found

    def flush(self, make_chunk: Callable[[dict], dict], chunks: list[dict]) -> None:
        """Append the chunk whose delta holds every citation (none when nothing was cited); blocks
        still open end here."""
        for block in list(self._blocks):
            self.close(block)
        if self._found:
            chunks.append(make_chunk(citation_members(self._found)))
            self._found = []
