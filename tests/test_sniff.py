"""File kinds come from content; every refusal has a code and a plain reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from badfiles import corrupt_tiff, encrypted_pdf, pdf_with_pages, png_bomb, text_page_png, truncated
from conftest import pick

from chartvault.filetypes import FileKind
from chartvault.ingest.sniff import Limits, Refused, sniff

LIMITS = Limits(max_file_bytes=50 << 20, max_pages=50, max_pixels=60_000_000)


def refusal(path: Path, limits: Limits = LIMITS) -> Refused:
    with pytest.raises(Refused) as info:
        sniff(path, limits)
    return info.value


@pytest.mark.parametrize(
    "fmt,kind",
    [
        ("png", FileKind.PNG),
        ("jpeg", FileKind.JPEG),
        ("tiff_g4", FileKind.TIFF),
        ("pdf_image", FileKind.PDF),
        ("pdf_text", FileKind.PDF),
    ],
)
def test_corpus_files_are_known_by_content(corpus, fmt, kind):
    entry = pick(corpus, fmt)
    result = sniff(entry["file"], LIMITS)
    assert result.kind is kind
    assert result.page_count == entry["page_count"]


def test_lying_extension_is_ignored(tmp_path, corpus):
    png_named_pdf = tmp_path / "scan.pdf"
    shutil.copy(pick(corpus, "png")["file"], png_named_pdf)
    assert sniff(png_named_pdf, LIMITS).kind is FileKind.PNG
    text_named_tif = tmp_path / "scan.tif"
    text_named_tif.write_text("not really an image\n")
    r = refusal(text_named_tif)
    assert r.code == "unsupported_type" and "text file" in r.reason


def test_empty_file(tmp_path):
    p = tmp_path / "empty.tif"
    p.write_bytes(b"")
    assert refusal(p).code == "empty_file"


def test_byte_limit(tmp_path, corpus):
    entry = pick(corpus, "png")
    r = refusal(entry["file"], Limits(max_file_bytes=1000, max_pages=50, max_pixels=60_000_000))
    assert r.code == "too_large" and "1,000" in r.reason


def test_truncated_jpeg_and_png(tmp_path, corpus):
    for fmt in ("jpeg", "png"):
        r = refusal(truncated(pick(corpus, fmt)["file"], tmp_path / f"cut.{fmt}"))
        assert r.code == "corrupt", r


def test_corrupt_tiff(tmp_path, corpus):
    r = refusal(corrupt_tiff(pick(corpus, "tiff_g4", pages=2)["file"], tmp_path / "bad.tif"))
    assert r.code == "corrupt"


def test_decompression_bomb(tmp_path):
    r = refusal(png_bomb(tmp_path / "bomb.png"))
    assert r.code in ("decompression_bomb", "page_too_large")


def test_oversized_page_by_pixel_cap(tmp_path):
    p = text_page_png(tmp_path / "wide.png", size=(3000, 2000))
    r = refusal(p, Limits(max_file_bytes=50 << 20, max_pages=50, max_pixels=5_000_000))
    assert r.code in ("page_too_large", "decompression_bomb")


def test_a_refusal_under_a_small_limit_changes_nothing_else_in_the_process(tmp_path):
    # The sniff once set Pillow's process-wide bomb limit to the batch's: a page read later in the same
    # process (another batch, a page image for the viewer) was refused under a limit that was not its own.
    from chartvault.ocr.images import open_image

    p = text_page_png(tmp_path / "wide.png", size=(3000, 2000))
    refusal(p, Limits(max_file_bytes=50 << 20, max_pages=50, max_pixels=5_000_000))
    with open_image(p, 1) as im:
        assert im.size == (3000, 2000)


def test_pdf_page_cap_and_huge_page(tmp_path):
    assert refusal(pdf_with_pages(tmp_path / "many.pdf", 60)).code == "too_many_pages"
    huge = pdf_with_pages(tmp_path / "huge.pdf", 1, size=(14400, 14400))  # 200 x 200 inches
    assert refusal(huge).code == "page_too_large"


def test_encrypted_pdf(tmp_path):
    assert refusal(encrypted_pdf(tmp_path / "locked.pdf")).code == "encrypted"


def test_pdf_that_is_only_a_header(tmp_path):
    p = tmp_path / "stub.pdf"
    p.write_bytes(b"%PDF-1.7\n%broken\n")
    assert refusal(p).code == "corrupt"


def test_reasons_never_echo_file_names(tmp_path):
    p = tmp_path / "SMITH_JOHN_DOB_1970.tif"
    p.write_text("hello")
    r = refusal(p)
    assert "SMITH" not in r.reason and "SMITH" not in str(r)
