"""Disposition: destroy what is past retention and not on hold, and prove it.

``plan`` lists the eligible documents with the rule that made each eligible (the
dry run). ``execute`` destroys them one at a time, each in its own transaction:
every object version, the OCR text and word boxes, the index entry; the document
row stays as a tombstone (ids, type, dates; no name, no text). A certificate of
destruction with the AHIMA fields and catalog ids (never names) is written at the
end and archived itself, locked as a permanent record.

Two layers refuse early destruction: this module re-checks retention and holds
in the catalog, and the store refuses to delete a locked or held version.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from chartvault.archive.db import transaction
from chartvault.archive.holds import active_hold_ids
from chartvault.archive.lifecycle import INACTIVE, RetentionPolicy, document_ref
from chartvault.archive.models import (
    DOC_DISPOSED,
    BatchFile,
    Disposition,
    Document,
    IndexTask,
    Page,
    new_id,
)
from chartvault.archive.objectstore import ObjectRef, ObjectStore, ObjectStoreError
from chartvault.archive.renditions import drop_rendition
from chartvault.archive.retention import RetentionDecision

log = logging.getLogger(__name__)

__all__ = ["AHIMA_STATEMENT", "Candidate", "DispositionResult", "Plan", "execute", "plan"]

AHIMA_STATEMENT = (
    "The information described below was destroyed in the normal course of business pursuant to a "
    "proper retention schedule and destruction policies and procedures."
)
DEFAULT_METHOD = "other: permanent deletion of every stored object version and all derived data"

AuditFn = Callable[..., str]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A document past retention: why it is eligible, in ids and dates only."""

    document_id: str
    doc_type: str | None
    date_of_service: str | None
    retain_until: str
    rule_id: str
    hold_ids: list[str] = field(default_factory=list)

    @property
    def held(self) -> bool:
        return bool(self.hold_ids)


@dataclass(frozen=True, slots=True)
class Plan:
    as_of: str
    eligible: list[Candidate]
    held: list[Candidate]
    not_computed: int  # live documents whose retention was never computed (never eligible)

    def as_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of,
            "eligible": [asdict(c) for c in self.eligible],
            "held": [asdict(c) for c in self.held],
            "not_computed": self.not_computed,
        }


@dataclass
class DispositionResult:
    disposition_id: str
    destroyed: list[str]
    refused: list[dict[str, str]]  # {"document_id", "by": "catalog" | "store", "reason"}
    certificate: dict[str, Any]
    certificate_ref: ObjectRef | None


def plan(s: Session, as_of: date | None = None) -> Plan:
    """What is past retention as of ``as_of`` (default today), split into eligible and held."""
    as_of = as_of or datetime.now(UTC).date()
    live = Document.status.not_in(INACTIVE)
    due = s.scalars(
        select(Document)
        .where(live, Document.retain_until.is_not(None), Document.retain_until < as_of)
        .order_by(Document.retain_until, Document.id)
    ).all()
    eligible: list[Candidate] = []
    held: list[Candidate] = []
    for doc in due:
        assert doc.retain_until is not None
        c = Candidate(
            document_id=doc.id,
            doc_type=doc.doc_type,
            date_of_service=doc.date_of_service.isoformat() if doc.date_of_service else None,
            retain_until=doc.retain_until.isoformat(),
            rule_id=doc.retention_rule or "unknown",
            hold_ids=active_hold_ids(s, doc.id),
        )
        (held if c.held else eligible).append(c)
    not_computed = len(s.scalars(select(Document.id).where(live, Document.retention_rule.is_(None))).all())
    return Plan(as_of=as_of.isoformat(), eligible=eligible, held=held, not_computed=not_computed)


def _refuse_reason(s: Session, store: ObjectStore, doc: Document | None, as_of: date) -> str | None:
    """Why the catalog refuses to destroy this document now, or None."""
    if doc is None:
        return "no such document"
    if doc.status in INACTIVE:
        return f"document is {doc.status}"
    if doc.retain_until is None:
        return "permanent record" if doc.retention_rule else "retention never computed"
    if doc.retain_until >= as_of:
        return f"retention runs until {doc.retain_until.isoformat()}"
    if active_hold_ids(s, doc.id):
        return "under legal hold"
    if doc.object_key and store.legal_hold(document_ref(doc)):
        # Someone set the store's flag outside ChartVault: respect it, and surface it.
        return "the store has a legal hold on this version"
    return None


def _shared_with_live(s: Session, doc: Document) -> bool:
    """Whether another live document is stored in the same object (then the object stays)."""
    others = s.scalars(
        select(Document.id).where(
            Document.object_key == doc.object_key, Document.id != doc.id, Document.status.not_in(INACTIVE)
        )
    ).all()
    return bool(others)


def _destroy_one(
    s: Session, store: ObjectStore, doc: Document, disposition_id: str, now: datetime
) -> dict[str, Any]:
    """Delete one document's object versions and derived data; leave its tombstone. Caller commits."""
    versions: list[str] = []
    kept_shared = False
    if doc.object_key:
        if _shared_with_live(s, doc):
            kept_shared = True
        else:
            for ref in store.versions(document_ref(doc)):
                store.delete_version(ref)  # the store refuses a locked or held version
                versions.append(ref.version_id or "(single version)")
    rendition_key = doc.rendition_key
    rendition_versions = drop_rendition(store, doc)
    page_count = len(s.scalars(select(Page.id).where(Page.document_id == doc.id)).all())
    s.execute(delete(Page).where(Page.document_id == doc.id))
    s.add(IndexTask(document_id=doc.id, op="delete"))
    item = {
        "document_id": doc.id,
        "batch_id": doc.batch_id,
        "doc_type": doc.doc_type,
        "date_of_service": doc.date_of_service.isoformat() if doc.date_of_service else None,
        "retain_until": doc.retain_until.isoformat() if doc.retain_until else None,
        "rule_id": doc.retention_rule,
        "object_key": doc.object_key,
        "versions_deleted": versions,
        "rendition_key": rendition_key,
        "rendition_versions_deleted": rendition_versions,
        "object_kept_for_other_documents": kept_shared,
        "derived_removed": {
            "ocr_text_pages": page_count,
            "word_boxes_pages": page_count,
            "index_entry": True,
        },
        "hold_check": "no active hold in the catalog; no hold flag on the stored version",
    }
    doc.status = DOC_DISPOSED
    doc.disposed_at = now
    doc.disposition_id = disposition_id
    # The tombstone keeps ids, type and dates; identifying values go with the content.
    doc.patient_name = None
    doc.dob = None
    doc.account = None
    doc.icd_codes = None
    doc.identifier_confidence = {}
    f = s.get(BatchFile, doc.file_id)
    if f is not None and all(d.status in INACTIVE for d in f.documents):
        f.original_name = f"disposed-{f.id}"
        f.source_path = None
    return item


def execute(
    sessions: sessionmaker[Session],
    store: ObjectStore,
    policy: RetentionPolicy,
    document_ids: list[str],
    *,
    executed_by: str,
    facility: str,
    audit: AuditFn,
    tmp_dir: Path,
    approved_by: str | None = None,
    witness: str | None = None,
    method: str = DEFAULT_METHOD,
    as_of: date | None = None,
    reason: str | None = None,
) -> DispositionResult:
    """Destroy the given documents (normally ``plan().eligible``), each re-checked first.

    A document the catalog or the store refuses is left untouched and reported. ``reason`` (the
    schedule or decision the run carries out) is written on the certificate, not in the audit log.
    """
    as_of = as_of or datetime.now(UTC).date()
    disposition_id = _start(sessions, executed_by, approved_by, witness, method)
    destroyed: list[dict[str, Any]] = []
    refused: list[dict[str, str]] = []
    for doc_id in document_ids:
        item, refusal = _dispose_one(sessions, store, doc_id, disposition_id, as_of)
        if refusal is not None:
            refused.append(refusal)
            audit(executed_by, "document.dispose", "document", doc_id, "refused", {"by": refusal["by"]})
            continue
        assert item is not None
        destroyed.append(item)
        detail = {"disposition": disposition_id, "versions": len(item["versions_deleted"])}
        audit(executed_by, "document.dispose", "document", doc_id, "ok", detail)
    outcome = "ok" if not refused else "partial"
    counts = {"destroyed": len(destroyed), "refused": len(refused)}
    audit_hash = audit(executed_by, "disposition.execute", "disposition", disposition_id, outcome, counts)
    certificate = _certificate(
        disposition_id, facility, executed_by, approved_by, witness, method, destroyed, refused, audit_hash
    )
    if reason:
        certificate["reason"] = reason
    ref = _archive_certificate(store, policy, certificate, tmp_dir)
    _finish(sessions, disposition_id, certificate, ref, partial=bool(refused), count=len(destroyed))
    log.info("disposition done id=%s destroyed=%d refused=%d", disposition_id, len(destroyed), len(refused))
    return DispositionResult(disposition_id, [d["document_id"] for d in destroyed], refused, certificate, ref)


def _start(
    sessions: sessionmaker[Session],
    executed_by: str,
    approved_by: str | None,
    witness: str | None,
    method: str,
) -> str:
    """The disposition's row, recorded before anything is destroyed."""
    disposition_id = new_id()
    with transaction(sessions) as s:
        s.add(
            Disposition(
                id=disposition_id,
                executed_by=executed_by,
                approved_by=approved_by,
                witness=witness,
                method=method,
                status="running",
            )
        )
    return disposition_id


def _dispose_one(
    sessions: sessionmaker[Session], store: ObjectStore, doc_id: str, disposition_id: str, as_of: date
) -> tuple[dict[str, Any] | None, dict[str, str] | None]:
    """(what was destroyed, None), or (None, the refusal): each document checked again, in its own
    transaction, so a refusal by the catalog or the store leaves it untouched."""
    with sessions() as s:
        doc = s.get(Document, doc_id)
        reason = _refuse_reason(s, store, doc, as_of)
        if reason is not None:
            return None, {"document_id": doc_id, "by": "catalog", "reason": reason}
        assert doc is not None
        try:
            item = _destroy_one(s, store, doc, disposition_id, datetime.now(UTC))
        except ObjectStoreError as exc:
            s.rollback()
            log.warning("disposition refused by the store doc=%s", doc_id)
            return None, {"document_id": doc_id, "by": "store", "reason": str(exc)}
        s.commit()
        return item, None


def _finish(
    sessions: sessionmaker[Session],
    disposition_id: str,
    certificate: dict[str, Any],
    ref: ObjectRef,
    *,
    partial: bool,
    count: int,
) -> None:
    with transaction(sessions) as s:
        row = s.get(Disposition, disposition_id)
        assert row is not None
        row.status = "partial" if partial else "complete"
        row.document_count = count
        row.certificate_key, row.certificate_version = ref.key, ref.version_id
        row.certificate_sha256, row.certificate_size = ref.sha256, ref.size
        row.detail = certificate


def _certificate(
    disposition_id: str,
    facility: str,
    executed_by: str,
    approved_by: str | None,
    witness: str | None,
    method: str,
    destroyed: list[dict[str, Any]],
    refused: list[dict[str, str]],
    audit_hash: str,
) -> dict[str, Any]:
    """The AHIMA sample certificate's fields, with catalog ids instead of names."""
    dates = sorted(d["date_of_service"] for d in destroyed if d["date_of_service"])
    types = sorted({d["doc_type"] or "unknown" for d in destroyed})
    return {
        "certificate_of_destruction": disposition_id,
        "facility": facility,
        "statement": AHIMA_STATEMENT,
        "date_of_destruction": datetime.now(UTC).isoformat(timespec="seconds"),
        "description": f"{len(destroyed)} scanned document(s) of type(s): {', '.join(types) or 'none'}",
        "inclusive_dates": {"from": dates[0] if dates else None, "to": dates[-1] if dates else None},
        "method": method,
        "destroyed_by": executed_by,
        "witness": witness,
        "department_manager": approved_by,
        "items": destroyed,
        "refused": refused,
        "audit_entry_hash": audit_hash,
        "backups_note": "Backups and replicas of the object store age out under their own schedule.",
    }


def _archive_certificate(
    store: ObjectStore, policy: RetentionPolicy, certificate: dict[str, Any], tmp_dir: Path
) -> ObjectRef:
    """Store the certificate as a permanent record (destruction documentation is kept forever)."""
    body = json.dumps(certificate, indent=2, sort_keys=True).encode()
    sha = hashlib.sha256(body).hexdigest()
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="certificate-", suffix=".json")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(body)
        permanent = RetentionDecision(None, "ahima.destruction_certificate")
        return store.put_file(
            name,
            sha,
            "application/json",
            retain_until=policy.lock_until(permanent, datetime.now(UTC)),
            tags={
                "kind": "certificate_of_destruction",
                "disposition": certificate["certificate_of_destruction"],
            },
        )
    finally:
        Path(name).unlink(missing_ok=True)
