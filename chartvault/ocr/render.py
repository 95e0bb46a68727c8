"""One page of an original as a screen-sized JPEG: what the web viewer shows beside the text.

Rendered from the original at the width asked for (never wider), turned upright by the rotation
OCR found, but not deskewed: the picture is the page as scanned. OCR read the words on the deskewed
page, so a word box goes through ``upright_box`` before it is drawn on the picture.
PDF pages are rasterised by pypdfium2 at exactly the scale needed; TIFF, PNG and JPEG are decoded
by Pillow (JPEG at a reduced DCT scale when that is enough) and downsampled.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import pypdfium2 as pdfium
from PIL import Image

from chartvault.filetypes import FileKind
from chartvault.ocr.errors import OcrError
from chartvault.ocr.images import to_ocr_mode
from chartvault.ocr.pdf import open_page

JPEG_QUALITY = 82  # text stays crisp at screen sizes; a letter page at 1,000 px is ~100-200 KB
_TURN = {  # clockwise degrees found by OCR -> Pillow transpose (Pillow's ROTATE_* turn anticlockwise)
    90: Image.Transpose.ROTATE_270,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_90,
}


def upright_box(
    box: tuple[float, float, float, float], size: tuple[float, float], deskew_deg: float | None
) -> tuple[float, float, float, float]:
    """Where a word box read on the deskewed page (left, top, width, height) lies on the rendered one.

    Preprocessing turned the scan ``deskew_deg`` counter-clockwise about its centre (keeping its size)
    before OCR, and a turn about the centre commutes with the quarter turn, so the box's centre is turned
    back about the centre of the upright page of ``size``; the box stays level (a word is short: its ends
    move by its half width times the skew's tangent, under a pixel at screen sizes).
    """
    if not deskew_deg:
        return box
    left, top, width, height = box
    t = math.radians(deskew_deg)
    dx, dy = left + width / 2 - size[0] / 2, top + height / 2 - size[1] / 2
    cx = size[0] / 2 + dx * math.cos(t) - dy * math.sin(t)
    cy = size[1] / 2 + dx * math.sin(t) + dy * math.cos(t)
    return cx - width / 2, cy - height / 2, width, height


def render_page_jpeg(
    path: Path, kind: FileKind, page_no: int, width: int, max_pixels: int, rotation: int = 0
) -> bytes:
    """Page ``page_no`` (1-based) of the file at ``path``, ``width`` pixels wide or its own width if
    narrower, upright, as JPEG bytes. Raises OcrError (page number and reason only).

    ``max_pixels`` is the configured page limit the original was accepted under; it is checked here
    rather than through Pillow's process-wide setting, which other work in the process may change.
    """
    if kind is FileKind.PDF:
        im = _pdf_page(path, page_no, width, rotation, max_pixels)
    else:
        im = _image_page(path, page_no, width, rotation, max_pixels)
    out = io.BytesIO()
    im.save(out, "JPEG", quality=JPEG_QUALITY, optimize=False, progressive=False)
    return out.getvalue()


def _turned_width(size: tuple[float, float], rotation: int) -> float:
    """The page's width once turned upright."""
    return size[1] if rotation in (90, 270) else size[0]


def _check_pixels(page_no: int, width: float, height: float, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise OcrError(page_no, "page exceeds the pixel limit")


def _pdf_page(path: Path, page_no: int, width: int, rotation: int, max_pixels: int) -> Image.Image:
    try:
        with open_page(path, page_no) as page:
            size = page.get_size()
            scale = width / _turned_width(size, rotation)
            _check_pixels(page_no, size[0] * scale, size[1] * scale, max_pixels)
            bitmap = page.render(scale=scale, rotation=rotation, grayscale=False)
            try:
                im: Image.Image = bitmap.to_pil().convert("RGB")
            finally:
                bitmap.close()
    except pdfium.PdfiumError:
        raise OcrError(page_no, "page could not be rendered") from None
    return im


def _image_page(path: Path, page_no: int, width: int, rotation: int, max_pixels: int) -> Image.Image:
    try:
        opened = Image.open(path)
    except Exception:  # Pillow's bomb guard (process-wide) or a file it cannot read
        raise OcrError(page_no, "image could not be decoded") from None
    with opened as im:
        try:
            if page_no > 1 or getattr(im, "n_frames", 1) > 1:
                im.seek(page_no - 1)
            _check_pixels(page_no, *im.size, max_pixels)
            target_w = min(width, round(_turned_width(im.size, rotation)))
            scale = target_w / _turned_width(im.size, rotation)
            target = (max(1, round(im.size[0] * scale)), max(1, round(im.size[1] * scale)))
            if im.format == "JPEG":
                im.draft(im.mode if im.mode in ("L", "RGB") else "RGB", target)  # decode at 1/2, 1/4, 1/8
            im.load()
        except EOFError:
            raise OcrError(page_no, "page does not exist") from None
        except OcrError:
            raise
        except Exception:
            raise OcrError(page_no, "image could not be decoded") from None
        page = to_ocr_mode(im)
        if page.mode == "1":
            page = page.convert("L")  # anti-aliased downsampling of bilevel scans reads far better
        if page.size != target:
            page = page.resize(target, Image.Resampling.LANCZOS, reducing_gap=2.0)
        if rotation in _TURN:
            page = page.transpose(_TURN[rotation])
        return page
