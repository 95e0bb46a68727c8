"""User query parsing shared by both backends: whoosh's QueryParser, restricted and made crash-proof.

The parsed whoosh query tree is the single source of truth: the whoosh backend runs it as is, the
tantivy backend translates it node by node, and the highlighter takes its positive terms from it, so
the two backends accept the same syntax and agree on what matched.

Syntax: words (all required: staff expect extra words to narrow), ``"phrases"``, ``AND`` / ``OR`` /
``NOT`` (upper case; lower-case ``and``/``or``/``not`` are ordinary words), ``(groups)``, ``prefix*`` and
``word~`` / ``word~2`` (fuzzy: within 1 or 2 edits, for OCR misreadings; plain Levenshtein, so a swap of
two letters counts 2, and no common prefix is required, because both engines can do exactly that).
Field syntax (``mrn:…``), ranges, boosts and inner wildcards are deliberately not parsed: filters are
the API's job, and leading/inner wildcards would scan the whole term dictionary.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from whoosh import fields
from whoosh import query as wq
from whoosh.qparser import (
    FuzzyTermPlugin,
    GroupPlugin,
    MultifieldParser,
    OperatorsPlugin,
    PhrasePlugin,
    PrefixPlugin,
)

from chartvault.search.analysis import ANALYZER, WORD_RE, terms

log = logging.getLogger(__name__)

TEXT_FIELD = "text"
NAME_FIELD = "patient_name"
SEARCH_FIELDS = (TEXT_FIELD, NAME_FIELD)
# A hit on the patient's name should outrank a passing mention of the same word in the pages.
FIELD_BOOSTS = {NAME_FIELD: 2.0}
# Longer input is truncated: nobody types more, and pasted pages would make parsing slow.
MAX_QUERY_CHARS = 1_000
MAX_EDITS = 2  # beyond two edits nearly every short word matches, and automata get slow

_ALLOWED_NODES = (wq.And, wq.Or, wq.Not, wq.Term, wq.Phrase, wq.Prefix, wq.FuzzyTerm)


def text_field() -> fields.TEXT:
    """The field type of ``text`` and ``patient_name`` (positions kept for phrases, nothing stored)."""
    return fields.TEXT(analyzer=ANALYZER, stored=False, phrase=True, multitoken_query="phrase")


@dataclass(frozen=True, slots=True)
class MatchSpec:
    """What to highlight: the positive (not negated) terms of a query, already analyzed."""

    terms: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    phrases: tuple[tuple[str, ...], ...] = ()
    fuzzy: tuple[tuple[str, int], ...] = ()  # (term, max edits)

    def __bool__(self) -> bool:
        return bool(self.terms or self.prefixes or self.phrases or self.fuzzy)


@dataclass(frozen=True, slots=True)
class ParsedQuery:
    """A parsed user query over ``SEARCH_FIELDS``. Treat as immutable: instances are cached."""

    query: wq.Query
    match: MatchSpec


_PARSER = MultifieldParser(
    list(SEARCH_FIELDS),
    fields.Schema(**{name: text_field() for name in SEARCH_FIELDS}),
    fieldboosts=FIELD_BOOSTS,
    plugins=[
        PhrasePlugin(),
        GroupPlugin(),
        OperatorsPlugin(AndNot=None, AndMaybe=None, Require=None),
        PrefixPlugin(),
        FuzzyTermPlugin(),
    ],
)


@lru_cache(maxsize=512)
def parse_user_query(text: str | None) -> ParsedQuery | None:
    """Parse what a user typed; ``None`` when it holds nothing searchable. Never raises on bad syntax."""
    if not text or not text.strip():
        return None
    text = text[:MAX_QUERY_CHARS]
    try:
        q = _PARSER.parse(text).accept(_uniform_fuzzy).normalize()
        if q is wq.NullQuery or not _is_supported(q):
            raise ValueError(f"unsupported query tree {q!r}")
    except Exception:  # whoosh has many ways to choke on odd input; users must never see that
        # The query text may be a patient's name: log that it happened, never what was typed.
        log.debug("query not parsed (%d chars), falling back to plain terms", len(text))
        q = _plain_terms_query(text)
    if q is wq.NullQuery:
        return None
    return ParsedQuery(query=q, match=_match_spec(q))


def _uniform_fuzzy(node: wq.Query) -> wq.Query:
    """Fuzzy terms as both engines can run them: 1..MAX_EDITS edits, no required prefix (``~n/p``).

    A fuzzy word is looked up in ``text`` only: the name is indexed there too, and each fuzzy lookup
    walks a term dictionary (slow in whoosh), so the name field's copy would double the cost for
    nothing but a boost.
    """
    if isinstance(node, wq.FuzzyTerm):
        if node.fieldname == NAME_FIELD:
            return wq.NullQuery  # dropped from its OR with the text twin by normalize()
        edits = min(MAX_EDITS, max(1, int(node.maxdist)))
        return wq.FuzzyTerm(node.fieldname, node.text, boost=node.boost, maxdist=edits, prefixlength=0)
    return node


def auto_edits(term: str) -> int:
    """Edits tolerated when guessing what a query that found nothing meant (0: leave the word alone).

    Words with digits (MRNs, doses, dates) are never bent: a near-miss MRN is another patient.
    """
    if len(term) < 4 or not term.isalpha():
        return 0
    return 1 if len(term) < 8 else 2


def fuzzy_variant(parsed: ParsedQuery) -> ParsedQuery | None:
    """The query with every positive plain word made fuzzy (``auto_edits``); None if nothing changes."""
    changed = False

    def bend(node: wq.Query, negated: bool) -> wq.Query:
        nonlocal changed
        if isinstance(node, wq.Not):
            return wq.Not(bend(node.query, True), boost=node.boost)
        if isinstance(node, wq.And | wq.Or):
            return type(node)([bend(child, negated) for child in node.subqueries], boost=node.boost)
        if isinstance(node, wq.Term) and not negated:
            edits = auto_edits(node.text)
            if edits:
                changed = True
                return wq.FuzzyTerm(node.fieldname, node.text, node.boost, maxdist=edits, prefixlength=0)
        return node

    q = bend(parsed.query, False).accept(_uniform_fuzzy).normalize()
    return ParsedQuery(query=q, match=_match_spec(q)) if changed else None


def rewrite_words(text: str, replace: Callable[[re.Match[str]], str]) -> str:
    """``text`` with each word replaced by ``replace(match)``; operators, quotes and spacing kept."""
    return WORD_RE.sub(replace, text[:MAX_QUERY_CHARS])


def _plain_terms_query(text: str) -> wq.Query:
    """Fallback for unparsable input: every word required, operators and quotes ignored."""
    words = list(dict.fromkeys(terms(text)))
    if not words:
        return wq.NullQuery
    return wq.And(
        [
            wq.Or([wq.Term(field, word, boost=FIELD_BOOSTS.get(field, 1.0)) for field in SEARCH_FIELDS])
            for word in words
        ]
    )


def _is_supported(q: wq.Query) -> bool:
    """Only node types both backends (and the highlighter) understand."""
    if not isinstance(q, _ALLOWED_NODES):
        return False
    if isinstance(q, wq.Phrase | wq.Term | wq.Prefix | wq.FuzzyTerm):
        return q.fieldname in SEARCH_FIELDS
    return all(_is_supported(child) for child in q.children())


def _match_spec(q: wq.Query) -> MatchSpec:
    found_terms: set[str] = set()
    prefixes: set[str] = set()
    phrases: set[tuple[str, ...]] = set()
    fuzzy: set[tuple[str, int]] = set()

    def walk(node: wq.Query) -> None:
        if isinstance(node, wq.Not):
            return  # negated words are, by definition, not in the hits
        if isinstance(node, wq.FuzzyTerm):
            fuzzy.add((node.text, int(node.maxdist)))
        elif isinstance(node, wq.Term):
            found_terms.add(node.text)
        elif isinstance(node, wq.Prefix):
            prefixes.add(node.text)
        elif isinstance(node, wq.Phrase):
            if len(node.words) == 1:
                found_terms.add(node.words[0])
            elif node.words:
                phrases.add(tuple(node.words))
        else:
            for child in node.children():
                walk(child)

    walk(q)
    return MatchSpec(
        frozenset(found_terms), tuple(sorted(prefixes)), tuple(sorted(phrases)), tuple(sorted(fuzzy))
    )
