"""Scanned page images made easier for tesseract: small-angle deskew and bilevel smoothing.

Only steps that measured a lower character error rate on the development corpus (``python -m
bench.quality --preprocess both``) without making any scan-quality tier worse are here:

* **Deskew.** Scanners feed paper a degree or two off square. Tesseract reads slightly tilted lines
  well enough, but its layout analysis then sometimes drops or reorders whole paragraphs (a page
  losing a third of its text at 93 % mean confidence); straightened, those pages read normally.
  The angle is the one whose horizontal projection of the ink is sharpest (text lines give tall,
  narrow peaks), searched within +-MAX_SKEW_DEG on a reduced image.
* **Bilevel smoothing.** A 1-bit page (G4 TIFF, fax) is turned into grey with a light blur before
  anything else: tesseract's recogniser works on grey, and the blur rebuilds some of the stroke
  shape that thresholding (and a fax's 98-dpi rows) cut away.

Tried and left out: a 3x3 median filter on every page (lower CER on JPEG and typical-tier pages,
higher on image PDFs and 1-bit pages, and ~0.5 s a page) and rotating by whole-pixel shears
(cheaper, but fax-tier CER 1.51 % against bilinear's 1.30 %; 2.01 % without deskew).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageFilter

# Largest skew corrected; beyond it a page is badly fed or turned (OSD handles the quarter turns).
MAX_SKEW_DEG = 5.0
# Smaller angles are left alone: not worth a resampling pass.
MIN_SKEW_DEG = 0.1
COARSE_STEP_DEG = 0.25
FINE_STEP_DEG = 0.05
# A pixel is ink when darker than this share of the paper level (the image's median).
INK_RATIO = 0.55
# Ink points used to score an angle: a sample keeps the search fast on dense pages.
MAX_POINTS = 150_000
# Fewer ink points than this (blank or nearly blank page): nothing to align on.
MIN_POINTS = 400
# Gaussian radius (pixels at 300 dpi) that turns a 1-bit page into grey.
BILEVEL_BLUR_AT_300_DPI = 1.0
# The best angle must sharpen the projection by this factor over 0 degrees, or the page is left
# as it is (pictures, tables of dots, noise: no lines to align).
MIN_GAIN = 1.02


def _gray(im: Image.Image) -> Image.Image:
    """8-bit grey. Deep images are scaled, not clipped: Pillow's convert("L") turns a 16-bit scan white."""
    if im.mode == "L":
        return im
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") else max(float(a.max()), 1.0)
        return Image.fromarray(np.clip(a * (255.0 / top), 0, 255).astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat.convert("L")
    return im.convert("L")


def paper_level(gray: Image.Image) -> int:
    """The median grey level: paper, on any page that is mostly paper (every document page)."""
    hist = gray.histogram()
    half = sum(hist) / 2
    seen = 0
    for level, count in enumerate(hist):
        seen += count
        if seen >= half:
            return level
    return 255


def _ink_points(gray: Image.Image, paper: int) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(gray)
    ys, xs = np.nonzero(a < paper * INK_RATIO)
    if len(ys) > MAX_POINTS:
        step = math.ceil(len(ys) / MAX_POINTS)
        ys, xs = ys[::step], xs[::step]
    return ys.astype(np.float64), xs.astype(np.float64)


def _sharpness(ys: np.ndarray, xs: np.ndarray, deg: float) -> float:
    """Sum of squared row counts after shearing by `deg`: largest when text lines are level."""
    rows = np.rint(ys - xs * math.tan(math.radians(deg))).astype(np.int64)
    counts = np.bincount(rows - rows.min()).astype(np.float64)
    return float(np.dot(counts, counts))


def skew_angle(gray: Image.Image, paper: int | None = None) -> float:
    """Degrees to rotate counter-clockwise (Pillow's sense) to level the text lines; 0 when unsure."""
    # ~150 dpi is plenty to place lines to a twentieth of a degree across a letter-size page.
    small = gray.reduce(2) if min(gray.size) >= 1200 else gray
    if paper is None:
        paper = paper_level(small)
    ys, xs = _ink_points(small, paper)
    if len(ys) < MIN_POINTS:
        return 0.0
    coarse = np.arange(-MAX_SKEW_DEG, MAX_SKEW_DEG + 1e-9, COARSE_STEP_DEG)
    scores = {float(d): _sharpness(ys, xs, float(d)) for d in coarse}
    best = max(scores, key=lambda d: (scores[d], -abs(d)))
    fine = np.arange(best - COARSE_STEP_DEG, best + COARSE_STEP_DEG + 1e-9, FINE_STEP_DEG)
    for d in fine:
        scores.setdefault(round(float(d), 4), _sharpness(ys, xs, float(d)))
    best = max(scores, key=lambda d: (scores[d], -abs(d)))
    if scores[best] < MIN_GAIN * scores[0.0]:
        return 0.0
    return best


def deskew(gray: Image.Image, paper: int | None = None) -> Image.Image:
    """The grey page turned to level its text lines (the same image when already level).

    Bilinear: on fax-tier pages it read as well as bicubic (CER 1.30 % against 1.35 %) at about
    half the cost, and better than a whole-pixel shear rotation (fast, but its 1-pixel steps
    through characters: 1.51 %).
    """
    if paper is None:
        paper = paper_level(gray)
    angle = skew_angle(gray, paper)
    if abs(angle) < MIN_SKEW_DEG:
        return gray
    # Corners brought in by the turn get the paper's colour, not white wedges to read as marks.
    return gray.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=paper)


def smooth_bilevel(im: Image.Image, dpi: int | None) -> Image.Image:
    """A 1-bit page as grey with a light Gaussian blur: stroke edges back for the recogniser."""
    radius = BILEVEL_BLUR_AT_300_DPI * (dpi or 300) / 300
    return im.convert("L").filter(ImageFilter.GaussianBlur(radius))


def prepare(im: Image.Image, dpi: int | None = None) -> Image.Image | None:
    """The page image to hand tesseract, or None when preprocessing would not change it.

    Any mode Pillow decodes is accepted; the result is grey ("L"). Tiny images (a few pixels, a
    stamp-sized crop) are returned as grey without deskewing: there are no lines to measure.
    """
    if im.width < 2 or im.height < 2:
        return None
    gray = smooth_bilevel(im, dpi) if im.mode == "1" else _gray(im)
    if min(gray.size) >= 64:
        gray = deskew(gray)
    if gray is im:
        return None
    return gray
