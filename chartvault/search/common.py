"""Plumbing shared by the backends: schema-version file, write locks, hit assembly, "did you mean",
field filters typed in the query, stable ordering, fingerprints and "more like this" key terms."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import threading
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

from whoosh import query as wq

from chartvault.errors import InvalidInput
from chartvault.search.analysis import normalize, terms, tokens, within_edits
from chartvault.search.cursor import MAX_CURSOR_DEPTH, MAX_PAGE_SIZE
from chartvault.search.highlight import highlight
from chartvault.search.query import (
    TEXT_FIELD,
    MatchSpec,
    ParsedQuery,
    fuzzy_variant,
    parse_user_query,
    rewrite_words,
)
from chartvault.search.types import (
    SORT_ORDERS,
    IndexDocument,
    PageLoader,
    SearchHit,
    SearchQuery,
    SearchResults,
)

log = logging.getLogger(__name__)

SCHEMA_FILE = "schema.json"

_locks_guard = threading.Lock()
_write_locks: dict[str, threading.Lock] = {}


def write_lock(path: Path) -> threading.Lock:
    """One lock per index folder for the whole process, shared by every backend instance on it.

    It serialises writers between threads. Between processes the engines' own lock files make a second
    writer fail fast; the application must run a single indexing process.
    """
    key = str(path.resolve())
    with _locks_guard:
        return _write_locks.setdefault(key, threading.Lock())


def read_schema_version(path: Path) -> int | None:
    """The schema version recorded when the index was created (None: unknown, treat as outdated)."""
    try:
        return int(json.loads((path / SCHEMA_FILE).read_text())["schema_version"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_schema_version(path: Path, backend: str, version: int) -> None:
    """Record the schema version atomically, so a later release can detect indexes needing a rebuild."""
    tmp = path / (SCHEMA_FILE + ".tmp")
    tmp.write_text(json.dumps({"backend": backend, "schema_version": version}) + "\n")
    os.replace(tmp, path / SCHEMA_FILE)


def unique_docs(docs: Sequence[IndexDocument]) -> list[IndexDocument]:
    """Drop repeated ids in one batch (last wins): engines would otherwise keep both copies."""
    return list({doc.doc_id: doc for doc in docs}.values())


def check_sort(sort: str) -> None:
    """Reject an unknown order loudly (the API turns ValueError into a 4xx) rather than guess."""
    if sort not in SORT_ORDERS:
        raise ValueError(f"unknown sort {sort!r}; expected one of {', '.join(SORT_ORDERS)}")


def year_of(date_key: int) -> str:
    """``YYYYMMDD`` (int or str) to the ``"YYYY"`` facet key."""
    return f"{int(date_key) // 10_000:04d}"


def page_window(limit: int, offset: int) -> tuple[int, int]:
    """Caller-supplied paging as sane non-negative values, refused past the deepest position.

    Engines allocate room for ``offset + limit`` hits: an unbounded offset is an unbounded allocation
    (tantivy aborts the process on one), so the bound is enforced here for every caller.
    """
    if offset > MAX_CURSOR_DEPTH or limit > MAX_PAGE_SIZE:
        raise InvalidInput(f"offset at most {MAX_CURSOR_DEPTH:,} and limit at most {MAX_PAGE_SIZE}")
    return max(0, limit), max(0, offset)


def build_hits(
    rows: Sequence[tuple[str, float]], parsed: ParsedQuery | None, load_pages: PageLoader | None
) -> list[SearchHit]:
    """Turn ``(doc_id, score)`` rows into hits, with pages and snippets when text is available.

    Queries without positive terms (filters only, or only ``NOT …``) get no snippets, and the loader
    is not even called. A loader raising ``LookupError`` (document gone from the catalog but not yet
    from the index) yields a hit without snippets rather than failing the whole search.
    """
    spec = parsed.match if parsed is not None else None
    hits: list[SearchHit] = []
    for doc_id, score in rows:
        hit = SearchHit(doc_id=doc_id, score=score)
        if load_pages is not None and spec:
            try:
                pages = load_pages(doc_id)
            except LookupError:
                log.warning("search hit %s has no pages in the catalog", doc_id)
            else:
                hit.pages, hit.snippets = highlight(pages, spec)
        hits.append(hit)
    return hits


# Runs one parsed query (None: filters only) with the caller's filters and paging.
QueryRunner = Callable[[ParsedQuery | None, PageLoader | None], SearchResults]
SUGGESTION_HITS = 10  # hits whose pages are read to pick the corrected words


def search_with_suggestion(
    text: str | None, run: QueryRunner, load_pages: PageLoader | None
) -> SearchResults:
    """Run the query; when words were typed and nothing matched, retry with fuzzy words.

    OCR misreads words and users mistype them; an empty page is the worst answer. The retry keeps
    every filter, bends only positive alphabetic words of 4+ letters (``query.auto_edits``), and its
    results carry ``suggestion`` so the UI can say what was searched instead.
    """
    parsed = parse_user_query(text)
    loader = _memoized(load_pages)
    results = run(parsed, loader)
    if results.total or parsed is None or not text:
        return results
    fuzzy = fuzzy_variant(parsed)
    if fuzzy is None:
        return results
    retry = run(fuzzy, loader)
    if not retry.total:
        return results
    retry.suggestion = _suggestion(text, fuzzy, retry.hits[:SUGGESTION_HITS], loader)
    return retry


def _memoized(load_pages: PageLoader | None) -> PageLoader | None:
    """The loader, remembering pages for one search (snippets and the suggestion both read them)."""
    if load_pages is None:
        return None
    cache: dict[str, Sequence[str]] = {}

    def load(doc_id: str) -> Sequence[str]:
        if doc_id not in cache:
            cache[doc_id] = load_pages(doc_id)
        return cache[doc_id]

    return load


def _suggestion(text: str, fuzzy: ParsedQuery, hits: Sequence[SearchHit], load: PageLoader | None) -> str:
    """``text`` with each bent word replaced by the closest, then most frequent, word of the hits."""
    wanted = dict(fuzzy.match.fuzzy)
    counts: dict[str, Counter[str]] = {term: Counter() for term in wanted}
    spellings: dict[str, Counter[str]] = {}
    for hit in hits:
        try:
            pages = load(hit.doc_id) if load is not None else ()
        except LookupError:
            continue
        for page in pages:
            for term, start, end in tokens(page):
                for target, edits in wanted.items():
                    if within_edits(term, target, edits):
                        counts[target][term] += 1
                        spellings.setdefault(term, Counter())[page[start:end].lower()] += 1
    chosen: dict[str, str | None] = {}  # None: the word as typed was right
    for target, found in counts.items():
        if found:
            best = min(found, key=lambda t: (_distance(t, target, wanted[target]), -found[t], t))
            chosen[target] = None if best == target else spellings[best].most_common(1)[0][0]

    def replace(m: re.Match[str]) -> str:
        term = normalize(m.group())
        if term in chosen:
            return chosen[term] or m.group()
        if term in wanted and not m.string.startswith("~", m.end()):
            return m.group() + ("~" if wanted[term] == 1 else f"~{wanted[term]}")
        return m.group()

    return rewrite_words(text, replace)


def _distance(a: str, b: str, limit: int) -> int:
    return next((k for k in range(limit + 1) if within_edits(a, b, k)), limit + 1)


# -- field filters ------------------------------------------------------------------------------------

# ``name:jones``, ``name:"alice jones"``, ``icd:E11.9``, ``icd:E11*`` typed in the search box. Only these two
# are lifted out of the text: MRN, type, dates and batch already have their own inputs.
_FIELD_RE = re.compile(r'(?<![\w:])(name|icd):(?:"([^"]*)"?|(\S+))', re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Filters:
    """The filters of one query, after lifting ``name:``/``icd:`` out of the typed text."""

    text: str | None
    names: tuple[str, ...]  # each: every word required in the patient name
    icds: tuple[str, ...]  # each: a normalised code, or a prefix ending in ``*``


def split_field_filters(query: SearchQuery) -> Filters:
    """Lift ``name:`` and ``icd:`` terms out of the text and merge them with the query's own filters."""
    names: list[str] = [query.name] if query.name and query.name.strip() else []
    icds: list[str] = [query.icd] if query.icd and query.icd.strip() else []
    text = query.text

    def lift(m: re.Match[str]) -> str:
        value = m.group(2) if m.group(2) is not None else m.group(3)
        (names if m.group(1).lower() == "name" else icds).append(value)
        return " "

    if text and ":" in text:
        text = _FIELD_RE.sub(lift, text)
    codes = tuple(code for code in (normalize_icd_query(v) for v in icds) if code)
    return Filters(text, tuple(n for n in names if terms(n)), codes)


def normalize_icd(code: str) -> str:
    """ICD-10 codes compare without case, dots or spaces: ``e11.9`` and ``E119`` are the same code."""
    return re.sub(r"[^0-9A-Za-z]", "", code).upper()


def normalize_icd_query(value: str) -> str:
    """A typed code or category prefix (``E11*``); "" when nothing of it can match."""
    value = value.strip()
    prefix = value.endswith("*")
    code = normalize_icd(value.rstrip("*"))
    return (code + "*") if prefix and code else code


# -- stable ordering ----------------------------------------------------------------------------------

Row = tuple[str, float]  # (doc_id, score)


def stable_window(
    fetch: Callable[[int], list[tuple[str, Hashable, float]]],
    total: int,
    offset: int,
    limit: int,
    key: Callable[[tuple[str, Hashable, float]], tuple[object, ...]],
) -> list[Row]:
    """Rows ``offset``..``offset+limit`` of a result ordered by ``key`` with ties broken by document id.

    ``fetch(n)`` returns the engine's first ``n`` rows as ``(doc_id, sort_value, score)``, first asked
    for ``offset + limit + 1``; engines order ties arbitrarily (by internal address, which merges
    change), so a tie group crossing the window's end is fetched whole before sorting: pages then
    never repeat or skip a document.
    """
    want = offset + limit
    if limit == 0 or offset >= total:
        return []
    n = want + 1  # one row past the window shows whether a tie group runs on beyond it
    while True:
        rows = fetch(n)
        if len(rows) < n or n >= total:
            break
        boundary = sorted(rows, key=key)[want - 1][1]
        if rows[-1][1] != boundary:  # the engine's last row sorts after the window's last value
            break
        n *= 2
    ordered = sorted(rows, key=key)
    return [(doc_id, score) for doc_id, _, score in ordered[offset:want]]


def fingerprint(doc: IndexDocument) -> str:
    """A digest of everything indexed for a document: a different digest in the catalog means stale."""
    h = hashlib.blake2b(digest_size=12)
    parts = (
        doc.doc_id,
        doc.mrn,
        doc.patient_name,
        doc.doc_type,
        doc.date_of_service.isoformat() if doc.date_of_service else None,
        doc.batch_id,
        doc.encounter,
        " ".join(sorted({normalize_icd(c) for c in doc.icd_codes})),
    )
    for part in parts:
        h.update((part or "").encode())
        h.update(b"\x1f")
    for page in doc.pages:
        h.update(page.encode())
        h.update(b"\x1e")
    return h.hexdigest()


# -- more like this -----------------------------------------------------------------------------------

MLT_TERMS = 20
MLT_MAX_DF_SHARE = 0.3  # words in more documents than this say nothing about a document
MLT_MIN_COMMON_DF = 10  # ...but in a small archive, a word in 3 of 6 documents is not "common"


def key_terms(
    pages: Sequence[str],
    exclude: set[str],
    doc_freq: Callable[[str], int],
    n_docs: int,
    k: int = MLT_TERMS,
) -> list[tuple[str, float]]:
    """The document's ``k`` most distinctive words, by tf-idf against the index.

    Identifiers (the patient's MRN and name, passed in ``exclude``) and words with digits (values,
    dates) are left out: "similar" should mean similar clinical content, not the same patient.
    Words found in no other document cannot find anything and are skipped.
    """
    tf = Counter(t for page in pages for t in terms(page))
    scored: list[tuple[str, float]] = []
    for term, count in tf.items():
        if len(term) < 3 or term in exclude or any(ch.isdigit() for ch in term):
            continue
        df = doc_freq(term)
        if df < 2 or df > max(MLT_MIN_COMMON_DF, n_docs * MLT_MAX_DF_SHARE):
            continue
        scored.append((term, (1 + math.log(count)) * math.log((n_docs + 1) / df)))
    scored.sort(key=lambda item: (-item[1], item[0]))
    return scored[:k]


def similar_query(weighted: Sequence[tuple[str, float]]) -> ParsedQuery | None:
    """An OR of the key terms, each boosted by its weight; None when there are none."""
    if not weighted:
        return None
    top = weighted[0][1] or 1.0
    q = wq.Or([wq.Term(TEXT_FIELD, term, boost=round(w / top, 4)) for term, w in weighted])
    return ParsedQuery(query=q, match=MatchSpec(terms=frozenset(t for t, _ in weighted)))
