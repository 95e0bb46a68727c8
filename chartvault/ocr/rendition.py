"""The archive rendition of a scanned document: its page images with an invisible text layer.

What OCRmyPDF does, from what ChartVault already has: the pages' word boxes (in the recognised
image's pixels, with the quarter turn and deskew the page was given) are placed over the untouched
page images in text render mode 3 (invisible), set in tesseract's glyphless font and stretched so each
word spans its box, so a reader's search, selection and copy find the words where they are printed.

Image originals are written by ``pdfwriter`` as PDF/A-2b files: a bilevel frame as CCITT G4 (lossless),
a JPEG as its own bytes and a PNG as its own compressed data (neither re-encoded), anything else
Flate-compressed (lossless). A scanned PDF keeps its own pages (pdfium copies them as they are) with
the text placed over each OCR'd page as a form XObject; pages that carry a text layer are copied
untouched. Pure: no catalog, no store.
"""

from __future__ import annotations

import ctypes
import hashlib
import io
import math
import re
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image

from chartvault.filetypes import FileKind
from chartvault.ocr.pdfwriter import GLYPH_ADVANCE, ImageStream, PdfWriter, num

_DEFAULT_DPI = 200.0  # images that carry no resolution (as release packages size them)
_FLATE_LEVEL = 6

Matrix = tuple[float, float, float, float, float, float]


@dataclass(frozen=True, slots=True)
class RenditionPage:
    """One page of the original as the catalog knows it: where its words are and how it was read."""

    page_no: int  # 1-based page of the original file
    words: Sequence[Sequence[Any]]  # [text, conf, left, top, width, height] in the recognised image
    width: int | None  # the recognised image's size in the scan's pixels (turned as recognised)
    height: int | None
    rotation: int = 0  # quarter turn (degrees clockwise) applied before recognition
    deskew_deg: float = 0.0  # then (before the turn) this small counter-clockwise turn about the centre
    text_layer: bool = False  # read from the PDF's own text layer: copied as it is


@dataclass(frozen=True, slots=True)
class BuiltRendition:
    path: Path
    sha256: str
    size: int
    pages: int
    pdfa: bool  # written by ChartVault's own writer with the PDF/A-2b metadata and output intent


class RenditionError(ValueError):
    """The rendition could not be built (the message names page numbers only, never content)."""


def build_rendition(
    original: Path,
    kind: FileKind,
    pages: Sequence[RenditionPage],
    out: Path,
    *,
    created: datetime,
    title: str = "",
) -> BuiltRendition:
    """Write the searchable PDF of ``pages`` of ``original`` to ``out``; deterministic for given inputs."""
    if not pages:
        raise RenditionError("a rendition needs at least one page")
    out.parent.mkdir(parents=True, exist_ok=True)
    if kind is FileKind.PDF:
        _from_pdf(original, pages, out, created, title)
        pdfa = False
    else:
        out.write_bytes(_from_images(original, kind, pages, created, title))
        pdfa = True
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    return BuiltRendition(out, digest, out.stat().st_size, len(pages), pdfa)


# -- geometry -------------------------------------------------------------------------------------


def word_matrices(page: RenditionPage, size_pt: tuple[float, float]) -> list[tuple[str, Matrix]]:
    """Each word with the text matrix that lays it over its box on a page of ``size_pt`` points.

    The box is in the recognised image: turned by ``rotation`` after a ``deskew_deg`` turn of the scan.
    Its corners are taken back through the quarter turn to the scan, then to points (bottom-left
    origin). The deskew is undone per line: each line of words is moved to where its centre is on the
    (skewed) scan and kept level. A text layer that followed the skew word by word would be read back
    as broken lines by text extraction (a 1.5 degree slope climbs a whole line across a page); a level
    line is exact at its centre and off by at most half its width times the skew's tangent at its ends.
    The matrix maps the word's text space (n glyphs of GLYPH_ADVANCE at size 1) onto its box.
    """
    if not page.width or not page.height:
        return []
    quarter = page.rotation % 360
    w0, h0 = (page.height, page.width) if quarter in (90, 270) else (page.width, page.height)
    sx, sy = size_pt[0] / w0, size_pt[1] / h0
    theta = math.radians(page.deskew_deg or 0.0)
    cos_t, sin_t = math.cos(theta), math.sin(theta)

    def to_pt(x: float, y: float) -> tuple[float, float]:
        x0, y0 = _unturn(x, y, quarter, w0, h0)
        return x0 * sx, size_pt[1] - y0 * sy

    def skew_shift(x: float, y: float) -> tuple[float, float]:
        """How far (points) the deskew moved this point of the scan."""
        x0, y0 = _unturn(x, y, quarter, w0, h0)
        dx, dy = x0 - w0 / 2, y0 - h0 / 2
        return (dx * cos_t - dy * sin_t - dx) * sx, -(dx * sin_t + dy * cos_t - dy) * sy

    placed: list[tuple[str, Matrix]] = []
    for line in _lines(page.words):
        left = min(b[1] for b in line)
        right = max(b[1] + b[3] for b in line)
        top = min(b[2] for b in line)
        bottom = max(b[2] + b[4] for b in line)
        mx, my = skew_shift((left + right) / 2, (top + bottom) / 2) if theta else (0.0, 0.0)
        for text, x, y, w, h in line:
            ox, oy = to_pt(x, y + h)
            ex, ey = to_pt(x + w, y + h)
            tx, ty = to_pt(x, y)
            advance = len(text.encode("utf-16-be")) // 2 * GLYPH_ADVANCE
            placed.append(
                (text, ((ex - ox) / advance, (ey - oy) / advance, tx - ox, ty - oy, ox + mx, oy + my))
            )
    return placed


_Box = tuple[str, float, float, float, float]


def _lines(words: Sequence[Sequence[Any]]) -> list[list[_Box]]:
    """Words in reading order cut into lines: a word starts a new line when it is left of the one
    before or its middle is outside that one's height (tesseract gives words line by line)."""
    lines: list[list[_Box]] = []
    prev: _Box | None = None
    for word in words:
        text = str(word[0]).strip()
        box: _Box = (text, float(word[2]), float(word[3]), float(word[4]), float(word[5]))
        if not text or box[3] <= 0 or box[4] <= 0:
            continue
        middle = box[2] + box[4] / 2
        if prev is None or box[1] < prev[1] or not prev[2] <= middle <= prev[2] + prev[4]:
            lines.append([])
        lines[-1].append(box)
        prev = box
    return lines


def _unturn(x: float, y: float, quarter: int, w0: float, h0: float) -> tuple[float, float]:
    """A point of the image turned ``quarter`` degrees clockwise, back in the unturned image."""
    if quarter == 90:
        return y, h0 - x
    if quarter == 180:
        return w0 - x, h0 - y
    if quarter == 270:
        return w0 - y, x
    return x, y


def text_layer(page: RenditionPage, size_pt: tuple[float, float]) -> bytes:
    """The page's words as invisible text (render mode 3) in the glyphless font ``/F0``.

    Each word is followed by a space inside the same string, so text extraction separates words
    however close their boxes are (the space's advance falls past the box, in the gap).
    """
    placed = word_matrices(page, size_pt)
    if not placed:
        return b""
    lines = [b"BT", b"3 Tr", b"/F0 1 Tf"]
    for text, m in placed:
        encoded = (text + " ").encode("utf-16-be")
        lines.append(b" ".join(num(v) for v in m) + b" Tm <" + encoded.hex().encode() + b"> Tj")
    lines.append(b"ET")
    return b"\n".join(lines) + b"\n"


# -- image originals -------------------------------------------------------------------------------


def _from_images(
    original: Path, kind: FileKind, pages: Sequence[RenditionPage], created: datetime, title: str
) -> bytes:
    writer = PdfWriter()
    with Image.open(original) as im:
        for page in pages:
            try:
                im.seek(page.page_no - 1)
            except EOFError:
                raise RenditionError(f"page {page.page_no} is not in the original") from None
            stream = _image_stream(original, kind, im)
            dpi = _dpi(im)
            size = (im.width * 72.0 / dpi[0], im.height * 72.0 / dpi[1])
            image = writer.add_image(stream)
            draw = b"q %s 0 0 %s 0 0 cm /Im0 Do Q\n" % (num(size[0]), num(size[1]))
            writer.add_page(size, draw + text_layer(page, size), image, rotate=page.rotation % 360)
    return writer.finish(created.strftime("%Y-%m-%dT%H:%M:%SZ"), title)


def _dpi(im: Image.Image) -> tuple[float, float]:
    dpi = im.info.get("dpi") or (_DEFAULT_DPI, _DEFAULT_DPI)
    try:
        x, y = float(dpi[0]), float(dpi[1])
    except (TypeError, ValueError, IndexError):
        return _DEFAULT_DPI, _DEFAULT_DPI
    return (x if x > 0 else _DEFAULT_DPI), (y if y > 0 else _DEFAULT_DPI)


def _image_stream(original: Path, kind: FileKind, im: Image.Image) -> ImageStream:
    """The frame as the PDF will carry it: passed through when its encoding allows, else lossless."""
    if kind is FileKind.JPEG and im.mode in ("L", "RGB"):
        return ImageStream(im.width, im.height, _SPACE[im.mode], 8, b"/DCTDecode", original.read_bytes())
    if kind is FileKind.PNG and (passed := _png_passthrough(original)) is not None:
        return passed
    if im.mode == "1":
        return _g4(im)
    frame = _flat(im)
    data = zlib.compress(frame.tobytes(), _FLATE_LEVEL)
    return ImageStream(frame.width, frame.height, _SPACE[frame.mode], 8, b"/FlateDecode", data)


_SPACE = {"L": b"/DeviceGray", "RGB": b"/DeviceRGB", "1": b"/DeviceGray"}


def _flat(im: Image.Image) -> Image.Image:
    """Grey or RGB pixels; transparency composited on white (paper)."""
    if im.mode in ("L", "RGB"):
        return im
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    if im.mode in ("I;16", "I;16B", "I", "F"):
        return im.convert("L")
    return im.convert("RGB")


def _g4(im: Image.Image) -> ImageStream:
    """A bilevel frame as CCITT Group 4 (lossless): libtiff encodes one strip, whose bytes are the stream."""
    buf = io.BytesIO()
    im.save(buf, format="TIFF", compression="group4", strip_size=1 << 30)
    buf.seek(0)
    with Image.open(buf) as tiff:
        tags = tiff.getexif()  # the first IFD's tags
        offsets, counts = tags[273], tags[279]
        offsets = offsets if isinstance(offsets, tuple) else (offsets,)
        counts = counts if isinstance(counts, tuple) else (counts,)
        if len(offsets) != 1:
            raise RenditionError("the bilevel page did not encode as one strip")
        inverted = tags.get(262, 0) == 1  # Pillow writes mode "1" as min-is-black
    data = buf.getvalue()[offsets[0] : offsets[0] + counts[0]]
    parms = b"/K -1 /Columns %d /Rows %d /BlackIs1 %s" % (
        im.width,
        im.height,
        b"true" if inverted else b"false",
    )
    return ImageStream(im.width, im.height, b"/DeviceGray", 1, b"/CCITTFaxDecode", data, parms)


def _png_passthrough(path: Path) -> ImageStream | None:
    """A PNG's own zlib data (with its row filters as the PNG predictor): grey 1/8-bit or RGB 8-bit,
    not interlaced, no transparency or palette. None for anything else (re-encoded losslessly)."""
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    pos, idat, header = 8, [], None
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if ctype == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif ctype == b"IDAT":
            idat.append(body)
        elif ctype in (b"tRNS", b"PLTE"):
            return None
        elif ctype == b"IEND":
            break
        pos += 12 + length
    if header is None or not idat:
        return None
    width, height, depth, color, _comp, _filt, interlace = header
    ok = (color == 0 and depth in (1, 8)) or (color == 2 and depth == 8)
    if not ok or interlace:
        return None
    colors = 3 if color == 2 else 1
    parms = b"/Predictor 15 /Colors %d /BitsPerComponent %d /Columns %d" % (colors, depth, width)
    space = b"/DeviceRGB" if color == 2 else b"/DeviceGray"
    return ImageStream(width, height, space, depth, b"/FlateDecode", b"".join(idat), parms)


# -- PDF originals ---------------------------------------------------------------------------------


def _from_pdf(
    original: Path, pages: Sequence[RenditionPage], out: Path, created: datetime, title: str
) -> None:
    """Copy the PDF's pages as they are and lay each OCR'd page's words over it as a form XObject."""
    src = pdfium.PdfDocument(str(original))
    dest = pdfium.PdfDocument.new()
    try:
        if any(not 1 <= p.page_no <= len(src) for p in pages):
            raise RenditionError("a page is not in the original")
        dest.import_pages(src, pages=[p.page_no - 1 for p in pages])
        geometry = [_displayed(src, p.page_no - 1) for p in pages]
        writer = PdfWriter()
        overlaid: list[int] = []
        for i, (page, (size, _m)) in enumerate(zip(pages, geometry, strict=True)):
            layer = b"" if page.text_layer else text_layer(page, size)
            if layer:
                writer.add_page(size, layer, None)
                overlaid.append(i)
        if overlaid:
            texts = pdfium.PdfDocument(writer.finish(created.strftime("%Y-%m-%dT%H:%M:%SZ"), title))
            try:
                for text_index, i in enumerate(overlaid):
                    _overlay(dest, texts, text_index, i, geometry[i][1])
            finally:
                texts.close()
        dest.save(str(out))
    finally:
        dest.close()
        src.close()
    _fixed_id(out)


_PDFIUM_ID = re.compile(rb"/ID\s*\[\s*<([0-9A-Fa-f]{32})>\s*<([0-9A-Fa-f]{32})>\s*\]")


def _fixed_id(path: Path) -> None:
    """pdfium writes a random document ID: replace it (same length, so offsets hold) by a hash of the
    file without it, so a rebuilt rendition is byte for byte the stored one."""
    data = path.read_bytes()
    found = _PDFIUM_ID.search(data)
    if found is None:
        return
    blank = data[: found.start()] + data[found.end() :]
    digest = hashlib.sha256(blank).hexdigest()[:32].upper().encode()
    fixed = found.group(0).replace(found.group(1), digest).replace(found.group(2), digest)
    path.write_bytes(data[: found.start()] + fixed + data[found.end() :])


def _displayed(doc: pdfium.PdfDocument, index: int) -> tuple[tuple[float, float], Matrix]:
    """A page's displayed size in points and the matrix from displayed (bottom-left) to user space."""
    page = doc[index]
    try:
        left, bottom, right, top = page.get_cropbox()
        rotation = page.get_rotation() % 360
    finally:
        page.close()
    w, h = right - left, top - bottom
    if rotation == 90:
        return (h, w), (0, 1, -1, 0, right, bottom)
    if rotation == 180:
        return (w, h), (-1, 0, 0, -1, right, top)
    if rotation == 270:
        return (h, w), (0, -1, 1, 0, left, top)
    return (w, h), (1, 0, 0, 1, left, bottom)


def _overlay(
    dest: pdfium.PdfDocument, texts: pdfium.PdfDocument, text_index: int, index: int, m: Matrix
) -> None:
    xobject = pdfium_c.FPDF_NewXObjectFromPage(dest.raw, texts.raw, text_index)
    if not xobject:
        raise RenditionError(f"page {index + 1}: the text layer could not be copied")
    page = dest[index]
    try:
        form = pdfium_c.FPDF_NewFormObjectFromXObject(xobject)
        if not form:
            raise RenditionError(f"page {index + 1}: the text layer could not be placed")
        pdfium_c.FPDFPageObj_Transform(form, *(ctypes.c_double(v) for v in m))
        pdfium_c.FPDFPage_InsertObject(page.raw, form)
        if not pdfium_c.FPDFPage_GenerateContent(page.raw):
            raise RenditionError(f"page {index + 1}: the text layer could not be written")
    finally:
        page.close()
        pdfium_c.FPDF_CloseXObject(xobject)
