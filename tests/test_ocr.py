"""OCR against real tesseract on real corpus pages.

Tesseract is slow and the machine is shared, so the module OCRs only a handful of pages (one per
format, three small rotated crops, a blank page) and caches results that several tests share.
"""

from __future__ import annotations

import difflib
import json
import os
import pickle
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from chartvault.filetypes import FileKind
from chartvault.ocr import OcrError, OcrOptions, PageText, Word, extract_page, words_with_pdfplumber
from chartvault.ocr import engines as ocr_engines
from chartvault.ocr import images as ocr_images
from chartvault.ocr import pages as ocr_pages
from chartvault.ocr import source as ocr_source
from chartvault.ocr import tess as ocr_tess

CORPUS = Path(os.environ.get("CHARTVAULT_CORPUS", Path(__file__).resolve().parents[2] / "shared" / "corpus"))
MANIFEST = CORPUS / "manifest.jsonl"
KINDS = {
    "png": FileKind.PNG,
    "jpeg": FileKind.JPEG,
    "tiff_g4": FileKind.TIFF,
    "pdf_image": FileKind.PDF,
    "pdf_text": FileKind.PDF,
}

needs_corpus = pytest.mark.skipif(
    not MANIFEST.is_file(), reason=f"corpus not found at {CORPUS} (set CHARTVAULT_CORPUS)"
)
needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract is not installed")


# ---------------------------------------------------------------- helpers


def norm(text: str) -> str:
    return " ".join(text.split())


def cer(hypothesis: str, reference: str) -> float:
    """Character error rate, whitespace-normalised (an upper bound on Levenshtein via difflib)."""
    hyp, ref = norm(hypothesis), norm(reference)
    ops = difflib.SequenceMatcher(None, ref, hyp, autojunk=False).get_opcodes()
    return sum(max(i2 - i1, j2 - j1) for op, i1, i2, j1, j2 in ops if op != "equal") / max(1, len(ref))


def body_words(entry: dict, page_no: int, n: int = 6) -> list[str]:
    """A few distinctive (long, alphabetic) words of the page's report body."""
    seen: list[str] = []
    for token in entry["pages"][page_no - 1]["body_text"].split():
        word = token.strip(".,;:()\"'")
        if len(word) >= 8 and word.isalpha() and word.lower() not in seen:
            seen.append(word.lower())
        if len(seen) == n:
            break
    assert len(seen) == n, "ground truth page too short for this test"
    return seen


def assert_mostly_present(words: list[str], text: str) -> None:
    found = [w for w in words if w in text.lower()]
    assert len(found) >= len(words) - 1, f"only {found} of {words} recognised"


def assert_boxes_inside(page: PageText) -> None:
    assert page.words
    for w in page.words:
        assert w.text.strip() == w.text and w.text
        assert w.left >= 0 and w.top >= 0 and w.width > 0 and w.height > 0
        assert w.left + w.width <= page.width + 1 and w.top + w.height <= page.height + 1
        assert 0 <= w.conf <= 100


@pytest.fixture(scope="module")
def manifest() -> list[dict]:
    if not MANIFEST.is_file():
        pytest.skip(f"corpus not found at {CORPUS} (set CHARTVAULT_CORPUS)")
    rows = [json.loads(line) for line in MANIFEST.read_text().splitlines() if line.strip()]
    return sorted(rows, key=lambda r: r["path"])


def pick(rows: list[dict], fmt: str, tier: str | None = "clean", min_pages: int = 1) -> dict:
    """The first corpus entry of a format (and scan quality) with enough pages."""
    for r in rows:
        degrade = (r.get("render") or {}).get("degrade") or {}
        if r["format"] != fmt or r["page_count"] < min_pages:
            continue
        if tier is not None and degrade.get("tier") != tier:
            continue
        if min_pages == 1 or r["patient"]["mrn"] in r["pages"][min_pages - 1]["text"]:
            return r
    pytest.skip(f"no {fmt} ({tier}, {min_pages}+ pages) file in the corpus")


class Run:
    """One extract_page call with its OSD calls counted and its workdir inspected afterwards."""

    def __init__(self, entry: dict, page_no: int, workdir: Path, path: Path | None = None) -> None:
        self.entry = entry
        self.page_no = page_no
        self.osd_calls = 0
        real_osd = ocr_pages.detect_rotation

        def counting(*args: object, **kwargs: object) -> tuple[int, float] | None:
            self.osd_calls += 1
            return real_osd(*args, **kwargs)  # type: ignore[arg-type]

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(ocr_pages, "detect_rotation", counting)
            self.page = extract_page(
                path or CORPUS / entry["path"], KINDS[entry["format"]], page_no, OcrOptions(), workdir
            )
        self.leftovers = list(workdir.iterdir())

    @property
    def truth(self) -> str:
        return self.entry["pages"][self.page_no - 1]["text"]


def run_fixture(fmt: str, page_no: int, tier: str | None = "clean") -> Callable[..., Run]:
    @pytest.fixture(scope="module")
    def fixture(manifest: list[dict], tmp_path_factory: pytest.TempPathFactory) -> Run:
        if shutil.which("tesseract") is None and fmt != "pdf_text":
            pytest.skip("tesseract is not installed")
        entry = pick(manifest, fmt, tier, min_pages=page_no)
        return Run(entry, page_no, tmp_path_factory.mktemp(f"work-{fmt}"))

    return fixture


png_run = run_fixture("png", 1)
jpeg_run = run_fixture("jpeg", 1)
tiff_run = run_fixture("tiff_g4", 2)
pdf_image_run = run_fixture("pdf_image", 2)


# ---------------------------------------------------------------- scanned pages


@pytest.mark.slow
@needs_corpus
@needs_tesseract
def test_png_clean_page_matches_ground_truth(png_run: Run) -> None:
    page = png_run.page
    assert page.source == "ocr" and page.page_no == 1 and page.rotation == 0
    assert png_run.entry["patient"]["mrn"] in page.text
    assert cer(page.text, png_run.truth) < 0.05
    assert page.confidence is not None and page.confidence > 80
    with Image.open(CORPUS / png_run.entry["path"]) as im:
        assert (page.width, page.height) == im.size
    assert_boxes_inside(page)
    assert page.elapsed_ms > 0
    # Blocks and paragraphs are separated by a blank line, lines by a newline.
    assert "\n\n" in page.text


@pytest.mark.slow
@needs_corpus
@needs_tesseract
def test_upright_page_runs_no_orientation_pass(png_run: Run, tiff_run: Run, pdf_image_run: Run) -> None:
    assert [png_run.osd_calls, tiff_run.osd_calls, pdf_image_run.osd_calls] == [0, 0, 0]


@pytest.mark.slow
@needs_corpus
@needs_tesseract
def test_jpeg_page(jpeg_run: Run) -> None:
    page = jpeg_run.page
    assert jpeg_run.entry["patient"]["mrn"] in page.text
    assert_mostly_present(body_words(jpeg_run.entry, 1), page.text)
    assert cer(page.text, jpeg_run.truth) < 0.05
    assert_boxes_inside(page)


@needs_corpus
@needs_tesseract
def test_tiff_g4_page_two(tiff_run: Run) -> None:
    page = tiff_run.page
    assert page.page_no == 2 and page.source == "ocr"
    assert tiff_run.entry["patient"]["mrn"] in page.text
    assert_mostly_present(body_words(tiff_run.entry, 2), page.text)
    assert cer(page.text, tiff_run.truth) < 0.05
    assert_boxes_inside(page)
    assert tiff_run.leftovers == [], "temporary frame image not deleted"


@needs_corpus
@needs_tesseract
def test_image_pdf_page_two(pdf_image_run: Run) -> None:
    page = pdf_image_run.page
    assert page.page_no == 2 and page.source == "ocr"
    assert pdf_image_run.entry["patient"]["mrn"] in page.text
    assert_mostly_present(body_words(pdf_image_run.entry, 2), page.text)
    assert cer(page.text, pdf_image_run.truth) < 0.05
    # Rendered at the configured 300 dpi: a letter page is ~2550 x 3300 pixels.
    assert abs(page.width - 2550) <= 2 and abs(page.height - 3300) <= 2
    assert_boxes_inside(page)
    assert pdf_image_run.leftovers == [], "temporary page image not deleted"


# ---------------------------------------------------------------- born-digital pages


@pytest.fixture()
def no_tesseract(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("tesseract must not run on a text-layer page")

    monkeypatch.setattr(ocr_tess.pytesseract, "image_to_data", refuse)
    monkeypatch.setattr(ocr_tess.pytesseract, "image_to_osd", refuse)
    monkeypatch.setattr(ocr_engines.TesserocrEngine, "recognise", refuse)
    monkeypatch.setattr(ocr_engines.TesserocrEngine, "orientation", refuse)


@needs_corpus
@pytest.mark.parametrize("page_no", [1, 2])
def test_born_digital_page_uses_text_layer(
    manifest: list[dict], tmp_path: Path, no_tesseract: None, page_no: int
) -> None:
    entry = pick(manifest, "pdf_text", tier=None, min_pages=2)
    started = time.perf_counter()
    page = extract_page(CORPUS / entry["path"], FileKind.PDF, page_no, OcrOptions(), tmp_path)
    assert time.perf_counter() - started < 0.5
    assert page.source == "text_layer" and page.confidence == 100.0 and page.rotation == 0
    assert (page.width, page.height) == (612, 792)  # points
    assert entry["patient"]["mrn"] in page.text
    assert cer(page.text, entry["pages"][page_no - 1]["text"]) < 0.02
    assert_boxes_inside(page)
    mrn_word = next(w for w in page.words if w.text == entry["patient"]["mrn"])
    assert mrn_word.top < 792 / 4  # top-left origin: the patient label is at the top
    assert list(tmp_path.iterdir()) == []


@needs_corpus
def test_words_with_pdfplumber_agree_with_text_layer_boxes(manifest: list[dict], tmp_path: Path) -> None:
    entry = pick(manifest, "pdf_text", tier=None)
    path = CORPUS / entry["path"]
    precise = words_with_pdfplumber(path, 1)
    fast = extract_page(path, FileKind.PDF, 1, OcrOptions(), tmp_path).words
    assert all(isinstance(w, Word) for w in precise)
    mrn = entry["patient"]["mrn"]
    a = next(w for w in precise if w.text == mrn)
    b = next(w for w in fast if w.text == mrn)
    assert abs(a.left - b.left) <= 3 and abs(a.top - b.top) <= 6
    with pytest.raises(OcrError):
        words_with_pdfplumber(path, entry["page_count"] + 1)


# ---------------------------------------------------------------- orientation


@pytest.fixture(scope="module")
def header_crop(manifest: list[dict], tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Image.Image]:
    """The top third of a clean page (hospital header, patient label, first body lines).

    A crop rather than the full page keeps the three two-pass rotation cases affordable.
    """
    entry = pick(manifest, "png")
    with Image.open(CORPUS / entry["path"]) as im:
        return entry, im.crop((0, 0, im.width, im.height // 3))


@pytest.mark.slow
@needs_corpus
@needs_tesseract
@pytest.mark.parametrize(
    ("transpose", "expected_cw"),
    [(Image.Transpose.ROTATE_90, 90), (Image.Transpose.ROTATE_180, 180), (Image.Transpose.ROTATE_270, 270)],
    ids=["turned-left", "upside-down", "turned-right"],
)
def test_turned_page_is_detected_and_read(
    header_crop: tuple[dict, Image.Image], tmp_path: Path, transpose: Image.Transpose, expected_cw: int
) -> None:
    entry, crop = header_crop
    path = tmp_path / "turned.png"
    crop.transpose(transpose).save(path)
    work = tmp_path / "work"
    page = extract_page(path, FileKind.PNG, 1, OcrOptions(), work)
    assert page.rotation == expected_cw
    assert entry["patient"]["mrn"] in page.text
    assert entry["patient"]["last"].upper() in page.text.upper()
    # Boxes are in the upright image: the crop is wider than tall again.
    assert (page.width, page.height) == crop.size
    assert list(work.iterdir()) == []


@needs_tesseract
def test_blank_page_gives_empty_text_without_osd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "blank.png"
    Image.new("L", (2550, 3300), 255).save(path)
    monkeypatch.setattr(ocr_pages, "detect_rotation", lambda *a, **k: pytest.fail("OSD on a blank page"))
    page = extract_page(path, FileKind.PNG, 1, OcrOptions(), tmp_path / "work")
    assert page.text == "" and page.confidence is None and page.words == [] and page.rotation == 0


# ---------------------------------------------------------------- errors


@needs_corpus
@needs_tesseract
def test_truncated_image_raises_ocr_error(manifest: list[dict], tmp_path: Path) -> None:
    entry = pick(manifest, "png", tier=None)
    data = (CORPUS / entry["path"]).read_bytes()
    path = tmp_path / "secret-patient-name.png"
    path.write_bytes(data[: len(data) // 5])
    with pytest.raises(OcrError) as err:
        extract_page(path, FileKind.PNG, 1, OcrOptions(), tmp_path / "work")
    assert err.value.page_no == 1 and err.value.reason == "image could not be decoded"
    assert "secret" not in str(err.value) and str(tmp_path) not in str(err.value)


def test_garbage_and_missing_pages_raise_ocr_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(2000))
    with pytest.raises(OcrError, match="could not be decoded"):
        extract_page(junk, FileKind.PNG, 1, OcrOptions(), tmp_path)
    for kind in (FileKind.TIFF, FileKind.JPEG):
        with pytest.raises(OcrError, match="could not be decoded"):
            extract_page(junk, kind, 1, OcrOptions(), tmp_path)
    with pytest.raises(OcrError, match="pdf could not be opened"):
        extract_page(junk, FileKind.PDF, 1, OcrOptions(), tmp_path)

    tif = tmp_path / "one.tif"
    Image.new("1", (100, 100), 1).save(tif, compression="group4")
    with pytest.raises(OcrError, match="page 2: page does not exist"):
        extract_page(tif, FileKind.TIFF, 2, OcrOptions(), tmp_path)


def test_pixel_limit_is_respected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tif = tmp_path / "two.tif"
    frames = [Image.new("L", (200, 200), 255), Image.new("L", (400, 400), 255)]
    frames[0].save(tif, save_all=True, append_images=frames[1:], compression="tiff_lzw")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)
    # Frame 1 is within the limit, frame 2 is not: Pillow alone checks only the first frame.
    with pytest.raises(OcrError, match="page 2: page exceeds the pixel limit"):
        extract_page(tif, FileKind.TIFF, 2, OcrOptions(), tmp_path)


def test_timeout_is_reported_as_ocr_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The command-line engine: pytesseract's own way of saying the program ran out of time.
    path = tmp_path / "p.png"
    Image.new("L", (50, 50), 255).save(path)

    def slow(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Tesseract process timeout")

    monkeypatch.setattr(ocr_tess.pytesseract, "image_to_data", slow)
    with pytest.raises(OcrError) as err:
        extract_page(path, FileKind.PNG, 1, OcrOptions(engine="pytesseract"), tmp_path)
    assert str(err.value) == "page 1: tesseract timed out"


@pytest.mark.slow
@needs_corpus
def test_in_process_engine_stops_at_the_deadline(manifest: list[dict], tmp_path: Path) -> None:
    # A real full page with 50 ms to go: tesseract's own monitor cancels it, and the page is
    # reported as timed out (not as text cut short).
    entry = pick(manifest, "png")
    with Image.open(CORPUS / entry["path"]) as im:
        im.load()
        page = ocr_source.PageImage(1, 300, image=im.copy())
    engine = ocr_engines.get_engine("tesserocr", "eng")
    deadline = ocr_tess.Deadline(0.05)
    # CPU time, not wall time: on a busy machine the wall clock says little about work done.
    started = time.process_time()
    with pytest.raises(OcrError, match="page 1: tesseract timed out"):
        engine.recognise(page, deadline, ocr_source.Scratch(tmp_path))
    assert time.process_time() - started < 1.0  # a full page takes ~2 CPU s
    # The engine is still usable for the next page.
    small = ocr_source.PageImage(1, 300, image=Image.new("L", (200, 100), 255))
    assert engine.recognise(small, ocr_tess.Deadline(30), ocr_source.Scratch(tmp_path)).words == []


def test_ocr_error_pickles_across_processes() -> None:
    err = pickle.loads(pickle.dumps(OcrError(3, "tesseract timed out")))
    assert (err.page_no, err.reason, str(err)) == (3, "tesseract timed out", "page 3: tesseract timed out")


# ---------------------------------------------------------------- pieces, no tesseract


@pytest.mark.parametrize("compression", ["tiff_lzw", "jpeg", "group4"])
def test_tiff_frame_is_written_uncompressed(tmp_path: Path, compression: str) -> None:
    mode = "1" if compression == "group4" else "L"
    frames = [Image.new(mode, (300, 200), 1 if mode == "1" else 255) for _ in range(3)]
    frames[1].paste(0, (10, 10, 60, 40))
    tif = tmp_path / "multi.tif"
    frames[0].save(tif, save_all=True, append_images=frames[1:], compression=compression, dpi=(200, 200))
    src, dpi, temporary = ocr_images.tiff_source(tif, 2, tmp_path)
    assert temporary and dpi == 200
    assert src.suffix == (".pbm" if mode == "1" else ".pgm")
    with Image.open(src) as im:
        assert im.size == (300, 200) and im.getpixel((20, 20)) == 0 and im.getpixel((200, 150)) != 0


def test_tsv_to_text_lines_paragraphs_and_confidence() -> None:
    head = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext"
    rows = [
        "1\t1\t0\t0\t0\t0\t0\t0\t1000\t800\t-1\t",
        "5\t1\t1\t1\t1\t1\t10\t10\t50\t20\t90.5\tMRN:",
        "5\t1\t1\t1\t1\t2\t70\t10\t90\t20\t80.5\t12345",
        "5\t1\t1\t1\t2\t1\t10\t40\t50\t20\t70\tnext",
        "5\t1\t1\t1\t2\t2\t70\t40\t10\t20\t-1\t ",
        "5\t1\t2\t1\t1\t1\t10\t90\t50\t20\t60\tblock",
    ]
    result = ocr_tess.parse_tsv("\n".join([head, *rows]) + "\n")
    assert result.text == "MRN: 12345\nnext\n\nblock"
    assert result.confidence == pytest.approx((90.5 + 80.5 + 70 + 60) / 4, abs=0.01)
    assert (result.width, result.height) == (1000, 800)
    assert [w.text for w in result.words] == ["MRN:", "12345", "next", "block"]
    assert result.words[0] == Word("MRN:", 90.5, 10, 10, 50, 20)
    assert ocr_tess.parse_tsv(head + "\n" + rows[0]).text == ""
    assert ocr_tess.parse_tsv(head + "\n" + rows[0]).confidence is None
