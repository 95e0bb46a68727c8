"""What OCR hands the rest of ChartVault: plain data, no I/O."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal


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

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class OcrOptions:
    lang: str = "eng"
    dpi: int = 300
    timeout_s: int = 180
    text_layer_min_chars: int = 40
    # Orientation detection costs an extra tesseract pass, so it runs only when the
    # first pass looks like a sideways or upside-down page (low confidence, few words).
    osd: bool = True
    # Deskew and clean scanned page images before tesseract (chartvault.ocr.preprocess).
    preprocess: bool = True
