"""Hit pages and HTML snippets from page text supplied at query time (the index stores no text).

Shared by both backends so that they highlight identically. Matching uses the same analysis as the
index: a word is marked when its term equals a query term, starts with a query prefix or is within a
fuzzy term's edits (same distance as the engines); a phrase is
marked only where its words occur consecutively on the page. Everything outside ``<mark>`` is
HTML-escaped, and runs of whitespace (OCR line breaks) are collapsed to one space.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from whoosh.support.charset import accent_map

from chartvault.search.analysis import tokens, within_edits
from chartvault.search.query import MatchSpec
from chartvault.search.types import Snippet

MAX_SNIPPETS = 3
CONTEXT_CHARS = 70  # shown on each side of the matched words
MAX_CORE_CHARS = 160  # matches closer together than this share one snippet
_WS = re.compile(r"\s+")


@dataclass(slots=True)
class _Fragment:
    page_no: int
    spans: list[tuple[int, int, str]]  # (start, end, what matched) on the page
    lo: int = 0  # context may not reach past these: halfway to the neighbouring fragments,
    hi: int = 0  # so snippets never overlap nor show a match without its mark

    @property
    def rank(self) -> tuple[int, int]:
        return len({key for _, _, key in self.spans}), len(self.spans)


def find_spans(text: str, spec: MatchSpec) -> list[tuple[int, int, str]]:
    """Character spans of ``text`` that match ``spec``, sorted and non-overlapping."""
    toks = list(tokens(text))
    spans: list[tuple[int, int, str]] = []
    for term, start, end in toks:
        if term in spec.terms:
            spans.append((start, end, term))
        else:
            for prefix in spec.prefixes:
                if term.startswith(prefix):
                    spans.append((start, end, prefix + "*"))
                    break
            else:
                for fuzzy, edits in spec.fuzzy:
                    if within_edits(term, fuzzy, edits):
                        spans.append((start, end, f"{fuzzy}~{edits}"))
                        break
    for phrase in spec.phrases:
        n = len(phrase)
        for i in range(len(toks) - n + 1):
            if all(toks[i + k][0] == phrase[k] for k in range(n)):
                spans.append((toks[i][1], toks[i + n - 1][2], " ".join(phrase)))
    spans.sort()
    merged: list[tuple[int, int, str]] = []
    for span in spans:
        if merged and span[0] < merged[-1][1]:
            start, end, key = merged[-1]
            merged[-1] = (start, max(end, span[1]), key)
        else:
            merged.append(span)
    return merged


def highlight(
    pages: Sequence[str], spec: MatchSpec, max_snippets: int = MAX_SNIPPETS
) -> tuple[list[int], list[Snippet]]:
    """Return the 1-based numbers of pages that match, and up to ``max_snippets`` snippets.

    Snippets favour passages holding the most distinct query terms, and come back in page order.
    """
    if not spec:
        return [], []
    needles = None if spec.fuzzy else _needles(spec)  # a misspelt word has no substring to look for
    hit_pages: list[int] = []
    fragments: list[_Fragment] = []
    for page_no, text in enumerate(pages, start=1):
        if needles is not None:
            folded = text.lower().translate(accent_map)
            if not any(needle in folded for needle in needles):
                continue  # cheap skip: most pages of a long record hold none of the words
        spans = find_spans(text, spec)
        if not spans:
            continue
        hit_pages.append(page_no)
        page_frags = [_Fragment(page_no, [spans[0]])]
        for span in spans[1:]:
            if span[1] - page_frags[-1].spans[0][0] <= MAX_CORE_CHARS:
                page_frags[-1].spans.append(span)
            else:
                page_frags.append(_Fragment(page_no, [span]))
        for before, after in pairwise(page_frags):
            before.hi = after.lo = (before.spans[-1][1] + after.spans[0][0]) // 2
        page_frags[-1].hi = len(text)
        fragments += page_frags
    best = sorted(fragments, key=lambda f: (-f.rank[0], -f.rank[1], f.page_no, f.spans[0][0]))
    chosen = sorted(best[:max_snippets], key=lambda f: (f.page_no, f.spans[0][0]))
    return hit_pages, [Snippet(f.page_no, _render(pages[f.page_no - 1], f)) for f in chosen]


def _needles(spec: MatchSpec) -> set[str]:
    """Substrings every matching page must contain once lowercased and folded.

    An index term is the folded word minus a plural ending, or with ``ies`` turned into ``y``;
    dropping a final ``y`` therefore leaves a prefix of the word as written.
    """
    words = [*spec.terms, *spec.prefixes, *(phrase[0] for phrase in spec.phrases)]
    return {word[:-1] if word.endswith("y") and len(word) > 1 else word for word in words}


def _render(text: str, fragment: _Fragment) -> str:
    spans = fragment.spans
    start = _word_start(text, max(fragment.lo, spans[0][0] - CONTEXT_CHARS), spans[0][0])
    end = _word_end(text, min(fragment.hi, spans[-1][1] + CONTEXT_CHARS), spans[-1][1])
    parts: list[str] = []
    pos = start
    for s, e, _ in spans:
        parts.append(_plain(text[pos:s]))
        parts.append("<mark>" + _plain(text[s:e]) + "</mark>")
        pos = e
    parts.append(_plain(text[pos:end]))
    body = "".join(parts).strip()
    return ("…" if start > 0 else "") + body + ("…" if end < len(text) else "")


def _plain(segment: str) -> str:
    return html.escape(_WS.sub(" ", segment))


def _word_start(text: str, pos: int, limit: int) -> int:
    """Move a cut forward to a word boundary so a snippet does not open mid-word."""
    if pos == 0 or text[pos - 1].isspace():
        return pos
    return next((i for i in range(pos, limit) if text[i].isspace()), limit)


def _word_end(text: str, pos: int, limit: int) -> int:
    """Move a cut back to a word boundary so a snippet does not close mid-word."""
    if pos >= len(text) or text[pos].isspace():
        return pos
    return next((i for i in range(pos - 1, limit - 1, -1) if text[i].isspace()), limit)
