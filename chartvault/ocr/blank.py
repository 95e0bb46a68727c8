"""Blank-page detection: the back of a one-sided sheet that a duplex scanner sends anyway.

A page is blank when tesseract found no confident word on it *and* the image holds no mark bigger
than scanner dirt. The second test is what keeps a signature-only page (no words, one long stroke)
or a page with one short line from being called blank, and the first stops a light but real page
being dropped on image statistics alone.

The image test works on a reduced ink map: pixels well below the paper level (the page's median,
so grey paper and low-contrast scans count the same), margins ignored (scanner edge shadows and
punch holes), pooled into ~1/100-inch cells. Connected marks are measured by extent: specks and
JPEG or fax noise stay within a few cells, while a handwritten stroke or a printed word spans many.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from chartvault.ocr.preprocess import paper_level
from chartvault.ocr.types import Word

# The share of each edge ignored: scanner shadows, punch holes and staple marks live there.
MARGIN = 0.06
# A pixel is ink when darker than this share of the paper level (paper 245 -> ink below 135).
INK_RATIO = 0.55
# Pixels per cell side at 300 dpi (scaled with the image's resolution): 1/100 inch.
CELL_AT_300_DPI = 3
# A mark is more than dirt when it spans at least this many cells (~2.5 mm) in some direction:
# a 10-point capital is about 10 cells tall, a scanner speck one to three cells across.
MIN_MARK_EXTENT = 8
# ...and the page is blank only when such marks cover fewer cells than this in total.
MAX_MARK_CELLS = 12
# More ink cells than this share of the page is plainly not a blank page: stop measuring.
MANY_INK_CELLS = 0.02
# A "confident word": tesseract's word confidence and the alphanumerics it must hold.
WORD_MIN_CONF = 60.0
WORD_MIN_ALNUM = 2


def has_confident_words(words: Iterable[Word]) -> bool:
    """Whether OCR found at least one word that is more than noise read as text."""
    return any(w.conf >= WORD_MIN_CONF and sum(c.isalnum() for c in w.text) >= WORD_MIN_ALNUM for w in words)


def _ink_cells(im: Image.Image, dpi: int | None) -> np.ndarray:
    """Boolean cell map (True = some ink) of the page without its margins."""
    gray = im.convert("L") if im.mode != "L" else im
    w, h = gray.size
    mx, my = round(w * MARGIN), round(h * MARGIN)
    inner = gray.crop((mx, my, w - mx, h - my))
    a = np.asarray(inner)
    if a.size == 0:
        return np.zeros((0, 0), dtype=bool)
    paper = paper_level(inner)
    ink = a < paper * INK_RATIO
    cell = max(1, round(CELL_AT_300_DPI * (dpi or 300) / 300))
    ch, cw = ink.shape[0] // cell, ink.shape[1] // cell
    if ch == 0 or cw == 0:
        return ink
    cells = ink[: ch * cell, : cw * cell].reshape(ch, cell, cw, cell).any(axis=(1, 3))
    return np.asarray(cells)


def _mark_cells(cells: np.ndarray) -> int:
    """Cells belonging to connected marks (8-neighbourhood) that span MIN_MARK_EXTENT or more."""
    remaining = {(int(y), int(x)) for y, x in np.argwhere(cells)}
    total = 0
    while remaining:
        start = remaining.pop()
        stack = [start]
        size = 1
        y0 = y1 = start[0]
        x0 = x1 = start[1]
        while stack:
            y, x = stack.pop()
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    n = (y + dy, x + dx)
                    if n in remaining:
                        remaining.remove(n)
                        stack.append(n)
                        size += 1
                        y0, y1 = min(y0, n[0]), max(y1, n[0])
                        x0, x1 = min(x0, n[1]), max(x1, n[1])
        if max(y1 - y0, x1 - x0) + 1 >= MIN_MARK_EXTENT:
            total += size
    return total


def image_is_blank(im: Image.Image, dpi: int | None = None) -> bool:
    """Whether the image, margins aside, holds nothing bigger than specks and noise."""
    cells = _ink_cells(im, dpi)
    if cells.size == 0:
        return True
    inked = int(cells.sum())
    if inked > MANY_INK_CELLS * cells.size:
        return False
    return _mark_cells(cells) < MAX_MARK_CELLS


def is_blank_page(path: Path, words: Iterable[Word], dpi: int | None = None) -> bool:
    """Blank = no confident OCR word and no real mark in the image at `path`.

    The image is only opened when OCR found no confident word, so text pages cost nothing extra.
    An image that cannot be decoded here (tesseract just read it) is reported as not blank.
    """
    if has_confident_words(words):
        return False
    try:
        with Image.open(path) as im:
            im.load()
            return image_is_blank(im, dpi)
    except Exception:  # never lose a page to a detector failure: not blank means "keep it"
        return False
