"""Page preprocessing (deskew, bilevel smoothing) on generated pages, and through real tesseract."""

from __future__ import annotations

import difflib
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from chartvault.filetypes import FileKind
from chartvault.ocr import OcrOptions, extract_page
from chartvault.ocr import preprocess as pp

needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract is not installed")

MONO = Path("/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf")
BODY = (
    "The patient is a 64-year-old man admitted with chest pain radiating to the left arm. Troponin "
    "was negative twice and the electrocardiogram showed no acute changes. He was started on aspirin "
    "and a statin and discharged home in stable condition with follow up in the cardiology clinic in "
    "two weeks. Medications were reconciled with the pharmacist before discharge. "
)


def cer(hypothesis: str, reference: str) -> float:
    """Character error rate with whitespace collapsed (difflib's opcodes: an upper bound)."""
    hyp, ref = " ".join(hypothesis.split()), " ".join(reference.split())
    ops = difflib.SequenceMatcher(None, ref, hyp, autojunk=False).get_opcodes()
    return sum(max(i2 - i1, j2 - j1) for op, i1, i2, j1, j2 in ops if op != "equal") / max(1, len(ref))


def body_lines(n: int = 30, width: int = 78) -> list[str]:
    lines: list[str] = []
    cur = ""
    for word in (BODY * 8).split():
        if cur and len(cur) + 1 + len(word) > width:
            lines.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}".strip()
    return [*lines, cur][:n]


def text_page(lines: list[str], paper: int = 245) -> Image.Image:
    """A letter-size 300-dpi page of 10-point monospaced text."""
    if not MONO.exists():
        pytest.skip(f"font {MONO} not installed")
    im = Image.new("L", (2550, 3300), paper)
    draw = ImageDraw.Draw(im)
    font = ImageFont.truetype(str(MONO), 42)
    for i, line in enumerate(lines):
        draw.text((150, 250 + i * 62), line, fill=20, font=font)
    return im


def skewed(im: Image.Image, degrees: float) -> Image.Image:
    """Turned like a page fed crooked through a scanner (Pillow: counter-clockwise), then blurred."""
    paper = pp.paper_level(im)
    return im.rotate(degrees, resample=Image.Resampling.BICUBIC, fillcolor=paper).filter(
        ImageFilter.GaussianBlur(0.8)
    )


@pytest.fixture(scope="module")
def page() -> Image.Image:
    return text_page(body_lines())


@pytest.mark.parametrize("degrees", [-3.2, -1.1, 0.6, 2.4, 4.5])
def test_skew_angle_is_measured(page: Image.Image, degrees: float) -> None:
    # The correction is the opposite turn, to within the fine search step.
    assert pp.skew_angle(skewed(page, degrees)) == pytest.approx(-degrees, abs=0.1)


def test_deskewed_page_is_level_and_keeps_its_size(page: Image.Image) -> None:
    crooked = skewed(page, 2.0)
    straight = pp.deskew(crooked)
    assert straight.size == crooked.size and straight.mode == "L"
    assert abs(pp.skew_angle(straight)) <= 0.1
    # Nothing lost off the page: the same amount of ink, give or take the resampling of edges.
    ink = lambda im: int((np.asarray(im) < 120).sum())  # noqa: E731
    assert ink(straight) == pytest.approx(ink(crooked), rel=0.02)


def test_level_page_and_picture_are_left_alone(page: Image.Image) -> None:
    assert pp.skew_angle(page) == 0.0
    assert pp.prepare(page, 300) is None  # grey, level: nothing to do, tesseract reads the original
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (800, 600), dtype=np.uint8), "L")
    assert pp.skew_angle(noise) == 0.0  # no lines to align on: no turn


def _full_resolution_angle(im: Image.Image) -> float:
    """The reference the reduced, coarse-to-fine search must agree with: every 0.05 degree at 300 dpi."""
    paper = pp.paper_level(im)
    ys, xs = pp._ink_points(im, paper)
    grid = [round(float(d), 2) for d in np.arange(-pp.MAX_SKEW_DEG, pp.MAX_SKEW_DEG + 1e-9, 0.05)]
    scores = {d: pp._sharpness(ys, xs, d) for d in grid}
    return max(scores, key=lambda d: (scores[d], -abs(d)))


@pytest.mark.parametrize("degrees", [-4.3, -2.05, -0.7, 0.35, 1.45, 3.8])
def test_reduced_estimate_agrees_with_full_resolution(page: Image.Image, degrees: float) -> None:
    crooked = skewed(page, degrees)
    assert pp.skew_angle(crooked) == pytest.approx(_full_resolution_angle(crooked), abs=0.2)


@pytest.mark.parametrize("degrees", [0.0, 0.1, -0.15])
def test_near_level_page_is_left_untouched(page: Image.Image, degrees: float) -> None:
    # Tesseract reads lines this close to level as well: no resampling, no image round-trip.
    crooked = skewed(page, degrees)
    assert abs(pp.skew_angle(crooked)) < pp.MIN_SKEW_DEG
    assert pp.deskew(crooked) is crooked
    assert pp.prepare(crooked, 300) is None


@pytest.mark.parametrize("degrees", [-4.0, -1.3, 0.8, 2.7])
def test_shear_rotation_matches_bilinear_rotation(page: Image.Image, degrees: float) -> None:
    crop = page.crop((100, 200, 1300, 1000))
    ours = pp.rotate(crop, degrees, 245)
    pillow = crop.rotate(degrees, resample=Image.Resampling.BILINEAR, fillcolor=245)
    assert ours.size == crop.size and ours.mode == "L"
    # Same turn: the two agree on the text's angle and (but for the two shears' slight stretch,
    # growing with the angle and the distance from the centre) pixel by pixel near the centre.
    assert pp.skew_angle(ours) == pytest.approx(pp.skew_angle(pillow), abs=0.1)
    centre = (slice(300, 500), slice(500, 700))
    diff = np.abs(np.asarray(ours, dtype=np.int16)[centre] - np.asarray(pillow, dtype=np.int16)[centre])
    assert diff.mean() < 3
    # Corners brought in by the turn are paper, not black.
    assert np.asarray(ours)[[0, 0, -1, -1], [0, -1, 0, -1]].min() >= 240


def test_rotation_keeps_a_flat_page_flat() -> None:
    flat = Image.new("L", (300, 200), 200)
    assert np.unique(np.asarray(pp.rotate(flat, 2.5, 200))).tolist() == [200]


@pytest.mark.slow
@needs_tesseract
def test_skewed_page_reads_better_deskewed(page: Image.Image, tmp_path: Path) -> None:
    path = tmp_path / "skewed.png"
    skewed(page, 3.5).save(path, dpi=(300, 300))
    truth = "\n".join(body_lines())
    errors = {}
    for on in (False, True):
        result = extract_page(path, FileKind.PNG, 1, OcrOptions(preprocess=on), tmp_path / "work")
        errors[on] = cer(result.text, truth)
    assert errors[True] < 0.005, errors
    assert errors[True] < errors[False] / 3, errors
    assert list((tmp_path / "work").iterdir()) == []  # the preprocessed temporary is removed


def test_bilevel_page_becomes_smoothed_grey(page: Image.Image) -> None:
    bilevel = page.point(lambda v: 255 if v > 128 else 0).convert("1")
    out = pp.prepare(bilevel, 300)
    assert out is not None and out.mode == "L" and out.size == bilevel.size
    levels = np.unique(np.asarray(out))
    assert levels.min() < 10 and levels.max() > 245 and len(levels) > 2  # edges now grey


def test_near_level_bilevel_page_is_still_smoothed(page: Image.Image) -> None:
    # No turn needed, but the blur that gives the recogniser its stroke edges back still is.
    bilevel = page.point(lambda v: 255 if v > 128 else 0).convert("1")
    out = pp.prepare(bilevel, 300)
    assert out is not None and out.mode == "L" and len(np.unique(np.asarray(out))) > 2


def test_skewed_bilevel_page_is_deskewed_then_smoothed(page: Image.Image) -> None:
    bilevel = skewed(page, 1.8).point(lambda v: 255 if v > 128 else 0).convert("1")
    out = pp.prepare(bilevel, 300)
    assert out is not None and out.mode == "L" and out.size == bilevel.size
    assert abs(pp.skew_angle(out)) <= 0.1


@pytest.mark.parametrize("dpi", [300, 200])
def test_bilevel_blur_matches_pillows_gaussian(page: Image.Image, dpi: int) -> None:
    bilevel = page.crop((100, 200, 900, 700)).point(lambda v: 255 if v > 128 else 0).convert("1")
    ours = np.asarray(pp.smooth_bilevel(bilevel, dpi), dtype=np.int16)
    radius = pp.BILEVEL_BLUR_AT_300_DPI * dpi / 300
    pillow = np.asarray(bilevel.convert("L").filter(ImageFilter.GaussianBlur(radius)), dtype=np.int16)
    assert ours.shape == pillow.shape
    assert np.abs(ours - pillow).mean() < 1 and np.abs(ours - pillow).max() <= 16


def _roundtrip(im: Image.Image, fmt: str, **kw: object) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    buf.seek(0)
    out = Image.open(buf)
    out.load()
    return out


@pytest.mark.parametrize(
    ("mode", "fmt", "kw"),
    [
        ("1", "TIFF", {"compression": "group4"}),
        ("L", "JPEG", {"quality": 40}),
        ("RGB", "PNG", {}),
        ("RGBA", "PNG", {}),
        ("P", "PNG", {}),
        ("CMYK", "JPEG", {}),
        ("I;16", "PNG", {}),
    ],
)
@pytest.mark.parametrize("size", [(1, 1), (2, 3), (5, 5), (40, 12), (700, 500)])
def test_prepare_accepts_any_mode_and_size(mode: str, fmt: str, kw: dict, size: tuple[int, int]) -> None:
    lines = body_lines(6, 30)
    base = Image.new("L", (700, 500), 240)
    ImageDraw.Draw(base).multiline_text((20, 20), "\n".join(lines), fill=10)
    base = base.rotate(1.5, fillcolor=240).resize(size)
    src = base.convert("I;16").point(lambda v: v * 257) if mode == "I;16" else base.convert(mode)
    im = _roundtrip(src, fmt, **kw)
    out = pp.prepare(im, 300)
    if out is not None:
        assert out.mode == "L" and out.size == im.size
    if mode == "I;16" and min(size) >= 2:
        # A 16-bit scan is scaled to 8 bits (Pillow's own convert would clip it to white).
        assert out is not None
        assert np.asarray(out).mean() == pytest.approx(np.asarray(base).mean(), abs=4)


@pytest.mark.slow
@needs_tesseract
@pytest.mark.parametrize(
    ("kind", "fmt", "mode", "kw"),
    [
        (FileKind.TIFF, "TIFF", "1", {"compression": "group4"}),
        (FileKind.JPEG, "JPEG", "L", {"quality": 50}),
        (FileKind.PNG, "PNG", "RGB", {}),
    ],
)
def test_extract_page_with_preprocessing_reads_every_format(
    kind: FileKind, fmt: str, mode: str, kw: dict, tmp_path: Path
) -> None:
    im = skewed(text_page(body_lines(8)), -1.2).crop((0, 0, 2550, 900))
    if mode == "1":
        im = im.point(lambda v: 255 if v > 128 else 0)
    path = tmp_path / f"page.{fmt.lower()}"
    im.convert(mode).save(path, format=fmt, dpi=(300, 300), **kw)
    result = extract_page(path, kind, 1, OcrOptions(preprocess=True), tmp_path / "work")
    assert cer(result.text, "\n".join(body_lines(8))) < 0.03, result.text
    assert not result.blank
    assert (result.width, result.height) == im.size
    assert list((tmp_path / "work").iterdir()) == []


@needs_tesseract
def test_tiny_image_does_not_crash(tmp_path: Path) -> None:
    path = tmp_path / "tiny.png"
    Image.new("L", (3, 2), 255).save(path)
    result = extract_page(path, FileKind.PNG, 1, OcrOptions(preprocess=True), tmp_path / "work")
    assert result.text == ""
