"""Text analysis shared by every backend, so that indexing, querying and highlighting see the same tokens.

Choice of analyzer (neither whoosh's StemmingAnalyzer nor its StandardAnalyzer as shipped):

* Words are runs of letters/digits (``[^\\W_]+``), lowercased and accent-folded, so ``José`` matches
  ``Jose`` and ``COVID-19`` becomes ``covid 19`` (searched as a phrase).
* **No stop words and no minimum length.** Whoosh's default stop list drops ``not`` ("not diabetic"),
  ``us`` (ultrasound) and ``may``, and its two-letter minimum drops ``D`` in "vitamin D" and ``2`` in
  "type 2". In clinical text those carry meaning.
* **Plural-only stemming** (Harman's S-stemmer) instead of Porter: ``fractures`` finds ``fracture`` and
  ``studies`` finds ``study``, but ``medical``/``medication`` and ``organ``/``organization`` stay apart
  (Porter conflates them), and a truncated word typed as a prefix (``medica*``) still matches, which it
  would not against Porter stems (``medic``).
* Words longer than ``MAX_TOKEN_CHARS`` (OCR garbage) are not indexed.

Tantivy receives text already analyzed here (space-joined terms, indexed with its ``whitespace``
tokenizer) rather than tokenizing it itself, which guarantees both backends hold identical terms.

``ChartTokenizer`` is pickled into the whoosh index's schema: renaming or moving it makes existing
whoosh indexes unreadable, so any such change must bump ``SCHEMA_VERSION`` and rebuild.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from functools import lru_cache
from typing import Any

from whoosh.analysis import Token, Tokenizer
from whoosh.support.charset import accent_map

from chartvault.search.types import IndexDocument

WORD_RE = re.compile(r"[^\W_]+")
MAX_TOKEN_CHARS = 64


def plural_stem(word: str) -> str:
    """Harman's S-stemmer: strip English plural endings only (conservative for clinical vocabulary)."""
    if len(word) <= 3:
        return word
    if word.endswith("ies") and not word.endswith(("eies", "aies")):
        return word[:-3] + "y"
    if word.endswith("es") and not word.endswith(("aes", "ees", "oes")):
        return word[:-1]
    if word.endswith("s") and not word.endswith(("us", "ss")):
        return word[:-1]
    return word


@lru_cache(maxsize=200_000)
def normalize(word: str) -> str:
    """Map one word to its index term ("" when the word is not indexed); cached because it is hot."""
    term = word.lower().translate(accent_map)
    if not term or len(term) > MAX_TOKEN_CHARS:
        return ""
    return plural_stem(term)


def tokens(text: str) -> Iterator[tuple[str, int, int]]:
    """Yield ``(term, start_char, end_char)`` for every indexed word of ``text``."""
    for m in WORD_RE.finditer(text):
        term = normalize(m.group())
        if term:
            yield term, m.start(), m.end()


@lru_cache(maxsize=200_000)
def within_edits(a: str, b: str, k: int) -> bool:
    """Whether plain Levenshtein distance (no transpositions, as both engines count) is at most ``k``.

    Cached: highlighting a fuzzy word compares it with every word of the hits' pages, mostly repeats.
    """
    if abs(len(a) - len(b)) > k:
        return False
    if a == b:
        return True
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        if min(current) > k:
            return False  # every later row only grows
        previous = current
    return previous[-1] <= k


def terms(text: str) -> list[str]:
    """The index terms of ``text`` in order (positions are list indexes).

    Same terms as ``tokens`` without the offsets; ~2x faster, which matters when indexing.
    """
    return [term for term in map(normalize, WORD_RE.findall(text)) if term]


class ChartTokenizer(Tokenizer):
    """Whoosh tokenizer doing the whole analysis in one pass (faster than a filter chain)."""

    def __call__(
        self,
        value: str,
        positions: bool = False,
        chars: bool = False,
        keeporiginal: bool = False,
        removestops: bool = True,
        start_pos: int = 0,
        start_char: int = 0,
        tokenize: bool = True,
        mode: str = "",
        **kwargs: Any,
    ) -> Iterator[Token]:
        t = Token(positions, chars, removestops=removestops, mode=mode, **kwargs)
        if not tokenize:
            # Prefix queries: the typed text as one term, normalised but not split.
            term = normalize(value)
            if term:
                t.text = term
                t.boost = 1.0
                t.stopped = False
                if keeporiginal:
                    t.original = value
                if positions:
                    t.pos = start_pos
                if chars:
                    t.startchar, t.endchar = start_char, start_char + len(value)
                yield t
            return
        pos = start_pos
        for term, start, end in tokens(value):
            t.text = term
            t.boost = 1.0
            t.stopped = False
            if keeporiginal:
                t.original = value[start:end]
            if positions:
                t.pos = pos
                pos += 1
            if chars:
                t.startchar, t.endchar = start_char + start, start_char + end
            yield t


ANALYZER = ChartTokenizer()


def header_text(doc: IndexDocument) -> str:
    """Identifiers indexed as free text too, so an MRN or a name typed in the search box matches."""
    return " ".join(part for part in (doc.mrn, doc.patient_name) if part)


def index_text(doc: IndexDocument) -> str:
    """Everything the ``text`` field indexes: header identifiers, then the pages in order."""
    return "\n".join([header_text(doc), *doc.pages])


def date_key(value: date) -> int:
    """``YYYYMMDD`` as an int: sortable, and fixed width even for years before 1000."""
    return value.year * 10_000 + value.month * 100 + value.day
