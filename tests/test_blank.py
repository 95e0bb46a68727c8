"""Blank-page detection on generated 300-dpi pages, through real tesseract.

Each page is drawn with Pillow on a scanner-like background (grey paper, noise, specks) so the
detector is tested against what makes blank pages hard: dirt that must not count as content, and
sparse content (one line, a signature) that must not be called blank.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from chartvault.filetypes import FileKind
from chartvault.ocr import OcrOptions, extract_page
from chartvault.ocr.blank import has_confident_words, image_is_blank
from chartvault.ocr.types import Word

needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract is not installed")

W, H = 2550, 3300  # letter at 300 dpi
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def scanned_paper(seed: int, level: int = 238, noise: float = 5.0, specks: int = 300) -> Image.Image:
    """Grey paper with sensor noise, a dark scanner edge and specks of dust, lightly blurred."""
    rng = np.random.default_rng(seed)
    a = rng.normal(level, noise, (H, W)).clip(0, 255).astype(np.uint8)
    im = Image.fromarray(a, "L")
    draw = ImageDraw.Draw(im)
    draw.rectangle((0, 0, 60, H), fill=70)  # edge shadow: inside the ignored margin
    for _ in range(specks):
        x, y, r = int(rng.integers(0, W)), int(rng.integers(0, H)), int(rng.integers(1, 4))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=int(rng.integers(0, 90)))
    return im


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.truetype(str(FONT), size) if FONT.exists() else ImageFont.load_default(size)


def with_signature(im: Image.Image) -> Image.Image:
    """A handwritten-looking scrawl: one long wavy pen stroke, no letters tesseract can read."""
    pts = [
        (1450 + 650 * t, 2650 + 70 * math.sin(t * 19) + 35 * math.cos(t * 6))
        for t in (i / 299 for i in range(300))
    ]
    ImageDraw.Draw(im).line(pts, fill=35, width=5, joint="curve")
    return im


def with_line(im: Image.Image, text: str) -> Image.Image:
    ImageDraw.Draw(im).text((320, 1600), text, fill=25, font=font(42))  # ~10 pt at 300 dpi
    return im


def save(im: Image.Image, path: Path) -> Path:
    im.filter(ImageFilter.GaussianBlur(0.6)).save(path, dpi=(300, 300))
    return path


def extract(path: Path, tmp_path: Path):
    return extract_page(path, FileKind.PNG, 1, OcrOptions(), tmp_path / "work")


@pytest.mark.slow
@needs_tesseract
def test_scanned_blank_back_is_blank(tmp_path: Path) -> None:
    page = extract(save(scanned_paper(1), tmp_path / "back.png"), tmp_path)
    assert page.blank


@needs_tesseract
def test_pure_white_page_is_blank(tmp_path: Path) -> None:
    path = tmp_path / "white.png"
    Image.new("L", (W, H), 255).save(path)
    page = extract(path, tmp_path)
    assert page.blank and page.text == ""


@pytest.mark.slow
@needs_tesseract
def test_single_line_of_text_is_not_blank(tmp_path: Path) -> None:
    path = save(with_line(scanned_paper(2), "Reviewed with the patient and family."), tmp_path / "line.png")
    page = extract(path, tmp_path)
    assert not page.blank
    assert "patient" in page.text.lower()


@pytest.mark.slow
@needs_tesseract
def test_signature_only_page_is_not_blank(tmp_path: Path) -> None:
    page = extract(save(with_signature(scanned_paper(3)), tmp_path / "sig.png"), tmp_path)
    assert not has_confident_words(page.words)  # tesseract reads no word in a scrawl...
    assert not page.blank  # ...but the stroke is content


@pytest.mark.slow
@needs_tesseract
def test_bilevel_fax_blank_is_blank_and_fax_line_is_not(tmp_path: Path) -> None:
    """1-bit (G4 TIFF) pages: thresholded specks stay dirt; thresholded text stays text."""
    blank = scanned_paper(4, specks=500).point(lambda v: 255 if v > 128 else 0).convert("1")
    blank.save(tmp_path / "blank.tif", compression="group4", dpi=(300, 300))
    line = with_line(scanned_paper(5), "Page 2 of 2").point(lambda v: 255 if v > 128 else 0).convert("1")
    line.save(tmp_path / "line.tif", compression="group4", dpi=(300, 300))
    opts, work = OcrOptions(), tmp_path / "work"
    assert extract_page(tmp_path / "blank.tif", FileKind.TIFF, 1, opts, work).blank
    assert not extract_page(tmp_path / "line.tif", FileKind.TIFF, 1, opts, work).blank


def test_short_mark_counts_but_specks_do_not() -> None:
    """The image test alone: a two-digit page number is content, 300 dust specks are not."""
    assert image_is_blank(scanned_paper(6).filter(ImageFilter.GaussianBlur(0.6)), 300)
    numbered = with_line(scanned_paper(7), "12").filter(ImageFilter.GaussianBlur(0.6))
    assert not image_is_blank(numbered, 300)


def test_confident_words_veto_blank() -> None:
    """Tesseract's confident words win over the image test; noise read as '.' or low-confidence
    junk does not."""
    assert has_confident_words([Word("Reviewed", 91.0, 0, 0, 10, 10)])
    assert not has_confident_words([Word(".", 95.0, 0, 0, 2, 2), Word("~~", 96.0, 0, 0, 5, 2)])
    assert not has_confident_words([Word("llii", 20.0, 0, 0, 10, 10)])


def test_text_layer_pages_are_never_blank(tmp_path: Path) -> None:
    reportlab = pytest.importorskip("reportlab.pdfgen.canvas")
    path = tmp_path / "born.pdf"
    c = reportlab.Canvas(str(path))
    c.drawString(72, 720, "Discharge summary for the patient, dictated and signed.")
    c.showPage()
    c.save()
    page = extract_page(path, FileKind.PDF, 1, OcrOptions(), tmp_path / "work")
    assert page.source == "text_layer" and not page.blank
