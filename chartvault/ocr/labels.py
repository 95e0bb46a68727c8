"""A second look at the label zones of a page: the corners and bands where patient labels are stuck.

Why: the page's first pass reads the whole page with tesseract's automatic layout analysis, which runs a
label printed beside the letterhead into the hospital name's line (another font size, another baseline) and
then misreads both, or drops a smudged imprint as noise. Read again on its own, as one block of text in a
crop of the zone, the same label usually comes out whole. Only pages whose first pass gave no confident MRN
and birth date are read again (the caller decides: ``chartvault.classify`` knows what confident means), so
the extra CPU lands on the pages that need it.

Each zone's words come back in the page's own pixels (the frame of ``PageText.words``), so the identifier
reader sees them where they are printed: in a label band, beside or under their keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from chartvault.ocr.engines import OcrEngine
from chartvault.ocr.initials import split_glued_initials
from chartvault.ocr.source import PageImage, Scratch
from chartvault.ocr.tess import Deadline
from chartvault.ocr.types import Word

__all__ = ["LABEL_ZONES", "SINGLE_BLOCK", "LabelRead", "Zone", "read_label_zones"]

# Tesseract page segmentation: the crop as one uniform block of text (no column or line-merging analysis).
SINGLE_BLOCK = 6


@dataclass(frozen=True, slots=True)
class Zone:
    """A part of the page as fractions of its width and height (left, top, right, bottom)."""

    name: str
    left: float
    top: float
    right: float
    bottom: float


# Corners overlap in the middle so that a label centred on the page (a strip, a form grid) is whole in one.
LABEL_ZONES: tuple[Zone, ...] = (
    Zone("top_left", 0.0, 0.0, 0.55, 0.30),
    Zone("top_right", 0.45, 0.0, 1.0, 0.30),
    Zone("bottom_left", 0.0, 0.78, 0.55, 1.0),
    Zone("bottom_right", 0.45, 0.78, 1.0, 1.0),
)


@dataclass(frozen=True, slots=True)
class LabelRead:
    """What one zone read on its own gave: its text, its words and the zone's box (left, top, right,
    bottom), all in the page's pixels."""

    zone: str
    text: str
    words: list[Word]
    box: tuple[int, int, int, int]


def read_label_zones(
    engine: OcrEngine,
    page: PageImage,
    deadline: Deadline,
    scratch: Scratch,
    *,
    to_page: float = 1.0,
    zones: tuple[Zone, ...] = LABEL_ZONES,
    psm: int = SINGLE_BLOCK,
) -> list[LabelRead]:
    """Each zone of ``page`` (the image the first pass read) recognised alone with segmentation ``psm``.

    ``to_page`` scales the crop's pixels to the page's (the inverse of a reduction before recognition).
    Zones with no word are left out.
    """
    image = page.image
    width, height = image.size
    out: list[LabelRead] = []
    for zone in zones:
        box = (
            round(zone.left * width),
            round(zone.top * height),
            round(zone.right * width),
            round(zone.bottom * height),
        )
        if box[2] - box[0] < 8 or box[3] - box[1] < 8:
            continue
        crop = page.derived(image.crop(box))
        found = split_glued_initials(engine.recognise(crop, deadline, scratch, psm=psm), crop.image)
        inner = (box[0] > 0, box[2] < width)
        words = [_placed(w, box[0], box[1], to_page) for w in found.words if not _cut(w, box, inner)]
        if words:
            page_box = tuple(round(v * to_page) for v in box)
            out.append(
                LabelRead(zone.name, found.text, words, (page_box[0], page_box[1], page_box[2], page_box[3]))
            )
    return out


def _cut(w: Word, box: tuple[int, int, int, int], inner: tuple[bool, bool]) -> bool:
    """A word touching a side of the crop that is inside the page: the crop may have cut it (a number
    missing its first digits), and the zone beside this one holds it whole."""
    margin = max(2, w.height // 4)
    return (inner[0] and w.left <= margin) or (inner[1] and w.left + w.width >= box[2] - box[0] - margin)


def _placed(w: Word, dx: int, dy: int, scale: float) -> Word:
    """A crop's word moved to where it is on the page, in the page's pixels."""
    return Word(
        w.text,
        w.conf,
        round((w.left + dx) * scale),
        round((w.top + dy) * scale),
        round(w.width * scale),
        round(w.height * scale),
    )
