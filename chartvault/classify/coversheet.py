"""ChartVault scanning cover sheets: the barcode payload, its validation, and a printable PDF.

Why: prep staff put one cover sheet in front of each document of a mixed batch; the scanner sends the
whole stack as one file and ChartVault splits it at the cover sheets, filing each part under the cover's
MRN and document type (no guessing from OCR for those two fields).

Payload (version 1), carried by a QR code and, as a fallback, a Code 128 on the same sheet::

    CVCS1|mrn=<MRN>|type=<doc_type>[|dob=<YYYY-MM-DD>]

- ``CVCS1``: "ChartVault cover sheet", format 1; anything else is not a cover sheet (payloads of other
  barcodes on chart pages are never mistaken for one).
- fields ``key=value`` separated by ``|``, in any order, each at most once; unknown keys are refused (a
  later format gets a new prefix).
- ``mrn``: 1-20 characters, A-Z and 0-9, kept as a string (leading zeros matter).
- ``type``: one of ``DOC_TYPES``.
- ``dob`` (optional): an ISO date, not in the future and not before 1850.

A payload that starts with ``CVCS`` but fails validation is reported by ``parse_payload`` with a reason
(field names only, never values) so the pipeline can flag the sheet instead of ignoring it.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from chartvault.classify.checkdigit import CheckDigit, passes
from chartvault.classify.types import DOC_TYPES
from chartvault.errors import InvalidInput

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "PREFIX",
    "CoverSheet",
    "CoverSheetError",
    "decode_payload",
    "encode_payload",
    "find_cover_sheet",
    "is_cover_payload",
    "parse_payload",
    "render_pdf",
]

PREFIX = "CVCS1"
_FAMILY = "CVCS"  # any version: recognised as an (possibly unsupported) cover sheet
_MRN = re.compile(r"[A-Z0-9]{1,20}")
_KEYS = ("mrn", "type", "dob")


class CoverSheetError(InvalidInput):
    """A cover-sheet payload that does not validate (the message names fields, never values)."""


@dataclass(frozen=True, slots=True)
class CoverSheet:
    """What a cover sheet says about the pages behind it."""

    mrn: str
    doc_type: str
    dob: date | None = None

    def payload(self) -> str:
        """The barcode text (see module docstring)."""
        return encode_payload(self.mrn, self.doc_type, self.dob)


def encode_payload(
    mrn: str, doc_type: str, dob: date | str | None = None, *, check_digit: CheckDigit = "none"
) -> str:
    """Build and validate a version-1 payload; CoverSheetError when a field is not acceptable. With the
    facility's ``check_digit``, a mistyped MRN is refused here, before a sheet that would hold every page
    behind it for review is printed."""
    dob_s = dob.isoformat() if isinstance(dob, date) else dob
    text = f"{PREFIX}|mrn={mrn.strip().upper()}|type={doc_type.strip()}"
    if dob_s:
        text += f"|dob={dob_s.strip()}"
    sheet = parse_payload(text)  # one validation path for writing and reading
    if not passes(sheet.mrn, check_digit):
        raise CoverSheetError(
            f"the MRN fails the facility's {check_digit} check digit: check it was typed right"
        )
    return text


def is_cover_payload(text: str) -> bool:
    """True when a barcode claims to be a ChartVault cover sheet (valid or not)."""
    return text.startswith(_FAMILY)


def parse_payload(text: str, *, today: date | None = None) -> CoverSheet:
    """Validate a payload and return its fields; CoverSheetError with the reason otherwise."""
    parts = text.strip().split("|")
    if parts[0] != PREFIX:
        raise CoverSheetError(
            "unsupported cover-sheet format" if is_cover_payload(text) else "not a cover sheet"
        )
    fields: dict[str, str] = {}
    for part in parts[1:]:
        key, sep, value = part.partition("=")
        if not sep or key not in _KEYS:
            raise CoverSheetError("unknown cover-sheet field")
        if key in fields:
            raise CoverSheetError(f"cover-sheet field {key} repeated")
        fields[key] = value
    for key in ("mrn", "type"):
        if not fields.get(key):
            raise CoverSheetError(f"cover-sheet field {key} missing")
    if not _MRN.fullmatch(fields["mrn"]):
        raise CoverSheetError("cover-sheet mrn must be 1-20 letters/digits")
    if fields["type"] not in DOC_TYPES:
        raise CoverSheetError("cover-sheet type is not a known document type")
    dob = None
    if "dob" in fields:
        try:
            dob = date.fromisoformat(fields["dob"])
        except ValueError:
            raise CoverSheetError("cover-sheet dob must be YYYY-MM-DD") from None
        if not date(1850, 1, 1) <= dob <= (today or date.today()):
            raise CoverSheetError("cover-sheet dob out of range")
    return CoverSheet(fields["mrn"], fields["type"], dob)


def decode_payload(text: str) -> CoverSheet | None:
    """The cover sheet a barcode payload describes, or None when it is not a valid one."""
    try:
        return parse_payload(text)
    except CoverSheetError:
        return None


def find_cover_sheet(barcodes: list[dict[str, str]] | None) -> tuple[CoverSheet | None, bool]:
    """From one page's barcodes: (the valid cover sheet, whether an invalid cover payload was seen).

    Several barcodes of one sheet (QR + Code 128) must agree; disagreeing valid payloads count as invalid.
    """
    sheets: set[CoverSheet] = set()
    invalid = False
    for b in barcodes or []:
        text = str(b.get("text", ""))
        if not is_cover_payload(text):
            continue
        sheet = decode_payload(text)
        if sheet is None:
            invalid = True
        else:
            sheets.add(sheet)
    if len(sheets) == 1:
        return next(iter(sheets)), invalid
    return None, invalid or len(sheets) > 1


# -- printing -------------------------------------------------------------------------------------------

_DPI = 200
_PAGE = (int(8.5 * _DPI), 11 * _DPI)  # US letter


def _barcode_image(payload: str, fmt: str, scale: int, height: int | None = None) -> Image.Image:
    import numpy as np
    import zxingcpp
    from PIL import Image

    code = zxingcpp.create_barcode(payload, getattr(zxingcpp.BarcodeFormat, fmt))
    img = Image.fromarray(np.asarray(code.to_image(scale=1, add_quiet_zones=True))).convert("L")
    w, h = img.size
    return img.resize((w * scale, height or h * scale), Image.Resampling.NEAREST)


def render_pdf(sheet: CoverSheet) -> bytes:
    """A one-page letter-size PDF: title, human-readable type/MRN/DOB, a QR code and a Code 128."""
    from PIL import Image, ImageDraw, ImageFont

    payload = sheet.payload()
    page = Image.new("L", _PAGE, 255)
    draw = ImageDraw.Draw(page)
    big = ImageFont.load_default(size=64)
    mid = ImageFont.load_default(size=44)
    small = ImageFont.load_default(size=30)
    x = 150
    draw.text((x, 140), "CHARTVAULT SCANNING COVER SHEET", font=big, fill=0)
    note = "Place in front of the document it describes. Scanned, not filed."
    draw.text((x, 240), note, font=small, fill=0)
    label = sheet.doc_type.replace("_", " ").upper()
    draw.text((x, 360), f"DOCUMENT TYPE: {label}", font=mid, fill=0)
    draw.text((x, 430), f"MRN: {sheet.mrn}", font=mid, fill=0)
    if sheet.dob:
        draw.text((x, 500), f"DOB: {sheet.dob.isoformat()}", font=mid, fill=0)
    qr = _barcode_image(payload, "QRCode", scale=12)
    page.paste(qr, ((_PAGE[0] - qr.width) // 2, 640))
    linear = _barcode_image(payload, "Code128", scale=2, height=180)
    if linear.width > _PAGE[0] - 100:  # long MRNs: keep the symbol on the page
        linear = _barcode_image(payload, "Code128", scale=1, height=180)
    page.paste(linear, ((_PAGE[0] - linear.width) // 2, 640 + qr.height + 120))
    draw.text((x, _PAGE[1] - 200), f"Payload format {PREFIX}", font=small, fill=0)
    buf = io.BytesIO()
    page.save(buf, "PDF", resolution=_DPI)
    return buf.getvalue()


def write_pdf(sheet: CoverSheet, out: Path) -> Path:
    """Write ``render_pdf`` to a file (atomically enough for a printout) and return its path."""
    out = Path(out)
    out.write_bytes(render_pdf(sheet))
    return out
