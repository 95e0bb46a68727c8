"""Two ways to run tesseract behind one interface, chosen by the ``ocr_engine`` setting.

* ``tesserocr``: tesseract as a library inside the worker process. The engine (its ~15 MB model
  loaded, its dictionaries built) is created on the first page a process reads and kept for every
  page after; pixels go in as a buffer, with no image file written or decoded again. Measured
  ~0.78x the command line's CPU per page (4 corpus pages; 0.73x of the OCR stage over the corpus
  with tesserocr 2.13: ``python -m bench.resolution``).
* ``pytesseract``: the ``tesseract`` program, started for every page (and once more for orientation
  when needed), reading the original file when it can. No native extension in the process.

Both read the same language data (tesserocr's wheel carries its own tesseract, 5.3.4 in the pinned
2.8.0, the version of Debian's program, but no models: it is pointed at the folder the installed
program uses) and both return the same ``OcrPass``, parsed from tesseract's own TSV, so text, word
boxes and confidences come out in one form.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import threading
from pathlib import Path
from typing import Any, Protocol

from chartvault.ocr import images, tess
from chartvault.ocr.errors import OcrError
from chartvault.ocr.source import PageImage, Scratch
from chartvault.ocr.tess import Deadline, OcrPass, parse_tsv

__all__ = ["ENGINES", "OcrEngine", "engines_created", "get_engine", "tessdata_dir"]

# Where Debian, Fedora and a source build put the language data, tried when the program cannot say.
_TESSDATA_GUESSES = (
    "/usr/share/tesseract-ocr/5/tessdata",
    "/usr/share/tesseract-ocr/4.00/tessdata",
    "/usr/share/tessdata",
    "/usr/local/share/tessdata",
)
# Tesseract's fully automatic page segmentation (tesserocr.PSM.AUTO), what every whole page is read with.
_AUTO_PSM = 3
# A recognition that stops this close to the page's deadline stopped because of it.
_TIMEOUT_MARGIN_S = 1.0


class OcrEngine(Protocol):
    """What the page reader needs from tesseract: one recognition pass, and orientation on demand."""

    name: str

    def recognise(
        self, page: PageImage, deadline: Deadline, scratch: Scratch, *, psm: int | None = None
    ) -> OcrPass:
        """One pass; ``psm`` a page segmentation mode other than automatic (a label zone read as one
        block or as sparse text), None for the whole page's automatic layout analysis."""
        ...

    def orientation(self, page: PageImage, deadline: Deadline, scratch: Scratch) -> tuple[int, float] | None:
        """(degrees clockwise that make the page upright, confidence), or None when OSD cannot tell."""
        ...


class PytesseractEngine:
    """The ``tesseract`` program through pytesseract: a process per call, files in, TSV out."""

    name = "pytesseract"

    def __init__(self, lang: str) -> None:
        self._lang = lang

    def recognise(
        self, page: PageImage, deadline: Deadline, scratch: Scratch, *, psm: int | None = None
    ) -> OcrPass:
        return tess.ocr_image(page.file(scratch), page.page_no, self._lang, deadline, page.dpi, psm=psm)

    def orientation(self, page: PageImage, deadline: Deadline, scratch: Scratch) -> tuple[int, float] | None:
        return tess.detect_rotation(page.file(scratch), page.page_no, deadline, page.dpi)


class TesserocrEngine:
    """tesseract's C++ API in this process (tesserocr): created once, reused for every page.

    One lock per engine: the API object holds one page's state at a time. Worker processes read one
    page at a time anyway; the lock only matters to a caller that shares an engine between threads.
    """

    name = "tesserocr"

    def __init__(self, lang: str) -> None:
        self._lang = lang
        self._lock = threading.Lock()
        self._api = None  # tesserocr.PyTessBaseAPI, made on the first page
        self._osd_api = None  # a second one with the orientation model, made on the first turned page

    def recognise(
        self, page: PageImage, deadline: Deadline, scratch: Scratch, *, psm: int | None = None
    ) -> OcrPass:
        with self._lock:
            api = self._recogniser(page.page_no)
            if psm is not None:
                api.SetPageSegMode(psm)
            try:
                _set_image(api, page)
                ok = api.Recognize(timeout=_milliseconds(deadline.remaining(page.page_no)))
                tsv = api.GetTSVText(0) if ok else ""
                api.Clear()  # the page's layout and words are not kept between pages
            finally:
                if psm is not None:
                    api.SetPageSegMode(_AUTO_PSM)  # the next whole page gets the automatic layout again
            if not ok:
                if deadline.left() < _TIMEOUT_MARGIN_S:
                    raise OcrError(page.page_no, "tesseract timed out")
                raise OcrError(page.page_no, "tesseract failed")
        return parse_tsv(tsv)

    def orientation(self, page: PageImage, deadline: Deadline, scratch: Scratch) -> tuple[int, float] | None:
        deadline.remaining(page.page_no)
        with self._lock:
            api = self._orienter(page.page_no)
            _set_image(api, page)
            found = api.DetectOrientationScript()
            api.Clear()
        if not found:
            return None
        # tesserocr reports how far the image is turned clockwise; upright needs the opposite turn,
        # which is what the command line prints as "Rotate".
        return (360 - int(found["orient_deg"])) % 360, float(found["orient_conf"])

    def _recogniser(self, page_no: int) -> Any:  # a tesserocr.PyTessBaseAPI (the package is untyped)
        if self._api is None:
            self._api = _new_api(page_no, self._lang, _AUTO_PSM)
        return self._api

    def _orienter(self, page_no: int) -> Any:  # a tesserocr.PyTessBaseAPI
        if self._osd_api is None:
            import tesserocr

            self._osd_api = _new_api(page_no, "osd", tesserocr.PSM.OSD_ONLY)
        return self._osd_api


ENGINES: dict[str, type[TesserocrEngine] | type[PytesseractEngine]] = {
    "tesserocr": TesserocrEngine,
    "pytesseract": PytesseractEngine,
}

_engines: dict[tuple[str, str], OcrEngine] = {}
_engines_pid: int | None = None
_engines_created = 0
_engines_lock = threading.Lock()


def get_engine(name: str, lang: str) -> OcrEngine:
    """This process's engine `name` for `lang`: made on first use, the same object ever after.

    Kept per process id, so a process forked from one that had an engine makes its own rather than
    sharing tesseract's state across a fork.
    """
    global _engines_pid, _engines_created
    with _engines_lock:
        if _engines_pid != os.getpid():
            _engines.clear()
            _engines_pid = os.getpid()
        engine = _engines.get((name, lang))
        if engine is None:
            try:
                kind = ENGINES[name]
            except KeyError:
                raise ValueError(f"unknown OCR engine {name!r}; expected one of {sorted(ENGINES)}") from None
            engine = kind(lang)
            _engines[(name, lang)] = engine
            _engines_created += 1
        return engine


def engines_created() -> int:
    """How many engines this process has made (each is made once and reused: tests check that)."""
    return _engines_created


@functools.cache
def tessdata_dir() -> str | None:
    """The folder of language data the ``tesseract`` program uses, so both engines read the same models.

    TESSDATA_PREFIX when set (both honour it); else the folder the program itself names; else the
    usual install locations. None when none has any ``.traineddata``.
    """
    if os.environ.get("TESSDATA_PREFIX"):
        return os.environ["TESSDATA_PREFIX"]
    try:
        done = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True, timeout=30)
        named = re.search(r'languages in "([^"]+)"', done.stdout + done.stderr)
        if named and Path(named.group(1)).is_dir():
            return named.group(1)
    except (OSError, subprocess.SubprocessError):
        pass
    for guess in _TESSDATA_GUESSES:
        if any(Path(guess).glob("*.traineddata")):
            return guess
    return None


def _new_api(page_no: int, lang: str, psm: int) -> Any:  # a tesserocr.PyTessBaseAPI
    import tesserocr

    datapath = tessdata_dir()
    try:
        return tesserocr.PyTessBaseAPI(path=(datapath or "").rstrip("/") + "/", lang=lang, psm=psm)
    except RuntimeError:
        raise OcrError(page_no, "tesseract language data not found") from None


def _set_image(api: Any, page: PageImage) -> None:  # api: a tesserocr.PyTessBaseAPI
    """Hand tesseract the raw pixels (1-bit, grey or RGB), as the program would have decoded them."""
    im = page.image
    if im.mode not in ("1", "L", "RGB"):
        im = images.to_ocr_mode(im)
    w, h = im.size
    if im.mode == "1":
        # Packed 8 pixels a byte, first pixel in the top bit, 1 = white: Pillow's raw "1" is exactly that.
        api.SetImageBytes(im.tobytes(), w, h, 0, (w + 7) // 8)
    else:
        bpp = 1 if im.mode == "L" else 3
        api.SetImageBytes(im.tobytes(), w, h, bpp, w * bpp)
    if page.dpi:
        api.SetSourceResolution(page.dpi)


def _milliseconds(seconds: float) -> int:
    return max(1, int(seconds * 1000))
