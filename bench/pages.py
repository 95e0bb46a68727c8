"""Rendered chart pages like the corpus's: letter size at 300 dpi, a hospital header, a patient label, a
report text from ``dev_texts.csv``, then degraded like a scan (tiers clean / typical / poor / fax).

    python -m bench.pages --split tuning --docs 4 --out /tmp/pages     # look at a few

A document is fully described by its ``DocSpec`` (seeded), so any page can be rebuilt on its own. Fonts come
from the system's DejaVu and the fonts packaged with reportlab (Bitstream Vera; URW clones of Arial, Times
and Courier). Degradation follows the corpus README: rotation within +-1.5 degrees, blur, contrast loss,
paper texture and noise, specks, JPEG artefacts; the fax tier adds a 204x98-dpi bilevel pass.
"""

from __future__ import annotations

import argparse
import io
import random
import re
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

from bench.labels import FACILITIES, SPLITS, LabelLayout, Patient, make_patient
from bench.texts import DevText, report_paragraphs, wrap_paragraphs

if TYPE_CHECKING:
    from chartvault.classify.checkdigit import CheckDigit

DPI = 300
PAGE_W, PAGE_H = int(8.5 * DPI), 11 * DPI
MARGIN_X, MARGIN_TOP, MARGIN_BOTTOM = 300, 150, 170
TIERS = ("clean", "typical", "poor", "fax")
TIER_WEIGHTS = (0.3, 0.35, 0.15, 0.2)

_DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
_RL = Path(__import__("reportlab").__file__).parent / "fonts"
# family -> (regular, bold) candidates; the first that exists is used per document seed.
_FONTS: dict[str, list[tuple[Path, Path]]] = {
    "sans": [
        (_DEJAVU / "DejaVuSans.ttf", _DEJAVU / "DejaVuSans-Bold.ttf"),
        (_RL / "Vera.ttf", _RL / "VeraBd.ttf"),
        (_RL / "_a______.pfb", _RL / "_ab_____.pfb"),
    ],
    "serif": [
        (_DEJAVU / "DejaVuSerif.ttf", _DEJAVU / "DejaVuSerif-Bold.ttf"),
        (_RL / "_er_____.pfb", _RL / "_eb_____.pfb"),
    ],
    "mono": [
        (_DEJAVU / "DejaVuSansMono.ttf", _DEJAVU / "DejaVuSansMono-Bold.ttf"),
        (_RL / "com_____.pfb", _RL / "cob_____.pfb"),
    ],
    # Embossing plates are plain type: a dotted or slashed zero is a printer font's, not a card's.
    "imprint": [(_RL / "cob_____.pfb", _RL / "cob_____.pfb")],
}

# fmt: off
TITLES: dict[str, tuple[str, ...]] = {
    "history_and_physical": ("HISTORY AND PHYSICAL", "ADMISSION HISTORY AND PHYSICAL",
                             "HISTORY & PHYSICAL EXAMINATION"),
    "consult_note": ("CONSULTATION", "CONSULT NOTE", "CONSULTATION REPORT"),
    "progress_note": ("PROGRESS NOTE", "CLINIC NOTE", "OFFICE VISIT NOTE"),
    "discharge_summary": ("DISCHARGE SUMMARY", "HOSPITAL DISCHARGE SUMMARY"),
    "operative_report": ("OPERATIVE REPORT", "PROCEDURE NOTE", "OPERATIVE NOTE", "REPORT OF OPERATION"),
    "radiology_report": ("RADIOLOGY REPORT", "DIAGNOSTIC IMAGING REPORT", "IMAGING REPORT"),
    "ed_note": ("EMERGENCY DEPARTMENT REPORT", "ED PHYSICIAN NOTE", "EMERGENCY ROOM RECORD"),
    "correspondence": (),  # letters print no type title
}
# fmt: on


@dataclass(frozen=True, slots=True)
class DocSpec:
    """Everything that decides one rendered document."""

    doc_id: str
    layout: LabelLayout
    patient: Patient
    text: DevText
    title: str  # '' = no printed title
    tier: str
    font_class: str
    body_pt: float
    max_pages: int
    seed: int


@dataclass(slots=True)
class Rendered:
    spec: DocSpec
    pages: list[Image.Image] = field(default_factory=list)
    truncated: bool = False


def make_specs(
    split: str,
    texts: list[DevText],
    per_layout: int,
    seed: int,
    max_pages: int = 2,
    check_digit: CheckDigit = "none",
) -> list[DocSpec]:
    """``per_layout`` documents for every layout of ``split``; texts cycle through the types so each type
    is about equally frequent (as on the evaluation pages), half the pages print a title. With a
    ``check_digit`` the facilities' MRNs end in one (the same draws: only each MRN's last digit changes)."""
    rng = random.Random(f"{split}:{seed}")
    by_type: dict[str, list[DevText]] = {}
    for t in texts:
        by_type.setdefault(t.doc_type, []).append(t)
    types = sorted(by_type)
    specs = []
    for layout in SPLITS[split]:
        for i in range(per_layout):
            doc_type = types[(i + rng.randrange(len(types))) % len(types)]
            text = rng.choice(by_type[doc_type])
            titles = TITLES.get(doc_type, ())
            title = rng.choice(titles) if titles and rng.random() < 0.5 else ""
            facility = rng.choice(FACILITIES)
            if check_digit != "none":
                facility = replace(facility, check_digit=check_digit)
            specs.append(
                DocSpec(
                    doc_id=f"{split}-{layout.name}-{i:03d}",
                    layout=layout,
                    patient=make_patient(rng, facility),
                    text=text,
                    title=title,
                    tier=rng.choices(TIERS, TIER_WEIGHTS)[0],
                    font_class=rng.choice(("mono", "serif", "serif", "sans", "sans")),
                    body_pt=rng.choice((10, 10.5, 11, 11, 12)),
                    max_pages=max_pages,
                    seed=rng.randrange(2**31),
                )
            )
    return specs


# ------------------------------------------------------------------------------------------------ fonts


@cache
def _font(path: Path, px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), px)


def font_pair(family: str, pt: float, choice: int) -> tuple[ImageFont.FreeTypeFont, ImageFont.FreeTypeFont]:
    """(regular, bold) of a family at ``pt`` points (300 dpi); ``choice`` picks among the family's fonts."""
    options = _FONTS[family]
    regular, bold = options[choice % len(options)]
    px = round(pt * DPI / 72)
    return _font(regular, px), _font(bold, px)


# ----------------------------------------------------------------------------------------------- labels


def label_image(layout: LabelLayout, patient: Patient, rng: random.Random) -> Image.Image:
    """The patient label alone, on white, at print size."""
    content = layout.content(patient)
    if layout.style == "grid":
        return _grid_image([c for c in content if isinstance(c, tuple)], rng)
    lines = [c for c in content if isinstance(c, str)]
    pt = {"imprint": 11.5, "strip": 9.0}.get(layout.style, rng.choice((9.0, 9.5, 10.0)))
    regular, _ = font_pair(layout.font, pt, rng.randrange(3))
    gap = round(regular.size * 1.3)
    pad = 0 if layout.style in ("plain", "strip", "imprint") else 28
    barcode = _barcode(patient.mrn) if layout.barcode else None
    top = pad + (barcode.height + 20 if barcode else 0)
    width = max(int(regular.getlength(ln)) for ln in lines) + 2 * pad
    width = max(width, (barcode.width + 2 * pad) if barcode else 0)
    img = Image.new("L", (width + 4, top + gap * len(lines) + pad + 4), 255)
    draw = ImageDraw.Draw(img)
    if barcode:
        img.paste(barcode, (pad, pad))
    ink = {"thermal": 45, "imprint": 60}.get(layout.style, 0)
    for i, ln in enumerate(lines):
        xy = (pad, top + i * gap)
        draw.text(xy, ln, font=regular, fill=ink)
        if layout.style == "imprint":  # embossed card struck twice, a little off
            draw.text((xy[0] + 2, xy[1] + 1), ln, font=regular, fill=ink + 20)
    if layout.style in ("box", "thermal"):
        draw.rectangle((0, 0, img.width - 1, img.height - 1), outline=120 if layout.style == "thermal" else 0,
                       width=3)  # fmt: skip
    if layout.style == "imprint":
        img = _smudge(img, rng)
    return img


def _barcode(payload: str) -> Image.Image:
    import zxingcpp

    code = zxingcpp.create_barcode(payload, zxingcpp.BarcodeFormat.Code128)
    img = Image.fromarray(np.asarray(code.to_image(scale=1, add_quiet_zones=False))).convert("L")
    return img.resize((img.width * 3, 90), Image.NEAREST)


def _smudge(img: Image.Image, rng: random.Random) -> Image.Image:
    """Addressograph ink: soft edges, uneven pressure, dropouts."""
    arr = np.asarray(img.filter(ImageFilter.GaussianBlur(1.1)), dtype=np.float32)
    gen = np.random.default_rng(rng.randrange(2**31))
    pressure = gen.uniform(0.0, 60.0, size=(4, 8)).astype(np.float32)
    pressure_img = Image.fromarray(pressure).resize((img.width, img.height), Image.BICUBIC)
    arr = arr + np.asarray(pressure_img, dtype=np.float32) * (arr < 200)
    dropout = gen.random(arr.shape) < 0.04
    arr[dropout] = np.maximum(arr[dropout], 200)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _grid_image(cells: list[tuple[str, str]], rng: random.Random) -> Image.Image:
    """A form header: one row of boxed cells, the field name small at the top, the value below it."""
    key_font, _ = font_pair("sans", 7.0, rng.randrange(3))
    value_font, _ = font_pair("sans", 10.0, rng.randrange(3))
    pad = 16
    widths = [max(key_font.getlength(k), value_font.getlength(v)) + 2 * pad + 20 for k, v in cells]
    height = pad + key_font.size + 16 + value_font.size + pad + 10
    img = Image.new("L", (int(sum(widths)) + 4, height + 4), 255)
    draw = ImageDraw.Draw(img)
    x = 0.0
    for (key, value), w in zip(cells, widths, strict=True):
        draw.rectangle((int(x), 0, int(x + w), height), outline=0, width=3)
        draw.text((int(x) + pad, pad), key, font=key_font, fill=0)
        draw.text((int(x) + pad, pad + key_font.size + 16), value, font=value_font, fill=0)
        x += w
    return img


# ------------------------------------------------------------------------------------------------ pages

_HEADING = re.compile(r"^([A-Z][A-Z0-9 /&'\-(),#]{1,60}:)(.*)$")


def body_lines(spec: DocSpec, regular: ImageFont.FreeTypeFont) -> list[str]:
    """The report text wrapped to the printable width, with the signature line at the end."""
    paragraphs = report_paragraphs(spec.text.transcription)
    rng = random.Random(spec.seed)
    signed = spec.patient.service_date + timedelta(days=rng.randrange(0, 3))
    at = f"{rng.randrange(7, 19):02d}:{rng.randrange(60):02d}"
    paragraphs.append(f"Electronically signed by: {spec.patient.attending}, MD on {signed:%m/%d/%Y} at {at}")
    width = PAGE_W - 2 * MARGIN_X
    return wrap_paragraphs(paragraphs, lambda s: regular.getlength(s) <= width)


def render_document(spec: DocSpec) -> Rendered:
    """Every page of the document, degraded; the label is printed on each page, as labels are."""
    rng = random.Random(spec.seed)
    regular, bold = font_pair(spec.font_class, spec.body_pt, rng.randrange(3))
    label = label_image(spec.layout, spec.patient, rng)
    lines = body_lines(spec, regular)
    header_align = rng.choice(("left", "center", "right"))
    out = Rendered(spec)
    page_no = 0
    while lines and page_no < spec.max_pages:
        page_no += 1
        page, lines = _page(spec, label, lines, page_no, header_align, regular, bold, rng)
        out.pages.append(page)
    out.truncated = bool(lines)
    total = len(out.pages)
    out.pages = [degrade(_footer(p, spec, i + 1, total), spec.tier, rng) for i, p in enumerate(out.pages)]
    return out


def _page(
    spec: DocSpec,
    label: Image.Image,
    lines: list[str],
    page_no: int,
    header_align: str,
    regular: ImageFont.FreeTypeFont,
    bold: ImageFont.FreeTypeFont,
    rng: random.Random,
) -> tuple[Image.Image, list[str]]:
    page = Image.new("L", (PAGE_W, PAGE_H), 255)
    draw = ImageDraw.Draw(page)
    place = spec.layout.place
    if place in ("top_right", "top_left"):
        header_align = "left" if place == "top_right" else "right"
    rule = (MARGIN_X, PAGE_W - MARGIN_X)
    x = PAGE_W - MARGIN_X // 2 - label.width if place == "top_right" else MARGIN_X // 2
    beside = place in ("top_right", "top_left") and not _overlaps_header(
        draw, spec, header_align, x, label.width
    )
    if beside:  # the header's rule stops short of a corner label printed beside the letterhead
        rule = (MARGIN_X, x - 40) if place == "top_right" else (x + label.width + 40, PAGE_W - MARGIN_X)
    header_bottom = _header(draw, spec, header_align, rule)
    body_top, body_bottom = header_bottom + 40, PAGE_H - MARGIN_BOTTOM - 120
    if place in ("top_right", "top_left"):
        y = MARGIN_TOP if beside else header_bottom + 30
        _stick(page, label, spec.layout, (x, y))
        body_top = max(body_top, y + label.height + 50)
    elif place == "top":
        x = (PAGE_W - label.width) // 2
        page.paste(label, (max(x, 40), header_bottom + 30))
        body_top = header_bottom + 30 + label.height + 50
    else:
        y = PAGE_H - MARGIN_BOTTOM - 80 - label.height
        x = {"bottom_left": MARGIN_X // 2, "bottom_right": PAGE_W - MARGIN_X // 2 - label.width}.get(
            place, (PAGE_W - label.width) // 2
        )
        _stick(page, label, spec.layout, (x, y))
        body_bottom = y - 60
    y = body_top
    if spec.title and page_no == 1:
        title_font = font_pair("sans", 14, rng.randrange(3))[1]
        w = title_font.getlength(spec.title)
        draw.text(((PAGE_W - w) / 2, y), spec.title, font=title_font, fill=0)
        y += round(title_font.size * 2.0)
    step = round(regular.size * 1.22)
    used = 0
    for ln in lines:
        if y + step > body_bottom:
            break
        _body_line(draw, ln, MARGIN_X, y, regular, bold)
        y += step
        used += 1
    return page, lines[used:]


def _stick(page: Image.Image, label: Image.Image, layout: LabelLayout, xy: tuple[int, int]) -> None:
    """A printed label is a sticker and covers what is under it; an imprint is ink over the page."""
    if layout.style == "imprint":
        x, y = xy
        label = ImageChops.darker(page.crop((x, y, x + label.width, y + label.height)), label)
    page.paste(label, xy)


def _header(draw: ImageDraw.ImageDraw, spec: DocSpec, align: str, rule: tuple[int, int]) -> int:
    """Facility name, address and phone line, and a rule from ``rule[0]`` to ``rule[1]``; the y below."""
    fac = spec.patient.facility
    name_font = font_pair("sans", 16, spec.seed)[1]
    small = font_pair("sans", 9, spec.seed)[0]
    y = MARGIN_TOP
    for text, font in (
        (fac.name, name_font),
        (fac.address, small),
        (f"Tel {fac.phone}   Fax {fac.fax}", small),
    ):
        w = font.getlength(text)
        x = {"left": MARGIN_X, "center": (PAGE_W - w) / 2, "right": PAGE_W - MARGIN_X - w}[align]
        draw.text((x, y), text, font=font, fill=0)
        y += round(font.size * 1.35)
    draw.line((rule[0], y + 10, rule[1], y + 10), fill=0, width=4)
    return y + 14


def _overlaps_header(draw: ImageDraw.ImageDraw, spec: DocSpec, align: str, x: int, width: int) -> bool:
    name_font = font_pair("sans", 16, spec.seed)[1]
    w = name_font.getlength(spec.patient.facility.name)
    if align == "left":
        return MARGIN_X + w + 40 > x
    return PAGE_W - MARGIN_X - w - 40 < x + width


def _body_line(
    draw: ImageDraw.ImageDraw,
    line: str,
    x: int,
    y: int,
    regular: ImageFont.FreeTypeFont,
    bold: ImageFont.FreeTypeFont,
) -> None:
    m = _HEADING.match(line)
    if m:
        draw.text((x, y), m.group(1), font=bold, fill=0)
        draw.text((x + bold.getlength(m.group(1)), y), m.group(2), font=regular, fill=0)
    else:
        draw.text((x, y), line, font=regular, fill=0)


def _footer(page: Image.Image, spec: DocSpec, page_no: int, total: int) -> Image.Image:
    draw = ImageDraw.Draw(page)
    small = font_pair("sans", 8, spec.seed)[0]
    y = PAGE_H - MARGIN_BOTTOM
    text = (
        f"{spec.patient.facility.initials} Health Information Management - CONFIDENTIAL PATIENT INFORMATION"
    )
    draw.text((MARGIN_X, y), text, font=small, fill=0)
    right = f"Page {page_no} of {total}"
    draw.text((PAGE_W - MARGIN_X - small.getlength(right), y + 20), right, font=small, fill=0)
    return page


# --------------------------------------------------------------------------------------------- degrade

_TIER_PARAMS = {
    # rotation deg, blur radius, noise sigma, ink, paper, jpeg quality (0 = none), specks
    "clean": ((0.0, 0.6), (0.3, 0.6), (1.5, 3.0), (0, 20), (240, 250), (85, 95), (40, 100)),
    "typical": ((0.2, 1.0), (0.5, 1.0), (3.0, 5.0), (20, 50), (225, 242), (60, 85), (100, 200)),
    "poor": ((0.6, 1.5), (1.0, 1.6), (5.0, 7.0), (50, 80), (200, 215), (25, 40), (200, 300)),
    "fax": ((0.0, 0.8), (0.3, 0.6), (2.0, 4.0), (0, 10), (240, 250), (70, 85), (250, 450)),
}


def degrade(page: Image.Image, tier: str, rng: random.Random) -> Image.Image:
    """A clean page made to look scanned: turned, blurred, contrast lost, textured, specked, compressed."""
    rot, blur, noise, ink, paper, jpeg_q, specks = (rng.uniform(*r) for r in _TIER_PARAMS[tier])
    gen = np.random.default_rng(rng.randrange(2**31))
    img = page.rotate(rot * rng.choice((-1, 1)), resample=Image.BICUBIC, fillcolor=255)
    img = img.filter(ImageFilter.GaussianBlur(blur))
    arr = np.asarray(img, dtype=np.float32)
    arr = ink + (paper - ink) * arr / 255.0
    texture = gen.normal(0.0, 3.0, size=(33, 26)).astype(np.float32)
    arr += np.asarray(Image.fromarray(texture).resize(img.size, Image.BICUBIC), dtype=np.float32)
    arr += gen.normal(0.0, noise, size=arr.shape).astype(np.float32)
    for _ in range(int(specks)):
        y, x = int(gen.integers(0, arr.shape[0] - 4)), int(gen.integers(0, arr.shape[1] - 4))
        arr[y : y + int(gen.integers(2, 5)), x : x + int(gen.integers(2, 5))] = ink
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if tier == "fax":
        small = img.resize((round(img.width * 204 / DPI), round(img.height * 98 / DPI)), Image.BILINEAR)
        small = small.point(lambda v: 0 if v < 150 else 255).convert("1")
        img = small.convert("L").resize(page.size, Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=int(jpeg_q))
    buf.seek(0)
    return Image.open(buf).convert("L")


def save_png(img: Image.Image, path: Path) -> Path:
    img.save(path, dpi=(DPI, DPI))
    return path


def main() -> None:
    from bench.texts import read_dev_texts

    ap = argparse.ArgumentParser(description="Render a few generated chart pages to look at.")
    ap.add_argument("--split", choices=sorted(SPLITS), default="tuning")
    ap.add_argument("--docs", type=int, default=1, help="Documents per layout.")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for spec in make_specs(args.split, read_dev_texts(), args.docs, args.seed):
        for i, page in enumerate(render_document(spec).pages, 1):
            save_png(page, args.out / f"{spec.doc_id}-p{i}.png")
            print(args.out / f"{spec.doc_id}-p{i}.png", spec.tier, spec.title or "(untitled)")


if __name__ == "__main__":
    main()
