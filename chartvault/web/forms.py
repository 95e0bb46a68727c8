"""What several pages read from a form or a query the same way: a day, a whole number, bounded numbers of
the address, and the fingerprint of a list a person was shown (so a destructive form acts on exactly that
list)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import date
from typing import Annotated

from fastapi import Path, Query

from chartvault.errors import InvalidInput

# The numbers a page takes from its address, bounded as the API's are (chartvault.api.routes): past them
# the database's integer overflows (a 500) before anything is found. Out of range: a 422 page.
Offset = Annotated[int, Query(ge=0, le=1_000_000)]  # a list's offset
PageNo = Annotated[int, Path(ge=1, le=100_000)]  # a document's page number in a page's path
PageNoQuery = Annotated[int | None, Query(ge=1, le=100_000)]  # the same, chosen in the query
ChainPosition = Annotated[int | None, Query(ge=0, le=2**63 - 1)]  # an audit entry's place in the chain


def day(value: str, what: str) -> date | None:
    """A form date ("" = the default), or InvalidInput saying which field is wrong."""
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{what} must be a date (YYYY-MM-DD)") from None


def whole(value: str, what: str) -> int | None:
    """A whole number typed in a form ("" = None), or InvalidInput naming the field."""
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"{what} must be a whole number") from None


def fingerprint(ids: Iterable[str]) -> str:
    """One value for a set of ids: a form carries it, the POST recomputes it from the catalog, and
    acts only when they agree (what is destroyed is what the person saw, however long the list)."""
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()
