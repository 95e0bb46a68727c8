"""Hit boxes on a skewed scan: the viewer draws them over the page image, which is the scan turned upright
but not deskewed, while OCR read the words on the deskewed page. Real tesseract on a rendered page turned
by a known angle; the truth is where the word lands on that turned page. Every word is invented."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from conftest import ingest_files
from PIL import Image, ImageDraw, ImageFont

from chartvault.config import Settings
from chartvault.services import Services

pytestmark = pytest.mark.slow  # one page through the whole pipeline

DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
SIZE = (2550, 3300)
SKEW_DEG = 2.0  # turned counter-clockwise, as a page fed crooked into the scanner


def _skewed_page(path: Path) -> tuple[float, float]:
    """A letter page whose last word sits far right of the centre, turned by SKEW_DEG; where that word's
    centre is on the turned page."""
    font = ImageFont.truetype(str(DEJAVU), 42)
    page = Image.new("L", SIZE, 255)
    draw = ImageDraw.Draw(page)
    lines = [
        "RIVERBEND GENERAL HOSPITAL",
        "CLINIC NOTE",
        "The patient returns for review of the rash on both forearms and hands.",
        "She applied the cream twice daily and the itching has settled well.",
        "Examination shows clear skin with no new lesions today, marimba",
        "Plan: continue the cream for two more weeks and return as needed.",
    ]
    for i, line in enumerate(lines):
        draw.text((220, 500 + 90 * i), line, font=font, fill=0)
    _, top, right, bottom = draw.textbbox((220, 500 + 90 * 4), lines[4], font=font)
    word_left = right - draw.textlength("marimba", font=font)
    cx, cy = (word_left + right) / 2, (top + bottom) / 2
    page.rotate(SKEW_DEG, resample=Image.BICUBIC, fillcolor=255).save(path, dpi=(300, 300))
    # Pillow turns counter-clockwise about the centre: (dx, dy) -> (dx cos + dy sin, -dx sin + dy cos)
    t = math.radians(SKEW_DEG)
    dx, dy = cx - SIZE[0] / 2, cy - SIZE[1] / 2
    x, y = dx * math.cos(t) + dy * math.sin(t), -dx * math.sin(t) + dy * math.cos(t)
    return SIZE[0] / 2 + x, SIZE[1] / 2 + y


def test_hit_box_lies_on_the_word_of_a_skewed_scan(tmp_path: Path) -> None:
    truth = _skewed_page(tmp_path / "skewed.png")
    settings = Settings(data_dir=tmp_path / "data", workers=1, _env_file=None)
    with Services(settings) as services:
        batch = ingest_files(services, tmp_path / "skewed.png")
        (doc_id,) = services.intake.batch(batch).files[0].documents
        view = services.pages.view(doc_id, query="marimba")
    assert len(view.boxes) == 1
    box = view.boxes[0]
    centre = ((box.left + box.width / 2) * SIZE[0] / 100, (box.top + box.height / 2) * SIZE[1] / 100)
    # OCR's deskewed box sits ~28 px (2 degrees over ~800 px from the centre) from the word on the image
    assert math.dist(centre, truth) < 10, (centre, truth)
