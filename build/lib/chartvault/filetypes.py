"""File kinds ChartVault accepts, known by their content (magic bytes), never by name."""

from __future__ import annotations

from enum import StrEnum


class FileKind(StrEnum):
    TIFF = "tiff"
    PNG = "png"
    JPEG = "jpeg"
    PDF = "pdf"

    @property
    def mime(self) -> str:
        return {
            FileKind.TIFF: "image/tiff",
            FileKind.PNG: "image/png",
            FileKind.JPEG: "image/jpeg",
            FileKind.PDF: "application/pdf",
        }[self]
