"""The local worker pool: one process per core, one tesseract thread per process.

OCRmyPDF's lesson: parallelism belongs at the page level, and tesseract's own
OpenMP threading only fights the other workers for cores (measured 2x slower
under load). Task functions here are top-level so they pickle, and they return
errors as values so one bad page never breaks the pool.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from chartvault.ingest.sniff import Limits, Refused, Sniffed, sniff
from chartvault.ocr.types import OcrOptions, PageText


@dataclass(slots=True)
class SniffOutcome:
    sniffed: Sniffed | None = None
    code: str | None = None
    reason: str | None = None


@dataclass(slots=True)
class PageOutcome:
    page: PageText | None = None
    identifiers: dict | None = None  # extracted in the worker: the main process stays light
    error: str | None = None  # page numbers and reasons only, never content
    # Code 128 / Code 39 / QR read on the page ([{"format", "text"}]); None when reading failed.
    barcodes: list[dict[str, str]] | None = None
    barcode_ms: int = 0


def _init_worker(max_pixels: int) -> None:
    os.environ["OMP_THREAD_LIMIT"] = "1"
    Image.MAX_IMAGE_PIXELS = max_pixels


def make_pool(workers: int, max_pixels: int) -> ProcessPoolExecutor:
    # forkserver: the API server has threads, and forking a threaded process is unsafe.
    ctx = multiprocessing.get_context("forkserver")
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(max_pixels,)
    )


def sniff_task(path: str, limits: Limits) -> SniffOutcome:
    try:
        return SniffOutcome(sniffed=sniff(Path(path), limits))
    except Refused as exc:
        return SniffOutcome(code=exc.code, reason=exc.reason)
    except Exception as exc:
        return SniffOutcome(code="unreadable", reason=f"The file could not be read ({type(exc).__name__}).")


def ocr_task(path: str, kind: str, page_no: int, options: OcrOptions, tmp_root: str) -> PageOutcome:
    from chartvault.classify import extract_identifiers
    from chartvault.filetypes import FileKind
    from chartvault.ocr import OcrError
    from chartvault.ocr.clock import StageClock
    from chartvault.ocr.pages import scan_page

    try:
        with tempfile.TemporaryDirectory(prefix="ocr-", dir=tmp_root) as workdir:
            # Barcodes are read from the pixels the OCR pass decoded: no second decode of the page.
            scan = scan_page(Path(path), FileKind(kind), page_no, options, Path(workdir), barcodes=True)
        page, barcodes, barcode_ms = scan.page, scan.barcodes, scan.page.cpu_ms.get("barcodes", 0)
        if barcodes is None:  # a text-layer page (nothing decoded) or a failed read: from the file
            barcodes, barcode_ms = _barcodes(Path(path), FileKind(kind), page_no)
            page.cpu_ms["barcodes"] = barcode_ms
        clock = StageClock()
        with clock.stage("identifiers"):
            identifiers = extract_identifiers(page.text).to_dict()
        page.cpu_ms.update(clock.ms)
        return PageOutcome(page=page, identifiers=identifiers, barcodes=barcodes, barcode_ms=barcode_ms)
    except OcrError as exc:
        return PageOutcome(error=str(exc))
    except Exception as exc:
        return PageOutcome(error=f"page {page_no}: {type(exc).__name__}")


def _barcodes(path: Path, kind: object, page_no: int) -> tuple[list[dict[str, str]] | None, int]:
    """Barcodes of the page and the CPU milliseconds spent; None (not an error) when they cannot be read.

    A page whose barcodes cannot be decoded still has its text: reading them is an extra, never a reason
    to fail the page.
    """
    from chartvault.ocr.barcodes import page_barcodes
    from chartvault.ocr.clock import cpu_seconds

    started = cpu_seconds()
    try:
        found: list[dict[str, str]] | None = page_barcodes(path, kind, page_no)  # type: ignore[arg-type]
    except Exception:
        found = None
    return found, round((cpu_seconds() - started) * 1000)
