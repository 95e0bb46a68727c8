"""Where things are printed on a page: rows, field gaps, label bands and label blocks from OCR word boxes.

Tesseract's text runs a label box and the hospital name beside it into one line and loses the double
spaces that separate label fields; the word boxes keep both. Rows are rebuilt from the boxes, a wide gap
inside a row becomes two spaces (a field boundary the patterns understand), a very wide one a segment
boundary (another column), and segments that touch vertically form blocks: a thermal label, an
addressograph imprint, a form strip. The top and bottom bands of the page are where labels live.

Without word boxes (older rows, plain text) every text line is one row and one segment, and the first and
last lines stand in for the bands, as they did before word boxes were used.
"""

from __future__ import annotations

import itertools
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from chartvault.ocr.types import LABEL_BOTTOM, LABEL_TOP, Word

__all__ = ["Row", "Segment", "blocks", "page_rows"]

# Without boxes: lines counted as the top and bottom bands.
TEXT_HEADER_LINES = 14
TEXT_FOOTER_LINES = 3
# Gaps, relative to the row's narrowest gap and to the median word height.
_FIELD_GAP_VS_SPACE = 1.7
_FIELD_GAP_MIN_HEIGHTS = 0.45
_MIN_SPACE_HEIGHTS = 0.2
_SEGMENT_GAP_HEIGHTS = 2.5
_ROW_CENTRE_HEIGHTS = 0.55
_BLOCK_GAP_HEIGHTS = 1.3
_BLOCK_ROW_GAP_HEIGHTS = 6.0
_PROSE_WORDS = 5  # lower-case words of 3+ letters that make a segment report text, not a label
_PROSE_WORD = re.compile(r"\b[a-z]{3,}\b")


@dataclass(slots=True)
class Segment:
    """Words of one row between two very wide gaps: a column of a row. Boxes in page pixels."""

    text: str
    row: int
    offset: int  # where the segment's text starts in its row's text
    left: int
    top: int
    right: int
    bottom: int

    @property
    def prose(self) -> bool:
        """Report text rather than label text (labels are capitals, digits and a few mixed-case words)."""
        return len(_PROSE_WORD.findall(self.text)) >= _PROSE_WORDS


@dataclass(slots=True)
class Row:
    """One printed line of the page, left to right."""

    text: str
    band: bool  # in the top or bottom band, where labels live
    index: int
    segments: list[Segment] = field(default_factory=list)
    height: int = 1  # median word height of the page (1 without boxes)
    # Words and their character spans in ``text``, for values printed under their key (form grids).
    words: list[tuple[Word, int, int]] = field(default_factory=list)
    # For a row rebuilt from a key above its value: (row index, start, end) of the value's words.
    sources: list[tuple[int, int, int]] = field(default_factory=list)


def page_rows(text: str, words: Sequence[Word] | None, page_size: tuple[int, int] | None) -> list[Row]:
    """The page as rows: rebuilt from word boxes when there are any, else the text's own lines."""
    usable = [w for w in (words or []) if w.text.strip() and w.width > 0 and w.height > 0]
    if not usable:
        return _text_rows(text)
    height = page_size[1] if page_size and page_size[1] > 0 else max(w.top + w.height for w in usable)
    return _word_rows(usable, height)


def _text_rows(text: str) -> list[Row]:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n") if text else []
    n = len(lines)
    rows = []
    for i, line in enumerate(lines):
        band = i < TEXT_HEADER_LINES or i >= n - TEXT_FOOTER_LINES
        seg = Segment(line, i, 0, 0, i * 10, max(len(line), 1), i * 10 + 8)
        rows.append(Row(line, band, i, [seg], height=8))
    return rows


def _median_height(words: Sequence[Word]) -> int:
    tall = [w.height for w in words if sum(c.isalnum() for c in w.text) >= 3]
    return max(1, round(statistics.median(tall or [w.height for w in words])))


def _group_rows(words: Sequence[Word], h: int) -> list[list[Word]]:
    """Words whose vertical centres lie within about half a line of each other, top to bottom."""
    rows: list[tuple[float, list[Word]]] = []
    for w in sorted(words, key=lambda w: w.top + w.height / 2):
        cy = w.top + w.height / 2
        best = None
        for k in range(len(rows) - 1, max(-1, len(rows) - 4), -1):
            centre, members = rows[k]
            if abs(cy - centre) <= _ROW_CENTRE_HEIGHTS * h and (best is None or abs(cy - centre) < best[0]):
                best = (abs(cy - centre), k)
        if best is None:
            rows.append((cy, [w]))
        else:
            centre, members = rows[best[1]]
            members.append(w)
            rows[best[1]] = ((centre * (len(members) - 1) + cy) / len(members), members)
    return [sorted(m, key=lambda w: w.left) for _, m in rows]


def _word_rows(words: Sequence[Word], page_height: int) -> list[Row]:
    h = _median_height(words)
    rows = []
    for i, members in enumerate(_group_rows(words, h)):
        rows.append(_build_row(members, i, h, page_height))
    return rows


def _build_row(members: list[Word], index: int, h: int, page_height: int) -> Row:
    """Join a row's words: one space, two at a field gap, four at a segment gap (another column).

    A field gap is judged against the narrowest gap of its own segment, because a label printed beside the
    hospital name uses another font and spacing than the name.
    """
    groups: list[list[Word]] = [[members[0]]]
    for a, b in itertools.pairwise(members):
        if b.left - (a.left + a.width) > _SEGMENT_GAP_HEIGHTS * h:
            groups.append([])
        groups[-1].append(b)
    text = ""
    spans: list[tuple[Word, int, int]] = []
    segments: list[Segment] = []
    for group in groups:
        if text:
            text += "    "
        start = len(text)
        gaps = [b.left - (a.left + a.width) for a, b in itertools.pairwise(group)]
        # a junk glyph ('__', ':') hard against a word is no measure of a space: its gap would make every
        # word space of the row a field gap
        pairs = zip(gaps, itertools.pairwise(group), strict=True)
        space = _space_width([g for g, (a, b) in pairs if _inked(a) and _inked(b)], h)
        for k, w in enumerate(group):
            if k:
                wide = gaps[k - 1] > _FIELD_GAP_VS_SPACE * space and gaps[k - 1] > _FIELD_GAP_MIN_HEIGHTS * h
                text += "  " if wide else " "
            spans.append((w, len(text), len(text) + len(w.text)))
            text += w.text
        segments.append(_segment(group, text[start:], index, start))
    cy = statistics.median(w.top + w.height / 2 for w in members)
    band = cy < LABEL_TOP * page_height or cy > LABEL_BOTTOM * page_height
    return Row(text, band, index, segments, height=h, words=spans)


def _inked(w: Word) -> bool:
    """A word with a letter or digit in it, not a speck or a rule OCR read as punctuation."""
    return any(c.isalnum() for c in w.text)


def _space_width(gaps: list[int], h: int) -> float:
    """One space in this segment: its narrowest gap between words, never below a fifth of a word's
    height (tesseract's boxes of a glyph and the next word can overlap, giving gaps of zero or less)."""
    floor = _MIN_SPACE_HEIGHTS * h
    positive = [g for g in gaps if g > floor]
    return min(positive) if len(positive) >= 2 else max(floor, h * 0.35)


def _segment(words: list[Word], text: str, row: int, offset: int) -> Segment:
    return Segment(
        text,
        row,
        offset,
        min(w.left for w in words),
        min(w.top for w in words),
        max(w.left + w.width for w in words),
        max(w.top + w.height for w in words),
    )


def blocks(rows: Sequence[Row]) -> list[list[Segment]]:
    """Label-like segments of the bands grouped by touching: each group is one label, imprint or strip.

    Report text (``Segment.prose``) never joins a block, so a label printed just above the report does not
    swallow its first line. Segments are linked when one sits right under the other and they overlap
    horizontally, or when they share a row a few characters apart; a block lists its segments top to
    bottom, left to right.
    """
    segs = [s for r in rows if r.band for s in r.segments if s.text.strip() and not s.prose]
    if not segs:
        return []
    h = rows[0].height
    parent = list(range(len(segs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(segs):
        for j in range(i + 1, len(segs)):
            b = segs[j]
            if b.row - a.row > 3:
                break
            if b.row == a.row:  # columns of one label ('MRN    ACCOUNT'), not the letterhead beside it
                linked = 0 < b.left - a.right <= _BLOCK_ROW_GAP_HEIGHTS * h
            else:
                under = 0 <= b.top - a.bottom <= _BLOCK_GAP_HEIGHTS * h
                linked = under and min(a.right, b.right) - max(a.left, b.left) > 0
            if linked:
                parent[find(j)] = find(i)
    groups: dict[int, list[Segment]] = {}
    for i, s in enumerate(segs):
        groups.setdefault(find(i), []).append(s)
    return [sorted(g, key=lambda s: (s.row, s.left)) for g in groups.values()]
