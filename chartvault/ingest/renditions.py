"""Building a document's searchable rendition from its original and its pages' word boxes.

Run by the pipeline's ``rendition`` stage (after ``archive``, from the staged file) and by ``resume``
for any live document still without one (from the stored original: a crash after the archive
commit, a failed build, documents archived before renditions existed, the parts of a misfile split).
A failed build never holds a document back: it is logged (ids and the error's type only) and left
for the next ``resume``; ``chartvault check`` lists documents still missing one.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from chartvault.archive.holds import active_hold_ids
from chartvault.archive.lifecycle import document_ref
from chartvault.archive.models import Document, Page
from chartvault.archive.objectstore import ObjectStore
from chartvault.archive.renditions import missing_renditions, original_is_rendition, store_rendition
from chartvault.filetypes import FileKind
from chartvault.ingest.private import ocr_workdir_prefix
from chartvault.ocr.inert import active_content, remove_active_content
from chartvault.ocr.rendition import RenditionPage, build_rendition

log = logging.getLogger("chartvault.pipeline")

_KINDS = {kind.mime: kind for kind in FileKind}


def born_digital(doc: Document) -> bool:
    """A PDF every page of which was read from its own text layer: it is its own rendition, unless it
    carries something a PDF reader would run (then an inert copy is: ``_inert_copy``)."""
    return (
        doc.mime == FileKind.PDF.mime and bool(doc.pages) and all(p.source == "text_layer" for p in doc.pages)
    )


def rendition_pages(pages: list[Page], first_page: int) -> list[RenditionPage]:
    """The pages as the builder takes them, numbered in the original file."""
    return [
        RenditionPage(
            page_no=p.page_no,
            words=[] if p.blank else (p.words or []),
            width=p.width,
            height=p.height,
            rotation=p.rotation or 0,
            deskew_deg=p.deskew_deg or 0.0,
            text_layer=p.source == "text_layer",
        )
        for p in sorted(pages, key=lambda p: p.page_no)
        if p.page_no >= first_page
    ]


def render_document(
    s: Session, store: ObjectStore, data_dir: Path, doc: Document, original: Path | None
) -> bool:
    """Give ``doc`` its rendition (built and stored, or its original named as it); commits.

    ``original`` is the original's bytes on local disk when the caller has them (the staged file),
    else they are read from the store (sha256-verified). Returns False when the build failed.
    """
    if doc.rendition_form is not None or doc.object_key is None:
        return True
    kind = _KINDS.get(doc.mime)
    try:
        if kind is None and not born_digital(doc):
            raise ValueError("no rendition for this kind of original")
        with _local_original(store, data_dir, doc, original) as path, _scratch(data_dir, doc.id) as out:
            sha256 = _inert_copy(path, out) if born_digital(doc) else _built(doc, path, kind, out)
            if sha256 is None:  # a born-digital PDF with nothing active in it: its own rendition
                original_is_rendition(doc)
            else:
                store_rendition(s, store, doc, str(out), sha256, held=bool(active_hold_ids(s, doc.id)))
        s.commit()
        return True
    except Exception as exc:  # a rendition never stops the pipeline: resume retries it
        s.rollback()
        log.warning("rendition not built doc=%s error=%s", doc.id, type(exc).__name__)
        return False


def _built(doc: Document, path: Path, kind: FileKind | None, out: Path) -> str:
    """The searchable PDF of a scanned original, written to ``out``; its sha256."""
    if kind is None:
        raise ValueError("no rendition for this kind of original")
    built = build_rendition(
        path,
        kind,
        rendition_pages(list(doc.pages), doc.first_page),
        out,
        created=doc.archived_at or doc.created_at,
        title=f"ChartVault document {doc.id}",
    )
    return built.sha256


def _inert_copy(path: Path, out: Path) -> str | None:
    """A born-digital PDF that would run something when opened (JavaScript, a launch, an attachment):
    its copy without it, written to ``out``, and its sha256; None when there is nothing to take out. The
    original stays as it came (the record); staff open the rendition."""
    found = active_content(path)
    if not found:
        return None
    shutil.copyfile(path, out)
    remove_active_content(out)
    log.info("born-digital rendition made inert found=%s", ",".join(found))
    with out.open("rb") as fp:
        return hashlib.file_digest(fp, "sha256").hexdigest()  # streamed: a PDF may be large


def build_missing(sessions: sessionmaker[Session], store: ObjectStore, data_dir: Path) -> tuple[int, int]:
    """Build every missing rendition, a batch of documents at a time; (built, failed)."""
    built = failed = 0
    tried: set[str] = set()
    while True:
        with sessions() as s:
            ids = [i for i in missing_renditions(s) if i not in tried]
            if not ids:
                return built, failed
            for doc_id in ids:
                tried.add(doc_id)
                doc = s.get(Document, doc_id)
                if doc is None:
                    continue
                if render_document(s, store, data_dir, doc, None):
                    built += 1
                else:
                    failed += 1


@contextmanager
def _local_original(store: ObjectStore, data_dir: Path, doc: Document, given: Path | None) -> Iterator[Path]:
    if given is not None and given.exists():
        yield given
        return
    with _scratch(data_dir, f"{doc.id}-original") as path:
        with path.open("wb") as fp:
            store.read_into(document_ref(doc), fp)
        yield path


@contextmanager
def _scratch(data_dir: Path, name: str) -> Iterator[Path]:
    """A file under ``<data_dir>/tmp``, removed after; named after this process like OCR's scratch, so
    if a crash leaves it (it holds PHI) ``resume`` removes it and ``check`` reports it."""
    folder = data_dir / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{ocr_workdir_prefix()}rendition-{name}-{uuid.uuid4().hex[:12]}"
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
