"""One page image on its way to tesseract: decoded pixels, a file tesseract reads, or both, on demand.

Why both: the in-process engine wants pixels (no file, no encode), the command-line engine wants a
file (the original when tesseract can read it as is: no decode in Python, no re-encode). A page is
decoded at most once, and written at most once, whichever of the two the steps after it ask for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from chartvault.ocr import images


@dataclass(slots=True)
class Scratch:
    """Where a page's temporary files go, and the list of them to delete when the page is done."""

    workdir: Path
    temps: list[Path] = field(default_factory=list)

    def keep(self, path: Path) -> Path:
        self.temps.append(path)
        return path

    def cleanup(self) -> None:
        for temp in self.temps:
            temp.unlink(missing_ok=True)
        self.temps.clear()


class PageImage:
    """A page image with its resolution; `image` decodes it, `file()` writes it, each once at most."""

    def __init__(
        self,
        page_no: int,
        dpi: int | None,
        *,
        path: Path | None = None,
        image: Image.Image | None = None,
        decode: Callable[[], Image.Image] | None = None,
    ) -> None:
        if path is None and image is None and decode is None:
            raise ValueError("a page image needs pixels, a file or a decoder")
        self.page_no = page_no
        self.dpi = dpi
        self._path = path
        self._image = image
        self._decode = decode

    @property
    def image(self) -> Image.Image:
        """The pixels, decoded on first use; OcrError when they cannot be."""
        if self._image is None:
            if self._decode is not None:
                self._image = self._decode()
            else:
                assert self._path is not None
                self._image = images.decode_file(self._path, self.page_no)
        return self._image

    def file(self, scratch: Scratch) -> Path:
        """A file tesseract reads: the original when there is one, else an uncompressed PNM (no encode)."""
        if self._path is None:
            self._path = scratch.keep(images.write_pnm(self.image, scratch.workdir, self.page_no))
        return self._path

    def derived(self, image: Image.Image, dpi: int | None = None) -> PageImage:
        """Another image of the same page (reduced, deskewed, turned): pixels only."""
        return PageImage(self.page_no, self.dpi if dpi is None else dpi, image=image)
