"""Makers of broken and hostile files, built by the tests (never committed as binaries)."""

from __future__ import annotations

import io
import zlib
from pathlib import Path

from PIL import Image


def text_page_png(
    path: Path, text: str = "MRN: 00012345 test page", size: tuple[int, int] = (1200, 400)
) -> Path:
    from PIL import ImageDraw

    im = Image.new("L", size, 255)
    ImageDraw.Draw(im).text((40, 40), text, fill=0)
    im.save(path, format="PNG")
    return path


def truncated(src: Path, dst: Path, keep: float = 0.5) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


def corrupt_tiff(src: Path, dst: Path) -> Path:
    """A real TIFF whose strip data is overwritten: the header parses, decoding fails."""
    data = bytearray(src.read_bytes())
    for i in range(len(data) // 3, len(data) - 64):
        data[i] = 0xFF if i % 2 else 0x00
    dst.write_bytes(bytes(data))
    return dst


def png_bomb(dst: Path, width: int = 30_000, height: int = 30_000) -> Path:
    """A tiny PNG that claims a huge 1-bit canvas: a decompression bomb."""
    import struct

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    raw = zlib.compress(row * height, 9)
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    dst.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b""))
    return dst


def pdf_with_pages(
    dst: Path, pages: int, size: tuple[float, float] = (612, 792), text: str | None = None
) -> Path:
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(dst), pagesize=size)
    for i in range(pages):
        if text:
            c.drawString(72, size[1] - 72, f"{text} page {i + 1}")
        c.showPage()
    c.save()
    return dst


def encrypted_pdf(dst: Path) -> Path:
    from reportlab.lib import pdfencrypt
    from reportlab.pdfgen import canvas

    enc = pdfencrypt.StandardEncryption("user-secret", "owner-secret", strength=128)
    c = canvas.Canvas(str(dst), encrypt=enc)
    c.drawString(72, 720, "confidential")
    c.showPage()
    c.save()
    return dst


def multipage_tiff(dst: Path, pages: list[Image.Image], compression: str = "group4") -> Path:
    pages = [p.convert("1") if compression == "group4" else p for p in pages]
    pages[0].save(dst, format="TIFF", save_all=True, append_images=pages[1:], compression=compression)
    return dst


def to_bytes(im: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()
