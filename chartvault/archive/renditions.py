"""A document's rendition in the store: written under the original's lock, tags and holds.

The rendition is a second object of the document (content-addressed like the original), so every
lifecycle step that touches the original's version touches the rendition's too: retention extended
(``lifecycle.apply_retention``), legal holds set and lifted (``holds``), destruction (``disposition``)
and the misfile split. A born-digital PDF is its own rendition and has no second object.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from chartvault.archive.models import (
    DOC_DISPOSED,
    DOC_SUPERSEDED,
    RENDITION_ORIGINAL,
    RENDITION_PDF,
    Document,
)
from chartvault.archive.objectstore import ObjectRef, ObjectStore

log = logging.getLogger(__name__)

RENDITION_MIME = "application/pdf"


def rendition_ref(doc: Document) -> ObjectRef | None:
    """The rendition's own stored version, or None (not built, or the original is the rendition)."""
    if doc.rendition_form != RENDITION_PDF or not doc.rendition_key or doc.rendition_sha256 is None:
        return None
    return ObjectRef(doc.rendition_key, doc.rendition_sha256, doc.rendition_size or 0, doc.rendition_version)


def rendition_tags(doc: Document) -> dict[str, str]:
    """The original's operator labels (type, retention, batch) and that this object is its rendition."""
    return {
        "doc_type": doc.doc_type or "unknown",
        "retention_rule": doc.retention_rule or "unknown",
        "retain_until": doc.retain_until.isoformat() if doc.retain_until else "permanent",
        "batch": doc.batch_id,
        "form": "rendition",
        "document": doc.id,
    }


def store_rendition(
    s: Session, store: ObjectStore, doc: Document, path: str, sha256: str, held: bool
) -> ObjectRef:
    """Put the built rendition locked as long as the original, held if the document is; record it.

    The caller commits. The store is written first: a crash before the commit leaves an object the
    next build writes again to the same key (the build is deterministic), never a row without it.
    """
    ref = store.put_file(
        path, sha256, RENDITION_MIME, retain_until=doc.object_retain_until, tags=rendition_tags(doc)
    )
    if held:
        store.set_legal_hold(ref, True)
    doc.rendition_form = RENDITION_PDF
    doc.rendition_key, doc.rendition_version = ref.key, ref.version_id
    doc.rendition_sha256, doc.rendition_size = ref.sha256, ref.size
    doc.rendition_at = datetime.now(UTC)
    log.info("rendition stored doc=%s bytes=%d", doc.id, ref.size)
    return ref


def original_is_rendition(doc: Document) -> None:
    """Record that a born-digital PDF is its own rendition (no second object). The caller commits."""
    doc.rendition_form = RENDITION_ORIGINAL
    doc.rendition_at = datetime.now(UTC)


def missing_renditions(s: Session, limit: int = 500) -> list[str]:
    """Live archived documents whose rendition has not been built yet (oldest first)."""
    return list(
        s.scalars(
            select(Document.id)
            .where(
                Document.object_key.is_not(None),
                Document.status.not_in((DOC_DISPOSED, DOC_SUPERSEDED)),
                Document.rendition_form.is_(None),
            )
            .order_by(Document.archived_at, Document.id)
            .limit(limit)
        )
    )


def drop_rendition(store: ObjectStore, doc: Document, *, bypass_governance: bool = False) -> list[str]:
    """Delete every version of the document's rendition (disposition, split); the version ids deleted."""
    ref = rendition_ref(doc)
    deleted: list[str] = []
    if ref is None:
        return deleted
    for version in store.versions(ref):
        store.delete_version(version, bypass_governance=bypass_governance)
        deleted.append(version.version_id or "(single version)")
    doc.rendition_key = doc.rendition_version = None
    return deleted
