"""The release package: one PDF built from the approved documents, every page stamped.

PDF originals are copied page by page with ``import_pages`` so their text layer
survives; image originals (TIFF frames, PNG, JPEG) become PDF pages at their
scanned resolution. Every page then gets a real text object (standard Helvetica,
so any PDF reader, pdfplumber included, extracts it) naming the release, "page x
of y" and the redisclosure notice. Pure functions: no catalog, no store.
"""

from __future__ import annotations

import ctypes
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from chartvault.ocr.inert import remove_active_content

REDISCLOSURE_NOTICE = (
    "This information has been disclosed to you from records protected by federal confidentiality rules; "
    "further disclosure is prohibited unless permitted by law."
)
_FONT = b"Helvetica"
_FONT_SIZE = 6.0
_MARGIN = 8.0
_DEFAULT_DPI = 200.0  # images that carry no resolution


@dataclass(frozen=True, slots=True)
class PackageSource:
    """One approved document's original on local disk and which of its file's pages belong to it."""

    document_id: str
    path: Path
    mime: str
    first_page: int  # 1-based page of the file
    page_count: int


@dataclass(frozen=True, slots=True)
class BuiltPackage:
    path: Path
    sha256: str
    size: int
    pages: int


class PackageError(ValueError):
    """A package could not be built (the message names document ids only)."""


def stamp_text(release_id: str, page_no: int, total: int) -> tuple[str, str]:
    """The two stamp lines of a page: who/which page, then the redisclosure notice."""
    return f"Release {release_id} - page {page_no} of {total}", REDISCLOSURE_NOTICE


def build_package(release_id: str, sources: Sequence[PackageSource], out: Path) -> BuiltPackage:
    """Write the stamped package for ``release_id`` to ``out``, documents in the given order."""
    if not sources:
        raise PackageError(f"release {release_id} has no documents to package")
    pdf = pdfium.PdfDocument.new()
    try:
        for src in sources:
            if src.mime == "application/pdf":
                _add_pdf(pdf, src)
            elif src.mime.startswith("image/"):
                _add_image(pdf, src)
            else:
                raise PackageError(f"document {src.document_id} has an unsupported type for a package")
        total = len(pdf)
        for i in range(total):
            page = pdf[i]
            try:
                _stamp(pdf, page, stamp_text(release_id, i + 1, total))
            finally:
                page.close()
        out.parent.mkdir(parents=True, exist_ok=True)
        pdf.save(str(out))
    finally:
        pdf.close()
    remove_active_content(out)  # the hospital's document: nothing in it runs (chartvault.ocr.inert)
    digest = hashlib.sha256()
    with out.open("rb") as fp:
        for chunk in iter(lambda: fp.read(1 << 20), b""):
            digest.update(chunk)
    return BuiltPackage(out, digest.hexdigest(), out.stat().st_size, total)


def _add_pdf(pdf: pdfium.PdfDocument, src: PackageSource) -> None:
    """Copy the document's pages (text layer, fonts and images as they are)."""
    original = pdfium.PdfDocument(str(src.path))
    try:
        first = src.first_page - 1
        if first < 0 or first + src.page_count > len(original):
            raise PackageError(f"document {src.document_id} pages are outside its original")
        pdf.import_pages(original, pages=list(range(first, first + src.page_count)))
    finally:
        original.close()


def _add_image(pdf: pdfium.PdfDocument, src: PackageSource) -> None:
    """One PDF page per image frame, sized from the scan's resolution."""
    from PIL import Image

    with Image.open(src.path) as img:
        for frame_no in range(src.first_page - 1, src.first_page - 1 + src.page_count):
            try:
                img.seek(frame_no)
            except EOFError:
                raise PackageError(f"document {src.document_id} pages are outside its original") from None
            frame = img.convert("L") if img.mode in ("1", "L", "I;16", "I") else img.convert("RGB")
            dpi = img.info.get("dpi") or (_DEFAULT_DPI, _DEFAULT_DPI)
            xdpi = float(dpi[0]) or _DEFAULT_DPI
            ydpi = float(dpi[1]) or _DEFAULT_DPI
            width, height = frame.width * 72.0 / xdpi, frame.height * 72.0 / ydpi
            page = pdf.new_page(width, height)
            image = pdfium.PdfImage.new(pdf)
            bitmap = pdfium.PdfBitmap.from_pil(frame)
            try:
                image.set_bitmap(bitmap)
                image.set_matrix(pdfium.PdfMatrix().scale(width, height))
                page.insert_obj(image)
                page.gen_content()
            finally:
                bitmap.close()
                page.close()


def _stamp(pdf: pdfium.PdfDocument, page: pdfium.PdfPage, lines: tuple[str, ...]) -> None:
    """Add ``lines`` as text objects at the bottom-left of the visible page (white box behind)."""
    left, bottom, right, _top = page.get_cropbox()
    width = right - left
    # Shrink the font so the longest line fits the page width (Helvetica averages ~0.5 em per char).
    longest = max(len(line) for line in lines)
    size = min(_FONT_SIZE, max(3.0, (width - 2 * _MARGIN) / (0.5 * longest)))
    height = len(lines) * (size + 2) + 4
    _white_box(page, left + _MARGIN - 2, bottom + _MARGIN - 3, width - 2 * _MARGIN + 4, height)
    y = bottom + _MARGIN + (len(lines) - 1) * (size + 2)
    for line in lines:
        obj = pdfium_c.FPDFPageObj_NewTextObj(pdf.raw, _FONT, ctypes.c_float(size))
        if not obj:
            raise PackageError("could not create a stamp text object")
        encoded = (line + "\x00").encode("utf-16-le")
        buffer = ctypes.create_string_buffer(encoded, len(encoded))
        if not pdfium_c.FPDFText_SetText(obj, ctypes.cast(buffer, ctypes.POINTER(pdfium_c.FPDF_WCHAR))):
            pdfium_c.FPDFPageObj_Destroy(obj)
            raise PackageError("could not set the stamp text")
        pdfium_c.FPDFPageObj_SetFillColor(obj, 0, 0, 0, 255)
        pdfium_c.FPDFPageObj_Transform(obj, 1, 0, 0, 1, left + _MARGIN, y)
        pdfium_c.FPDFPage_InsertObject(page.raw, obj)
        y -= size + 2
    if not pdfium_c.FPDFPage_GenerateContent(page.raw):
        raise PackageError("could not write the stamp into the page")


def _white_box(page: pdfium.PdfPage, x: float, y: float, w: float, h: float) -> None:
    """A filled white rectangle so the stamp stays legible over scanned content."""
    path = pdfium_c.FPDFPageObj_CreateNewRect(x, y, w, h)
    pdfium_c.FPDFPageObj_SetFillColor(path, 255, 255, 255, 255)
    pdfium_c.FPDFPath_SetDrawMode(path, pdfium_c.FPDF_FILLMODE_WINDING, 0)
    pdfium_c.FPDFPage_InsertObject(page.raw, path)
