"""Tesseract calls: one TSV pass per page, orientation detection only on demand."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytesseract
from pytesseract import Output

from chartvault.ocr.errors import OcrError
from chartvault.ocr.types import Word

# Tesseract's OpenMP threading fights the other OCR workers (one process per core) for the same
# cores: measured 2x slower under load. Parallelism belongs at the page level, so every tesseract
# this process starts gets one thread. pytesseract spawns a subprocess per call, which reads the
# environment at spawn time, so setting it at import is early enough. setdefault: an operator can
# still override it on purpose.
os.environ.setdefault("OMP_THREAD_LIMIT", "1")

# stderr fragments of leptonica failing to read the input image.
_DECODE_FAILURES = ("pixRead", "Error in pix", "Premature end", "Not a JPEG", "libpng error")


@dataclass(slots=True)
class OcrPass:
    """The result of one tesseract pass over one image."""

    text: str
    confidence: float | None
    words: list[Word] = field(default_factory=list)
    width: int = 0
    height: int = 0


class Deadline:
    """One time budget per page, shared by every tesseract call the page needs."""

    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds

    def remaining(self, page_no: int) -> float:
        left = self.left()
        if left <= 0:
            raise OcrError(page_no, "tesseract timed out")
        return left

    def left(self) -> float:
        """Seconds left, negative once passed (never raises)."""
        return self._end - time.monotonic()


def _config(dpi: int | None) -> str:
    # PNM files carry no resolution; without it tesseract guesses ("Invalid resolution 0 dpi").
    return f"--dpi {dpi}" if dpi and dpi > 0 else ""


def _run(
    func: Callable[..., object], path: Path, page_no: int, deadline: Deadline, **kwargs: object
) -> object:
    """Call pytesseract and turn its failures into an OcrError without stderr or paths in it."""
    try:
        # A str (not a PIL image) makes pytesseract pass the path straight to tesseract instead of
        # re-encoding a temporary PNG (measured ~0.8 s per page).
        return func(str(path), timeout=deadline.remaining(page_no), **kwargs)
    except pytesseract.TesseractNotFoundError:
        raise OcrError(page_no, "tesseract is not installed") from None
    except pytesseract.TesseractError as exc:
        message = str(exc.message)
        if any(s in message for s in _DECODE_FAILURES):
            raise OcrError(page_no, "image could not be decoded") from None
        raise OcrError(page_no, f"tesseract failed (exit status {exc.status})") from None
    except RuntimeError as exc:  # pytesseract's way of reporting a timeout
        if "timeout" in str(exc).lower():
            raise OcrError(page_no, "tesseract timed out") from None
        raise


def ocr_image(
    path: Path, page_no: int, lang: str, deadline: Deadline, dpi: int | None = None, *, psm: int | None = None
) -> OcrPass:
    """One recognition pass: page text, mean confidence and word boxes from a single TSV run (``psm``: a
    page segmentation mode other than the automatic one)."""
    # Output.STRING and our own parser rather than Output.DICT: the latter truncates confidences
    # to integers. Same single tesseract run either way.
    tsv = _run(
        pytesseract.image_to_data,
        path,
        page_no,
        deadline,
        lang=lang,
        config=f"{_config(dpi)} --psm {psm}".strip() if psm is not None else _config(dpi),
        output_type=Output.STRING,
    )
    assert isinstance(tsv, str)
    return parse_tsv(tsv)


def parse_tsv(tsv: str) -> OcrPass:
    """Tesseract TSV to text: words joined per line, a blank line between blocks and paragraphs.

    With or without the header row: the program writes one, the library (GetTSVText) does not.
    """
    width = height = 0
    words: list[Word] = []
    lines: list[str] = []
    confs: list[float] = []
    prev_par: tuple[str, ...] | None = None
    prev_line: tuple[str, ...] | None = None
    for row in tsv.splitlines():
        cols = row.split("\t")
        if len(cols) < 11 or not cols[0].isdigit():
            continue
        level = cols[0]
        if level == "1":
            width, height = int(cols[8]), int(cols[9])
            continue
        if level != "5":
            continue
        text = cols[11].strip() if len(cols) > 11 else ""
        if not text:
            continue
        conf = float(cols[10])
        if conf >= 0:
            confs.append(conf)
        words.append(Word(text, max(conf, 0.0), int(cols[6]), int(cols[7]), int(cols[8]), int(cols[9])))
        par = (cols[1], cols[2], cols[3])
        line = (*par, cols[4])
        if line != prev_line:
            if prev_par is not None and par != prev_par:
                lines.append("")
            lines.append(text)
            prev_par, prev_line = par, line
        else:
            lines[-1] += " " + text
    confidence = round(sum(confs) / len(confs), 2) if confs else None
    return OcrPass("\n".join(lines), confidence, words, width, height)


def detect_rotation(
    path: Path, page_no: int, deadline: Deadline, dpi: int | None = None
) -> tuple[int, float] | None:
    """Tesseract OSD: (degrees clockwise that make the page upright, orientation confidence).

    None when OSD cannot tell (too few characters, e.g. a nearly blank page): not an error.
    """
    try:
        osd = _run(
            pytesseract.image_to_osd, path, page_no, deadline, config=_config(dpi), output_type=Output.DICT
        )
    except OcrError as exc:
        if exc.reason == "tesseract timed out":
            raise
        return None
    assert isinstance(osd, dict)
    if "rotate" not in osd:
        return None
    return int(osd["rotate"]) % 360, float(osd.get("orientation_conf", 0.0))
