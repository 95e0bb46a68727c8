"""Opaque search cursors: deep paging without letting a caller name an arbitrary offset.

An engine collects ``offset + limit`` hits to answer one page, so the offset a caller may type is
capped (``MAX_SEARCH_OFFSET``). Past it, pages are reached only by following ``next_cursor``: the
cursor carries the position the server reached, bound to the query it was made for, and is refused
beyond ``MAX_CURSOR_DEPTH``. A forged cursor gains nothing: its position is checked against the same
bound, and a cursor of another query is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass

from chartvault.errors import InvalidInput
from chartvault.search.types import SearchQuery

MAX_SEARCH_OFFSET = 10_000  # deepest page reachable by ``offset``
MAX_CURSOR_DEPTH = 100_000  # deepest position a cursor may carry: ~100k hits collected, a few MB
MAX_PAGE_SIZE = 500  # most hits on one page
_VERSION = 1


class BadCursor(InvalidInput):
    code = "bad_cursor"


@dataclass(frozen=True, slots=True)
class CursorPosition:
    position: int
    last_id: str | None


def query_key(query: SearchQuery) -> str:
    """A short digest of everything that decides which hits a query has and in which order."""
    parts = [
        query.text,
        query.mrn,
        query.doc_type,
        query.date_from.isoformat() if query.date_from else None,
        query.date_to.isoformat() if query.date_to else None,
        query.batch_id,
        query.name,
        query.icd,
        query.encounter,
        query.sort,
        query.limit,
    ]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def encode_cursor(query: SearchQuery, position: int, last_id: str | None) -> str | None:
    """The cursor of the page starting at ``position`` (None past the deepest allowed position)."""
    if position > MAX_CURSOR_DEPTH:
        return None
    body = json.dumps({"v": _VERSION, "q": query_key(query), "p": position, "l": last_id}).encode()
    return base64.urlsafe_b64encode(body).rstrip(b"=").decode()


def decode_cursor(cursor: str, query: SearchQuery) -> CursorPosition:
    """The position a cursor stands for; refused if malformed, of another query or too deep."""
    if len(cursor) > 512:
        raise BadCursor("cursor: not a cursor of this service")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError):
        raise BadCursor("cursor: not a cursor of this service") from None
    if not isinstance(data, dict) or data.get("v") != _VERSION:
        raise BadCursor("cursor: not a cursor of this service")
    position, last_id = data.get("p"), data.get("l")
    if not isinstance(position, int) or isinstance(position, bool) or not 0 <= position <= MAX_CURSOR_DEPTH:
        raise BadCursor(f"cursor: position out of range (0-{MAX_CURSOR_DEPTH})")
    if data.get("q") != query_key(query):
        raise BadCursor("cursor: made for another query; send the same query and filters with it")
    if last_id is not None and not isinstance(last_id, str):
        raise BadCursor("cursor: not a cursor of this service")
    return CursorPosition(position, last_id)
