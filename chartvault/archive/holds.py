"""Legal holds: suspend destruction of a patient's, an encounter's or chosen documents.

The catalog row is the authority (matter, who placed it, why, who released it);
the store's legal-hold flag on every affected object version is the second layer,
so a delete that goes around ChartVault is refused too. A document archived later
for a held patient or encounter joins the hold when it is archived.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from chartvault.archive.lifecycle import INACTIVE, document_ref
from chartvault.archive.models import (
    HOLD_ACTIVE,
    HOLD_RELEASED,
    HOLD_SCOPES,
    Document,
    LegalHold,
    LegalHoldItem,
    new_id,
)
from chartvault.archive.objectstore import ObjectStore
from chartvault.archive.renditions import rendition_ref
from chartvault.errors import Conflict, InvalidInput, NotFound

log = logging.getLogger(__name__)

__all__ = [
    "HoldError",
    "active_hold_ids",
    "apply_holds_to_new_document",
    "object_held",
    "place_hold",
    "release_hold",
]


class HoldError(InvalidInput):
    """A hold request that cannot be carried out (the message names ids only)."""


def _scope_documents(
    s: Session, scope: str, value: str | None, document_ids: Sequence[str]
) -> list[Document]:
    live = Document.status.not_in(INACTIVE)
    if scope == "patient":
        if not value:
            raise HoldError("a patient hold needs an MRN")
        return list(s.scalars(select(Document).where(Document.mrn == value, live)))
    if scope == "encounter":
        if not value:
            raise HoldError("an encounter hold needs an encounter number")
        return list(s.scalars(select(Document).where(Document.encounter == value, live)))
    if not document_ids:
        raise HoldError("a documents hold needs at least one document id")
    docs = list(s.scalars(select(Document).where(Document.id.in_(list(document_ids)))))
    missing = sorted(set(document_ids) - {d.id for d in docs})
    if missing:
        raise NotFound(f"no such document: {', '.join(missing)}")
    return docs


def _hold_on_store(store: ObjectStore, doc: Document, item: LegalHoldItem) -> None:
    if doc.object_key and item.applied_at is None:
        store.set_legal_hold(document_ref(doc), True)
        if (rendition := rendition_ref(doc)) is not None:
            store.set_legal_hold(rendition, True)
        item.applied_at = datetime.now(UTC)


def place_hold(
    s: Session,
    store: ObjectStore,
    *,
    matter: str,
    scope: str,
    reason: str,
    placed_by: str,
    value: str | None = None,
    document_ids: Sequence[str] = (),
) -> LegalHold:
    """Create the hold and set the store's flag on every affected version. The caller commits.

    A hold on a patient or encounter with no documents yet is still placed: it
    catches documents archived later.
    """
    if scope not in HOLD_SCOPES:
        raise HoldError(f"scope must be one of {', '.join(HOLD_SCOPES)}")
    if not matter.strip() or not reason.strip():
        raise HoldError("a hold needs a matter and a reason")
    docs = _scope_documents(s, scope, value, document_ids)
    hold = LegalHold(
        id=new_id(),
        matter=matter.strip(),
        scope=scope,
        scope_value=value if scope != "documents" else None,
        reason=reason.strip(),
        status=HOLD_ACTIVE,
        placed_by=placed_by,
        placed_at=datetime.now(UTC),
    )
    s.add(hold)
    # Catalog rows first: if the store fails midway, the hold is recorded and re-applying is safe.
    items = [LegalHoldItem(hold_id=hold.id, document_id=d.id) for d in docs]
    s.add_all(items)
    s.flush()
    for doc, item in zip(docs, items, strict=True):
        _hold_on_store(store, doc, item)
    log.info("legal hold placed hold=%s scope=%s documents=%d", hold.id, scope, len(docs))
    return hold


def active_hold_ids(s: Session, document_id: str) -> list[str]:
    """Ids of the active holds covering a document (by item, patient or encounter)."""
    doc = s.get(Document, document_id)
    if doc is None:
        return []
    by_item = s.scalars(
        select(LegalHold.id)
        .join(LegalHoldItem, LegalHoldItem.hold_id == LegalHold.id)
        .where(LegalHold.status == HOLD_ACTIVE, LegalHoldItem.document_id == document_id)
    ).all()
    by_scope: list[str] = []
    if doc.mrn:
        by_scope += s.scalars(
            select(LegalHold.id).where(
                LegalHold.status == HOLD_ACTIVE,
                LegalHold.scope == "patient",
                LegalHold.scope_value == doc.mrn,
            )
        ).all()
    if doc.encounter:
        by_scope += s.scalars(
            select(LegalHold.id).where(
                LegalHold.status == HOLD_ACTIVE,
                LegalHold.scope == "encounter",
                LegalHold.scope_value == doc.encounter,
            )
        ).all()
    return sorted(set(by_item) | set(by_scope))


def object_held(s: Session, object_key: str) -> bool:
    """Whether any document stored in this object (several can share one) is under an active hold."""
    ids = s.scalars(select(Document.id).where(Document.object_key == object_key)).all()
    return any(active_hold_ids(s, doc_id) for doc_id in ids)


def apply_holds_to_new_document(s: Session, store: ObjectStore, doc: Document) -> list[str]:
    """Add a newly archived document to every active patient/encounter hold that covers it."""
    hold_ids = active_hold_ids(s, doc.id)
    for hold_id in hold_ids:
        item = s.get(LegalHoldItem, (hold_id, doc.id))
        if item is None:
            item = LegalHoldItem(hold_id=hold_id, document_id=doc.id)
            s.add(item)
        _hold_on_store(store, doc, item)
    return hold_ids


def release_hold(s: Session, store: ObjectStore, hold_id: str, released_by: str, reason: str) -> LegalHold:
    """Release a hold; a version's store flag is lifted only when no other active hold covers it."""
    hold = s.get(LegalHold, hold_id)
    if hold is None:
        raise NotFound(f"no such hold: {hold_id}")
    if hold.status != HOLD_ACTIVE:
        raise Conflict(f"hold {hold_id} is already released")
    if not reason.strip():
        raise HoldError("releasing a hold needs a reason")
    hold.status = HOLD_RELEASED
    hold.released_by = released_by
    hold.released_at = datetime.now(UTC)
    hold.release_reason = reason.strip()
    s.flush()
    now = datetime.now(UTC)
    for item in hold.items:
        doc = s.get(Document, item.document_id)
        if doc is None or not doc.object_key or doc.status in INACTIVE:
            continue
        if not object_held(s, doc.object_key):
            store.set_legal_hold(document_ref(doc), False)
        if (rendition := rendition_ref(doc)) is not None and not active_hold_ids(s, doc.id):
            store.set_legal_hold(rendition, False)
        item.lifted_at = now
    log.info("legal hold released hold=%s documents=%d", hold.id, len(hold.items))
    return hold
