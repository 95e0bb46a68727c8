"""What several pages read from a form or a query the same way: a day, a whole number, and the
fingerprint of a list a person was shown (so a destructive form acts on exactly that list)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import date

from chartvault.errors import InvalidInput


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
