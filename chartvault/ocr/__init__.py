"""Images and PDFs to page text, word boxes and confidence. Knows nothing of HTTP or the database."""

from chartvault.ocr.errors import OcrError
from chartvault.ocr.pages import PageScan, extract_page, scan_page
from chartvault.ocr.pdf import words_with_pdfplumber
from chartvault.ocr.types import OcrOptions, PageText, Word

__all__ = [
    "OcrError",
    "OcrOptions",
    "PageScan",
    "PageText",
    "Word",
    "extract_page",
    "scan_page",
    "words_with_pdfplumber",
]
