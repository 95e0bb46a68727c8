"""Where a query's words are on one page: boxes on the page image and marks in its text.

Matching is the highlighter's (``find_spans``: same analysis, prefixes, fuzzy words and phrases), so
the viewer marks exactly what the result list's snippets marked. Word boxes come from OCR (pixels of
the page image) or a PDF's text layer (points); they are returned in the page's own units and the
caller scales them by the page's size in the same units.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chartvault.search.highlight import find_spans
from chartvault.search.query import MatchSpec, parse_user_query


@dataclass(frozen=True, slots=True)
class Box:
    """A rectangle on the page, in the page's own units (pixels or points), top-left origin."""

    left: float
    top: float
    width: float
    height: float


def match_spec(query_text: str | None) -> MatchSpec | None:
    """What a query highlights (its positive words), or None when it has none."""
    parsed = parse_user_query(query_text)
    return parsed.match if parsed is not None and parsed.match else None


def word_boxes(words: Sequence[Sequence[Any]] | None, spec: MatchSpec | None) -> list[Box]:
    """Boxes of the words (``[text, conf, left, top, width, height]``) that match ``spec``.

    The words are joined with single spaces into one line of text, so phrases match across word
    boundaries exactly as they do in the page text.
    """
    if not words or spec is None:
        return []
    starts: list[int] = []
    parts: list[str] = []
    pos = 0
    for word in words:
        text = str(word[0])
        starts.append(pos)
        parts.append(text)
        pos += len(text) + 1
    joined = " ".join(parts)
    boxes: list[Box] = []
    taken: set[int] = set()
    index = 0
    for start, end, _ in find_spans(joined, spec):
        while index + 1 < len(starts) and starts[index + 1] <= start:
            index += 1
        i = index
        while i < len(starts) and starts[i] < end:
            if i not in taken:
                taken.add(i)
                _, _, left, top, width, height = words[i][:6]
                boxes.append(Box(float(left), float(top), float(width), float(height)))
            i += 1
    return boxes


def marked_text(text: str, spec: MatchSpec | None) -> str:
    """The page text HTML-escaped, with matching words in ``<mark>`` (line breaks kept)."""
    if spec is None:
        return html.escape(text)
    out: list[str] = []
    pos = 0
    for start, end, _ in find_spans(text, spec):
        out.append(html.escape(text[pos:start]))
        out.append("<mark>" + html.escape(text[start:end]) + "</mark>")
        pos = end
    out.append(html.escape(text[pos:]))
    return "".join(out)
