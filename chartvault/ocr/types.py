"""What OCR hands the rest of ChartVault: plain data, no I/O."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# The bands of a page where patient labels, imprints and header/footer strips are stuck: above LABEL_TOP and
# below LABEL_BOTTOM (fractions of the page height). The identifier reader's rows and the barcode pass's
# second look share them.
LABEL_TOP, LABEL_BOTTOM = 0.30, 0.78


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word and its box in page pixels (top-left origin)."""

    text: str
    conf: float  # 0-100; 100 for words read from a PDF text layer
    left: int
    top: int
    width: int
    height: int


@dataclass(slots=True)
class PageText:
    """The text of one page and how it was obtained."""

    page_no: int  # 1-based
    text: str
    confidence: float | None  # mean word confidence 0-100; None when there are no words
    source: Literal["ocr", "text_layer"]
    width: int  # pixels (OCR) or points (text layer)
    height: int
    rotation: int = 0  # degrees clockwise applied before OCR (from OSD)
    words: list[Word] = field(default_factory=list)
    elapsed_ms: int = 0
    # The back of a one-sided sheet (near-white, no confident words): kept and archived, but
    # not counted as a page of the document or given text (chartvault.ocr.blank).
    blank: bool = False
    # What a text layer placed over the page image needs besides the word boxes: the resolution the
    # boxes are measured in (pixels per inch of `width` x `height`; None for a text layer, whose
    # units are points) and the small turn preprocessing gave the page before recognition
    # (degrees counter-clockwise about the centre; boxes are in the turned image).
    dpi: int | None = None
    deskew_deg: float = 0.0
    # CPU milliseconds by stage (decode, preprocess, ocr, barcodes, ...) spent on this page by the
    # process that read it, tesseract child processes included: what bench.pipeline reports.
    cpu_ms: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


OcrEngineName = Literal["tesserocr", "pytesseract"]


@dataclass(frozen=True, slots=True)
class OcrOptions:
    lang: str = "eng"
    # The resolution PDF pages are rendered at; two-level pages (1-bit, faxes) are read at it.
    dpi: int = 300
    # Pages with grey levels scanned finer than this are reduced to it before recognition: on the
    # corpus as accurate (clean, typical, poor tiers) for ~0.75x the tesseract time; two-level pages
    # are not (python -m bench.resolution). Word boxes stay in the scan's own pixels. 0: never reduce.
    grey_dpi: int = 200
    timeout_s: int = 180
    text_layer_min_chars: int = 40
    # Orientation detection costs an extra tesseract pass, so it runs only when the
    # first pass looks like a sideways or upside-down page (low confidence, few words).
    osd: bool = True
    # Deskew and clean scanned page images before tesseract (chartvault.ocr.preprocess).
    preprocess: bool = True
    # Which tesseract binding recognises the page (chartvault.ocr.engines): the library loaded once
    # in each worker process, or the command-line program started for every page.
    engine: OcrEngineName = "tesserocr"
