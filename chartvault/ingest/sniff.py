"""Know a file by its content, and refuse it before any work when it breaks a limit.

Nothing here trusts a file name. Every refusal carries a stable ``code`` (for
scripts and the API) and a ``reason`` a scanning operator can act on; neither
ever contains file names or page content.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from chartvault.filetypes import FileKind

PDF_POINTS_PER_INCH = 72


class Refused(Exception):
    """A file ChartVault will not take, with a reason code and a plain-language reason."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Limits:
    max_file_bytes: int
    max_pages: int
    max_pixels: int
    render_dpi: int = 300


@dataclass(frozen=True, slots=True)
class Sniffed:
    kind: FileKind
    page_count: int


def detect_kind(head: bytes) -> FileKind | None:
    """The file kind from its first bytes, or None when it is not one we take."""
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return FileKind.TIFF
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return FileKind.PNG
    if head.startswith(b"\xff\xd8\xff"):
        return FileKind.JPEG
    # The PDF spec tolerates bytes before the header; readers look in the first KiB.
    if b"%PDF-" in head[:1024]:
        return FileKind.PDF
    return None


_MARKUP = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*<(?:\?xml|!doctype|html|svg|!--)", re.IGNORECASE)


def describe_unknown(head: bytes) -> str:
    """A short, content-free description of what an unsupported file looks like.

    Only real signatures name a type; anything else is "of an unknown type" (random bytes that happen
    to start with ``<`` are not a web page).
    """
    signatures = [
        (b"PK\x03\x04", "a ZIP archive (or Office document)"),
        (b"GIF8", "a GIF image"),
        (b"BM", "a BMP image"),
        (b"RIFF", "a RIFF file (WebP/AVI/WAV)"),
        (b"\x00\x00\x00\x0cjP", "a JPEG 2000 image"),
        (b"%!PS", "a PostScript file"),
        (b"\x1f\x8b", "a gzip archive"),
        (b"\xd0\xcf\x11\xe0", "a legacy Office document"),
    ]
    for magic, what in signatures:
        if head.startswith(magic):
            return what
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut at the end of the sample
            return "of an unknown type"
    return "an HTML or XML document" if _MARKUP.match(head) else "a text file"


def sniff(path: Path, limits: Limits) -> Sniffed:
    """Identify and check a file fully enough that OCR will not meet a surprise.

    Images are decoded frame by frame (a corrupt or truncated image is refused
    here, not half-way through a batch); PDFs are opened and every page's size
    checked against the pixel cap at the render resolution.
    """
    size = path.stat().st_size
    if size == 0:
        raise Refused("empty_file", "The file is empty (0 bytes).")
    if size > limits.max_file_bytes:
        raise Refused(
            "too_large", f"The file is {size:,} bytes; the limit is {limits.max_file_bytes:,} bytes."
        )
    with path.open("rb") as fp:
        head = fp.read(1024)
    kind = detect_kind(head)
    if kind is None:
        raise Refused(
            "unsupported_type",
            f"The content is {describe_unknown(head)}, not a TIFF, PNG, JPEG or PDF.",
        )
    if kind is FileKind.PDF:
        return Sniffed(kind, _check_pdf(path, limits))
    _refuse_polyglot(path, head, size)
    return Sniffed(kind, _check_image(path, kind, limits))


_POLYGLOT_TAIL = 64 * 1024


def _refuse_polyglot(path: Path, head: bytes, size: int) -> None:
    """Refuse an image that is also a PDF or carries a ZIP archive (a polyglot).

    PDF readers accept a header anywhere in the first 1024 bytes and ZIP readers read
    from the end, so such a file is a different document to a different program: what
    staff see would not be what a vendor's software extracts.
    """
    with path.open("rb") as fp:
        fp.seek(max(0, size - _POLYGLOT_TAIL))
        tail = fp.read()
    if b"%PDF-" in head:
        raise Refused("polyglot", "The image also carries a PDF header: a polyglot file.")
    if b"PK\x05\x06" in tail or b"%%EOF" in tail[-1024:]:
        raise Refused("polyglot", "The image has an archive or PDF appended: a polyglot file.")


def _check_image(path: Path, kind: FileKind, limits: Limits) -> int:
    """Pages and pixels of every frame, from headers, before anything is decoded.

    Our limit is checked explicitly per frame; Pillow's process-wide bomb guard is left as it is (a
    sniff in the server must not change what every other thread of the process may open).
    """
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 1x and 2x MAX_IMAGE_PIXELS; make that a refusal too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                frames = getattr(im, "n_frames", 1)
                if frames > limits.max_pages:
                    raise Refused(
                        "too_many_pages", f"The file has {frames} pages; the limit is {limits.max_pages}."
                    )
                for i in range(frames):
                    im.seek(i)
                    _check_pixels(im.width, im.height, i + 1, limits)
                    _decode_cheaply(im, kind)
                return frames
    except Refused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise Refused(
            "decompression_bomb", f"An image is larger than the pixel limit ({exc.__class__.__name__})."
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise Refused(
            "corrupt", f"The {kind.value.upper()} image could not be decoded ({_short(exc)})."
        ) from None


def _decode_cheaply(im: Image.Image, kind: FileKind) -> None:
    """Decode enough to catch corrupt or truncated data without paying for a full decode.

    OCR decodes the page again anyway; here a JPEG is decoded at 1/8 scale (DCT
    scaling still reads every entropy-coded byte, so truncation is caught) and
    other frames in full (G4/LZW TIFF frames and PNGs decode fast).
    """
    if kind is FileKind.JPEG:
        im.draft("L", (max(1, im.width // 8), max(1, im.height // 8)))
    im.load()


def _check_pixels(width: int, height: int, page_no: int, limits: Limits) -> None:
    if width <= 0 or height <= 0:
        raise Refused("corrupt", f"Page {page_no} has no size.")
    if width * height > limits.max_pixels:
        raise Refused(
            "page_too_large",
            f"Page {page_no} is {width}x{height} pixels; the limit is {limits.max_pixels:,} pixels.",
        )


def _check_pdf(path: Path, limits: Limits) -> int:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise Refused("encrypted", "The PDF is password-protected.") from None
        raise Refused("corrupt", f"The PDF could not be opened ({_short(exc)}).") from None
    try:
        pages = len(pdf)
        if pages == 0:
            raise Refused("corrupt", "The PDF has no pages.")
        if pages > limits.max_pages:
            raise Refused("too_many_pages", f"The PDF has {pages} pages; the limit is {limits.max_pages}.")
        scale = limits.render_dpi / PDF_POINTS_PER_INCH
        for i in range(pages):
            w_pt, h_pt = pdf.get_page_size(i)
            _check_pixels(round(w_pt * scale), round(h_pt * scale), i + 1, limits)
        return pages
    finally:
        pdf.close()


def _short(exc: BaseException) -> str:
    """An exception's message, trimmed; library messages carry no page content."""
    text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    return text[:200]
