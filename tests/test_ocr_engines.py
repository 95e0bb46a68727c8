"""OCR engines, recognition resolution, conditional preprocessing, barcodes from the decoded pixels.

Real tesseract (the program and the library) on real corpus pages and printed cover sheets; kept to a
few pages because every page costs seconds on a shared 2-core machine.
"""

from __future__ import annotations

import difflib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import ClassVar

import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from chartvault.classify.coversheet import CoverSheet, find_cover_sheet, render_pdf
from chartvault.filetypes import FileKind
from chartvault.ingest.executors import LocalExecutor
from chartvault.ingest.tasks import OcrTask
from chartvault.ocr import OcrOptions, barcodes, engines, preprocess
from chartvault.ocr import pages as ocr_pages
from chartvault.ocr.pages import scan_page
from chartvault.ocr.source import PageImage
from chartvault.ocr.tess import OcrPass

needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract is not installed")
KIND = {"png": FileKind.PNG, "jpeg": FileKind.JPEG, "tiff_g4": FileKind.TIFF, "pdf_image": FileKind.PDF}


def cer(hypothesis: str, reference: str) -> float:
    """Character error rate, whitespace collapsed (difflib's opcodes: an upper bound on Levenshtein)."""
    hyp, ref = " ".join(hypothesis.split()), " ".join(reference.split())
    ops = difflib.SequenceMatcher(None, ref, hyp, autojunk=False).get_opcodes()
    return sum(max(i2 - i1, j2 - j1) for op, i1, i2, j1, j2 in ops if op != "equal") / max(1, len(ref))


def entry_where(corpus: list[dict], fmt: str, test: Callable[[dict], bool]) -> dict:
    for e in corpus:
        if e["format"] == fmt and test(e["render"]["degrade"]):
            return e
    pytest.skip(f"no {fmt} corpus page of that kind")


def cover_png(tmp_path: Path, sheet: CoverSheet, *, hide_qr: bool = False, soft: bool = False) -> Path:
    """The printed cover sheet as a 300-dpi grey scan; optionally with its QR code covered up, or
    scanned soft (blurred: a grey page, which is reduced before recognition)."""
    doc = pdfium.PdfDocument(render_pdf(sheet))
    try:
        im = doc[0].render(scale=300 / 72, grayscale=True).to_pil().convert("L")
    finally:
        doc.close()
    if hide_qr:
        # render_pdf places the QR at y=640..~1000 of a 200-dpi page: 960..1500 at 300 dpi.
        ImageDraw.Draw(im).rectangle((0, 900, im.width, 1560), fill=255)
    if soft:
        im = im.filter(ImageFilter.GaussianBlur(1.2))
    path = tmp_path / f"cover{'-noqr' if hide_qr else ''}{'-soft' if soft else ''}.png"
    im.save(path, dpi=(300, 300))
    return path


# ---------------------------------------------------------------------------------------- engines


@pytest.mark.slow
@needs_tesseract
@pytest.mark.parametrize("fmt", ["png", "tiff_g4"])
def test_both_engines_read_a_corpus_page_alike(corpus: list[dict], tmp_path: Path, fmt: str) -> None:
    entry = entry_where(corpus, fmt, lambda d: d["tier"] in ("clean", "typical"))
    truth = entry["pages"][0]["text"]
    read = {
        name: scan_page(entry["file"], KIND[fmt], 1, OcrOptions(engine=name), tmp_path / name).page
        for name in ("tesserocr", "pytesseract")
    }
    library, program = read["tesserocr"], read["pytesseract"]
    assert cer(library.text, program.text) < 0.02, "the engines disagree on the same page"
    for page in (library, program):
        assert cer(page.text, truth) < 0.03
        assert entry["patient"]["mrn"] in page.text
        assert (page.width, page.height) == (2550, 3300) and page.dpi == 300
    # Same boxes for the same word, within a couple of pixels.
    mrn = entry["patient"]["mrn"]
    a = next(w for w in library.words if mrn in w.text)
    b = next(w for w in program.words if mrn in w.text)
    assert abs(a.left - b.left) <= 3 and abs(a.top - b.top) <= 3
    assert abs(library.confidence - program.confidence) < 3


def test_both_engines_read_the_same_language_data() -> None:
    folder = engines.tessdata_dir()
    assert folder is not None and (Path(folder) / "eng.traineddata").is_file()
    if shutil.which("tesseract"):
        import subprocess

        listed = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True)
        assert Path(folder).resolve() == Path(listed.stdout.split('"')[1]).resolve()


def test_unknown_engine_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown OCR engine"):
        engines.get_engine("nonsense", "eng")


@pytest.mark.slow
def test_engine_is_made_once_per_process_and_lazily(tmp_path: Path) -> None:
    # A real worker pool of one process, as the ingest pipeline makes it.
    blank = Image.new("L", (900, 300), 255)
    ImageDraw.Draw(blank).text((20, 100), "PATIENT MRN 0012345", fill=0, font=ImageFont.load_default(size=48))
    blank.save(tmp_path / "p.png", dpi=(300, 300))
    executor = LocalExecutor(tmp_path, 1, 120_000_000)
    try:
        pid, made = executor.submit(_EngineProbe()).result()
        assert made == 0  # nothing made before the first page
        for _ in range(2):
            out = executor.submit(OcrTask("p.png", "png", 1, OcrOptions())).result()
            assert out.page is not None and "0012345" in out.page.text
        assert executor.submit(_EngineProbe()).result() == (pid, 1)  # the same process, one engine
    finally:
        executor.close()
    assert engines.get_engine("tesserocr", "eng") is engines.get_engine("tesserocr", "eng")


@dataclass(frozen=True)
class _EngineProbe:
    """A task that reports, from inside a worker, its process and how many engines it has made."""

    name: ClassVar[str] = "test.engine_probe"

    def run(self, data_dir: Path) -> tuple[int, int]:
        return os.getpid(), engines.engines_created()

    def crashed(self) -> tuple[int, int]:
        return (0, -1)


# ---------------------------------------------------------------------------------------- resolution


@pytest.mark.slow
@needs_tesseract
def test_reduced_scan_reports_boxes_in_its_own_pixels(corpus: list[dict], tmp_path: Path) -> None:
    entry = entry_where(corpus, "png", lambda d: d["tier"] == "clean")
    full = scan_page(entry["file"], FileKind.PNG, 1, OcrOptions(grey_dpi=0), tmp_path / "a").page
    reduced = scan_page(entry["file"], FileKind.PNG, 1, OcrOptions(grey_dpi=200), tmp_path / "b").page
    assert (reduced.width, reduced.height) == (full.width, full.height) == (2550, 3300)
    assert reduced.dpi == 300  # the scan's pixels, whatever resolution tesseract read it at
    mrn = entry["patient"]["mrn"]
    a = next(w for w in full.words if mrn in w.text)
    b = next(w for w in reduced.words if mrn in w.text)
    assert abs(a.left - b.left) <= 6 and abs(a.top - b.top) <= 6 and abs(a.width - b.width) <= 9
    assert cer(reduced.text, entry["pages"][0]["text"]) < 0.03
    # Fewer pixels, less work.
    assert reduced.cpu_ms["ocr"] < full.cpu_ms["ocr"]


@pytest.mark.slow
@needs_tesseract
def test_two_level_pages_keep_their_resolution(
    corpus: list[dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Reduction loses a fax's thin, broken strokes: 1-bit pages and grey pages that hold only ink and
    # paper are read at the scan's resolution; grey scans at grey_dpi.
    fax_jpeg = entry_where(corpus, "jpeg", lambda d: d["tier"] == "fax")
    g4 = entry_where(corpus, "tiff_g4", lambda d: True)
    grey = entry_where(corpus, "jpeg", lambda d: d["tier"] == "typical")
    read_sizes: list[tuple[int, int]] = []
    real = engines.TesserocrEngine.recognise

    def recording(self: engines.TesserocrEngine, page: PageImage, *args: object) -> OcrPass:
        read_sizes.append(page.image.size)
        return real(self, page, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(engines.TesserocrEngine, "recognise", recording)
    for entry, kind in ((fax_jpeg, FileKind.JPEG), (g4, FileKind.TIFF), (grey, FileKind.JPEG)):
        page = scan_page(entry["file"], kind, 1, OcrOptions(grey_dpi=200), tmp_path).page
        assert (page.width, page.height) == (2550, 3300)
    assert read_sizes == [(2550, 3300), (2550, 3300), (1700, 2200)]


def test_two_level_detection_on_corpus_kinds(corpus: list[dict]) -> None:
    for tier, fmt, expected in (("fax", "jpeg", True), ("clean", "png", False), ("poor", "png", False)):
        entry = entry_where(corpus, fmt, lambda d, t=tier: d["tier"] == t)
        with Image.open(entry["file"]) as im:
            assert preprocess.is_two_level(im) is expected, (tier, fmt)


# ---------------------------------------------------------------------------------------- preprocessing


def test_level_clean_page_is_not_deskewed_and_a_skewed_one_is(corpus: list[dict]) -> None:
    level = entry_where(corpus, "png", lambda d: abs(d["rotation_deg"]) < 0.1)
    crooked = entry_where(corpus, "png", lambda d: abs(d["rotation_deg"]) > 0.8)
    with Image.open(level["file"]) as im:
        done = preprocess.prepare_page(im, 300)
    assert done.image is None and done.deskew_deg == 0.0 and not done.smoothed  # tesseract reads the scan
    with Image.open(crooked["file"]) as im:
        done = preprocess.prepare_page(im, 300)
    assert done.image is not None and not done.smoothed
    # The turn that undoes the scan's (the opposite sign), to within the estimate's quarter degree.
    scanned_at = crooked["render"]["degrade"]["rotation_deg"]
    assert done.deskew_deg * scanned_at < 0 and abs(abs(done.deskew_deg) - abs(scanned_at)) <= 0.25


def test_only_bilevel_pages_are_smoothed(corpus: list[dict]) -> None:
    g4 = entry_where(corpus, "tiff_g4", lambda d: True)
    with Image.open(g4["file"]) as im:
        assert im.mode == "1"
        done = preprocess.prepare_page(im, 300)
    assert done.smoothed and done.image is not None and done.image.mode == "L"


@pytest.mark.slow
@needs_tesseract
def test_page_reports_its_deskew_and_stage_times(corpus: list[dict], tmp_path: Path) -> None:
    crooked = entry_where(corpus, "jpeg", lambda d: abs(d["rotation_deg"]) > 0.8)
    page = scan_page(crooked["file"], FileKind.JPEG, 1, OcrOptions(), tmp_path).page
    assert abs(page.deskew_deg) > 0.5
    assert set(page.cpu_ms) >= {"decode", "preprocess", "ocr", "blank"}
    assert page.cpu_ms["ocr"] > page.cpu_ms["preprocess"] > 0


# ---------------------------------------------------------------------------------------- barcodes


@pytest.mark.slow
@needs_tesseract
def test_cover_sheet_found_from_the_decoded_pixels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sheet = CoverSheet("0012345678", "consent", date(1980, 1, 5))
    path = cover_png(tmp_path, sheet)

    def no_second_decode(*args: object, **kwargs: object) -> None:
        raise AssertionError("a scanned page's barcodes are read from the pixels OCR decoded")

    monkeypatch.setattr(barcodes, "page_barcodes", no_second_decode)
    out = OcrTask(path.name, "png", 1, OcrOptions()).run(path.parent)
    assert out.error is None and find_cover_sheet(out.barcodes)[0] == sheet
    assert out.page is not None and out.page.cpu_ms["barcodes"] >= 0


@pytest.mark.slow
@needs_tesseract
def test_cover_sheet_found_on_a_page_read_at_lower_resolution(tmp_path: Path) -> None:
    # A grey (softly scanned) sheet is recognised at 200 dpi and searched for barcodes at ~100 dpi: the
    # QR code still reads. With the QR covered, only the Code 128 is left: the page has few words, so
    # it is searched again finer.
    sheet = CoverSheet("E0073032", "correspondence")
    for hide_qr in (False, True):
        path = cover_png(tmp_path, sheet, hide_qr=hide_qr, soft=True)
        with Image.open(path) as im:
            assert not preprocess.is_two_level(im)
        scan = scan_page(path, FileKind.PNG, 1, OcrOptions(grey_dpi=200), tmp_path / "w", barcodes=True)
        assert find_cover_sheet(scan.barcodes)[0] == sheet, f"hide_qr={hide_qr}"
        formats = {b["format"] for b in scan.barcodes or []}
        assert formats == ({"Code128"} if hide_qr else formats | {"QRCode"})


@pytest.mark.slow
@needs_tesseract
def test_chart_page_is_searched_for_barcodes_once_and_its_label_bands_again(
    corpus: list[dict], tmp_path: Path, barcode_reads: list[tuple[int, int]]
) -> None:
    entry = entry_where(corpus, "png", lambda d: d["tier"] == "clean")
    scan = scan_page(entry["file"], FileKind.PNG, 1, OcrOptions(), tmp_path, barcodes=True)
    assert scan.barcodes == []
    assert len(scan.page.words) > ocr_pages.COVER_SHEET_MAX_WORDS
    # the page once at ~100 dpi; no linear code there, so its label bands again at ~300 (a label's thin bars)
    assert barcode_reads == [(850, 1100), (2550, 990), (2550, 726)]
