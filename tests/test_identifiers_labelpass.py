"""The label pass: a page's label zones read again on their own when the first OCR pass left the MRN or the
birth date unsure (``chartvault.ocr.labels``, ``chartvault.classify.labelpass``). Unit tests on word boxes,
and real tesseract on a rendered page whose label, printed beside the letterhead, the first pass runs into
the hospital name's line. Every name, number and date is invented.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from chartvault.classify import extract_identifiers
from chartvault.classify.labelpass import RELOOK_BELOW, RELOOK_DOB_BELOW, needs_label_pass, with_label_reads
from chartvault.classify.types import Extracted, Identifiers
from chartvault.filetypes import FileKind
from chartvault.ocr import extract_page
from chartvault.ocr.labels import LabelRead
from chartvault.ocr.types import OcrOptions, Word

TODAY = date(2024, 6, 1)
PAGE = (2550, 3300)
DEJAVU = Path("/usr/share/fonts/truetype/dejavu")


def words(*lines: tuple[int, int, str]) -> list[Word]:
    """Word boxes of lines printed at (x, y), 30 px per character, 40 px high."""
    out = []
    for x, y, text in lines:
        for token in text.split(" "):
            if token:
                out.append(Word(token, 90.0, x, y, 30 * len(token), 40))
            x += 30 * (len(token) + 1)
    return out


def ids_of(ws: list[Word], pattern: str | None = None) -> Identifiers:
    text = "\n".join(w.text for w in ws)
    return extract_identifiers(text, words=ws, page_size=PAGE, mrn_pattern=pattern, today=TODAY)


# ------------------------------------------------------------------------------------------ when to look


NAME = Extracted("DOE, JANE", 0.96)


def test_a_page_with_a_confident_mrn_and_dob_is_not_read_again() -> None:
    sure = Identifiers(mrn=Extracted("001234567", 0.97), dob=Extracted("1952-03-14", 0.97), name=NAME)
    assert not needs_label_pass(sure)
    # a keyless two-digit-year birth date never scores high, however well read: no second look for it
    imprint = Identifiers(mrn=Extracted("001234567", 0.88), dob=Extracted("1952-03-14", 0.68), name=NAME)
    assert not needs_label_pass(imprint)


@pytest.mark.parametrize(
    "ids",
    [
        Identifiers(dob=Extracted("1952-03-14", 0.97), name=NAME),  # no MRN
        Identifiers(mrn=Extracted("001234567", 0.97), name=NAME),  # no DOB
        # no name: the label's name line lost (it is what staff see, and what finds a patient by name + DOB)
        Identifiers(mrn=Extracted("001234567", 0.97), dob=Extracted("1952-03-14", 0.97)),
        Identifiers(mrn=Extracted("001234567", RELOOK_BELOW - 0.01), dob=Extracted("1952-03-14", 0.97)),
        Identifiers(mrn=Extracted("001234567", 0.97), dob=Extracted("1952-03-14", RELOOK_DOB_BELOW - 0.01)),
        Identifiers(),
    ],
)
def test_a_missing_name_or_a_missing_or_unsure_mrn_or_dob_sends_the_labels_to_a_second_look(
    ids: Identifiers,
) -> None:
    assert needs_label_pass(ids)


# ------------------------------------------------------------------------------------------ the join

HEADER = (300, 150, "RIVERBEND GENERAL HOSPITAL Pe COTE. Ane 74")  # the label's line run into the letterhead
BODY = [(300, 1300 + 60 * i, ln) for i, ln in enumerate([
    "HISTORY OF PRESENT ILLNESS: the patient was seen for knee pain that began after a fall",
    "and has taken ibuprofen twice daily with partial relief and no side effects at all.",
])]  # fmt: skip


def test_the_zone_read_fills_in_the_mrn_the_first_pass_lost() -> None:
    first_words = words(HEADER, (1500, 250, "DOB 1945-07-12"), *BODY)
    first = ids_of(first_words, r"M\d{9}")
    assert first.mrn is None and needs_label_pass(first)
    zone = words(
        (1500, 150, "Name: DOE, JANE Q  Sex: F"), (1500, 200, "MRN M001234567"), (1500, 250, "DOB 1945-07-12")
    )
    read = LabelRead("top_right", "", zone, (1147, 0, 2550, 990))
    joined = with_label_reads(first, "", first_words, PAGE, [read], mrn_pattern=r"M\d{9}", today=TODAY)
    assert joined.mrn is not None and joined.mrn.value == "M001234567"
    assert joined.dob is not None and joined.dob.value == "1945-07-12"
    assert joined.name is not None and joined.name.value == "DOE, JANE Q"


def test_a_weaker_zone_reading_does_not_replace_a_stronger_first_one() -> None:
    first_words = words((1500, 150, "MRN: 001234567"), (1500, 200, "DOB: 03/14/1952"), *BODY)
    first = ids_of(first_words)
    assert first.mrn is not None and first.mrn.value == "001234567"
    # the zone read garbled the key and a digit: a keyless guess, less sure than the keyed first reading
    zone = words((1500, 150, "DOE, JANE Q  00I234568  F"), (1500, 200, "DOB: 03/14/1952"))
    read = LabelRead("top_right", "", zone, (1147, 0, 2550, 990))
    joined = with_label_reads(first, "", first_words, PAGE, [read], today=TODAY)
    assert joined.mrn == first.mrn
    assert joined.name is not None and joined.name.value == "DOE, JANE Q"  # what only the zone gave is added


def test_first_pass_words_inside_the_zone_are_replaced_not_doubled() -> None:
    """The first pass's misreading of the label must not stand beside the zone's reading as a rival."""
    # (a misreading of another length: a number as likely as the zone's would leave the MRN doubtful, below)
    first_words = words((1500, 150, "MRN: 0012345867"), (1500, 200, "DOB: 03/14/1952"), *BODY)
    first = ids_of(first_words)
    zone = words((1500, 150, "MRN: 001234567"), (1500, 200, "DOB: 03/14/1952"))
    read = LabelRead("top_right", "", zone, (1147, 0, 2550, 990))
    low = Identifiers(mrn=Extracted(first.mrn.value, 0.5) if first.mrn else None, dob=first.dob)
    joined = with_label_reads(low, "", first_words, PAGE, [read], today=TODAY)
    assert joined.mrn is not None and joined.mrn.value == "001234567"
    assert joined.mrn.confidence >= 0.9  # no rivalry discount from the replaced misreading


def test_two_readings_of_one_label_that_disagree_leave_the_mrn_doubtful() -> None:
    """The first pass lost the key ('Wed Ree #') but read the number; the zone read the key and misread two
    digits. Both numbers fit the site's pattern: nothing says which is right, so neither is trusted."""
    first_words = words((1500, 150, "Wed Ree #: 3960855419"), (1500, 200, "Birthdate: 21-NOV-1985"), *BODY)
    first = ids_of(first_words, r"\d{10}")
    zone = words((1500, 150, "Med Ree #: 3900855414"), (1500, 200, "Birthdate: 21-NOV-1985"))
    read = LabelRead("top_right", "", zone, (1147, 0, 2550, 990))
    joined = with_label_reads(first, "", first_words, PAGE, [read], mrn_pattern=r"\d{10}", today=TODAY)
    assert joined.mrn is not None and joined.mrn.confidence < 0.8
    # A first-pass number off the site's pattern is a misreading the zone corrected: no doubt from it
    off_words = words((1500, 150, "Wed Ree #: 39608554190"), (1500, 200, "Birthdate: 21-NOV-1985"), *BODY)
    off = with_label_reads(
        ids_of(off_words, r"\d{10}"), "", off_words, PAGE, [read], mrn_pattern=r"\d{10}", today=TODAY
    )
    assert off.mrn is not None and off.mrn.value == "3900855414" and off.mrn.confidence >= 0.9


# ---------------------------------------------------------------------------------- real tesseract


def _vera_bold(px: int) -> ImageFont.FreeTypeFont:
    reportlab = pytest.importorskip("reportlab")
    return ImageFont.truetype(str(Path(reportlab.__file__).parent / "fonts" / "VeraBd.ttf"), px)


def _dejavu(name: str, px: int) -> ImageFont.FreeTypeFont:
    path = DEJAVU / name
    if not path.is_file():
        pytest.skip(f"font {name} not installed")
    return ImageFont.truetype(str(path), px)


REPORT = (
    "DIAGNOSIS AT ADMISSION: Chronic obstructive pulmonary disease exacerbation",
    "and acute bronchitis. The patient was admitted from the office for treatment.",
)


def label_beside_letterhead(tmp_path: Path, turn: float = 0.5, blur: float = 0.8) -> Path:
    """A scanned chart page: the hospital name in large bold type and, level with it on the right, a plain
    patient label whose MRN line shares the name's baseline band; turned half a degree and a little soft."""
    page = Image.new("L", PAGE, 255)
    draw = ImageDraw.Draw(page)
    draw.text((300, 150), "St. Aurelia Medical Center", font=_vera_bold(66), fill=0)
    small = _dejavu("DejaVuSans.ttf", 38)
    draw.text((300, 240), "88 Cathedral Way, Port Alden, ME 04101", font=small, fill=0)
    draw.text((300, 290), "Tel (207) 555-0142   Fax (207) 555-0143", font=small, fill=0)
    body = _dejavu("DejaVuSerif.ttf", 44)
    for i, ln in enumerate(REPORT):
        draw.text((300, 520 + 60 * i), ln, font=body, fill=0)
    label = _dejavu("DejaVuSans.ttf", 40)
    lines = ["Name: DOE, JANE Q     Sex: F", "MRN M001234567      Age 74",
             "DOB 1945-07-12   Visit # 858592873", "Date of Service 2020-06-12"]  # fmt: skip
    for i, ln in enumerate(lines):
        draw.text((1500, 150 + 52 * i), ln, font=label, fill=0)
    page = page.rotate(turn, resample=Image.Resampling.BICUBIC, fillcolor=255).filter(
        ImageFilter.GaussianBlur(blur)
    )
    path = tmp_path / "page.png"
    page.save(path, dpi=(300, 300))
    return path


@pytest.mark.slow
def test_the_ocr_worker_reads_the_label_zone_the_first_pass_merged_with_the_letterhead(
    tmp_path: Path,
) -> None:
    from chartvault.ingest.tasks import OcrTask

    path = label_beside_letterhead(tmp_path)
    page = extract_page(path, FileKind.PNG, 1, OcrOptions(), tmp_path / "work")
    first = extract_identifiers(page.text, words=page.words, page_size=(page.width, page.height), today=TODAY)
    assert first.mrn is None or first.mrn.value != "M001234567"  # what the first pass alone makes of it

    out = OcrTask(path.name, FileKind.PNG.value, 1, OcrOptions(), mrn_pattern=r"M\d{9}").run(path.parent)
    assert out.error is None and out.page is not None
    ids = Identifiers.from_dict(out.identifiers)
    assert ids.mrn is not None and ids.mrn.value == "M001234567"
    assert ids.dob is not None and ids.dob.value == "1945-07-12"
    assert "labels" in out.page.cpu_ms  # the second look is timed as its own stage
    assert out.page.text == page.text  # the page's text (what search indexes) is the first pass's


# ---------------------------------------------------------------- what a zone read of an imprint yields


@pytest.mark.parametrize("pattern", [None, r"\d{9}"])
def test_an_addressograph_block_read_alone_yields_mrn_name_sex_dob_and_visit(pattern: str | None) -> None:
    """A tuning-style imprint block (record and account numbers first, no keys): what a zone read returns."""
    imprint = words(
        (1500, 150, "001234567    V0098812345"),
        (1500, 200, "DOE, JANE Q"),
        (1500, 250, "F  03/14/1952  71Y"),
        (1500, 300, "ADM 05/02/2023  DR SMITH"),
    )
    ids = ids_of(imprint + words(*BODY), pattern)
    assert ids.mrn is not None and ids.mrn.value == "001234567"
    assert (ids.name and ids.name.value, ids.sex and ids.sex.value) == ("DOE, JANE Q", "F")
    assert ids.dob is not None and ids.dob.value == "1952-03-14"
    assert ids.date_of_service is not None and ids.date_of_service.value == "2023-05-02"


# ------------------------------------------------------------------------- zones in the page's pixels


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["tesserocr", "pytesseract"])
def test_zone_words_land_where_the_first_pass_put_them(
    corpus: list[dict], tmp_path: Path, engine: str
) -> None:
    """A corpus page (300 dpi, read reduced to 200): each zone's words come back in the page's own pixels,
    on top of the first pass's boxes; and the engine reads the next whole page with its automatic layout."""
    from conftest import pick

    from chartvault.ocr.pages import relook_labels, scan_page

    entry = pick(corpus, "png", tier="clean")
    options = OcrOptions(engine=engine)
    first = scan_page(entry["file"], FileKind.PNG, 1, options, tmp_path / "a").page
    reads = relook_labels(entry["file"], FileKind.PNG, 1, options, tmp_path / "b")
    assert {r.zone for r in reads} <= {"top_left", "top_right", "bottom_left", "bottom_right"} and reads
    mrn = entry["patient"]["mrn"]
    a = next(w for w in first.words if mrn in w.text)
    b = next(w for r in reads for w in r.words if mrn in w.text)
    assert abs(a.left - b.left) <= 6 and abs(a.top - b.top) <= 6 and abs(a.width - b.width) <= 9
    for r in reads:
        assert all(r.box[0] <= w.left and w.left + w.width <= r.box[2] + 2 for w in r.words)
    again = scan_page(entry["file"], FileKind.PNG, 1, options, tmp_path / "c").page
    assert again.text == first.text
