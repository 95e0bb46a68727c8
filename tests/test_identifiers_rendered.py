"""Patient labels of other real-world layouts printed on a letter page at 300 dpi, read back by real
tesseract (ChartVault's OCR, preprocessing on) and ``extract_identifiers`` with the word boxes; and the OCR
worker handing the word boxes over. Every name, number and date is invented.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from chartvault.classify import extract_identifiers
from chartvault.classify.types import Identifiers
from chartvault.filetypes import FileKind
from chartvault.ocr import extract_page
from chartvault.ocr.types import OcrOptions

TODAY = date(2024, 6, 1)
DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
BODY = [
    "HISTORY OF PRESENT ILLNESS: The patient was seen on 02/11/2019 for knee pain that began",
    "after a fall. She has taken 600 mg of ibuprofen twice daily with partial relief and no",
    "side effects. She denies fever, chills or other joint complaints at this time.",
    "PHYSICAL EXAMINATION: The right knee shows a small effusion without warmth or redness.",
]


def _font(name: str, px: int) -> ImageFont.FreeTypeFont:
    path = DEJAVU / name
    if not path.is_file():
        pytest.skip(f"font {name} not installed")
    return ImageFont.truetype(str(path), px)


def _courier_bold(px: int) -> ImageFont.FreeTypeFont:
    reportlab = pytest.importorskip("reportlab")
    return ImageFont.truetype(str(Path(reportlab.__file__).parent / "fonts" / "cob_____.pfb"), px)


def render(tmp_path: Path, label: list[str], *, at: tuple[int, int], font: ImageFont.FreeTypeFont,
           box: bool, smudge: bool = False) -> Path:  # fmt: skip
    """A chart page: hospital header, the label at ``at`` (pixels), report lines in the middle."""
    page = Image.new("L", (2550, 3300), 255)
    draw = ImageDraw.Draw(page)
    draw.text((300, 150), "Riverbend General Hospital", font=_font("DejaVuSans-Bold.ttf", 66), fill=0)
    small = _font("DejaVuSans.ttf", 38)
    draw.text((300, 240), "1200 River Road, Springfield, OR 97477", font=small, fill=0)
    draw.text((300, 290), "Tel (541) 555-0100   Fax (541) 555-0101", font=small, fill=0)
    body = _font("DejaVuSerif.ttf", 44)
    for i, ln in enumerate(BODY):
        draw.text((300, 1300 + 60 * i), ln, font=body, fill=0)
    x, y = at
    step = round(font.size * 1.3)
    for i, ln in enumerate(label):
        draw.text((x + 28, y + 28 + i * step), ln, font=font, fill=40)
    if box:
        width = max(int(font.getlength(ln)) for ln in label) + 56
        draw.rectangle((x, y, x + width, y + 56 + step * len(label)), outline=0, width=3)
    if smudge:  # an embossed card: soft, uneven ink
        page = page.filter(ImageFilter.GaussianBlur(1.0))
    path = tmp_path / "page.png"
    page.save(path, dpi=(300, 300))
    return path


def read(path: Path, tmp_path: Path, pattern: str | None = None) -> Identifiers:
    page = extract_page(path, FileKind.PNG, 1, OcrOptions(), tmp_path / "work")
    return extract_identifiers(
        page.text, words=page.words, page_size=(page.width, page.height), mrn_pattern=pattern, today=TODAY
    )


def test_addressograph_imprint_without_keys(tmp_path: Path) -> None:
    imprint = ["DOE, JANE Q  001234567  F  03/14/52", "05/02/23   DR SMITH"]
    path = render(tmp_path, imprint, at=(1250, 420), font=_courier_bold(48), box=False, smudge=True)
    ids = read(path, tmp_path)
    assert (ids.name.value, ids.mrn.value, ids.sex.value) == ("DOE, JANE Q", "001234567", "F")
    assert ids.dob.value == "1952-03-14"
    assert ids.date_of_service.value == "2023-05-02"


def test_thermal_label_with_patient_id_and_two_digit_years(tmp_path: Path) -> None:
    label = ["DOE, JANE Q     F", "Patient ID: M00123456", "Birthdate: 3/14/15 (8y)", "Visit Date: 5/2/23"]
    path = render(tmp_path, label, at=(1450, 130), font=_font("DejaVuSansMono.ttf", 40), box=True)
    ids = read(path, tmp_path, pattern=r"M\d{8}")
    assert (ids.name.value, ids.mrn.value, ids.sex.value) == ("DOE, JANE Q", "M00123456", "F")
    assert ids.dob.value == "2015-03-14"  # the printed age, not 1915
    assert ids.date_of_service.value == "2023-05-02"


def test_chart_number_label_in_the_bottom_corner(tmp_path: Path) -> None:
    label = ["Chart #: E0012345", "DOE, JANE Q", "D.O.B. 14-MAR-1952   F", "Date of Service: 05/02/2023"]
    path = render(tmp_path, label, at=(150, 2700), font=_font("DejaVuSans.ttf", 40), box=True)
    ids = read(path, tmp_path)
    assert (ids.mrn.value, ids.name.value, ids.dob.value) == ("E0012345", "DOE, JANE Q", "1952-03-14")
    assert ids.date_of_service.value == "2023-05-02"


def test_ocr_worker_hands_the_word_boxes_to_the_identifier_reader(tmp_path: Path) -> None:
    from chartvault.ingest.tasks import OcrTask

    imprint = ["DOE, JANE Q  001234567  F  03/14/1952"]
    path = render(tmp_path, imprint, at=(1250, 420), font=_courier_bold(48), box=False)
    out = OcrTask(path.name, FileKind.PNG.value, 1, OcrOptions()).run(path.parent)
    assert out.error is None
    ids = Identifiers.from_dict(out.identifiers)
    assert (ids.mrn.value, ids.dob.value, ids.sex.value) == ("001234567", "1952-03-14", "F")
