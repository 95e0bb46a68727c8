"""Misfile correction: pages filed under the wrong patient.

A whole document filed to the wrong patient is a catalog correction: the stored
object holds no patient, so it stays as it is, and retention is recomputed
(store locks only extend). Pages of *another* patient inside a document are
different: the locked original mixes two patients' records, so it is split into
two new objects (the pages that stay, the pages that move) and the original
version is deleted before its retention ends. That needs the store's GOVERNANCE
bypass, so it is an explicit break-glass action, audited; under COMPLIANCE the
store cannot allow it and the correction is refused with the date it could happen.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from chartvault.archive.holds import active_hold_ids
from chartvault.archive.lifecycle import (
    INACTIVE,
    RetentionPolicy,
    apply_retention,
    decide,
    document_ref,
    recompute_patient,
)
from chartvault.archive.models import (
    DOC_SUPERSEDED,
    FILE_ARCHIVED,
    PAGE_ARCHIVED,
    BatchFile,
    Document,
    IndexTask,
    Page,
    Patient,
    new_id,
)
from chartvault.archive.objectstore import LOCK_COMPLIANCE, ObjectRef, ObjectStore
from chartvault.archive.patients import settle_patient, with_mrn_given
from chartvault.archive.renditions import drop_rendition
from chartvault.errors import Conflict

log = logging.getLogger(__name__)

__all__ = ["MisfileRefused", "MisfileResult", "correct_misfile"]


class MisfileRefused(Conflict):
    """The correction cannot be made (the message says why and what to do; ids only)."""


@dataclass
class MisfileResult:
    document_id: str
    mode: str  # refile | split
    new_documents: list[str] = field(default_factory=list)
    versions_deleted: list[str] = field(default_factory=list)
    break_glass: bool = False


def _target_patient(s: Session, mrn: str) -> Patient:
    patient = s.scalars(select(Patient).where(Patient.mrn == mrn)).first()
    if patient is None:
        raise MisfileRefused("no patient with that MRN in the catalog; archive or register the patient first")
    return patient


def _file_as(doc: Document, patient: Patient) -> None:
    """The patient's identifiers onto the document, as a person decided: what said how the MRN was found
    (``mrn_source``: the index, a check-digit read-back; ``mrn_read``) no longer holds."""
    doc.mrn, doc.patient_id = patient.mrn, patient.id
    doc.patient_name, doc.dob = patient.name, patient.dob
    doc.identifier_confidence = {**with_mrn_given(doc.identifier_confidence), "name": 1.0, "dob": 1.0}


def correct_misfile(
    s: Session,
    store: ObjectStore,
    policy: RetentionPolicy,
    doc_id: str,
    to_mrn: str,
    tmp_dir: Path,
    pages: Sequence[int] | None = None,
    break_glass: bool = False,
) -> MisfileResult:
    """Refile a document, or split the given pages out of it to the patient ``to_mrn``.

    The caller commits and audits. Raises MisfileRefused when it cannot be done.
    """
    doc = s.get(Document, doc_id)
    if doc is None or doc.status in INACTIVE or not doc.object_key:
        raise MisfileRefused(f"document {doc_id} is not a live archived document")
    patient = _target_patient(s, to_mrn)
    own_pages = sorted(p.page_no for p in doc.pages)
    moving = sorted(set(pages or own_pages))
    if not set(moving) <= set(own_pages):
        raise MisfileRefused(f"document {doc_id} has pages {own_pages}; cannot move {moving}")
    old_mrn = doc.mrn
    if moving == own_pages:
        _file_as(doc, patient)
        s.add(IndexTask(document_id=doc.id, op="upsert"))
        s.flush()
        apply_retention(s, store, doc, policy)
        for mrn in {old_mrn, to_mrn} - {None}:
            recompute_patient(s, store, mrn, policy)  # type: ignore[arg-type]
        return MisfileResult(doc.id, "refile")
    return _split(s, store, policy, doc, patient, moving, tmp_dir, break_glass, old_mrn)


def _mrn_without_the_moved_pages(part: Document, pages: Sequence[Page]) -> None:
    """The staying part's MRN confidence once the other patient's pages are gone.

    The mixed document's score was lowered by the pages that named another MRN; those pages have left, so
    the MRN is as sure as the surest of its own pages' readings of it (never less than it was).
    """
    own = [
        float(read.get("confidence") or 0.0)
        for p in pages
        if isinstance(read := (p.identifiers or {}).get("mrn"), dict) and read.get("value") == part.mrn
    ]
    conf = dict(part.identifier_confidence or {})
    if own and isinstance(conf.get("mrn", 0.0), int | float):
        conf["mrn"] = max(float(conf.get("mrn", 0.0)), max(own))
        part.identifier_confidence = conf


def _split(
    s: Session,
    store: ObjectStore,
    policy: RetentionPolicy,
    doc: Document,
    patient: Patient,
    moving: list[int],
    tmp_dir: Path,
    break_glass: bool,
    old_mrn: str | None,
) -> MisfileResult:
    """Two new documents from one (the pages that stay, the pages that move), then the original removed."""
    _refuse_unsafe_split(s, store, doc, break_glass)
    pages = sorted(doc.pages, key=lambda p: p.page_no)
    groups = ([p for p in pages if p.page_no not in moving], [p for p in pages if p.page_no in moving])
    staying, moved = _store_parts(s, store, policy, doc, groups, tmp_dir)
    _file_as(moved, patient)
    _mrn_without_the_moved_pages(staying, groups[0])
    settle_patient(s, staying)  # the pages that stay: linked by two identifiers, or held saying why
    s.flush()
    for d in (staying, moved):
        apply_retention(s, store, d, policy)
    _supersede(s, doc, [staying, moved])
    for mrn in {old_mrn, patient.mrn} - {None}:
        recompute_patient(s, store, mrn, policy)  # type: ignore[arg-type]
    deleted = _delete_original(store, doc)
    new_ids = [staying.id, moved.id]
    log.info("misfile split doc=%s into=%s versions_deleted=%d", doc.id, new_ids, len(deleted))
    return MisfileResult(doc.id, "split", new_ids, deleted, break_glass=True)


def _refuse_unsafe_split(s: Session, store: ObjectStore, doc: Document, break_glass: bool) -> None:
    """Splitting deletes the original: refused under COMPLIANCE, a legal hold or a shared object, and
    under GOVERNANCE unless the caller asked for break-glass."""
    ref = document_ref(doc)
    mode, until = store.retention(ref)
    locked = until is not None and until > datetime.now(UTC)
    if locked and mode == LOCK_COMPLIANCE:
        raise MisfileRefused(
            f"document {doc.id} is stored under COMPLIANCE retention until {until:%Y-%m-%d}: the mixed "
            "original cannot be removed before then, not even by break-glass. Keep it in the review "
            "queue and record the correction; split it after that date."
        )
    if locked and not break_glass:
        raise MisfileRefused(
            f"splitting document {doc.id} deletes its locked original before retention ends: "
            "repeat as an explicit break-glass action (it is audited)"
        )
    if active_hold_ids(s, doc.id) or store.legal_hold(ref):
        raise MisfileRefused(f"document {doc.id} is under legal hold; release the hold before correcting it")
    sharing = s.scalar(
        select(func.count())
        .select_from(Document)
        .where(Document.object_key == doc.object_key, Document.id != doc.id, Document.status.not_in(INACTIVE))
    )
    if sharing:
        raise MisfileRefused(
            f"the original of document {doc.id} also holds other documents; correct those first"
        )


def _store_parts(
    s: Session,
    store: ObjectStore,
    policy: RetentionPolicy,
    doc: Document,
    groups: tuple[list[Page], list[Page]],
    tmp_dir: Path,
) -> tuple[Document, Document]:
    """The original's pages cut into one file per group, each stored and catalogued as a new document."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tmp_dir) as work:
        original = Path(work, "original")
        with original.open("wb") as fp:
            store.read_into(document_ref(doc), fp)
        made = []
        for n, group in enumerate(groups, start=1):
            part = Path(work, f"part{n}")
            _extract_pages(original, doc.mime, [p.page_no for p in group], part)
            made.append(_new_document(s, store, policy, doc, group, part, n))
    return made[0], made[1]


def _supersede(s: Session, doc: Document, new_docs: Sequence[Document]) -> None:
    """The original leaves the catalog's live set and the index; its text now lives with the new ones."""
    doc.status = DOC_SUPERSEDED
    for p in doc.pages:
        p.text, p.words, p.identifiers = None, None, None
    s.add(IndexTask(document_id=doc.id, op="delete"))
    s.add_all([IndexTask(document_id=d.id, op="upsert") for d in new_docs])
    s.flush()


def _delete_original(store: ObjectStore, doc: Document) -> list[str]:
    """Every stored version of the mixed original and its rendition (GOVERNANCE bypassed: break-glass)."""
    deleted = drop_rendition(store, doc, bypass_governance=True)  # its pages are the new documents'
    for version in store.versions(document_ref(doc)):
        store.delete_version(version, bypass_governance=True)
        deleted.append(version.version_id or "(single version)")
    return deleted


def _new_document(
    s: Session,
    store: ObjectStore,
    policy: RetentionPolicy,
    old: Document,
    pages: list[Page],
    path: Path,
    n: int,
) -> Document:
    """One part of a split: its file, its document (the old one's identifiers and type), its pages, stored
    under the retention its own catalog entry decides."""
    with path.open("rb") as fp:
        data_sha = hashlib.file_digest(fp, "sha256").hexdigest()  # streamed, not read whole
    f = _correction_file(s, old, n, data_sha, path.stat().st_size, len(pages))
    now = datetime.now(UTC)
    doc = _document_like(old, f, data_sha, len(pages), now)
    s.add(doc)
    s.add_all(_page_copy(p, f.id, doc.id, i) for i, p in enumerate(pages, start=1))
    s.flush()
    lock_until = policy.lock_until(decide(s, doc, policy, now), now)
    stored: ObjectRef = store.put_file(str(path), data_sha, old.mime, retain_until=lock_until)
    doc.object_key, doc.object_version = stored.key, stored.version_id
    return doc


def _correction_file(s: Session, old: Document, n: int, sha: str, size: int, pages: int) -> BatchFile:
    """The part as a file of the original's batch, so the batch's page accounting still adds up."""
    old_file = s.get(BatchFile, old.file_id)
    assert old_file is not None
    seq = (s.scalar(select(func.max(BatchFile.seq)).where(BatchFile.batch_id == old.batch_id)) or 0) + 1
    f = BatchFile(
        id=new_id(),
        batch_id=old.batch_id,
        seq=seq,
        original_name=f"correction-{old.id}-part{n}",
        size=size,
        sha256=sha,
        kind=old_file.kind,
        page_count=pages,
        status=FILE_ARCHIVED,
        reason_code="misfile_correction",
        reason=f"Made from document {old.id} by a misfile correction.",
    )
    s.add(f)
    return f


def _document_like(old: Document, f: BatchFile, sha: str, pages: int, now: datetime) -> Document:
    """A new archived document with the old one's type and identifiers (the caller refiles the moved part)."""
    return Document(
        id=new_id(),
        file_id=f.id,
        batch_id=old.batch_id,
        first_page=1,
        page_count=pages,
        sha256=sha,
        size=f.size,
        mime=old.mime,
        doc_type=old.doc_type,
        doc_type_confidence=old.doc_type_confidence,
        classification_source=old.classification_source,
        mrn=old.mrn,
        patient_name=old.patient_name,
        dob=old.dob,
        date_of_service=old.date_of_service,
        account=old.account,
        encounter=old.encounter,
        identifier_confidence=dict(old.identifier_confidence or {}),
        patient_id=old.patient_id,
        icd_codes=old.icd_codes,
        status=PAGE_ARCHIVED,
        received_at=now,
        archived_at=now,
    )


def _page_copy(p: Page, file_id: str, doc_id: str, page_no: int) -> Page:
    """Page ``p`` with its OCR text, words and identifiers, renumbered inside its new document."""
    return Page(
        id=new_id(),
        file_id=file_id,
        document_id=doc_id,
        page_no=page_no,
        status=PAGE_ARCHIVED,
        text=p.text,
        confidence=p.confidence,
        source=p.source,
        rotation=p.rotation,
        width=p.width,
        height=p.height,
        words=p.words,
        deskew_deg=p.deskew_deg,
        identifiers=p.identifiers,
        blank=p.blank,
    )


def _extract_pages(src: Path, mime: str, page_nos: list[int], dst: Path) -> None:
    """Write the given 1-based pages of a PDF or multi-page TIFF as a new file of the same kind."""
    if mime == "application/pdf":
        import pypdfium2 as pdfium

        with pdfium.PdfDocument(str(src)) as pdf:
            out = pdfium.PdfDocument.new()
            out.import_pages(pdf, [n - 1 for n in page_nos])
            out.save(str(dst))
            out.close()
        return
    if mime == "image/tiff":
        from PIL import Image, ImageSequence

        with Image.open(src) as im:
            frames = [f.copy() for i, f in enumerate(ImageSequence.Iterator(im), start=1) if i in page_nos]
        compression = "group4" if all(f.mode == "1" for f in frames) else "tiff_lzw"
        frames[0].save(dst, format="TIFF", save_all=True, append_images=frames[1:], compression=compression)
        return
    raise MisfileRefused(f"a {mime} original has one page; refile the whole document instead")
