"""A word read again in several renderings of its own pixels: the raw material of a vote on its digits.

Why: a fax or a poor scan breaks a digit's strokes, and tesseract then reads a '3' as '2' or a '0' as '9'
inside an otherwise clean record number; the whole-page pass gives no sign of it beyond a lower word
confidence. The same few pixels read as one line, doubled, thickened, thinned or smoothed, break
differently: on the tuning draws' fax pages the renderings agreed on the printed number where the first
pass had a digit wrong, and never out-voted a right first reading (``chartvault.classify.reread`` decides
what the readings are worth; this module only reads pixels).

A crop of one word is tiny, so six readings of it cost less than a tenth of the page's first pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PIL import Image, ImageFilter

from chartvault.ocr.engines import OcrEngine
from chartvault.ocr.errors import OcrError
from chartvault.ocr.source import PageImage, Scratch
from chartvault.ocr.tess import Deadline
from chartvault.ocr.types import Word

__all__ = ["RENDERINGS", "SINGLE_LINE", "reread_words"]

SINGLE_LINE = 7  # tesseract page segmentation: the crop as one line of text
_MARGIN = 0.6  # of the word's height on every side: the strokes the first pass's box cut off


def _doubled(image: Image.Image) -> Image.Image:
    return image.resize((image.width * 2, image.height * 2), Image.Resampling.LANCZOS)


# Each rendering mends another kind of damage: broken strokes (thickened, median), merged ones (thinned),
# jagged fax edges (smoothed), strokes too thin for tesseract's scale (doubled).
RENDERINGS: tuple[tuple[str, Callable[[Image.Image], Image.Image]], ...] = (
    ("as scanned", lambda im: im),
    ("doubled", _doubled),
    ("thickened", lambda im: im.filter(ImageFilter.MinFilter(3))),
    ("thinned", lambda im: im.filter(ImageFilter.MaxFilter(3))),
    ("median", lambda im: im.filter(ImageFilter.MedianFilter(3))),
    ("smoothed", lambda im: im.filter(ImageFilter.GaussianBlur(1))),
)


def reread_words(
    engine: OcrEngine,
    page: PageImage,
    words: Sequence[Word],
    deadline: Deadline,
    scratch: Scratch,
    *,
    to_image: float = 1.0,
) -> list[list[str]]:
    """For each word (boxes in page pixels; ``to_image`` scales them to ``page``'s pixels), the text of
    each rendering of its crop read as one line. Stops early, keeping what it has, when tesseract fails or
    the page's time runs out: a second look never fails a page."""
    image = page.image
    out: list[list[str]] = []
    for word in words:
        crop = _crop(image, word, to_image)
        readings: list[str] = []
        out.append(readings)
        for _, render in RENDERINGS:
            try:
                found = engine.recognise(page.derived(render(crop)), deadline, scratch, psm=SINGLE_LINE)
            except OcrError:
                return out
            readings.append(found.text.strip())
    return out


def _crop(image: Image.Image, word: Word, scale: float) -> Image.Image:
    margin = word.height * _MARGIN
    box = (
        max(0, round((word.left - margin) * scale)),
        max(0, round((word.top - margin) * scale)),
        min(image.width, round((word.left + word.width + margin) * scale)),
        min(image.height, round((word.top + word.height + margin) * scale)),
    )
    return image.crop(box).convert("L")
