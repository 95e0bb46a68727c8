"""The worker stages, sniff and OCR, as tasks: plain data in, plain data out, no catalog.

An executor (the local process pool, or Celery workers on other machines) runs ``task.run(data_dir)``
wherever it likes; a task travels as ``task.to_json()`` under ``task.name`` and its outcome comes back
through ``task.decode``. Paths are relative to the data folder, so a worker may mount it elsewhere.
Errors come back as values (``code``/``error``), so one bad file or page never breaks a pool.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from PIL import Image

from chartvault.filetypes import FileKind
from chartvault.ingest.private import PRIVATE_UMASK, ocr_workdir_prefix
from chartvault.ingest.sniff import Limits, Refused, Sniffed, sniff
from chartvault.ocr.types import OcrOptions, PageText, Word

if TYPE_CHECKING:
    from chartvault.classify.checkdigit import CheckDigit
    from chartvault.classify.types import Identifiers
    from chartvault.ocr.labels import LabelRead

O_co = TypeVar("O_co", covariant=True)


@dataclass(slots=True)
class SniffOutcome:
    sniffed: Sniffed | None = None
    code: str | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        s = self.sniffed
        sniffed = {"kind": s.kind.value, "page_count": s.page_count} if s is not None else None
        return {"sniffed": sniffed, "code": self.code, "reason": self.reason}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SniffOutcome:
        s = d.get("sniffed")
        sniffed = Sniffed(FileKind(s["kind"]), int(s["page_count"])) if s else None
        return cls(sniffed=sniffed, code=d.get("code"), reason=d.get("reason"))


@dataclass(slots=True)
class PageOutcome:
    page: PageText | None = None
    identifiers: dict[str, Any] | None = None  # extracted in the worker: the driver stays light
    error: str | None = None  # page number and reason only, never content
    # Code 128 / Code 39 / QR read on the page ([{"format", "text"}]); None when reading failed.
    barcodes: list[dict[str, str]] | None = None
    barcode_ms: int = 0

    def to_json(self) -> dict[str, Any]:
        page = None
        if self.page is not None:
            page = asdict(self.page)
            page["words"] = [[w.text, w.conf, w.left, w.top, w.width, w.height] for w in self.page.words]
        return {
            "page": page,
            "identifiers": self.identifiers,
            "error": self.error,
            "barcodes": self.barcodes,
            "barcode_ms": self.barcode_ms,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PageOutcome:
        page = None
        if (p := d.get("page")) is not None:
            page = PageText(**{**p, "words": [Word(*w) for w in p.get("words") or []]})
        return cls(
            page=page,
            identifiers=d.get("identifiers"),
            error=d.get("error"),
            barcodes=d.get("barcodes"),
            barcode_ms=int(d.get("barcode_ms") or 0),
        )


class StageTask(Protocol[O_co]):
    """What an executor runs: it calls ``run`` (or sends ``name`` + ``to_json`` to a worker)."""

    name: ClassVar[str]

    def run(self, data_dir: Path) -> O_co: ...

    def to_json(self) -> dict[str, Any]: ...

    def decode(self, result: dict[str, Any]) -> O_co:
        """The outcome from a remote worker's JSON answer."""
        ...

    def crashed(self) -> O_co:
        """The outcome recorded when the task kept killing its worker (a decoder bug)."""
        ...


@dataclass(frozen=True, slots=True)
class SniffTask:
    """Decide a staged file's type from its bytes and measure it against the limits."""

    name: ClassVar[str] = "chartvault.sniff"
    path: str  # relative to the data folder
    limits: Limits

    def run(self, data_dir: Path) -> SniffOutcome:
        try:
            return SniffOutcome(sniffed=sniff(_inside(data_dir, self.path), self.limits))
        except Refused as exc:
            return SniffOutcome(code=exc.code, reason=exc.reason)
        except Exception as exc:
            return SniffOutcome(
                code="unreadable", reason=f"The file could not be read ({type(exc).__name__})."
            )

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "limits": asdict(self.limits)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SniffTask:
        return cls(d["path"], Limits(**d["limits"]))

    def decode(self, result: dict[str, Any]) -> SniffOutcome:
        return SniffOutcome.from_json(result)

    def crashed(self) -> SniffOutcome:
        return SniffOutcome(code="unreadable", reason="Decoding the file crashed a worker.")


@dataclass(frozen=True, slots=True)
class OcrTask:
    """Read one page: text, word boxes and confidence; its identifiers and barcodes."""

    name: ClassVar[str] = "chartvault.ocr"
    path: str  # relative to the data folder
    kind: str
    page_no: int
    options: OcrOptions
    mrn_pattern: str | None = None  # the facility's MRN shape, for labels read without keys
    mrn_check_digit: CheckDigit = "none"  # the facility's MRN check digit: a number failing it is doubtful

    def run(self, data_dir: Path) -> PageOutcome:
        from chartvault.ocr import OcrError
        from chartvault.ocr.pages import scan_page

        path, kind = _inside(data_dir, self.path), FileKind(self.kind)
        tmp_root = data_dir / "tmp"
        tmp_root.mkdir(exist_ok=True)
        reader = _PageIdentifiers(self.mrn_pattern, self.mrn_check_digit)
        try:
            with tempfile.TemporaryDirectory(prefix=ocr_workdir_prefix(), dir=tmp_root) as workdir:
                # Barcodes are read from the pixels the OCR pass decoded: no second decode of the page; so
                # are the label zones, when the first pass left the patient's MRN or birth date unsure.
                scan = scan_page(
                    path,
                    kind,
                    self.page_no,
                    self.options,
                    Path(workdir),
                    barcodes=True,
                    relook=reader.relook,
                    reread=reader.reread,
                )
            page, barcodes = scan.page, scan.barcodes
            barcode_ms = page.cpu_ms.get("barcodes", 0)
            if barcodes is None:  # a text-layer page (nothing decoded) or a failed read: from the file
                barcodes, barcode_ms = _barcodes(path, kind, self.page_no)
                page.cpu_ms["barcodes"] = barcode_ms
            identifiers = reader.final(page, scan.labels, scan.rereads, barcodes)
            return PageOutcome(page=page, identifiers=identifiers, barcodes=barcodes, barcode_ms=barcode_ms)
        except OcrError as exc:
            return PageOutcome(error=str(exc))
        except Exception as exc:
            return PageOutcome(error=f"page {self.page_no}: {type(exc).__name__}")

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "page_no": self.page_no,
            "options": asdict(self.options),
            "mrn_pattern": self.mrn_pattern,
            "mrn_check_digit": self.mrn_check_digit,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> OcrTask:
        return cls(
            d["path"],
            d["kind"],
            int(d["page_no"]),
            OcrOptions(**d["options"]),
            d.get("mrn_pattern"),
            d.get("mrn_check_digit", "none"),
        )

    def decode(self, result: dict[str, Any]) -> PageOutcome:
        return PageOutcome.from_json(result)

    def crashed(self) -> PageOutcome:
        return PageOutcome(error=f"page {self.page_no}: decoding crashed a worker")


class _PageIdentifiers:
    """A page's identifiers, read in the worker (timed into the page's CPU as stage *identifiers*): once
    after the first OCR pass, where they decide whether the label zones are read again and which words
    (the MRN's) are read again in several renderings, and joined with those reads when they were."""

    def __init__(self, mrn_pattern: str | None, mrn_check_digit: CheckDigit = "none") -> None:
        from chartvault.ocr.clock import StageClock

        self.mrn_pattern = mrn_pattern
        self.mrn_check_digit = mrn_check_digit
        self.clock = StageClock()
        self.first: Identifiers | None = None

    def relook(self, page: PageText) -> bool:
        from chartvault.classify.labelpass import needs_label_pass

        return needs_label_pass(self._first(page))

    def reread(self, page: PageText) -> list[Word]:
        from chartvault.classify.reread import mrn_words

        return mrn_words(self._first(page), page.words)

    def final(
        self,
        page: PageText,
        labels: list[LabelRead],
        rereads: list[list[str]] | None = None,
        barcodes: list[dict[str, str]] | None = None,
    ) -> dict[str, Any]:
        from chartvault.classify.labelcodes import with_label_barcodes
        from chartvault.classify.labelpass import with_label_reads
        from chartvault.classify.reread import voted

        found = self._first(page)
        if labels:
            with self.clock.stage("identifiers"):
                found = with_label_reads(
                    found,
                    page.text,
                    page.words,
                    (page.width, page.height),
                    labels,
                    mrn_pattern=self.mrn_pattern,
                    mrn_check_digit=self.mrn_check_digit,
                )
        if rereads:
            with self.clock.stage("identifiers"):
                found = voted(
                    found,
                    self._first(page).mrn,
                    rereads,
                    mrn_pattern=self.mrn_pattern,
                    mrn_check_digit=self.mrn_check_digit,
                )
        if barcodes:  # last: a barcode decodes exactly or not at all, where every reading above guesses
            with self.clock.stage("identifiers"):
                found = with_label_barcodes(
                    found, barcodes, mrn_pattern=self.mrn_pattern, mrn_check_digit=self.mrn_check_digit
                )
        page.cpu_ms.update(self.clock.ms)
        return found.to_dict()

    def _first(self, page: PageText) -> Identifiers:
        from chartvault.classify import extract_identifiers

        if self.first is None:
            with self.clock.stage("identifiers"):
                self.first = extract_identifiers(
                    page.text,
                    words=page.words,
                    page_size=(page.width, page.height),
                    mrn_pattern=self.mrn_pattern,
                    mrn_check_digit=self.mrn_check_digit,
                )
        return self.first


# Every task a remote worker may be sent, by name.
TASKS: dict[str, type[SniffTask] | type[OcrTask]] = {SniffTask.name: SniffTask, OcrTask.name: OcrTask}


def _inside(data_dir: Path, rel: str) -> Path:
    """The path of a file given relative to the data folder; never outside it."""
    root = data_dir.resolve()
    path = (root / rel).resolve()
    if not path.is_relative_to(root):
        raise ValueError("task path outside the data folder")
    return path


def init_worker_process(max_pixels: int) -> None:
    """Every worker process, local or remote: one tesseract thread, Pillow's bomb guard at our limit.

    OCRmyPDF's lesson: parallelism belongs at the page level, and tesseract's own OpenMP threading
    only fights the other workers for cores (measured 2x slower under load).
    """
    os.environ["OMP_THREAD_LIMIT"] = "1"
    os.umask(PRIVATE_UMASK)  # page images hold PHI: owner-only, on remote workers too
    Image.MAX_IMAGE_PIXELS = max_pixels


def _barcodes(path: Path, kind: FileKind, page_no: int) -> tuple[list[dict[str, str]] | None, int]:
    """Barcodes of the page and the CPU milliseconds spent; None (not an error) when they cannot be read.

    A page whose barcodes cannot be decoded still has its text: reading them is an extra, never a reason
    to fail the page.
    """
    from chartvault.ocr.barcodes import page_barcodes
    from chartvault.ocr.clock import cpu_seconds

    started = cpu_seconds()
    try:
        found: list[dict[str, str]] | None = page_barcodes(path, kind, page_no)
    except Exception:
        found = None
    return found, round((cpu_seconds() - started) * 1000)
