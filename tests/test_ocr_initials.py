"""A middle initial tesseract glued to the given name ('LEE, LINDAB') split where the ink shows the space:
word boxes laid over drawn label lines, and real tesseract on the two corpus labels it glued. The names
drawn here are invented; the corpus's are synthetic."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from chartvault.classify import extract_identifiers
from chartvault.filetypes import FileKind
from chartvault.ocr import extract_page
from chartvault.ocr.initials import split_glued_initials
from chartvault.ocr.tess import OcrPass
from chartvault.ocr.types import OcrOptions, Word

DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
FONT_PX = 40  # 9.6 pt at 300 dpi: label print


def _label(*tokens: str) -> tuple[Image.Image, list[Word]]:
    """``tokens`` drawn on one line, one space apart; each token's box as tesseract would give it, except
    that a token holding a space ('LINDA B') is one box, as tesseract gives a glued word."""
    font = ImageFont.truetype(str(DEJAVU), FONT_PX)
    image = Image.new("L", (1400, 120), 255)
    draw = ImageDraw.Draw(image)
    x, words = 40, []
    for token in tokens:
        draw.text((x, 30), token, font=font, fill=0)
        left, top, right, bottom = draw.textbbox((x, 30), token, font=font)
        words.append(Word(token.replace(" ", ""), 90.0, left, top, right - left, bottom - top))
        x = right + round(draw.textlength(" ", font=font))
    return image, words


def _pass(words: list[Word]) -> OcrPass:
    return OcrPass(" ".join(w.text for w in words), 90.0, words, 1400, 120)


def test_an_initial_glued_to_the_given_name_is_split_where_the_space_is() -> None:
    image, words = _label("PATIENT:", "LEE,", "LINDA B", "MRN:", "0012345")
    out = split_glued_initials(_pass(words), image)
    assert out.text == "PATIENT: LEE, LINDA B MRN: 0012345"
    lind, b = out.words[2], out.words[3]
    assert (lind.text, b.text) == ("LINDA", "B")
    assert lind.left == words[2].left and b.left + b.width == words[2].left + words[2].width
    assert lind.left + lind.width < b.left  # the cut is in the blank between them
    ids = extract_identifiers(out.text)
    assert ids.name is not None and ids.name.value == "LEE, LINDA B"


def test_a_name_read_as_one_word_is_split_too() -> None:
    image, words = _label("PATIENT:", "LEE,STEVEN P")
    assert split_glued_initials(_pass(words), image).text == "PATIENT: LEE,STEVEN P"


def test_an_underscore_tesseract_adds_after_the_name_does_not_hide_the_initial() -> None:
    # the LSTM reads a stray '_' after a final 'L' or 'H' where the paper has none, glued to the word or apart
    image, words = _label("PATIENT:", "LEE,", "LARS L", "SEX:")
    words[2] = replace(words[2], text="LARSL_")
    assert split_glued_initials(_pass(words), image).text == "PATIENT: LEE, LARS L SEX:"
    image, words = _label("PATIENT:", "LEE,", "EAMON H", "_")
    assert split_glued_initials(_pass(words), image).text == "PATIENT: LEE, EAMON H _"


@pytest.mark.parametrize("given", ["PETRA J", "ALMA J"])
def test_an_initial_that_hangs_below_the_line_is_split_too(given: str) -> None:
    # a 'J' reaches below the capitals, so the box is taller than the letters the blank is measured by
    image, words = _label("PATIENT:", "LEE,", given)
    assert split_glued_initials(_pass(words), image).text == f"PATIENT: LEE, {given}"


@pytest.mark.parametrize(
    "tokens",
    [
        ("PATIENT:", "LEE,", "SARAJ"),  # a given name that ends in J
        ("PATIENT:", "LEE,", "MAJ"),
        ("PATIENT:", "LEE,", "LINDAB"),  # a given name that ends in B: no space in the ink
        ("PATIENT:", "LEE,", "LINDA", "B"),  # the initial printed apart already
        ("THE", "PATIENT", "LINDA B"),  # not after a surname and its comma: report text is never touched
    ],
)
def test_nothing_else_is_split(tokens: tuple[str, ...]) -> None:
    image, words = _label(*tokens)
    before = _pass(words)
    assert split_glued_initials(before, image) == before


@pytest.mark.slow
@pytest.mark.parametrize("name", ["70139bfd6b0f.tif", "6ce9ba9d5ac8.jpg"])
def test_the_corpus_labels_tesseract_glued_read_whole(corpus: list[dict], name: str, tmp_path: Path) -> None:
    entry = next(e for e in corpus if e["path"].endswith(name))
    kind = {"tiff_g4": FileKind.TIFF, "jpeg": FileKind.JPEG}[entry["format"]]
    page = extract_page(entry["file"], kind, 1, OcrOptions(), tmp_path)
    ids = extract_identifiers(page.text, words=page.words, page_size=(page.width, page.height))
    p = entry["patient"]
    assert (
        ids.name is not None and ids.name.value == f"{p['last']}, {p['first']} {p['middle_initial']}".upper()
    )
