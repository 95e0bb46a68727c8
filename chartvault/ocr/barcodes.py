"""Barcodes on a page image: Code 128, Code 39 and QR, read with zxing-cpp.

Why: patient labels carry a linear barcode of the MRN or account number and scanning cover sheets carry
one that says whose document follows and of what type (``chartvault.classify.coversheet``); a barcode
decodes exactly or not at all, where OCR of the same digits guesses. Pure functions, no I/O beyond reading
the page image; nothing here logs payloads (they are identifiers).

Cost: a scanned page is read from the pixels the OCR pass already decoded (``scan_decoded``), reduced by
whole pixels to ~``SCAN_DPI``: a letter page at 300 dpi takes zxing ~35 ms at full size, ~8 ms at 100 dpi
(measured with ``read_barcodes`` on a 2-core machine). A cover sheet's QR code (12 printed pixels of 1/200
inch a module) reads at that size; its Code 128 (2 such pixels a bar) not always, so a page with few OCR
words (where a cover sheet can be) that showed no barcode at all is read again at ~``FINE_DPI``. Chart pages
carry hundreds of words and never pay the second pass. A patient label's Code 128 is narrower (a bar of 3
300-dpi pixels on the bench's labels): at ~100 dpi 2 of 12 such labels were lost (`bench.generated`'s
held-out draw; at ~150, 3), at ~300 none, fax pages included; so a page that showed no linear code has its
label bands (above ``LABEL_TOP`` and below ``LABEL_BOTTOM`` of its height, where labels are stuck) read
again at ~``LABEL_DPI``: the barcode stage went from 11 to 27 ms CPU per page (`bench.resolution`, the 108
scanned corpus pages, none with a label barcode), 2.8 % of the OCR's 965 ms. Files whose pages were not
decoded for OCR (a PDF page read from its text layer) go through ``page_barcodes``: the page is decoded (a
PDF page rendered by pdfium at ``BARCODE_DPI``) and reduced to at most ``MAX_SIDE`` pixels on the long side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from chartvault.filetypes import FileKind
from chartvault.ocr.types import LABEL_BOTTOM, LABEL_TOP

__all__ = [
    "BARCODE_DPI",
    "FINE_DPI",
    "FORMATS",
    "LABEL_DPI",
    "LINEAR",
    "MAX_SIDE",
    "SCAN_DPI",
    "page_barcodes",
    "page_image",
    "read_barcodes",
    "scan_decoded",
]

FORMATS = "Code128,Code39,QRCode"
BARCODE_DPI = 150  # PDF pages are rendered at this resolution for barcode reading only
MAX_SIDE = 2200  # longer sides are reduced (a 300-dpi letter page is 3300 px): enough for label barcodes
SCAN_DPI = 100  # every OCR'd page is searched for barcodes at about this resolution
FINE_DPI = 200  # ...and a page with few words and no barcode found again at about this one
LABEL_DPI = 300  # ...and the label bands of a page with no linear code found at about this one
LINEAR = frozenset({"Code128", "Code39"})


def read_barcodes(image: Image.Image | Any) -> list[dict[str, str]]:
    """Code 128, Code 39 and QR codes on one page image (PIL image or numpy array), top to bottom.

    Each is ``{"format": "Code128" | "Code39" | "QRCode", "text": payload}``; identical symbols printed twice
    on a page (a QR and a Code 128 of the same payload are two entries, a repeated label is one).
    """
    import zxingcpp

    formats = zxingcpp.barcode_formats_from_str(FORMATS)
    # Inverted (light-on-dark) symbols are not printed on chart paper: skipping that pass saves ~15 %.
    found = zxingcpp.read_barcodes(image, formats=formats, try_invert=False)
    out: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for b in sorted(found, key=lambda b: (b.position.top_left.y, b.position.top_left.x)):
        fmt = _format_name(b.format)
        key = (fmt, b.text)
        if key in seen or not b.text:
            continue
        seen.add(key)
        out.append({"format": fmt, "text": b.text})
    return out


def _format_name(fmt: Any) -> str:
    name = str(fmt).rsplit(".", 1)[-1].replace(" ", "")  # 'QR Code' -> 'QRCode'
    return {"Code39Std": "Code39", "Code39Ext": "Code39", "QRCodeModel2": "QRCode"}.get(name, name)


def page_image(path: Path, kind: FileKind, page_no: int, dpi: int = BARCODE_DPI) -> Image.Image:
    """One page of a file as an 8-bit grayscale image small enough to scan quickly (1-based page_no)."""
    if kind is FileKind.PDF:
        import pypdfium2 as pdfium

        doc = pdfium.PdfDocument(str(path))
        try:
            page = doc[page_no - 1]
            try:
                bitmap = page.render(scale=dpi / 72, grayscale=True)
                img: Image.Image = bitmap.to_pil().convert("L")
            finally:
                page.close()
        finally:
            doc.close()
    else:
        with Image.open(path) as im:
            if page_no > 1 or kind is FileKind.TIFF:
                im.seek(page_no - 1)
            if kind is FileKind.JPEG and max(im.size) > MAX_SIDE:
                im.draft("L", (im.width // 2, im.height // 2))  # DCT-domain downscale: half the decode
            img = im.convert("L")
    longest = max(img.size)
    if longest > MAX_SIDE:
        factor = MAX_SIDE / longest
        size = (max(1, round(img.width * factor)), max(1, round(img.height * factor)))
        img = img.resize(size, Image.Resampling.BOX)
    return img


def page_barcodes(path: Path, kind: FileKind, page_no: int) -> list[dict[str, str]]:
    """Barcodes of one page of a file (see ``read_barcodes``)."""
    return read_barcodes(page_image(path, kind, page_no))


def reduced(im: Image.Image, dpi: int | None, target_dpi: int) -> Image.Image:
    """8-bit grey at about `target_dpi` (by a whole factor, a box filter: cheap and sharp enough)."""
    gray = im if im.mode == "L" else im.convert("L")
    factor = max(1, round((dpi or 300) / target_dpi))
    return gray.reduce(factor) if factor > 1 and min(gray.size) >= 2 * factor else gray


def scan_decoded(im: Image.Image, dpi: int | None, *, few_words: bool) -> list[dict[str, str]]:
    """Barcodes of a page image already decoded for OCR (see the module docstring for the two passes)."""
    found = read_barcodes(reduced(im, dpi, SCAN_DPI))
    if not found and few_words:
        found = read_barcodes(reduced(im, dpi, FINE_DPI))
    if not any(b["format"] in LINEAR for b in found):
        found += [b for b in label_band_codes(im, dpi) if b not in found]
    return found


def label_band_codes(im: Image.Image, dpi: int | None) -> list[dict[str, str]]:
    """The barcodes in the top and bottom label bands of a page image, read at about ``LABEL_DPI``."""
    height = im.height
    out: list[dict[str, str]] = []
    for top, bottom in ((0, round(LABEL_TOP * height)), (round(LABEL_BOTTOM * height), height)):
        band = reduced(im.crop((0, top, im.width, bottom)), dpi, LABEL_DPI)
        out += [b for b in read_barcodes(band) if b not in out]
    return out
