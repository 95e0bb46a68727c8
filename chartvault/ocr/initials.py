"""A middle initial tesseract glued to the given name ('LEE, LINDAB'): split where the ink shows a space.

Label print is small (9-10 pt) and tesseract's word segmentation often drops the space before a lone
capital, on clean scans too: two of the corpus's eighty scanned labels and most of one tuning layout read
'LAST, FIRSTM'. No text rule can tell 'LINDAB' from a name that ends in B, but the pixels can: inside the
word's box, the blank columns before its last glyph are as wide as a word space, much wider than the gaps
between its letters. Only a word right after a 'SURNAME,' on the same line is looked at, so report text is
never touched; the word is split into two boxes and the page text follows.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
from PIL import Image

from chartvault.ocr.tess import OcrPass
from chartvault.ocr.types import Word

__all__ = ["split_glued_initials"]

_SURNAME = re.compile(r"^[A-Z][A-Z'\-]*,$")
_GIVEN_AND_INITIAL = re.compile(r"^[A-Z][A-Z'\-]{2,}[A-Z]$")
_ALL_GLUED = re.compile(r"^[A-Z][A-Z'\-]*,[A-Z][A-Z'\-]{2,}[A-Z]$")  # 'LEE,STEVENP': one word for the name
# The blank before a glued initial measured 0.37-0.60 of the letters' height on tuning label pages, the
# blank before a given name's own last letter 0.06-0.22 (python -m bench.generated --split tuning). The
# height is the ink's before the blank, not the box's: a 'J' hangs below the line and made 'PETRA J' a
# box a third taller than its capitals (0.30 of it, tuning seed 11), though its blank was a word space.
_SPACE_OF_HEIGHT = 0.3
_SPACE_OF_LETTER_GAP = 1.5


def split_glued_initials(p: OcrPass, image: Image.Image) -> OcrPass:
    """``p`` with each 'FIRSTM' that follows a 'SURNAME,' (or 'SURNAME,FIRSTM' read as one word) and shows
    a space before its last glyph split in two words ('FIRST', 'M'); the boxes are in ``image``'s pixels.
    Unchanged when there is none."""
    splits: dict[int, tuple[Word, Word]] = {}
    for i in range(len(p.words)):
        word, before = p.words[i], p.words[i - 1] if i else p.words[i]
        after = p.words[i + 1] if i + 1 < len(p.words) and _same_line(word, p.words[i + 1]) else None
        text = word.text.rstrip("_")  # the LSTM adds a '_' after a final 'L' or 'H' the paper does not have
        named = _ALL_GLUED.match(text) or (
            _GIVEN_AND_INITIAL.match(text) and _SURNAME.match(before.text) and _same_line(before, word)
        )
        if not named or (after is not None and _is_initial(after.text)):
            continue  # not a name, or its initial is printed apart already: the whole given name
        # LSTM word boxes can reach into the space after the word, even the next word's first glyph
        right = min(word.left + word.width, after.left) if after is not None else word.left + word.width
        cut = _space_before_last_glyph(image, replace(word, width=right - word.left))
        if cut is not None:
            first, last = text[:-1], text[-1]
            rest = word.width - cut[1]
            splits[i] = (
                Word(first, word.conf, word.left, word.top, cut[0], word.height),
                Word(last, word.conf, word.left + cut[1], word.top, rest, word.height),
            )
    if not splits:
        return p
    return replace(p, text=_split_text(p, splits), words=_split_words(p.words, splits))


def _is_initial(text: str) -> bool:
    letters = text.rstrip(".")
    return len(letters) == 1 and letters.isalpha()


def _same_line(a: Word, b: Word) -> bool:
    overlap = min(a.top + a.height, b.top + b.height) - max(a.top, b.top)
    return overlap > 0.5 * min(a.height, b.height) and b.left > a.left


def _space_before_last_glyph(image: Image.Image, word: Word) -> tuple[int, int] | None:
    """(width of the part before the gap, where the last glyph starts), both from the box's left edge, when
    the blank run before the last glyph is a word space; None when it is a letter gap."""
    box = (word.left, word.top, word.left + word.width, word.top + word.height)
    if word.width < 4 or word.height < 6 or box[2] > image.width or box[3] > image.height:
        return None
    grey = np.asarray(image.crop(box).convert("L"), dtype=np.uint8)
    threshold = (int(grey.min()) + int(grey.max())) / 2
    ink: np.ndarray = np.asarray(grey < threshold)
    runs = _blank_runs(np.asarray(ink.any(axis=0)))
    if not runs:
        return None
    start, end = runs[-1]  # the blank run before the last glyph (runs inside the ink only)
    gap = end - start
    letter_gaps = sorted(e - s for s, e in runs[:-1])  # the median: 'LEE,STEVENP' has a space after its comma
    typical = letter_gaps[len(letter_gaps) // 2] if letter_gaps else 0
    rows = np.flatnonzero(ink[:, :start].any(axis=1))
    height = int(rows[-1] - rows[0] + 1) if rows.size else word.height
    if gap < _SPACE_OF_HEIGHT * height or gap < _SPACE_OF_LETTER_GAP * max(typical, 1):
        return None
    return start, end


def _blank_runs(inked: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of every run of columns without ink between the first and the last inked column."""
    columns = np.flatnonzero(inked)
    if columns.size == 0:
        return []
    runs: list[tuple[int, int]] = []
    start = None
    for x in range(int(columns[0]), int(columns[-1]) + 1):
        if not inked[x] and start is None:
            start = x
        elif inked[x] and start is not None:
            runs.append((start, x))
            start = None
    return runs


def _split_words(words: list[Word], splits: dict[int, tuple[Word, Word]]) -> list[Word]:
    out: list[Word] = []
    for i, w in enumerate(words):
        out.extend(splits.get(i, (w,)))
    return out


def _split_text(p: OcrPass, splits: dict[int, tuple[Word, Word]]) -> str:
    """The page text with each split word written as its two parts (the text is the words in order)."""
    text, cursor, edits = p.text, 0, []
    for i, w in enumerate(p.words):
        at = text.find(w.text, cursor)
        if at < 0:
            return text  # not the words in order (should not happen): leave the text as read
        if i in splits:
            edits.append((at, at + len(w.text), f"{splits[i][0].text} {splits[i][1].text}"))
        cursor = at + len(w.text)
    for start, end, parts in reversed(edits):
        text = text[:start] + parts + text[end:]
    return text
