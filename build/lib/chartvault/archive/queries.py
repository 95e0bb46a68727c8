"""Which catalog documents may be shown, searched and indexed."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.orm import Session

from chartvault.archive.models import (
    DOC_DISPOSED,
    DOC_SUPERSEDED,
    PAGE_ARCHIVED,
    PAGE_CLASSIFIED,
    PAGE_FAILED,
    PAGE_INDEXED,
    PAGE_OCR,
    PAGE_RECEIVED,
    Document,
)

VISIBLE_STATUSES = (PAGE_ARCHIVED, PAGE_INDEXED)
# Every other status a document can have after it was once indexed.
HIDDEN_STATUSES = (DOC_DISPOSED, DOC_SUPERSEDED, PAGE_CLASSIFIED, PAGE_FAILED, PAGE_OCR, PAGE_RECEIVED)


def visible_clause() -> ColumnElement[bool]:
    """Archived or indexed, and not disposed: what people may see and the index may hold."""
    return and_(Document.status.in_(VISIBLE_STATUSES), Document.disposed_at.is_(None))


def visible_ids(session: Session, ids: Sequence[str]) -> set[str]:
    """The subset of ``ids`` the catalog allows to be shown (missing ids are not visible)."""
    if not ids:
        return set()
    return set(session.scalars(select(Document.id).where(Document.id.in_(list(ids)), visible_clause())))
