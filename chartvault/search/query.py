"""User query parsing shared by both backends: whoosh's QueryParser, restricted and made crash-proof.

The parsed whoosh query tree is the single source of truth: the whoosh backend runs it as is, the
tantivy backend translates it node by node, and the highlighter takes its positive terms from it, so
the two backends accept the same syntax and agree on what matched.

Syntax: words (all required: staff expect extra words to narrow), ``"phrases"``, ``AND`` / ``OR`` /
``NOT`` (upper case; lower-case ``and``/``or``/``not`` are ordinary words), ``(groups)`` and ``prefix*``.
Field syntax (``mrn:…``), ranges, boosts and inner wildcards are deliberately not parsed: filters are
the API's job, and leading/inner wildcards would scan the whole term dictionary.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

from whoosh import fields
from whoosh import query as wq
from whoosh.qparser import GroupPlugin, MultifieldParser, OperatorsPlugin, PhrasePlugin, PrefixPlugin

from chartvault.search.analysis import ANALYZER, terms

log = logging.getLogger(__name__)

TEXT_FIELD = "text"
NAME_FIELD = "patient_name"
SEARCH_FIELDS = (TEXT_FIELD, NAME_FIELD)
# A hit on the patient's name should outrank a passing mention of the same word in the pages.
FIELD_BOOSTS = {NAME_FIELD: 2.0}
# Longer input is truncated: nobody types more, and pasted pages would make parsing slow.
MAX_QUERY_CHARS = 1_000

_ALLOWED_NODES = (wq.And, wq.Or, wq.Not, wq.Term, wq.Phrase, wq.Prefix)


def text_field() -> fields.TEXT:
    """The field type of ``text`` and ``patient_name`` (positions kept for phrases, nothing stored)."""
    return fields.TEXT(analyzer=ANALYZER, stored=False, phrase=True, multitoken_query="phrase")


@dataclass(frozen=True, slots=True)
class MatchSpec:
    """What to highlight: the positive (not negated) terms of a query, already analyzed."""

    terms: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    phrases: tuple[tuple[str, ...], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.terms or self.prefixes or self.phrases)


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
    ],
)


@lru_cache(maxsize=512)
def parse_user_query(text: str | None) -> ParsedQuery | None:
    """Parse what a user typed; ``None`` when it holds nothing searchable. Never raises on bad syntax."""
    if not text or not text.strip():
        return None
    text = text[:MAX_QUERY_CHARS]
    try:
        q = _PARSER.parse(text).normalize()
        if q is wq.NullQuery or not _is_supported(q):
            raise ValueError(f"unsupported query tree {q!r}")
    except Exception:  # whoosh has many ways to choke on odd input; users must never see that
        log.debug("query %r not parsed, falling back to plain terms", text, exc_info=True)
        q = _plain_terms_query(text)
    if q is wq.NullQuery:
        return None
    return ParsedQuery(query=q, match=_match_spec(q))


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
    if isinstance(q, wq.Phrase | wq.Term | wq.Prefix):
        return q.fieldname in SEARCH_FIELDS
    return all(_is_supported(child) for child in q.children())


def _match_spec(q: wq.Query) -> MatchSpec:
    found_terms: set[str] = set()
    prefixes: set[str] = set()
    phrases: set[tuple[str, ...]] = set()

    def walk(node: wq.Query) -> None:
        if isinstance(node, wq.Not):
            return  # negated words are, by definition, not in the hits
        if isinstance(node, wq.Term):
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
    return MatchSpec(frozenset(found_terms), tuple(sorted(prefixes)), tuple(sorted(phrases)))
