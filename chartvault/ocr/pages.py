"""One page of one file to PageText: the function OCR worker processes run.

The page's steps, each timed in CPU (PageText.cpu_ms): *decode* (a file's frame decoded, a PDF page
rendered; a text layer read instead when the page has one), *preprocess* (reduced to the recognition
resolution when scanned finer; deskewed when skewed; 1-bit pages smoothed), *ocr* (one tesseract pass,
orientation and a second pass only when the first looks turned), *labels* (the label zones read again on
their own, only when the caller's `relook` says the first pass left the patient label unread:
``chartvault.ocr.labels``), *blank* (the image looked at only when
no confident word was read) and *barcodes* (on the pixels already decoded). The pixels are decoded once;
the in-process engine takes them as a buffer, the command-line one gets the original file when it can
read it as is, or an uncompressed PNM.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from PIL import Image

from chartvault.filetypes import FileKind
from chartvault.ocr import barcodes as page_codes
from chartvault.ocr import images, pdf, preprocess
from chartvault.ocr.blank import has_confident_words, image_is_blank
from chartvault.ocr.clock import StageClock
from chartvault.ocr.engines import OcrEngine, get_engine
from chartvault.ocr.errors import OcrError
from chartvault.ocr.initials import split_glued_initials
from chartvault.ocr.labels import LabelRead, read_label_zones
from chartvault.ocr.reread import reread_words
from chartvault.ocr.source import PageImage, Scratch
from chartvault.ocr.tess import Deadline, OcrPass
from chartvault.ocr.types import OcrOptions, PageText, Word

# A first pass "looks wrong" (a sideways or upside-down page) below this mean confidence; upright
# pages of every scan quality in the corpus score well above it, turned ones around 35-45.
OSD_BELOW_CONFIDENCE = 60.0
# ...or when most longer words are taller than wide: tesseract reads one of the two sideways
# orientations as vertical text, with high confidence but boxes and reading order turned.
OSD_VERTICAL_SHARE = 0.5
# Tesseract's own orientation confidence; turned pages score ~10, noise below ~2.
OSD_MIN_CONFIDENCE = 2.0
# A scan is reduced to the recognition resolution only when finer than it by more than this share
# (a 305-dpi scan is read as it is).
REDUCE_ABOVE = 1.05
# A cover sheet carries a title and a few labelled fields: pages with more words are chart pages.
COVER_SHEET_MAX_WORDS = 80


@dataclass(slots=True)
class PageScan:
    """A page read: its text, and its barcodes when they were read from the decoded pixels.

    `barcodes` is None when they were not (a text-layer page): the caller reads them from the file.
    `labels` are the label zones read again on their own (``chartvault.ocr.labels``), when the caller's
    `relook` asked for them; `rereads` the texts of each word the caller's `reread` named, one per
    rendering of its pixels (``chartvault.ocr.reread``).
    """

    page: PageText
    barcodes: list[dict[str, str]] | None = None
    labels: list[LabelRead] = field(default_factory=list)
    rereads: list[list[str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Prepared:
    image: PageImage  # what tesseract reads
    scale: float  # its pixels per source pixel (< 1 when reduced)
    deskew_deg: float


_T = TypeVar("_T")

# Whether a page's first pass left its label unread (given the page as read): decided by the caller.
Relook = Callable[[PageText], bool]
# The words of a page's first pass worth reading again in several renderings (the MRN's, when doubtful).
Reread = Callable[[PageText], list[Word]]


def extract_page(path: Path, kind: FileKind, page_no: int, options: OcrOptions, workdir: Path) -> PageText:
    """Text, confidence and word boxes of page `page_no` (1-based) of one file.

    One page per call so pages spread over the worker processes; top-level with plain arguments
    so it pickles. Temporary images go to `workdir` and are deleted before returning. Raises
    OcrError (page number and reason only) when the page cannot be read.
    """
    return scan_page(path, kind, page_no, options, workdir).page


def scan_page(
    path: Path,
    kind: FileKind,
    page_no: int,
    options: OcrOptions,
    workdir: Path,
    *,
    barcodes: bool = False,
    relook: Relook | None = None,
    reread: Reread | None = None,
) -> PageScan:
    """extract_page, and with `barcodes` the page's barcodes read from the same decoded pixels; with
    `relook`, the label zones read again (stage *labels*) when it says the first pass missed the label;
    with `reread`, the words it names read again in several renderings (stage *reread*)."""
    started = time.perf_counter()
    if page_no < 1:
        raise OcrError(page_no, "page does not exist")
    deadline = Deadline(options.timeout_s)
    workdir.mkdir(parents=True, exist_ok=True)
    scratch = Scratch(workdir)
    clock = StageClock()
    found: list[dict[str, str]] | None = None
    labels: list[LabelRead] = []
    rereads: list[list[str]] = []
    try:
        with clock.stage("decode"):
            loaded = _load(path, kind, page_no, options, wants_pixels=barcodes)
        if isinstance(loaded, PageText):
            page = loaded
        else:
            page, read = _recognise(loaded, options, deadline, scratch, clock)
            if relook is not None and not page.blank and page.words and relook(page):
                with clock.stage("labels"):
                    labels = _label_pass(read, options, deadline, scratch)
            targets = reread(page) if reread is not None and not page.blank and page.words else []
            if targets:
                with clock.stage("reread"):
                    rereads = _reread(read, targets, options, deadline, scratch)
            if barcodes:
                with clock.stage("barcodes"):
                    found = _barcodes(loaded, page)
    finally:
        scratch.cleanup()
    page.elapsed_ms = round((time.perf_counter() - started) * 1000)
    page.cpu_ms = clock.ms
    return PageScan(page, found, labels, rereads)


def relook_labels(
    path: Path,
    kind: FileKind,
    page_no: int,
    options: OcrOptions,
    workdir: Path,
    clock: StageClock | None = None,
) -> list[LabelRead]:
    """The label pass alone on an upright scanned page (what `scan_page` adds when `relook` says so), for
    benches and tests that hold the first pass already; a text-layer page has none. `clock` gets the CPU of
    the stages (decode, preprocess, labels)."""

    def look(read: _Read, deadline: Deadline, scratch: Scratch) -> list[LabelRead]:
        return _label_pass(read, options, deadline, scratch)

    return _again(path, kind, page_no, options, workdir, clock or StageClock(), "labels", look) or []


def reread_page_words(
    path: Path,
    kind: FileKind,
    page_no: int,
    options: OcrOptions,
    workdir: Path,
    words: list[Word],
    clock: StageClock | None = None,
) -> list[list[str]]:
    """`words` of an upright scanned page's first pass read again in several renderings (what `scan_page`
    adds when `reread` names them), for benches that hold the first pass already."""

    def look(read: _Read, deadline: Deadline, scratch: Scratch) -> list[list[str]]:
        return _reread(read, words, options, deadline, scratch)

    return _again(path, kind, page_no, options, workdir, clock or StageClock(), "reread", look) or []


def _again(
    path: Path,
    kind: FileKind,
    page_no: int,
    options: OcrOptions,
    workdir: Path,
    clock: StageClock,
    stage: str,
    look: Callable[[_Read, Deadline, Scratch], _T],
) -> _T | None:
    """A second look (``look``, timed as ``stage``) at a scanned page decoded and prepared as the first
    pass had it; None for a text-layer page, which has no pixels to look at."""
    workdir.mkdir(parents=True, exist_ok=True)
    scratch = Scratch(workdir)
    try:
        with clock.stage("decode"):
            loaded = _load(path, kind, page_no, options, wants_pixels=True)
        if isinstance(loaded, PageText):
            return None
        with clock.stage("preprocess"):
            prepared = _prepared(loaded, options)
        with clock.stage(stage):
            return look(_Read(prepared.image, prepared.scale), Deadline(options.timeout_s), scratch)
    finally:
        scratch.cleanup()


@dataclass(frozen=True, slots=True)
class _Read:
    """The image the chosen pass read (upright) and its pixels per page pixel."""

    image: PageImage
    scale: float


def _label_pass(read: _Read, options: OcrOptions, deadline: Deadline, scratch: Scratch) -> list[LabelRead]:
    """The label zones of the image the first pass read, in page pixels; none when tesseract fails or the
    page's time runs out (the first pass stands: a second look is never a reason to fail the page)."""
    try:
        return read_label_zones(
            get_engine(options.engine, options.lang), read.image, deadline, scratch, to_page=1.0 / read.scale
        )
    except OcrError:
        return []


def _reread(
    read: _Read, words: list[Word], options: OcrOptions, deadline: Deadline, scratch: Scratch
) -> list[list[str]]:
    """The words (page pixels) read again in the image the first pass read."""
    engine = get_engine(options.engine, options.lang)
    return reread_words(engine, read.image, words, deadline, scratch, to_image=read.scale)


def _load(
    path: Path, kind: FileKind, page_no: int, options: OcrOptions, *, wants_pixels: bool
) -> PageText | PageImage:
    """The page's text layer when it has one worth reading, else its image (decoded when anything
    after needs the pixels; left as a file only for the command line with nothing to do before it)."""
    if kind is FileKind.PDF:
        with pdf.open_page(path, page_no) as page:
            layered = pdf.text_layer_page(page, page_no, options.text_layer_min_chars)
            if layered is not None:
                return layered
            # Rendered rather than the scan's embedded JPEG handed over as is: that saves the ~180 ms
            # render but measured equal or slightly worse character error on every corpus page tried
            # (the render's resampling smooths scan noise), so the render stays. The document is
            # closed before tesseract runs: no pdfium memory held for seconds.
            return PageImage(page_no, options.dpi, image=pdf.render_image(page, page_no, options.dpi))
    if kind is FileKind.TIFF:
        dpi, passthrough = images.tiff_frame(path, page_no)
        source = PageImage(page_no, dpi, path=path if passthrough else None, decode=_decoder(path, page_no))
    elif kind in (FileKind.PNG, FileKind.JPEG):
        source = PageImage(page_no, images.image_source(path, page_no), path=path)
    else:
        raise OcrError(page_no, "unsupported file kind")
    if wants_pixels or options.engine != "pytesseract" or options.preprocess or _reduction(source, options):
        source.image  # noqa: B018 - decoded here, inside the decode stage's timing
    return source


def _barcodes(source: PageImage, page: PageText) -> list[dict[str, str]] | None:
    """Barcodes from the decoded pixels; None when they cannot be read (never a reason to fail the page)."""
    try:
        return page_codes.scan_decoded(
            source.image, source.dpi, few_words=len(page.words) <= COVER_SHEET_MAX_WORDS
        )
    except Exception:
        return None


def _decoder(path: Path, page_no: int) -> Callable[[], Image.Image]:
    return lambda: images.decode_file(path, page_no)


def _reduction(source: PageImage, options: OcrOptions) -> float:
    """The scale a grey scan would be reduced by before recognition; 0 when it is read as it is."""
    if not options.grey_dpi or not source.dpi or source.dpi <= options.grey_dpi * REDUCE_ABOVE:
        return 0.0
    return options.grey_dpi / source.dpi


def _prepared(source: PageImage, options: OcrOptions) -> _Prepared:
    """Reduced to the recognition resolution (grey pages scanned finer), deskewed and smoothed when needed."""
    page, scale = source, 1.0
    reduction = _reduction(source, options)
    if reduction and not preprocess.is_two_level(source.image):
        gray = preprocess.to_gray(source.image)
        size = (max(1, round(gray.width * reduction)), max(1, round(gray.height * reduction)))
        # Area averaging: each reduced pixel the mean of the scan pixels it covers, no ringing at
        # stroke edges (bilinear and bicubic read one corpus MRN's "E" as a pound sign at 200 dpi).
        reduced = gray.resize(size, Image.Resampling.BOX)
        page, scale = source.derived(reduced, options.grey_dpi), reduction
    if not options.preprocess:
        return _Prepared(page, scale, 0.0)
    done = preprocess.prepare_page(page.image, page.dpi)
    if done.image is not None:
        page = page.derived(done.image)
    return _Prepared(page, scale, done.deskew_deg)


def detect_rotation(
    engine: OcrEngine, page: PageImage, deadline: Deadline, scratch: Scratch
) -> tuple[int, float] | None:
    """Tesseract OSD through the page's engine (a separate name so tests can count the calls)."""
    return engine.orientation(page, deadline, scratch)


def _recognise(
    source: PageImage, options: OcrOptions, deadline: Deadline, scratch: Scratch, clock: StageClock
) -> tuple[PageText, _Read]:
    with clock.stage("preprocess"):
        prepared = _prepared(source, options)
    engine = get_engine(options.engine, options.lang)
    page = prepared.image
    with clock.stage("ocr"):
        first = engine.recognise(page, deadline, scratch)
        chosen, rotation, read = first, 0, page
        if options.osd and _looks_turned(first):
            osd = detect_rotation(engine, page, deadline, scratch)
            if osd is not None and osd[0] in (90, 180, 270) and osd[1] >= OSD_MIN_CONFIDENCE:
                upright = page.derived(images.turned(page.image, osd[0]))
                second = engine.recognise(upright, deadline, scratch)
                if _better(second, first):
                    chosen, rotation, read = second, osd[0], upright
        chosen = split_glued_initials(chosen, read.image)
    with clock.stage("blank"):
        blank = not has_confident_words(chosen.words) and _image_is_blank(page)
    chosen = _in_source_pixels(chosen, prepared.scale)
    text = PageText(
        page_no=source.page_no,
        text=chosen.text,
        confidence=chosen.confidence,
        source="ocr",
        width=chosen.width,
        height=chosen.height,
        rotation=rotation,
        words=chosen.words,
        blank=blank,
        dpi=source.dpi,
        deskew_deg=prepared.deskew_deg,
    )
    return text, _Read(read, prepared.scale)


def _image_is_blank(page: PageImage) -> bool:
    """The image test of a page with no confident word; a detector failure keeps the page (not blank)."""
    try:
        return image_is_blank(page.image, page.dpi)
    except Exception:
        return False


def _in_source_pixels(p: OcrPass, scale: float) -> OcrPass:
    """Boxes and size of a pass over a reduced image, back in the scan's own pixels."""
    if scale == 1.0:
        return p
    up = 1.0 / scale
    words = [
        Word(w.text, w.conf, round(w.left * up), round(w.top * up), round(w.width * up), round(w.height * up))
        for w in p.words
    ]
    return replace(p, words=words, width=round(p.width * up), height=round(p.height * up))


def _vertical_share(words: list[Word]) -> float:
    longer = [w for w in words if len(w.text) >= 4]
    if not longer:
        return 0.0
    return sum(1 for w in longer if w.height > w.width) / len(longer)


def _looks_turned(p: OcrPass) -> bool:
    # No words at all is a blank page: nothing to orient, and OSD would only fail on it.
    if not p.words or p.confidence is None:
        return False
    return p.confidence < OSD_BELOW_CONFIDENCE or _vertical_share(p.words) >= OSD_VERTICAL_SHARE


def _better(second: OcrPass, first: OcrPass) -> bool:
    if second.confidence is None:
        return False
    if first.confidence is None or second.confidence > first.confidence:
        return True
    # A first pass read as vertical text can score about as well as the upright pass, but its
    # boxes and line order are turned: prefer the upright reading unless clearly worse.
    return (
        _vertical_share(first.words) >= OSD_VERTICAL_SHARE
        and _vertical_share(second.words) < OSD_VERTICAL_SHARE
        and second.confidence >= first.confidence - 10
    )
