"""Scanned page images made easier for tesseract: small-angle deskew and bilevel smoothing.

Only steps that measured a lower character error rate on the development corpus (``python -m
bench.quality --preprocess both``) without making any scan-quality tier worse are here:

* **Deskew.** Scanners feed paper a degree or two off square. Tesseract reads slightly tilted lines
  well enough, but its layout analysis then sometimes drops or reorders whole paragraphs (a page
  losing a third of its text at 93 % mean confidence); straightened, those pages read normally.
  The angle is the one whose horizontal projection of the ink is sharpest (text lines give tall,
  narrow peaks), searched within +-MAX_SKEW_DEG, coarse on a ~75-dpi image and fine on ~150 dpi.
  Under MIN_SKEW_DEG the page is left as it is (tesseract then reads the original file).
* **Bilevel smoothing.** A 1-bit page (G4 TIFF, fax) is turned into grey with a light blur: tesseract's
  recogniser works on grey, and the blur rebuilds some of the stroke shape that thresholding (and a
  fax's 98-dpi rows) cut away. The page is deskewed first, as 0/255 grey, then blurred.

Kept cheap, because every page pays it before tesseract starts: the coarse-to-fine search, no turn
under MIN_SKEW_DEG, and for 1-bit pages a turn by two linearly interpolated shears in numpy (rather
than Pillow's bilinear rotate) and the radius-1 blur as a 5-tap binomial kernel in integers, the same
images to within a grey level or two. The Python side went from ~210 to ~155 ms of CPU a page on
the corpus (1-bit pages ~275 to ~145 ms; ~115 ms a page with the shears on grey pages too, see deskew).

Tried and left out: the bilevel smoothing on grey pages that hold only ink and paper (fax-tier JPEG
and PDF pages, ``is_two_level``: CER 1.49 % against 1.35 % without, on those 13 corpus pages); a 3x3
median filter on every page (lower CER on JPEG and typical-tier pages, higher on image PDFs and 1-bit
pages, and ~0.5 s a page); rotating by whole-pixel shears (cheaper,
but fax-tier CER 1.51 % against bilinear's 1.30 %; 2.01 % without deskew); handing tesseract a 1-bit
page turned with nearest-neighbour resampling, or blurred and thresholded again (tesseract ~10 %
faster on such pages, but CER up on most of the seven 1-bit pages tried: poor-tier 0.43 % against
0.08 %, fax 2.70 % against 2.24 %).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

# Largest skew corrected; beyond it a page is badly fed or turned (OSD handles the quarter turns).
MAX_SKEW_DEG = 5.0
# Smaller angles are left alone: tesseract lays out lines this close to level well (no loss on the
# corpus), and a page left as it is costs no resampling pass and no image round-trip.
MIN_SKEW_DEG = 0.25
COARSE_STEP_DEG = 0.25
FINE_STEP_DEG = 0.05
# A pixel is ink when darker than this share of the paper level (the image's median).
INK_RATIO = 0.55
# Ink points used to score an angle: a sample keeps the search fast on dense pages. The coarse
# search (every COARSE_STEP_DEG over the whole range) runs on a ~75-dpi image and fewer points; the
# fine one (around the coarse best) on a ~150-dpi image.
COARSE_POINTS = 40_000
MAX_POINTS = 150_000
# Fewer ink points than this at ~150 dpi (blank or nearly blank page): nothing to align on.
MIN_POINTS = 400
# Gaussian radius (pixels at 300 dpi) that turns a 1-bit page into grey.
BILEVEL_BLUR_AT_300_DPI = 1.0
# The best angle must sharpen the projection by this factor over 0 degrees, or the page is left
# as it is (pictures, tables of dots, noise: no lines to align).
MIN_GAIN = 1.02
# A page is two-level (a fax, a thresholded scan, even when saved as grey or JPEG) when it has fewer
# mid-grey pixels than this share of its ink pixels: on the corpus, two-level pages score 0 to 0.23
# (a PDF render adds some grey at stroke edges), grey scans of every quality 0.34 or more.
TWO_LEVEL_MID_PER_INK = 0.28
# Every 4th pixel of every 4th row is plenty to tell (a letter page: ~0.5 million samples).
TWO_LEVEL_STRIDE = 4


def to_gray(im: Image.Image) -> Image.Image:
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


def _ink_points(gray: Image.Image, paper: int, limit: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(gray)
    ys, xs = np.nonzero(a < paper * INK_RATIO)
    if len(ys) > limit:
        step = math.ceil(len(ys) / limit)
        ys, xs = ys[::step], xs[::step]
    return ys.astype(np.float32), xs.astype(np.float32)


def _sharpness(ys: np.ndarray, xs: np.ndarray, deg: float) -> float:
    """Sum of squared row counts after shearing by `deg`: largest when text lines are level."""
    rows = np.rint(ys - xs * np.float32(math.tan(math.radians(deg)))).astype(np.int64)
    counts = np.bincount(rows - rows.min()).astype(np.float64)
    return float(np.dot(counts, counts))


def _best(scores: dict[float, float]) -> float:
    # Ties go to the smaller turn.
    return max(scores, key=lambda d: (scores[d], -abs(d)))


def skew_angle(gray: Image.Image, paper: int | None = None) -> float:
    """Degrees to rotate counter-clockwise (Pillow's sense) to level the text lines; 0 when unsure.

    Coarse to fine, because scoring an angle costs in proportion to the ink points: every
    COARSE_STEP_DEG on a ~75-dpi image (a quarter of the points is plenty to tell the quarter
    degree), then every FINE_STEP_DEG around the best on ~150 dpi, enough to place lines to a
    twentieth of a degree across a letter-size page.
    """
    fine_img = gray.reduce(2) if min(gray.size) >= 1200 else gray
    coarse_img = fine_img.reduce(2) if min(fine_img.size) >= 600 else fine_img
    if paper is None:
        paper = paper_level(coarse_img)
    ys, xs = _ink_points(fine_img, paper)
    if len(ys) < MIN_POINTS:
        return 0.0
    if coarse_img is fine_img:
        cys, cxs = ys, xs
    else:
        cys, cxs = _ink_points(coarse_img, paper, COARSE_POINTS)
    coarse = np.arange(-MAX_SKEW_DEG, MAX_SKEW_DEG + 1e-9, COARSE_STEP_DEG)
    around = _best({round(float(d), 4): _sharpness(cys, cxs, float(d)) for d in coarse})
    fine = np.arange(around - COARSE_STEP_DEG, around + COARSE_STEP_DEG + 1e-9, FINE_STEP_DEG)
    fine = fine[np.abs(fine) <= MAX_SKEW_DEG + 1e-9]
    scores = {round(float(d), 4): _sharpness(ys, xs, float(d)) for d in (*fine, 0.0)}
    best = _best(scores)
    if scores[best] < MIN_GAIN * scores[0.0]:
        return 0.0
    return best


def _shear(a: np.ndarray, t: float, fill: int, axis: int) -> np.ndarray:
    """Each row (axis 1) or column (axis 0) of `a` moved by (its index - centre) * t pixels along
    the other axis, linearly interpolated; uint8 in and out, the size kept.

    Lines sharing a whole-pixel shift are copied as one slice (no transpose, no index arrays); the
    sub-pixel part is a blend of that copy with its neighbour one pixel on, in 8-bit fixed point.
    """
    h, w = a.shape
    n = h if axis == 1 else w
    off = (np.arange(n) - (n - 1) / 2) * t
    whole = np.floor(off).astype(np.int64)
    frac = np.rint((off - whole) * 256).astype(np.uint16)
    pad = int(np.abs(whole).max()) + 2
    cuts = np.flatnonzero(np.diff(whole)) + 1
    spans = zip(np.r_[0, cuts], np.r_[cuts, n], strict=True)
    if axis == 1:
        padded = np.full((h, w + 2 * pad + 1), fill, np.uint8)
        padded[:, pad : pad + w] = a
        base = np.empty((h, w + 1), np.uint8)
        for i0, i1 in spans:
            j0 = pad + int(whole[i0])
            base[i0:i1] = padded[i0:i1, j0 : j0 + w + 1]
        here, there, frac = base[:, :-1], base[:, 1:], frac[:, None]
    else:
        padded = np.full((h + 2 * pad + 1, w), fill, np.uint8)
        padded[pad : pad + h] = a
        base = np.empty((h + 1, w), np.uint8)
        for i0, i1 in spans:
            j0 = pad + int(whole[i0])
            base[:, i0:i1] = padded[j0 : j0 + h + 1, i0:i1]
        here, there, frac = base[:-1], base[1:], frac[None, :]
    # here*(256-f) + there*f fits uint16 (at most 255*256): exact, and no float image.
    out = here.astype(np.uint16)
    out *= 256 - frac
    nxt = there.astype(np.uint16)
    nxt *= frac
    out += nxt
    out += 128
    out >>= 8
    return out.astype(np.uint8)


def rotate(gray: Image.Image, angle: float, fill: int) -> Image.Image:
    """`gray` ("L") turned a small `angle` (degrees, counter-clockwise) about its centre, size kept.

    Two linearly interpolated shears (columns, then rows, by the sine) instead of Pillow's
    bilinear rotate: the same resampling in effect (mean difference ~1.5 grey levels, from edges and
    the ~0.03 % stretch at 1.5 degrees two shears leave) at well under half the time (a 300-dpi
    letter page: ~70 ms against ~170 ms), because each shear moves whole runs of pixels at once.
    The stretch grows with the angle (0.4 % at MAX_SKEW_DEG): meant for deskewing, not quarter turns.
    """
    s = math.sin(math.radians(angle))
    a = np.asarray(gray)
    # Columns down by x*sin, then rows left by y*sin: (x, y) samples (x - y*sin, y + x*sin - y*sin^2).
    return Image.fromarray(_shear(_shear(a, s, fill, axis=0), -s, fill, axis=1), "L")


def deskew(gray: Image.Image, paper: int | None = None, *, shears: bool = False) -> Image.Image:
    """The grey page turned to level its text lines (the same image when already level)."""
    if paper is None:
        paper = paper_level(gray)
    angle = skew_angle(gray, paper)
    if abs(angle) < MIN_SKEW_DEG:
        return gray
    return _turn(gray, angle, paper, shears=shears)


def _turn(gray: Image.Image, angle: float, paper: int, *, shears: bool) -> Image.Image:
    """Bilinear: on fax-tier pages it read as well as bicubic (CER 1.30 % against 1.35 %) at about
    half the cost, and better than whole-pixel shears (fast, but their 1-pixel steps through
    characters: 1.51 %). `shears` turns by rotate() instead, the same interpolation at well under
    half the time: used for 1-bit pages, whose blur follows anyway. On grey pages, which go to
    tesseract as turned, it read the corpus as well overall (CER 0.70 % against 0.79 %) but flipped
    single characters on fragile fax-tier pages (one date of birth lost, as Pillow's own bilinear
    turn does when the angle moves by 0.05 degree): those keep Pillow's rotate.
    """
    # Corners brought in by the turn get the paper's colour, not white wedges to read as marks.
    if shears:
        return rotate(gray, angle, paper)
    return gray.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=paper)


def _binomial_blur(gray: Image.Image) -> Image.Image:
    """[1 4 6 4 1]/16 across and down: a Gaussian of radius 1 (within ~0.3 grey levels of Pillow's
    GaussianBlur(1) on a 0/255 page) in 16-bit integers, in under half its time."""
    p = np.pad(np.asarray(gray), 2, mode="edge").astype(np.uint16)
    across = p[:, :-4] + p[:, 4:]
    across += (p[:, 1:-3] + p[:, 3:-1]) << 2
    across += p[:, 2:-2] * np.uint16(6)
    down = across[:-4] + across[4:]
    down += (across[1:-3] + across[3:-1]) << 2
    down += across[2:-2] * np.uint16(6)  # at most 255 * 256: fits
    down += 128
    down >>= 8
    return Image.fromarray(down.astype(np.uint8), "L")


def smooth_bilevel(im: Image.Image, dpi: int | None) -> Image.Image:
    """A 1-bit page as grey with a light Gaussian blur: stroke edges back for the recogniser."""
    radius = BILEVEL_BLUR_AT_300_DPI * (dpi or 300) / 300
    gray = im.convert("L") if im.mode != "L" else im
    if abs(radius - 1.0) < 0.05 and min(gray.size) >= 5:
        return _binomial_blur(gray)
    return gray.filter(ImageFilter.GaussianBlur(radius))


def is_two_level(im: Image.Image) -> bool:
    """Whether the page holds only ink and paper, no grey stroke edges: 1-bit, or grey that was.

    Why it matters: reducing such a page blurs its hard, often broken strokes further (fax-tier CER
    3.0 % at 200 dpi against 2.3 % at 300), while a grey scan reads as well or better reduced.
    """
    if im.mode == "1":
        return True
    a = np.asarray(to_gray(im))[::TWO_LEVEL_STRIDE, ::TWO_LEVEL_STRIDE]
    ink = int(np.count_nonzero(a < 128))
    mid = int(np.count_nonzero((a > 60) & (a < 190)))
    return ink > 0 and mid < TWO_LEVEL_MID_PER_INK * ink


@dataclass(frozen=True, slots=True)
class Prepared:
    """What preprocessing did to a page, and the image that came out (None: the page as it was)."""

    image: Image.Image | None
    deskew_deg: float = 0.0  # counter-clockwise; 0 when the page was level enough to leave alone
    smoothed: bool = False  # a 1-bit page turned into blurred grey


def prepare_page(im: Image.Image, dpi: int | None = None) -> Prepared:
    """The page image to hand tesseract, with the decisions taken; its image None when unchanged.

    Each step runs only when the page needs it: the turn only when a skew of MIN_SKEW_DEG or more
    is measured (a level page costs the measurement alone, ~20 ms, and no resampling), the smoothing
    only on 1-bit pages (grey pages already have their stroke edges). Any mode Pillow decodes is
    accepted; the result is grey ("L"). Tiny images (a few pixels, a stamp-sized crop) are returned
    as grey without deskewing: there are no lines to measure. A 1-bit page is deskewed before its
    blur (the skew is measured as well on the 0/255 page).
    """
    if im.width < 2 or im.height < 2:
        return Prepared(None)
    bilevel = im.mode == "1"
    gray = im.convert("L") if bilevel else to_gray(im)
    angle = 0.0
    if min(gray.size) >= 64:
        paper = paper_level(gray)
        angle = skew_angle(gray, paper)
        if abs(angle) >= MIN_SKEW_DEG:
            gray = _turn(gray, angle, paper, shears=bilevel)
        else:
            angle = 0.0
    if bilevel:
        return Prepared(smooth_bilevel(gray, dpi), angle, smoothed=True)
    return Prepared(None if gray is im else gray, angle)


def prepare(im: Image.Image, dpi: int | None = None) -> Image.Image | None:
    """The page image to hand tesseract, or None when preprocessing would not change it."""
    return prepare_page(im, dpi).image
