"""Pages as the viewer shows them: a screen-sized image from the original, the text, the query's words.

Page images are rendered on demand at the width the browser asks for (capped, never wider than the
original), cached on disk under ``<data_dir>/cache`` (0600 files in a 0700 folder) and audited as a
read of that page, like the page text. The original a page is rendered from is cached there too
(verified against its sha256 as it is copied), so the next page of the same document renders
without fetching the whole file again. Documents that are disposed of or refiled are forgotten by
``forget``; the cache stays under ``page_cache_mb`` by removing the least recently used files.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from chartvault.archive.lifecycle import document_ref
from chartvault.archive.models import Document, Page
from chartvault.archive.objectstore import ObjectStore
from chartvault.archive.queries import visible_clause
from chartvault.errors import InvalidInput, NotFound
from chartvault.filetypes import FileKind
from chartvault.ocr.errors import OcrError
from chartvault.ocr.render import render_page_jpeg, upright_box
from chartvault.schemas.viewer import HitBox, PageView
from chartvault.search.highlight import highlight
from chartvault.search.pagemarks import marked_text, match_spec, word_boxes
from chartvault.search.query import MatchSpec
from chartvault.services.caller import AuditTrail

MIN_WIDTH = 100
_KINDS = {kind.mime: kind for kind in FileKind}


@dataclass(frozen=True, slots=True)
class PageImage:
    """A rendered page on disk, ready to be sent."""

    path: Path
    etag: str


@dataclass(frozen=True, slots=True)
class _Source:
    doc_id: str
    page_no: int
    rotation: int
    kind: FileKind
    sha256: str
    fetch: Callable[[Path], None]  # writes the verified original to a path


class PageCache:
    """Files under one folder, kept below a byte budget by removing the least recently used."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._bytes: int | None = None  # counted on first write

    def page_path(self, doc_id: str, page_no: int, width: int, sha256: str) -> Path:
        return self.root / "pages" / doc_id / f"p{page_no}-w{width}-{sha256[:16]}.jpg"

    def original_path(self, sha256: str) -> Path:
        return self.root / "originals" / sha256

    def hit(self, path: Path) -> bool:
        """Whether ``path`` is cached; a hit is marked recently used."""
        try:
            os.utime(path)
        except FileNotFoundError:
            return False
        return True

    def write(self, path: Path, fill: Callable[[Path], object]) -> None:
        """Make ``path`` (0600) by ``fill``ing a temporary file that is renamed into place."""
        _private_dir(path.parent, self.root)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        try:
            fill(tmp)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._count(path.stat().st_size)

    def remove(self, paths: Iterable[Path]) -> None:
        for path in paths:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        with self._lock:
            self._bytes = None  # recounted at the next write

    def _count(self, added: int) -> None:
        with self._lock:
            if self._bytes is None:
                self._bytes = sum(size for _, size, _ in self._files())
            else:
                self._bytes += added
            if self._bytes > self.max_bytes:
                self._bytes = self._evict(int(self.max_bytes * 0.8))

    def _files(self) -> list[tuple[Path, int, float]]:
        found = []
        for path in self.root.rglob("*"):
            with contextlib.suppress(FileNotFoundError):
                if path.is_file():
                    st = path.stat()
                    found.append((path, st.st_size, st.st_mtime))
        return found

    def _evict(self, target: int) -> int:
        files = sorted(self._files(), key=lambda f: f[2])
        total = sum(size for _, size, _ in files)
        for path, size, _ in files:
            if total <= target:
                break
            path.unlink(missing_ok=True)
            total -= size
        return total


def _private_dir(folder: Path, root: Path) -> None:
    """Create ``folder`` (and the cache root) readable by this user only."""
    for part in (root, folder):
        part.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(root, 0o700)


class PageService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: Callable[[], ObjectStore],
        cache: PageCache,
        max_width: int,
        max_pixels: int,
        audit: AuditTrail,
    ) -> None:
        self.sessions = sessions
        self._store = store
        self.cache = cache
        self.max_width = max_width
        self.max_pixels = max_pixels  # the limit originals were accepted under
        self.audit = audit

    def view(
        self, doc_id: str, page_no: int | None = None, query: str | None = None, position: int | None = None
    ) -> PageView:
        """One page's text with the query's words marked, their boxes on the image, the hit pages.

        The page is ``page_no`` (its number in the file), else the ``position``-th page of the
        document (as search hits count pages, blank backs included), else the first page the query
        matches, else the first page.
        """
        spec = match_spec(query)
        with self.sessions() as s:
            rows = s.scalars(
                select(Page)
                .join(Document, Page.document_id == Document.id)
                .where(Document.id == doc_id, visible_clause())
                .order_by(Page.page_no)
            ).all()
            if not rows:
                raise NotFound(_gone(doc_id))
            shown = [p for p in rows if not p.blank] or list(rows)
            hit_pages = _hit_pages(shown, spec) if spec is not None else []
            page = _pick(rows, shown, hit_pages, page_no, position)
            if page is None:
                raise NotFound(f"document {doc_id} has no page {page_no or position}")
            view = PageView(
                document_id=doc_id,
                page_no=page.page_no,
                pages=[p.page_no for p in shown],
                hit_pages=hit_pages,
                text_html=marked_text("" if page.blank else (page.text or ""), spec),
                blank=bool(page.blank),
                confidence=page.confidence,
                source=page.source,
                boxes=_percent_boxes(page, spec),
            )
        self.audit("document.page_read", "document", doc_id, detail={"page": view.page_no, "as": "text"})
        return view

    def image(self, doc_id: str, page_no: int, width: int) -> PageImage:
        """The page as a JPEG ``width`` pixels wide (or narrower: never wider than the original)."""
        if not MIN_WIDTH <= width <= self.max_width:
            raise InvalidInput(f"width must be {MIN_WIDTH}-{self.max_width} pixels")
        source = self._source(doc_id, page_no)
        path = self.cache.page_path(doc_id, page_no, width, source.sha256)
        cached = self.cache.hit(path)
        if not cached:
            original = self._original(source)
            try:
                jpeg = render_page_jpeg(
                    original, source.kind, page_no, width, self.max_pixels, source.rotation
                )
            except OcrError as exc:
                raise NotFound(f"page {page_no} of document {doc_id} cannot be shown: {exc.reason}") from None
            self.cache.write(path, lambda tmp: tmp.write_bytes(jpeg))
        detail = {"page": page_no, "as": "image", "width": width, "cached": cached}
        self.audit("document.page_read", "document", doc_id, detail=detail)
        return PageImage(path, f'"{source.sha256[:16]}-{page_no}-{width}"')

    def forget(self, doc_ids: Iterable[str]) -> None:
        """Remove every cached image (and cached original) of these documents: disposed, refiled."""
        ids = list(doc_ids)
        with self.sessions() as s:
            shas = set(s.scalars(select(Document.sha256).where(Document.id.in_(ids))))
        self.cache.remove(
            [self.cache.root / "pages" / doc_id for doc_id in ids]
            + [self.cache.original_path(sha) for sha in shas]
        )

    def _source(self, doc_id: str, page_no: int) -> _Source:
        with self.sessions() as s:
            found = s.execute(
                select(Document, Page.rotation)
                .join(Page, Page.document_id == Document.id)
                .where(Document.id == doc_id, Page.page_no == page_no, visible_clause())
            ).first()
            if found is None:
                if s.scalar(select(Document.id).where(Document.id == doc_id, visible_clause())) is None:
                    raise NotFound(_gone(doc_id))
                raise NotFound(f"document {doc_id} has no page {page_no}")
            doc, rotation = found
            if doc.object_key is None or doc.mime not in _KINDS:
                raise NotFound(f"document {doc_id} has no original to show")
            ref = document_ref(doc)
        store = self._store

        def fetch(path: Path) -> None:
            with path.open("wb") as fp:
                store().read_into(ref, fp)  # verified against the sha256 as it is copied

        return _Source(doc_id, page_no, rotation or 0, _KINDS[doc.mime], ref.sha256, fetch)

    def _original(self, source: _Source) -> Path:
        path = self.cache.original_path(source.sha256)
        if not self.cache.hit(path):
            self.cache.write(path, source.fetch)
        return path


def _gone(doc_id: str) -> str:
    return f"document {doc_id} not found"


def _pick(
    rows: Sequence[Page], shown: list[Page], hit_pages: list[int], page_no: int | None, position: int | None
) -> Page | None:
    if page_no is not None:
        return next((p for p in rows if p.page_no == page_no), None)
    if position is not None:
        return rows[position - 1] if 1 <= position <= len(rows) else None
    first = hit_pages[0] if hit_pages else shown[0].page_no
    return next(p for p in rows if p.page_no == first)


def _hit_pages(pages: list[Page], spec: MatchSpec) -> list[int]:
    """Page numbers (in the file) of the pages the query matches, found as the snippets are."""
    positions, _ = highlight([p.text or "" for p in pages], spec, max_snippets=0)
    return [pages[i - 1].page_no for i in positions]


def _percent_boxes(page: Page, spec: MatchSpec | None) -> list[HitBox]:
    """The matched words' boxes as percentages of the page, whatever the units of its words."""
    if not page.width or not page.height or page.blank:
        return []
    w, h = float(page.width), float(page.height)
    on_image = [
        upright_box((b.left, b.top, b.width, b.height), (w, h), page.deskew_deg)
        for b in word_boxes(page.words, spec)
    ]
    return [
        HitBox(
            left=round(100 * left / w, 3),
            top=round(100 * top / h, 3),
            width=round(100 * width / w, 3),
            height=round(100 * height / h, 3),
        )
        for left, top, width, height in on_image
    ]
