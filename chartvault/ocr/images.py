"""Getting one page of an image file into a form tesseract reads fast, without re-encoding."""

from __future__ import annotations

import uuid
from pathlib import Path

from PIL import Image

from chartvault.ocr.errors import OcrError

# Compressions leptonica's libtiff reads reliably; a single-frame TIFF with one of these goes to
# tesseract as is (a multi-frame one cannot: tesseract would OCR every frame).
_TIFF_PASSTHROUGH = {"group4", "group3", "tiff_ccitt", "tiff_lzw", "raw", "packbits", "tiff_adobe_deflate"}
_PNM_EXT = {"1": "pbm", "L": "pgm", "RGB": "ppm"}


def check_pixels(page_no: int, width: int, height: int) -> None:
    """Refuse pages over Pillow's bomb limit (set by the caller), whoever ends up decoding them.

    Pillow itself only raises above twice the limit, and only in Image.open: neither a later TIFF
    frame nor an image tesseract decodes by path would be checked at all.
    """
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        raise OcrError(page_no, "page exceeds the pixel limit")


def open_image(path: Path, page_no: int) -> Image.Image:
    """Image.open (header only) with its many failure types turned into OcrError."""
    try:
        im = Image.open(path)
    except Image.DecompressionBombError:
        raise OcrError(page_no, "page exceeds the pixel limit") from None
    except Exception:  # Pillow plugins raise OSError, SyntaxError, ValueError, struct.error...
        raise OcrError(page_no, "image could not be decoded") from None
    check_pixels(page_no, *im.size)
    return im


def image_dpi(im: Image.Image) -> int | None:
    dpi = im.info.get("dpi")
    try:
        value = round(float(dpi[0])) if dpi else 0
    except (TypeError, ValueError, IndexError):
        return None
    return value if value > 0 else None


def temp_path(workdir: Path, page_no: int, ext: str) -> Path:
    # Unique per call: several workers may share one folder.
    return workdir / f"p{page_no}-{uuid.uuid4().hex[:12]}.{ext}"


def to_ocr_mode(im: Image.Image) -> Image.Image:
    """Bilevel, gray or RGB, the modes an uncompressed PNM holds; transparency goes on white."""
    if im.mode in _PNM_EXT:
        return im
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        im = Image.new("RGB", rgba.size, "white")
        im.paste(rgba, mask=rgba.getchannel("A"))
    return im.convert("L")


def write_pnm(im: Image.Image, workdir: Path, page_no: int) -> Path:
    """Write uncompressed PBM/PGM/PPM: a PNG encode of a 300-dpi page was measured at ~1 s."""
    im = to_ocr_mode(im)
    out = temp_path(workdir, page_no, _PNM_EXT[im.mode])
    im.save(out, format="PPM")
    return out


def image_source(path: Path, page_no: int) -> int | None:
    """Check a PNG/JPEG that tesseract will read by path; returns its dpi (None if unknown)."""
    with open_image(path, page_no) as im:
        if page_no != 1:
            raise OcrError(page_no, "page does not exist")
        return image_dpi(im)


def decode_file(path: Path, page_no: int) -> Image.Image:
    """Frame `page_no` (1-based) of an image file, decoded; OcrError for a bad file or missing frame."""
    with open_image(path, page_no) as im:
        frames = getattr(im, "n_frames", 1)
        if page_no > frames:
            raise OcrError(page_no, "page does not exist")
        try:
            if page_no > 1:
                im.seek(page_no - 1)
                check_pixels(page_no, *im.size)
            im.load()
            # A copy outlives the file; Pillow frees a closed image's pixels.
            return im.copy()
        except OcrError:
            raise
        except Exception:  # Pillow plugins raise OSError, SyntaxError, ValueError, struct.error...
            raise OcrError(page_no, "image could not be decoded") from None


def tiff_frame(path: Path, page_no: int) -> tuple[int | None, bool]:
    """Check one TIFF frame: (its dpi, whether tesseract can read the file as it is).

    Only a single-frame TIFF of a compression and mode leptonica reads reliably passes as it is: a
    multi-frame one cannot (tesseract would OCR every frame).
    """
    with open_image(path, page_no) as im:
        frames = getattr(im, "n_frames", 1)
        if page_no > frames:
            raise OcrError(page_no, "page does not exist")
        passthrough = (
            frames == 1 and im.info.get("compression") in _TIFF_PASSTHROUGH and im.mode in ("1", "L", "RGB")
        )
        if page_no > 1:
            try:
                im.seek(page_no - 1)
            except Exception:
                raise OcrError(page_no, "image could not be decoded") from None
            check_pixels(page_no, *im.size)
        return image_dpi(im), passthrough


def tiff_source(path: Path, page_no: int, workdir: Path) -> tuple[Path, int | None, bool]:
    """One TIFF frame as a path tesseract can read: (path, dpi, is_temporary)."""
    dpi, passthrough = tiff_frame(path, page_no)
    if passthrough:
        return path, dpi, False
    return write_pnm(decode_file(path, page_no), workdir, page_no), dpi, True


def turned(im: Image.Image, degrees_cw: int) -> Image.Image:
    """The page turned clockwise by a quarter turn (as orientation detection asks)."""
    transpose = {
        90: Image.Transpose.ROTATE_270,  # Pillow's ROTATE_* turn counter-clockwise
        180: Image.Transpose.ROTATE_180,
        270: Image.Transpose.ROTATE_90,
    }[degrees_cw]
    return im.transpose(transpose)
