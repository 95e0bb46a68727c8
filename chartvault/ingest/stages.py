"""The file stages: once every page of a file is read, it becomes archived, queued documents.

Each stage takes the file's ``FileWork`` and is idempotent against a crash: documents are written
once (``identify`` commits them), a document is archived once (``archive`` skips stored ones, and the
object store is content-addressed anyway), and ``enqueue`` queues only documents not yet queued or
indexed. ``chartvault.ingest.pipeline.FILE_STAGES`` lists them in order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from chartvault.archive.holds import apply_holds_to_new_document
from chartvault.archive.lifecycle import RetentionPolicy, decide, object_tags, recompute_patient
from chartvault.archive.models import (
    FILE_ARCHIVED,
    PAGE_ARCHIVED,
    PAGE_CLASSIFIED,
    PAGE_INDEXED,
    PAGE_OCR,
    REVIEW_MISFILE,
    REVIEW_MRN_CHECK_DIGIT,
    REVIEW_PENDING,
    BatchFile,
    Document,
    IndexTask,
    Page,
    new_id,
)
from chartvault.archive.objectstore import ObjectStore
from chartvault.archive.patients import MRN_READ_BACK, MRN_REFUSED, settle_patient, with_mrn_given
from chartvault.classify import classify_document, extract_identifiers, merge_identifiers
from chartvault.classify.checkdigit import CheckDigit, passes
from chartvault.classify.coversheet import CoverSheet, find_cover_sheet
from chartvault.classify.model import DocTypeModel
from chartvault.classify.types import (
    SOURCE_COVER_SHEET,
    SOURCE_MODEL,
    SOURCE_RULES,
    DocTypePrediction,
    Identifiers,
)
from chartvault.filetypes import FileKind
from chartvault.ingest.batches import flag_batch
from chartvault.ingest.renditions import render_document

log = logging.getLogger("chartvault.pipeline")

# Review reason codes (documents.review_reasons[].code).
REVIEW_LOW_CONFIDENCE = "low_confidence"


@dataclass(frozen=True, slots=True)
class StageEnv:
    """What the file stages of one batch share (the classifier model is resolved once per batch)."""

    data_dir: Path
    store: ObjectStore
    policy: RetentionPolicy
    model: DocTypeModel | None
    review_threshold: float
    mrn_pattern: str | None = None  # the facility's MRN shape and check digit, for the document's MRN
    mrn_check_digit: CheckDigit = "none"


@dataclass(slots=True)
class Segment:
    """A run of pages of one file that forms one document, and the cover sheet in front of it."""

    cover: CoverSheet | None
    cover_page: Page | None
    pages: list[Page]
    invalid: bool = False  # a cover-sheet barcode was there but did not validate
    document: Document | None = None
    prediction: DocTypePrediction | None = None


@dataclass(slots=True)
class FileWork:
    """One file between its last page read and its documents queued for the index."""

    session: Session
    file: BatchFile
    env: StageEnv
    segments: list[Segment] = field(default_factory=list)  # only for a file not yet split
    documents: list[Document] = field(default_factory=list)
    cover_sheets_only: bool = False  # the file held cover sheets and nothing else


FileStage = Callable[[FileWork], None]


# -- segment ------------------------------------------------------------------------------------------


def segment(work: FileWork) -> None:
    """Split the file at cover sheets (no sheet: the whole file is one document).

    A file whose documents exist already (a resumed run) keeps them: later stages finish those.
    """
    f = work.file
    if f.documents:
        work.documents = sorted(f.documents, key=lambda d: d.first_page)
        return
    segs = _split(list(f.pages))
    kept: list[Segment] = []
    for seg in segs:
        has_content = any(not p.blank for p in seg.pages)
        if seg.cover_page is not None:
            seg.cover_page.flags = [{"code": "cover_sheet" if seg.cover else "invalid_cover_sheet"}]
            if seg.cover_page.status == PAGE_OCR:
                seg.cover_page.status = PAGE_CLASSIFIED
            if not has_content:
                flag_batch(
                    f.batch,
                    {
                        "code": "empty_cover_sheet",
                        "file_id": f.id,
                        "page_no": seg.cover_page.page_no,
                        "message": f"The cover sheet on page {seg.cover_page.page_no} of file #{f.seq} "
                        "is followed by no document page.",
                    },
                )
        if has_content or (seg.pages and seg.cover_page is None):
            kept.append(seg)
    if not kept:  # only cover sheets: still one document, so the original is archived and a person sees it
        kept = [Segment(None, None, list(f.pages))]
        work.cover_sheets_only = True
    work.segments = kept


def _split(pages: list[Page]) -> list[Segment]:
    segs: list[Segment] = [Segment(None, None, [])]
    for p in pages:
        cover, invalid = find_cover_sheet(p.barcodes)
        if cover is not None or invalid:
            segs.append(Segment(cover, p, [], invalid=cover is None))
        else:
            segs[-1].pages.append(p)
    if segs[0].pages and len(segs) > 1 and all(p.blank for p in segs[0].pages):
        segs[0].pages = []  # blank sheets in front of the first cover sheet are no document
    return [sg for sg in segs if sg.pages or sg.cover_page is not None]


# -- classify ------------------------------------------------------------------------------------------


def classify(work: FileWork) -> None:
    """Each new segment's document type: the cover sheet's, else title rules blended with the model."""
    f = work.file
    for seg in work.segments:
        if seg.cover is not None:
            seg.prediction = DocTypePrediction(seg.cover.doc_type, 1.0, source=SOURCE_COVER_SHEET)
        else:
            texts = [p.text or "" for p in seg.pages if not p.blank]
            seg.prediction = classify_document(texts, hint=f.doc_type_hint, model=work.env.model)


# -- identify ------------------------------------------------------------------------------------------


def identify(work: FileWork) -> None:
    """Each new document's identifiers, ICD codes, misfiled pages and review reasons; then commit.

    A document whose type is uncertain, or whose pages disagree on whose they are, goes to the review
    queue (archived, so the original is safe, but linked to no patient until a person decides).
    """
    if not work.segments:
        return
    f = work.file
    for seg in work.segments:
        doc = _new_document(f, seg)
        # In the session at once: its pages point at it, and reading the batch to flag it (a manifest's
        # MRN differing or failing the check digit) autoflushes them; the document must go in before them.
        work.session.add(doc)
        page_ids = [(p, _page_identifiers(p)) for p in _content(seg)]
        merged = merge_identifiers(
            [pi for _, pi in page_ids],
            mrn_check_digit=work.env.mrn_check_digit,
            mrn_pattern=work.env.mrn_pattern,
        )
        refused = _apply_identifiers(f, doc, merged, seg.cover, work.env.mrn_check_digit)
        reasons = refused + _review_reasons(f, seg, doc, page_ids, work.env.review_threshold)
        if work.cover_sheets_only:
            reasons.append(
                {"code": "cover_sheet_only", "message": f"File #{f.seq} holds cover sheets but no document."}
            )
        doc.review_reasons = reasons or None
        doc.review_status = REVIEW_PENDING if reasons else None
        if reasons:
            log.info(
                "document held for review doc=%s file=%s codes=%s",
                doc.id,
                f.id,
                ",".join(r["code"] for r in reasons),
            )
        settle_patient(work.session, doc)  # linked by two identifiers, or held saying why: never neither
        work.documents.append(doc)
    work.session.commit()
    work.session.refresh(f)


def _content(seg: Segment) -> list[Page]:
    return [p for p in seg.pages if not p.blank]


def _new_document(f: BatchFile, seg: Segment) -> Document:
    prediction = seg.prediction
    assert prediction is not None, "classify runs before identify"
    doc = Document(
        id=new_id(),
        file_id=f.id,
        batch_id=f.batch_id,
        first_page=seg.pages[0].page_no if seg.pages else 1,
        page_count=len(seg.pages),
        blank_pages=len(seg.pages) - len(_content(seg)),
        sha256=f.sha256,
        size=f.size,
        mime=FileKind(f.kind or "").mime,
        doc_type=prediction.doc_type,
        doc_type_confidence=prediction.confidence,
        classification_source=prediction.source,
        status=PAGE_CLASSIFIED,
        received_at=f.created_at,
    )
    for p in seg.pages:
        p.document_id = doc.id
        p.flags = None
        if p.status == PAGE_OCR:
            p.status = PAGE_CLASSIFIED
    seg.document = doc
    return doc


def _review_reasons(
    f: BatchFile,
    seg: Segment,
    doc: Document,
    page_ids: list[tuple[Page, Identifiers]],
    threshold: float,
) -> list[dict[str, str]]:
    reasons: list[dict[str, str]] = []
    prediction = seg.prediction
    assert prediction is not None
    if seg.invalid:
        reasons.append(
            {
                "code": "invalid_cover_sheet",
                "message": "A cover-sheet barcode before this document did not validate.",
            }
        )
    uncertain = prediction.source in (SOURCE_MODEL, SOURCE_RULES)
    if uncertain and prediction.confidence < threshold:
        reasons.append(
            {
                "code": REVIEW_LOW_CONFIDENCE,
                "message": f"Document type confidence {prediction.confidence:.2f} is below {threshold:.2f}.",
            }
        )
    misfiled = _misfile_pages(doc, page_ids)
    for p, fields in misfiled:
        p.flags = [{"code": REVIEW_MISFILE, "fields": fields}]
    if misfiled:
        nums = ", ".join(str(p.page_no) for p, _ in misfiled)
        fields = sorted({fld for _, fl in misfiled for fld in fl})
        reasons.append(
            {
                "code": REVIEW_MISFILE,
                "message": f"Page(s) {nums} of file #{f.seq}: {', '.join(fields)} disagree with the rest "
                "of the document; held, not linked to a patient.",
            }
        )
    return reasons


def _page_identifiers(page: Page) -> Identifiers:
    """The identifiers the worker extracted from this page (or extract them now, for older rows)."""
    if page.identifiers is None:
        return extract_identifiers(page.text or "")
    return Identifiers.from_dict(page.identifiers)


def _apply_identifiers(
    f: BatchFile, doc: Document, ids: Identifiers, cover: CoverSheet | None, check: CheckDigit
) -> list[dict[str, str]]:
    """Identifiers onto the document: values read, then the cover sheet's and manifest's (they win).

    An MRN the cover sheet or manifest gives that fails the facility's check digit (``check``) is a typo:
    it is not applied, and the review reason returned holds the document unlinked until a person
    confirms the MRN (a wrong MRN given for a document files it in another patient's chart).
    """
    conf: dict[str, Any] = {}
    for name, value in ids.as_items():
        if value is not None:
            conf[name] = round(value.confidence, 3)
    if ids.mrn is not None and ids.mrn.read_as is not None:  # a repair: the reviewer sees what was read
        conf["mrn_source"], conf["mrn_read"] = ids.mrn.source or MRN_READ_BACK, ids.mrn.read_as
    elif ids.mrn is not None and ids.mrn.source is not None:  # given by the label's barcode alone
        conf["mrn_source"] = ids.mrn.source
    doc.mrn = ids.mrn.value if ids.mrn else None
    doc.patient_name = ids.name.value if ids.name else None
    doc.dob = _iso(ids.dob.value) if ids.dob else None
    doc.date_of_service = _iso(ids.date_of_service.value) if ids.date_of_service else None
    doc.account = ids.account.value if ids.account else None
    doc.encounter = ids.encounter.value if ids.encounter else None
    doc.icd_codes = list(ids.icd_codes) or None
    if cover is not None and cover.dob is not None:
        doc.dob, conf["dob"] = cover.dob, 1.0
    doc.identifier_confidence, refused = _given_mrn(f, doc, conf, cover, check)
    return refused


def _given_mrn(
    f: BatchFile, doc: Document, conf: dict[str, Any], cover: CoverSheet | None, check: CheckDigit
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The MRN the cover sheet (printed by staff for this document), then the manifest (the operator's
    indexing) gives wins over the one read; a disagreement with the manifest is flagged on the batch. One
    failing the check digit is not applied, and flagged: (identifier confidences, review reasons). The
    refused value is kept with the confidences (``MRN_REFUSED``), where the reviewer who compares it with
    the page sees it, and nowhere else: the reason, the batch's flag and the log name its source only."""
    refused: list[dict[str, str]] = []
    refused_values: list[dict[str, str]] = []
    for source, mrn in (("cover sheet", cover.mrn if cover else None), ("manifest", f.mrn_hint)):
        if not mrn:
            continue
        if not passes(mrn, check):
            refused.append(_mrn_refused(source, check))
            refused_values.append({"source": source.replace(" ", "_"), "value": mrn})
            flag_batch(f.batch, {**refused[-1], "file_id": f.id, "document_id": doc.id})
            continue
        if source == "manifest" and doc.mrn and doc.mrn != mrn:
            flag_batch(
                f.batch,
                {
                    "code": "mrn_mismatch",
                    "file_id": f.id,
                    "document_id": doc.id,
                    "message": f"The MRN read from file #{f.seq} differs from the manifest's.",
                },
            )
        doc.mrn, conf = mrn, with_mrn_given(conf)
    if refused_values:
        conf[MRN_REFUSED] = refused_values
    return conf, refused


def _mrn_refused(source: str, check: CheckDigit) -> dict[str, str]:
    """The review reason for a given MRN failing the check digit: names the source, never the value."""
    return {
        "code": REVIEW_MRN_CHECK_DIGIT,
        "message": f"The MRN the {source} gives fails the facility's check digit ({check}): a typo, so it "
        "was not applied; held, not linked to a patient, until a person confirms the MRN.",
    }


# A page value counts against the document only when it was read cleanly (labelled, no OCR fix-ups):
# a misread digit must not hold a document. Names are not compared: OCR varies them too much.
_MISFILE_MIN_CONFIDENCE = 0.8
_MISFILE_FIELDS = ("mrn", "dob")


def _misfile_pages(doc: Document, page_ids: list[tuple[Page, Identifiers]]) -> list[tuple[Page, list[str]]]:
    """Pages whose MRN or DOB disagrees with the document's: the cover sheet's or manifest's, else the
    pages' confidence-weighted majority."""
    want = {"mrn": doc.mrn, "dob": doc.dob.isoformat() if doc.dob else None}
    out: list[tuple[Page, list[str]]] = []
    for page, ids in page_ids:
        fields = []
        for name in _MISFILE_FIELDS:
            got = getattr(ids, name)
            if got is None or want[name] is None or got.confidence < _MISFILE_MIN_CONFIDENCE:
                continue
            if got.value != want[name]:
                fields.append(name)
        if fields:
            out.append((page, fields))
    return out


# -- archive -------------------------------------------------------------------------------------------


def archive(work: FileWork) -> None:
    """Store each document's original locked until its retention date, and record it (one commit each).

    Retention is decided before the write so the version is never unlocked; holds on the patient or
    encounter catch it at once; the new encounter extends the patient's other documents.
    """
    for doc in work.documents:
        if doc.object_key is None:
            _archive_document(work, doc)


def _archive_document(work: FileWork, doc: Document) -> None:
    s, f, env = work.session, work.file, work.env
    now = datetime.now(UTC)
    if doc.patient_id is None:  # identified by older code before a crash: settle it now
        settle_patient(s, doc)
    decision = decide(s, doc, env.policy, now)
    lock_until = env.policy.lock_until(decision, now)
    staged = env.data_dir / (f.staged_path or "")
    ref = env.store.put_file(
        str(staged), f.sha256, doc.mime, retain_until=lock_until, tags=object_tags(doc, decision)
    )
    doc.object_key, doc.object_version = ref.key, ref.version_id
    doc.retain_until, doc.retention_rule = decision.retain_until, decision.rule_id
    doc.retention_computed_at, doc.object_retain_until = now, lock_until
    doc.status = PAGE_ARCHIVED
    doc.archived_at = now
    s.flush()
    apply_holds_to_new_document(s, env.store, doc)
    if doc.mrn:
        recompute_patient(s, env.store, doc.mrn, env.policy, skip=[doc.id])
    for p in doc.pages:
        if p.status in (PAGE_CLASSIFIED, PAGE_OCR):
            p.status = PAGE_ARCHIVED
    s.commit()
    log.info("document archived doc=%s file=%s batch=%s pages=%d", doc.id, f.id, f.batch_id, doc.page_count)


# -- rendition -----------------------------------------------------------------------------------------


def rendition(work: FileWork) -> None:
    """Each archived document's searchable PDF, built from the staged original (one commit each).

    Idempotent: a document with a rendition is skipped, and the build is deterministic, so a crash
    between the store write and the commit rewrites the same object. A failed build is logged and
    left to ``resume``: the document is archived and is indexed all the same.
    """
    f, env = work.file, work.env
    staged = env.data_dir / f.staged_path if f.staged_path else None
    for doc in work.documents:
        if doc.object_key is not None and doc.rendition_form is None:
            render_document(work.session, env.store, env.data_dir, doc, staged)


# -- enqueue -------------------------------------------------------------------------------------------


def enqueue(work: FileWork) -> None:
    """Queue each archived document for the index writer (once), then close the file.

    Cover-sheet pages belong to no document but are archived with the original. Several documents of
    one file share one stored object, so the staged bytes are removed only after the last is archived.
    """
    s, f = work.session, work.file
    queued = set(
        s.scalars(
            select(IndexTask.document_id).where(IndexTask.document_id.in_([d.id for d in work.documents]))
        )
    )
    for doc in work.documents:
        if doc.object_key and doc.status != PAGE_INDEXED and doc.indexed_at is None and doc.id not in queued:
            s.add(IndexTask(document_id=doc.id, op="upsert"))
    for p in f.pages:
        if p.document_id is None and p.status in (PAGE_OCR, PAGE_CLASSIFIED):
            p.status = PAGE_ARCHIVED
    f.status = FILE_ARCHIVED
    s.commit()
    if f.staged_path and (work.env.data_dir / f.staged_path).exists():
        (work.env.data_dir / f.staged_path).unlink()  # the original now lives in the object store


# -- helpers -------------------------------------------------------------------------------------------


def _iso(value: str) -> date | None:
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None
