"""PDF pages: the text layer when there is one, else an image for tesseract.

pypdfium2 does the hot path (text layer test and extraction measured 2.3 ms/page against
pdfplumber's 270 ms/page); pdfplumber is kept for on-demand precise word positions only.
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image

from chartvault.ocr.errors import OcrError
from chartvault.ocr.images import check_pixels
from chartvault.ocr.types import PageText, Word


@contextmanager
def open_page(path: Path, page_no: int) -> Iterator[pdfium.PdfPage]:
    """One page of a PDF, with document and page closed afterwards."""
    try:
        doc = pdfium.PdfDocument(path)
    except pdfium.PdfiumError:
        raise OcrError(page_no, "pdf could not be opened (damaged or encrypted)") from None
    try:
        if not 1 <= page_no <= len(doc):
            raise OcrError(page_no, "page does not exist")
        page = doc[page_no - 1]
        try:
            yield page
        finally:
            page.close()
    finally:
        doc.close()


def _meaningful_chars(text: str) -> int:
    """Characters that carry text: not whitespace, control or private-use (broken font maps)."""
    return sum(1 for c in text if not c.isspace() and c.isprintable() and not "\ue000" <= c <= "\uf8ff")


class _ToTopLeft:
    """PDF user space (bottom-left origin, unrotated) to displayed page points, top-left origin."""

    def __init__(self, page: pdfium.PdfPage) -> None:
        self.left, self.bottom, self.right, self.top = page.get_cropbox()
        self.rotation = page.get_rotation() % 360
        w, h = self.right - self.left, self.top - self.bottom
        self.size = (h, w) if self.rotation in (90, 270) else (w, h)

    def point(self, x: float, y: float) -> tuple[float, float]:
        if self.rotation == 90:
            return y - self.bottom, x - self.left
        if self.rotation == 180:
            return self.right - x, y - self.bottom
        if self.rotation == 270:
            return self.top - y, self.right - x
        return x - self.left, self.top - y

    def box(self, x0: float, y0: float, x1: float, y1: float, text: str) -> Word:
        ax, ay = self.point(x0, y0)
        bx, by = self.point(x1, y1)
        left, top = math.floor(min(ax, bx)), math.floor(min(ay, by))
        return Word(text, 100.0, left, top, math.ceil(max(ax, bx)) - left, math.ceil(max(ay, by)) - top)


def _words_from_chars(textpage: pdfium.PdfTextPage, text: str, to_top_left: _ToTopLeft) -> list[Word]:
    """Group the text layer's chars into words on whitespace (and on a jump to another line)."""
    n = textpage.count_chars()
    aligned = len(text) == n  # the usual case: one text char per page char
    get_box = pdfium_c.FPDFText_GetCharBox
    cl, cr, cb, ct = ctypes.c_double(), ctypes.c_double(), ctypes.c_double(), ctypes.c_double()
    refs = (ctypes.byref(cl), ctypes.byref(cr), ctypes.byref(cb), ctypes.byref(ct))
    words: list[Word] = []
    chars: list[str] = []
    box: list[float] = []  # x0, y0, x1, y1 of the word so far; empty until a char has a box

    def flush() -> None:
        if chars and box:  # a word with no measurable char has no place on the page
            x0, y0, x1, y1 = box
            words.append(to_top_left.box(x0, y0, x1, y1, "".join(chars)))
        chars.clear()
        box.clear()

    for i in range(n):
        ch = text[i] if aligned else chr(pdfium_c.FPDFText_GetUnicode(textpage, i) or 32)
        if ch.isspace() or not ch.isprintable():
            flush()
            continue
        if get_box(textpage, i, *refs):
            left, right, bottom, top = cl.value, cr.value, cb.value, ct.value
            if box and (bottom > box[3] or top < box[1]):  # no vertical overlap: a new line
                flush()
            if box:
                box[:] = min(box[0], left), min(box[1], bottom), max(box[2], right), max(box[3], top)
            else:
                box[:] = left, bottom, right, top
        chars.append(ch)
    flush()
    return words


def text_layer_page(page: pdfium.PdfPage, page_no: int, min_chars: int) -> PageText | None:
    """The page from its text layer, or None when the layer is too thin to trust."""
    # At least one character: a page with no text at all is a scan, never an empty text page.
    min_chars = max(1, min_chars)
    textpage = page.get_textpage()
    try:
        if textpage.count_chars() < min_chars:  # cheap reject, before decoding any text
            return None
        raw = textpage.get_text_range()
        if _meaningful_chars(raw) < min_chars:
            return None
        to_top_left = _ToTopLeft(page)
        words = _words_from_chars(textpage, raw, to_top_left)
    finally:
        textpage.close()
    text = "\n".join(line.rstrip() for line in raw.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    width, height = to_top_left.size
    return PageText(
        page_no=page_no,
        text=text.strip("\n"),
        confidence=100.0,
        source="text_layer",
        width=round(width),
        height=round(height),
        words=words,
    )


def render_image(page: pdfium.PdfPage, page_no: int, dpi: int) -> Image.Image:
    """Rasterise in grayscale at `dpi`: pixels in memory, no file (tesseract gets them as a buffer or PNM)."""
    scale = dpi / 72
    width, height = page.get_size()
    check_pixels(page_no, math.ceil(width * scale), math.ceil(height * scale))
    try:
        bitmap = page.render(scale=scale, grayscale=True)
    except pdfium.PdfiumError:
        raise OcrError(page_no, "page could not be rendered") from None
    try:
        # A copy: the bitmap's buffer is freed with it.
        im: Image.Image = bitmap.to_pil()
        return im.copy() if im.mode == "L" else im.convert("L")
    finally:
        bitmap.close()


def words_with_pdfplumber(path: Path, page_no: int) -> list[Word]:
    """Precise word positions of a text-layer page, in points from the top-left corner.

    For the API's on-demand word lookup, where pdfplumber's cost (~270 ms/page) buys better word
    segmentation than the ingest path's whitespace grouping (which keeps e.g. "PATIENT:HILL,"
    together when the PDF positions the gap without a space). Never called while ingesting.
    """
    import pdfplumber  # imported here so OCR workers never load it

    try:
        pdf = pdfplumber.open(path)
    except Exception:
        raise OcrError(page_no, "pdf could not be opened (damaged or encrypted)") from None
    with pdf:
        if not 1 <= page_no <= len(pdf.pages):
            raise OcrError(page_no, "page does not exist")
        page = pdf.pages[page_no - 1]
        # pdfplumber's coordinates are top-left based but relative to the MediaBox; the ingest path
        # (pdfium) reports them relative to the visible CropBox, so do the same here.
        x_offset, y_offset = page.cropbox[0], page.cropbox[1]
        return [
            Word(
                w["text"],
                100.0,
                math.floor(w["x0"] - x_offset),
                math.floor(w["top"] - y_offset),
                max(1, math.ceil(w["x1"] - w["x0"])),
                max(1, math.ceil(w["bottom"] - w["top"])),
            )
            # 1 pt, not pdfplumber's default 3: body-size serif text is set with inter-word gaps
            # under 3 pt, which the default glues into one "word" per line fragment.
            for w in page.extract_words(x_tolerance=1)
        ]
