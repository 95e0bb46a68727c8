"""A hostile batch: 40+ broken, lying and malicious files uploaded together with good ones.

Each bad file gets a clear refusal or quarantine with its reason; the good files of the same
batch are archived; the service stays up; nothing is written outside the data folder.
"""

from __future__ import annotations

import io
import os
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from badfiles import corrupt_tiff, encrypted_pdf, pdf_with_pages, png_bomb, truncated
from conftest import api_client, pick
from PIL import Image

from chartvault.config import Settings

MAX_BYTES = 12 * 1024 * 1024  # above every corpus file


NO_PAGES_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return (
        struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    )


def _image_bytes(fmt: str, size: tuple[int, int] = (400, 300), mode: str = "L") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, 255).save(buf, format=fmt)
    return buf.getvalue()


def _deep_pdf(depth: int = 20_000) -> bytes:
    nested = b"[" * depth + b"]" * depth
    body = (
        b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Deep "
        + nested
        + b" >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
    )
    return body


def _huge_page_pdf(tmp: Path) -> bytes:
    return pdf_with_pages(tmp / "huge-page.pdf", 1, size=(14_000, 14_000), text="big").read_bytes()


def _jpeg_claiming_huge_size() -> bytes:
    good = bytearray(_image_bytes("JPEG", (64, 64)))
    i = good.index(b"\xff\xc0")  # SOF0: height and width follow the length and precision
    good[i + 5 : i + 9] = struct.pack(">HH", 65_000, 65_000)
    return bytes(good)


def _tiff_claiming_huge_size() -> bytes:
    header = b"II*\x00" + struct.pack("<I", 8)
    entries = [(256, 4, 1, 200_000), (257, 4, 1, 200_000), (258, 3, 1, 1), (259, 3, 1, 1), (262, 3, 1, 0)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\x00" * 4
    return header + ifd + b"\x00" * 64


def _png_bad_crc() -> bytes:
    data = bytearray(_image_bytes("PNG"))
    data[29] ^= 0xFF  # inside IHDR's CRC
    return bytes(data)


def _polyglot_png_pdf() -> bytes:
    return _image_bytes("PNG")[:16] + b"%PDF-1.4\n" + _image_bytes("PNG")[16:]


def _polyglot_jpeg_zip() -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("payload.txt", "hidden")
    return _image_bytes("JPEG") + buf.getvalue()


def hostile_files(tmp: Path, corpus: list[dict]) -> list[tuple[str, bytes]]:
    """(upload name, bytes) of every bad file; the names lie, traverse and use odd characters."""
    png = pick(corpus, "png")["file"]
    jpg = pick(corpus, "jpeg")["file"]
    tif = pick(corpus, "tiff_g4")["file"]
    pdf = pick(corpus, "pdf_image")["file"]
    out: list[tuple[str, bytes]] = [("empty.pdf", b"")]
    for src in (png, jpg, tif, pdf):
        for keep in (0.05, 0.5, 0.95):
            out.append(
                (
                    f"truncated-{keep}{src.suffix}",
                    truncated(src, tmp / f"t{keep}{src.suffix}", keep).read_bytes(),
                )
            )
    makers: list[tuple[str, Callable[[], bytes]]] = [
        ("corrupt-strips.tif", lambda: corrupt_tiff(tif, tmp / "c.tif").read_bytes()),
        ("noise-after-png-magic.png", lambda: b"\x89PNG\r\n\x1a\n" + os.urandom(4096)),
        ("noise-after-jpeg-magic.jpg", lambda: b"\xff\xd8\xff\xe0" + os.urandom(4096)),
        ("noise-after-tiff-magic.tif", lambda: b"II*\x00" + os.urandom(4096)),
        ("noise-after-pdf-magic.pdf", lambda: b"%PDF-1.7\n" + os.urandom(4096)),
        ("bomb.png", lambda: png_bomb(tmp / "bomb.png").read_bytes()),
        ("jpeg-claims-65000px.jpg", _jpeg_claiming_huge_size),
        ("tiff-claims-200000px.tif", _tiff_claiming_huge_size),
        ("thousands-of-pages.pdf", lambda: pdf_with_pages(tmp / "many.pdf", 2_500).read_bytes()),
        ("huge-page.pdf", lambda: _huge_page_pdf(tmp)),
        ("deep-nesting.pdf", _deep_pdf),
        ("encrypted.pdf", lambda: encrypted_pdf(tmp / "enc.pdf").read_bytes()),
        ("header-only.pdf", lambda: b"%PDF-1.4\n%%EOF\n"),
        ("no-pages.pdf", lambda: NO_PAGES_PDF),
        ("text-file.tif", lambda: b"this is a text file pretending to be a TIFF\n" * 10),
        ("web-page.pdf", lambda: b"<html><body>not a pdf</body></html>"),
        ("archive.png", lambda: b"PK\x03\x04" + os.urandom(512)),
        ("program.jpg", lambda: b"\x7fELF\x02\x01\x01" + os.urandom(512)),
        ("image.gif", lambda: _image_bytes("GIF")),
        ("image.bmp", lambda: _image_bytes("BMP")),
        ("image.webp", lambda: _image_bytes("WEBP")),
        ("bad-crc.png", _png_bad_crc),
        ("jpeg-soi-eoi-only.jpg", lambda: b"\xff\xd8\xff\xd9"),
        ("polyglot-png-pdf.png", _polyglot_png_pdf),
        ("polyglot-jpeg-zip.jpg", _polyglot_jpeg_zip),
        ("too-large.tif", lambda: b"II*\x00" + b"\x00" * (MAX_BYTES + 1024)),
        ("../../../../etc/cron.d/evil.png", lambda: b"\x89PNG\r\n\x1a\n" + b"\x00" * 64),
        ("..\\..\\windows\\evil.jpg", lambda: b"\xff\xd8\xff" + b"\x00" * 64),
        ("患者\u202egnp.exe", lambda: b"MZ" + os.urandom(256)),
        ("nul\x00byte.pdf", lambda: b"%PDF-" + b"\x00" * 64),
        ("gzip.pdf", lambda: zlib.compress(b"x" * 1000)),
    ]
    out += [(name, make()) for name, make in makers]
    return out


@pytest.fixture
def hostile_settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data", workers=2, max_file_bytes=MAX_BYTES, max_pages=2000, _env_file=None
    )


@pytest.mark.slow
def test_hostile_batch_refuses_each_bad_file_and_archives_the_good(
    hostile_settings: Settings, corpus: list[dict], tmp_path: Path
) -> None:
    bad = hostile_files(tmp_path, corpus)
    assert len(bad) >= 40
    good_entry = pick(corpus, "pdf_text")
    good = [
        ("../../good/../chart.pdf", good_entry["file"].read_bytes()),  # traversal name, good content
        ("診療記録 ✓.png", pick(corpus, "png")["file"].read_bytes()),  # unicode name, good content
    ]
    files = [("files", (name, data, "application/octet-stream")) for name, data in bad + good]
    with api_client(hostile_settings) as c:
        up = c.post("/batches", files=files, data={"station": "hostile"})
        assert up.status_code == 202, up.text
        batch_id = up.json()["batch_id"]
        deadline = time.monotonic() + 300
        while True:
            report = c.get(f"/batches/{batch_id}").json()
            if report["status"] in ("complete", "complete_with_errors") or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert report["status"] == "complete_with_errors", report["status"]
        assert c.get("/health").json()["status"] == "ok"  # the service stayed up

    by_seq = sorted(report["files"], key=lambda f: f["seq"])
    assert len(by_seq) == len(bad) + len(good)
    codes: dict[str, int] = {}
    for (name, _), f in zip(bad + good, by_seq, strict=True):
        if (name, _) in good:
            assert f["status"] == "archived", (name, f["status"], f["reason_code"])
            assert "/" not in f["name"] and "\\" not in f["name"] and ".." not in f["name"].split("/")
            continue
        assert f["status"] in ("quarantined", "failed"), (name, f["status"])
        assert f["reason_code"] and f["reason"], name
        assert name not in f["reason"]  # reasons never echo the (untrusted) name
        codes[f["reason_code"]] = codes.get(f["reason_code"], 0) + 1
    print(
        f"hostile batch: {len(bad)} bad files refused or quarantined, by code {codes}; "
        f"{len(good)} good files archived"
    )
    data = hostile_settings.data_dir
    # Quarantined bytes are kept with a reason file, inside the data folder only.
    reasons = list((data / "quarantine").rglob("*.reason.txt"))
    assert len(reasons) == sum(1 for f in by_seq if f["status"] == "quarantined")
    assert not (tmp_path / "etc").exists() and not Path("/etc/cron.d/evil.png").exists()
    for p in data.rglob("*"):
        assert p.resolve().is_relative_to(data.resolve())
