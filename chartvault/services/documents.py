"""Reading archived documents: metadata, page text, the original. Every read is audited."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from chartvault.archive.models import DOC_DISPOSED, RENDITION_ORIGINAL, BatchFile, Document, Page
from chartvault.archive.objectstore import ObjectRef, ObjectStore
from chartvault.archive.patients import MRN_REFUSED
from chartvault.archive.renditions import RENDITION_MIME, rendition_ref
from chartvault.errors import NotFound
from chartvault.schemas.common import d, iso
from chartvault.schemas.documents import (
    DocumentIdentifiers,
    DocumentPage,
    DocumentView,
    IdentifierValue,
    PageText,
    RefusedMrn,
)
from chartvault.services.caller import AuditTrail

_EXTENSIONS = {"image/tiff": "tif", "image/png": "png", "image/jpeg": "jpg", "application/pdf": "pdf"}


@dataclass(frozen=True, slots=True)
class Original:
    """Where an original's bytes are and how to offer them for download."""

    ref: ObjectRef
    mime: str
    size: int
    filename: str  # made from the document id: the scanned file's own name is never sent back
    form: str = "original"  # or "rendition": the searchable PDF (audited as such)


class DocumentService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: Callable[[], ObjectStore],
        audit: AuditTrail,
    ) -> None:
        self.sessions = sessions
        self._store = store  # opened only to stream an original
        self.audit = audit

    def get(self, doc_id: str, with_text: bool = False) -> DocumentView:
        """A document's metadata (and, with ``with_text``, every page's text)."""
        with self.sessions() as s:
            doc = s.get(Document, doc_id, options=[selectinload(Document.pages)])
            if doc is None:
                self.audit("document.read", "document", doc_id, outcome="not_found")
                raise NotFound(f"document {doc_id} not found")
            linked = s.scalars(select(BatchFile.id).where(BatchFile.duplicate_of == doc.id)).all()
            view = _document_view(doc, list(linked), with_text)
        self.audit("document.read", "document", doc_id, detail={"with_text": with_text})
        return view

    def page_text(self, doc_id: str, page_no: int) -> PageText:
        with self.sessions() as s:
            page = s.scalars(
                select(Page)
                .join(Document, Page.document_id == Document.id)
                .where(Document.id == doc_id, Page.page_no == page_no)
            ).first()
            if page is None:
                if s.get(Document, doc_id) is None:
                    raise NotFound(f"document {doc_id} not found")
                raise NotFound(f"document {doc_id} has no page {page_no}")
            text = PageText(
                document_id=doc_id,
                page_no=page.page_no,
                text="" if page.blank else (page.text or ""),  # a blank back: no text to show
                blank=bool(page.blank),
                confidence=page.confidence,
                source=page.source,
                status=page.status,
            )
        self.audit("document.page_text", "document", doc_id, detail={"page_no": page_no})
        return text

    def original(self, doc_id: str) -> Original:
        """Where the original is (nothing is read or audited yet: see ``stream``)."""
        with self.sessions() as s:
            doc = s.get(Document, doc_id)
            if doc is None:
                raise NotFound(f"document {doc_id} not found")
            if doc.status == DOC_DISPOSED:
                raise NotFound(f"document {doc_id} was destroyed by disposition {doc.disposition_id}")
            if doc.object_key is None:
                raise NotFound(f"document {doc_id} is not archived yet")
            return Original(
                ObjectRef(doc.object_key, doc.sha256, doc.size, doc.object_version),
                doc.mime,
                doc.size,
                f"{doc.id}.{_EXTENSIONS.get(doc.mime, 'bin')}",
            )

    def rendition(self, doc_id: str) -> Original:
        """Where the searchable PDF rendition is: its own object, or the original of a born-digital PDF.

        NotFound while it is not built yet (the pipeline's ``rendition`` stage, or ``resume``).
        """
        found = self.original(doc_id)
        with self.sessions() as s:
            doc = s.get(Document, doc_id)
            assert doc is not None  # original() found it
            if doc.rendition_form == RENDITION_ORIGINAL:
                return Original(found.ref, found.mime, found.size, found.filename, form="rendition")
            ref = rendition_ref(doc)
            if ref is None:
                raise NotFound(f"document {doc_id} has no rendition yet")
            return Original(ref, RENDITION_MIME, ref.size, f"{doc.id}-searchable.pdf", form="rendition")

    def stream(self, doc_id: str, original: Original) -> Iterator[bytes]:
        """The bytes, checked against their sha256; the download is audited before the first."""
        detail = {"sha256": original.ref.sha256}
        if original.form != "original":
            detail["form"] = original.form
        self.audit("document.download", "document", doc_id, detail=detail)
        return self._store().open(original.ref)

    def page_texts(self, doc_id: str) -> Sequence[str]:
        """Page texts in page order; a blank page gives "" (kept so positions stay page numbers)."""
        with self.sessions() as s:
            rows = s.scalars(select(Page).where(Page.document_id == doc_id).order_by(Page.page_no)).all()
            return ["" if p.blank else (p.text or "") for p in rows]


def _document_view(doc: Document, linked_files: list[str], with_text: bool) -> DocumentView:
    conf = doc.identifier_confidence or {}

    def ident(name: str, value: str | None) -> IdentifierValue | None:
        if value is None:
            return None
        return IdentifierValue(
            value=value,
            confidence=conf.get(name),
            source=conf.get(f"{name}_source"),
            read_as=conf.get(f"{name}_read"),
        )

    return DocumentView(
        id=doc.id,
        batch_id=doc.batch_id,
        file_id=doc.file_id,
        status=doc.status,
        doc_type=doc.doc_type,
        doc_type_confidence=doc.doc_type_confidence,
        identifiers=DocumentIdentifiers(
            mrn=ident("mrn", doc.mrn),
            name=ident("name", doc.patient_name),
            dob=ident("dob", d(doc.dob)),
            date_of_service=ident("date_of_service", d(doc.date_of_service)),
            account=ident("account", doc.account),
            encounter=ident("encounter", doc.encounter),
            mrn_refused=_refused_mrns(conf.get(MRN_REFUSED)),
        ),
        patient_id=doc.patient_id,
        sha256=doc.sha256,
        size=doc.size,
        mime=doc.mime,
        page_count=doc.page_count - (doc.blank_pages or 0),  # blank backs are archived, not counted
        blank_pages=doc.blank_pages or 0,
        first_page=doc.first_page,
        classification_source=doc.classification_source,
        icd_codes=list(doc.icd_codes or []),
        review_status=doc.review_status,
        review_reasons=list(doc.review_reasons or []),
        archived_at=iso(doc.archived_at),
        indexed_at=iso(doc.indexed_at),
        linked_duplicate_files=linked_files,
        rendition=doc.rendition_form,
        rendition_sha256=doc.sha256 if doc.rendition_form == RENDITION_ORIGINAL else doc.rendition_sha256,
        pages=[
            DocumentPage(
                page_no=p.page_no,
                status=p.status,
                confidence=p.confidence,
                source=p.source,
                rotation=p.rotation,
                flags=list(p.flags or []),
                text=(p.text or "") if with_text else None,
            )
            for p in doc.pages
            if not p.blank
        ],
    )


def _refused_mrns(kept: object) -> list[RefusedMrn]:
    """The MRNs a cover sheet or manifest gave that the check digit refused, as the catalog keeps them."""
    if not isinstance(kept, list):
        return []
    return [
        RefusedMrn(source=str(r["source"]), value=str(r["value"]))
        for r in kept
        if isinstance(r, dict) and "source" in r and "value" in r
    ]
