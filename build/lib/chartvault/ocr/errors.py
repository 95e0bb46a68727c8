"""The one exception OCR raises, safe to log and to show."""

from __future__ import annotations


class OcrError(Exception):
    """A page could not be read.

    The message holds only the page number and a fixed reason ("tesseract timed out",
    "image could not be decoded"): never page text, file names or tesseract's stderr,
    because it ends up in logs and API responses of a medical-records service.
    """

    def __init__(self, page_no: int, reason: str) -> None:
        # Both go to Exception.args so the error pickles back from a worker process.
        super().__init__(page_no, reason)
        self.page_no = page_no
        self.reason = reason

    def __str__(self) -> str:
        return f"page {self.page_no}: {self.reason}"
