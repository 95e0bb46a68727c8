"""One page of one file to PageText: the function OCR worker processes run."""

from __future__ import annotations

import time
from pathlib import Path

from chartvault.filetypes import FileKind
from chartvault.ocr import images, pdf, preprocess
from chartvault.ocr.blank import is_blank_page
from chartvault.ocr.errors import OcrError
from chartvault.ocr.tess import Deadline, OcrPass, detect_rotation, ocr_image
from chartvault.ocr.types import OcrOptions, PageText, Word

# A first pass "looks wrong" (a sideways or upside-down page) below this mean confidence; upright
# pages of every scan quality in the corpus score well above it, turned ones around 35-45.
OSD_BELOW_CONFIDENCE = 60.0
# ...or when most longer words are taller than wide: tesseract reads one of the two sideways
# orientations as vertical text, with high confidence but boxes and reading order turned.
OSD_VERTICAL_SHARE = 0.5
# Tesseract's own orientation confidence; turned pages score ~10, noise below ~2.
OSD_MIN_CONFIDENCE = 2.0


def extract_page(path: Path, kind: FileKind, page_no: int, options: OcrOptions, workdir: Path) -> PageText:
    """Text, confidence and word boxes of page `page_no` (1-based) of one file.

    One page per call so pages spread over the worker processes; top-level with plain arguments
    so it pickles. Temporary images go to `workdir` and are deleted before returning. Raises
    OcrError (page number and reason only) when the page cannot be read.
    """
    started = time.perf_counter()
    if page_no < 1:
        raise OcrError(page_no, "page does not exist")
    deadline = Deadline(options.timeout_s)
    workdir.mkdir(parents=True, exist_ok=True)
    temps: list[Path] = []
    try:
        if kind is FileKind.PDF:
            result = _pdf_page(path, page_no, options, workdir, temps, deadline)
        elif kind is FileKind.TIFF:
            src, dpi, temporary = images.tiff_source(path, page_no, workdir)
            if temporary:
                temps.append(src)
            result = _ocr(src, page_no, options, dpi, workdir, temps, deadline)
        elif kind in (FileKind.PNG, FileKind.JPEG):
            # The original file goes to tesseract by path: no decode, no re-encode in Python.
            dpi = images.image_source(path, page_no)
            result = _ocr(path, page_no, options, dpi, workdir, temps, deadline)
        else:
            raise OcrError(page_no, "unsupported file kind")
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)
    result.elapsed_ms = round((time.perf_counter() - started) * 1000)
    return result


def _pdf_page(
    path: Path, page_no: int, options: OcrOptions, workdir: Path, temps: list[Path], deadline: Deadline
) -> PageText:
    """Decided page by page: a born-digital page is read from its text layer, a scanned one OCR'd."""
    with pdf.open_page(path, page_no) as page:
        layered = pdf.text_layer_page(page, page_no, options.text_layer_min_chars)
        if layered is not None:
            return layered
        # Rendered rather than the scan's embedded JPEG handed over as is: that saves the ~180 ms
        # render but measured equal or slightly worse character error on every corpus page tried
        # (the render's resampling smooths scan noise), so the render stays.
        rendered = pdf.render_page(page, page_no, options.dpi, workdir)
        temps.append(rendered)
    # The document is closed before tesseract runs: no pdfium memory held for seconds.
    return _ocr(rendered, page_no, options, options.dpi, workdir, temps, deadline)


def _ocr(
    src: Path,
    page_no: int,
    options: OcrOptions,
    dpi: int | None,
    workdir: Path,
    temps: list[Path],
    deadline: Deadline,
) -> PageText:
    """One tesseract pass; orientation detection and a second pass only if the first looks wrong."""
    if options.preprocess:
        src = _preprocessed(src, page_no, dpi, workdir, temps)
    first = ocr_image(src, page_no, options.lang, deadline, dpi)
    chosen, rotation = first, 0
    if options.osd and _looks_turned(first):
        osd = detect_rotation(src, page_no, deadline, dpi)
        if osd is not None and osd[0] in (90, 180, 270) and osd[1] >= OSD_MIN_CONFIDENCE:
            turned = images.rotated_copy(src, osd[0], workdir, page_no)
            temps.append(turned)
            second = ocr_image(turned, page_no, options.lang, deadline, dpi)
            if _better(second, first):
                chosen, rotation = second, osd[0]
    return PageText(
        page_no=page_no,
        text=chosen.text,
        confidence=chosen.confidence,
        source="ocr",
        width=chosen.width,
        height=chosen.height,
        rotation=rotation,
        words=chosen.words,
        blank=is_blank_page(src, chosen.words, dpi),
    )


def _preprocessed(src: Path, page_no: int, dpi: int | None, workdir: Path, temps: list[Path]) -> Path:
    """The page image deskewed and cleaned (chartvault.ocr.preprocess) as a temporary PNM.

    `src` itself when preprocessing would not change it. Word boxes are then in the deskewed image,
    which has the original's size (turned about its centre: boxes move by up to ~35 px at 1.5 degrees).
    """
    with images.open_image(src, page_no) as im:
        try:
            im.load()
        except Exception:
            raise OcrError(page_no, "image could not be decoded") from None
        prepared = preprocess.prepare(im, dpi)
    if prepared is None:
        return src
    out = images.write_pnm(prepared, workdir, page_no)
    temps.append(out)
    return out


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
