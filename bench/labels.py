"""Synthetic patients, facilities and patient-label layouts for rendered chart pages (bench.pages).

Every layout below was written for this bench from the label kinds and field names of the domain notes
(``../shared/domain/README.md``, A4 "Labels"): thermal patient labels (LAST, FIRST M; MRN; Acct/FIN/Visit #;
DOB with age and sex; admit date; attending; room; a Code 128 barcode), addressograph imprints with no keys,
header/footer strips, form grids whose keys sit above the values, labels in corners and boxes, and the
field-name variants MRN, MR#, Med Rec #, Unit #, Chart #, Patient ID, EMPI; Acct #, FIN, HAR, CSN, Visit #,
Encounter #; DOB, D.O.B., Birthdate; DOS, Date of Service, Adm/Disch, Visit Date.

**The split is fixed here and is the point of the bench.** ``TUNING`` layouts are the only ones looked at
while the extractor is developed; ``HELD_OUT`` layouts (other field names, orders, positions and date forms of
the same label kinds) are measured and reported, never tuned on. Both sets hold an addressograph, a thermal
label, a strip and a form grid, so a figure on the held-out set says how the extractor does on label
variants it was not shaped by. ``BLIND`` layouts were written later, without reading the extractor's code,
as a check of how the held-out figure generalises (``--split blind``); they too are only measured.
``BLIND2`` layouts (``--split blind2``) were written later still, again without reading the extractor, to stay
unseen while the extractor is improved against ``BLIND``: an honest measurement on labels nobody tuned on.
Names, numbers and facilities are invented.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Literal

from bench.synth import FIRST_NAMES, LAST_NAMES

if TYPE_CHECKING:
    from chartvault.classify.checkdigit import CheckDigit

Place = Literal["top_left", "top_right", "top", "bottom", "bottom_left", "bottom_right"]
Style = Literal["box", "thermal", "imprint", "plain", "strip", "grid"]


@dataclass(frozen=True, slots=True)
class Facility:
    """A hospital: its letterhead and the shapes of its numbers (``mrn_pattern`` and ``check_digit``: what a
    site configures as ``CHARTVAULT_MRN_PATTERN`` and ``CHARTVAULT_MRN_CHECK_DIGIT``)."""

    name: str
    address: str
    phone: str
    fax: str
    mrn_prefix: str
    mrn_digits: int
    account_prefix: str
    account_digits: int
    check_digit: CheckDigit = "none"  # 'luhn' or 'mod11': the MRNs end in that check digit (--check-digit)

    @property
    def mrn_pattern(self) -> str:
        return f"{self.mrn_prefix}\\d{{{self.mrn_digits}}}"

    @property
    def initials(self) -> str:
        return "".join(w[0] for w in self.name.replace(".", "").split() if w[0].isupper())


# fmt: off
FACILITIES: tuple[Facility, ...] = (
    Facility("Riverbend General Hospital", "1200 River Road, Springfield, OR 97477", "(541) 555-0100",
             "(541) 555-0101", "", 10, "", 9),
    Facility("St. Aurelia Medical Center", "88 Cathedral Way, Port Alden, ME 04101", "(207) 555-0142",
             "(207) 555-0143", "M", 9, "V", 10),
    Facility("Harrow Valley Regional Hospital", "4410 Valley Pike, Harrow, KY 40601", "(502) 555-0177",
             "(502) 555-0178", "", 8, "", 11),
    Facility("Oak Meadow Community Hospital", "19 Meadow Lane, Oakdale, MN 55128", "(651) 555-0119",
             "(651) 555-0120", "E", 7, "", 9),
    Facility("Calder Bay Health", "730 Harbor Street, Calder Bay, WA 98107", "(206) 555-0163",
             "(206) 555-0164", "", 7, "A", 8),
    Facility("Westbrook University Hospital", "2 College Green, Westbrook, CT 06498", "(860) 555-0188",
             "(860) 555-0189", "MR", 8, "", 10),
)
ATTENDINGS = ("Nadia Okafor", "Lionel Brandt", "Keiko Sato", "Omar Haddad", "Ruth Lindqvist", "Pascal Moreau",
              "Greta Halvorsen", "Silas Ibarra", "Talia Novak", "Hugo Castellano")
MIDDLE = "ABCDEFGHJKLMNPRSTW"
# fmt: on


@dataclass(frozen=True, slots=True)
class Patient:
    """One synthetic patient and visit: the truth a label prints."""

    first: str
    middle: str  # one letter, or '' (no middle initial)
    last: str
    sex: str  # 'M' | 'F'
    dob: date
    mrn: str
    account: str
    encounter: str
    service_date: date
    attending: str
    room: str
    facility: Facility

    @property
    def age(self) -> int:
        d, s = self.dob, self.service_date
        return s.year - d.year - ((s.month, s.day) < (d.month, d.day))

    @property
    def label_name(self) -> str:
        """'LAST, FIRST M': how labels print it and how ChartVault normalises names."""
        return f"{self.last.upper()}, {self.first.upper()}" + (f" {self.middle}" if self.middle else "")


def _number(rng: random.Random, prefix: str, digits: int) -> str:
    """A record number with the leading zeros of a young numbering scheme about half the time."""
    top = 10 ** (digits - rng.choice((1, 2, 3))) if rng.random() < 0.5 else 10**digits
    return prefix + str(rng.randrange(max(top // 10, 1), top)).zfill(digits)


def with_check_digit(number: str, scheme: CheckDigit) -> str:
    """``number`` with its last digit replaced by the check digit ``scheme`` computes over the digits before
    it (a letter prefix kept, not counted); where mod 11 would need 10 (no such number is issued), the digit
    before the check digit counts up until one fits. 'none' leaves the number as it is."""
    from chartvault.classify.checkdigit import check_digit_of

    if scheme == "none":
        return number
    prefix = number.rstrip("0123456789")
    body = number[len(prefix) : -1]
    for _ in range(10):
        check = check_digit_of(body, scheme)
        if check is not None:
            return prefix + body + check
        body = body[:-1] + str((int(body[-1]) + 1) % 10)
    raise ValueError(f"no {scheme} check digit fits")


def make_patient(rng: random.Random, facility: Facility) -> Patient:
    """A patient of ``facility`` at a visit between 2015 and 2024, aged 0 to 96 at the visit."""
    service = date(2015, 1, 1) + timedelta(days=rng.randrange(10 * 365))
    age_days = rng.randrange(20, 96 * 365) if rng.random() < 0.9 else rng.randrange(20, 18 * 365)
    last = rng.choice(LAST_NAMES)
    if rng.random() < 0.08:
        last = f"{last}-{rng.choice(LAST_NAMES)}"
    return Patient(
        first=rng.choice(FIRST_NAMES),
        middle=rng.choice(MIDDLE) if rng.random() < 0.8 else "",
        last=last,
        sex=rng.choice("MF"),
        dob=service - timedelta(days=age_days),
        mrn=with_check_digit(_number(rng, facility.mrn_prefix, facility.mrn_digits), facility.check_digit),
        account=_number(rng, facility.account_prefix, facility.account_digits),
        encounter=str(rng.randrange(10**7, 10**9)),
        service_date=service,
        attending=rng.choice(ATTENDINGS),
        room=f"{rng.randrange(1, 9)}{rng.randrange(10, 60)}-{rng.choice('AB')}",
        facility=facility,
    )


# ----------------------------------------------------------------------------------------- date forms

_MON = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def mdy4(d: date) -> str:
    return f"{d.month:02d}/{d.day:02d}/{d.year}"


def mdy2(d: date) -> str:
    return f"{d.month:02d}/{d.day:02d}/{d.year % 100:02d}"


def md2y(d: date) -> str:
    return f"{d.month}/{d.day}/{d.year % 100:02d}"


def dmon(d: date) -> str:
    return f"{d.day:02d}-{_MON[d.month - 1]}-{d.year}"


def mdy4_dash(d: date) -> str:
    return f"{d.month:02d}-{d.day:02d}-{d.year}"


def month_name(d: date) -> str:
    return f"{_MON[d.month - 1].title()} {d.day}, {d.year}"


def md4y(d: date) -> str:
    """Unpadded month and day, four-digit year: 3/4/1952."""
    return f"{d.month}/{d.day}/{d.year}"


def dmon_space(d: date) -> str:
    """Day, mixed-case month abbreviation, four-digit year: 04 Mar 1952."""
    return f"{d.day:02d} {_MON[d.month - 1].title()} {d.year}"


def dmon_compact(d: date) -> str:
    """Day, month abbreviation and year run together, as some label printers do: 04MAR1952."""
    return f"{d.day:02d}{_MON[d.month - 1]}{d.year}"


# --------------------------------------------------------------------------------------------- layouts


@dataclass(frozen=True, slots=True)
class LabelLayout:
    """How one kind of label prints a patient: its lines (or key/value cells for a grid), where and how."""

    name: str
    place: Place
    style: Style
    font: Literal["sans", "serif", "mono", "imprint"]
    content: Callable[[Patient], list[str] | list[tuple[str, str]]]
    barcode: bool = False  # a Code 128 of the MRN above the text, as on thermal labels
    prints_sex: bool = True


def _att(p: Patient) -> str:
    return p.attending.split()[-1].upper()


def _first_last(p: Patient) -> str:
    """'Jane A. Whitmore'."""
    return f"{p.first} {p.middle + '. ' if p.middle else ''}{p.last}"


def _last_first_mixed(p: Patient) -> str:
    """'Whitmore, Jane A' (mixed case, as some EHRs print it)."""
    return f"{p.last}, {p.first}" + (f" {p.middle}" if p.middle else "")


def _last_first_bare(p: Patient) -> str:
    """'WHITMORE JANE A' (no comma, as embossing plates often print it)."""
    return f"{p.last.upper()} {p.first.upper()}" + (f" {p.middle}" if p.middle else "")


def _sex_word(p: Patient) -> str:
    return {"M": "Male", "F": "Female"}[p.sex]


def _cols(*cells: str) -> str:
    """Columns of a monospaced label, each padded to 16 characters but the last."""
    return "".join(c.ljust(16) for c in cells[:-1]) + cells[-1]


# fmt: off
TUNING: tuple[LabelLayout, ...] = (
    LabelLayout("thermal_mrn_csn", "top_right", "thermal", "sans", lambda p: [
        p.label_name,
        f"MRN: {p.mrn}   CSN: {p.encounter}",
        f"DOB: {mdy4(p.dob)}  {p.age}y  {p.sex}",
        f"Adm: {mdy4(p.service_date)}   Rm: {p.room}",
        f"Att: {p.attending}, MD",
    ]),
    LabelLayout("addressograph_line", "top_left", "imprint", "imprint", lambda p: [
        f"{p.label_name}  {p.mrn}  {p.sex}  {mdy2(p.dob)}",
        f"{mdy2(p.service_date)}   DR {_att(p)}",
    ]),
    LabelLayout("footer_strip", "bottom", "strip", "sans", lambda p: [
        f"Patient: {p.label_name}   MR#: {p.mrn}   D.O.B.: {mdy4(p.dob)}   FIN: {p.account}   "
        f"DOS: {mdy4(p.service_date)}",
    ], prints_sex=False),
    LabelLayout("grid_top", "top", "grid", "sans", lambda p: [
        ("PATIENT NAME", p.label_name), ("MED REC #", p.mrn), ("DATE OF BIRTH", mdy4(p.dob)),
        ("SEX", p.sex), ("DATE OF SERVICE", mdy4(p.service_date)),
    ]),
    LabelLayout("thermal_unit_2digit", "top_left", "thermal", "mono", lambda p: [
        p.label_name.replace(", ", ","),
        f"Unit #: {p.mrn}  Acct #: {p.account}",
        f"DOB: {mdy2(p.dob)}  Age: {p.age}  Sex: {p.sex}",
        f"Adm/Disch: {mdy2(p.service_date)} -",
    ]),
    LabelLayout("corner_box_mixed_case", "bottom_right", "box", "serif", lambda p: [
        f"Name: {p.first} {p.middle + '. ' if p.middle else ''}{p.last}",
        f"Med Rec #: {p.mrn}",
        f"Birthdate: {dmon(p.dob)}",
        f"Visit Date: {dmon(p.service_date)}",
    ], prints_sex=False),
    LabelLayout("two_column_plain", "top_right", "plain", "sans", lambda p: [
        f"Name: {p.label_name}     Sex: {p.sex}",
        f"MRN {p.mrn}      Age {p.age}",
        f"DOB {p.dob.isoformat()}   Visit # {p.encounter}",
        f"Date of Service {p.service_date.isoformat()}",
    ]),
    LabelLayout("addressograph_block", "top_right", "imprint", "imprint", lambda p: [
        f"{p.mrn}    {p.account}",
        p.label_name,
        f"{p.sex}  {mdy4(p.dob)}  {p.age}Y",
        f"ADM {mdy4(p.service_date)}  DR {_att(p)}",
    ]),
)

HELD_OUT: tuple[LabelLayout, ...] = (
    LabelLayout("thermal_patient_id", "top_right", "thermal", "mono", lambda p: [
        f"{p.label_name}     {p.sex}",
        f"Patient ID: {p.mrn}",
        f"Birthdate: {md2y(p.dob)} ({p.age}y)",
        f"Visit #: {p.encounter}   Visit Date: {md2y(p.service_date)}",
    ]),
    LabelLayout("thermal_chart_no", "bottom_left", "thermal", "sans", lambda p: [
        f"Chart #: {p.mrn}",
        p.label_name,
        f"D.O.B. {dmon(p.dob)}   {p.sex}",
        f"Date of Service: {mdy4(p.service_date)}",
        f"Encounter #: {p.encounter}",
    ]),
    LabelLayout("addressograph_mrn_first", "top_left", "imprint", "imprint", lambda p: [
        f"{p.mrn}  {p.label_name}",
        f"{mdy2(p.dob)}  {p.sex}  {p.age}",
        f"{mdy2(p.service_date)}  DR {_att(p)}",
    ]),
    LabelLayout("addressograph_reordered", "bottom_right", "imprint", "imprint", lambda p: [
        f"{p.label_name}  {p.sex}  {mdy4_dash(p.dob)}  {p.mrn}",
        f"HAR {p.account}  ADM {mdy4_dash(p.service_date)}",
    ]),
    LabelLayout("empi_strip", "top", "strip", "serif", lambda p: [
        f"EMPI {p.mrn} | {p.label_name} | DOB {mdy4(p.dob)} | Sex {p.sex} | DOS {mdy4(p.service_date)} | "
        f"Acct {p.account}",
    ]),
    LabelLayout("grid_bottom", "bottom", "grid", "serif", lambda p: [
        ("MR #", p.mrn), ("PATIENT", p.label_name), ("BIRTH DATE", md2y(p.dob)),
        ("AGE/SEX", f"{p.age}/{p.sex}"), ("ADM DATE", md2y(p.service_date)),
    ]),
    LabelLayout("thermal_barcode", "top_right", "thermal", "sans", lambda p: [
        p.label_name,
        f"MRN {p.mrn}   {p.sex}  {p.age}Y",
        f"DOB {mdy4(p.dob)}",
        f"Enc # {p.encounter}   Visit Date {month_name(p.service_date)}",
    ], barcode=True),
)

# Written for the blind check (branch 'blind') without reading the extractor: other combinations of the same
# label kinds (keys above their values, account before MRN on an imprint, room and attending between the
# identifiers, unpadded dates, two-digit years beside an age, 'Sex/Age: F/72', '72Y F', mixed-case and
# 'First M. Last' names, other corners and bands). Only measured, never tuned on.
BLIND: tuple[LabelLayout, ...] = (
    LabelLayout("thermal_keys_above", "bottom_right", "thermal", "mono", lambda p: [
        p.label_name,
        _cols("Med Rec No.", "Acct/FIN"),
        _cols(p.mrn, p.account),
        _cols("Birth Date", "Sex/Age"),
        _cols(md4y(p.dob), f"{p.sex}/{p.age}"),
        f"Admit: {md4y(p.service_date)}",
    ]),
    LabelLayout("addressograph_acct_first", "bottom_left", "imprint", "imprint", lambda p: [
        f"{p.account}   {p.mrn}",
        p.label_name,
        f"{md2y(p.dob)}  {p.age}  {p.sex}",
        f"{md2y(p.service_date)}  RM {p.room}  DR {_att(p)}",
    ]),
    LabelLayout("thermal_room_between", "top_left", "thermal", "sans", lambda p: [
        p.label_name.replace(", ", ","),
        f"MR No: {p.mrn}",
        f"Rm/Bed: {p.room}",
        f"Attending: {p.attending}, MD",
        f"D.O.B.: {md4y(p.dob)}   Sex/Age: {p.sex}/{p.age}",
        f"Encounter #: {p.encounter}",
        f"DOS: {md4y(p.service_date)}",
    ]),
    LabelLayout("strip_unit_no", "top", "strip", "mono", lambda p: [
        f"Unit No: {p.mrn} | {p.label_name} | {p.age}Y {p.sex} | DOB: {md2y(p.dob)} | "
        f"Adm/Disch: {md2y(p.service_date)} -",
    ]),
    LabelLayout("grid_mrn_last", "top_right", "grid", "sans", lambda p: [
        ("NAME", p.label_name), ("D.O.B.", dmon(p.dob)), ("SEX/AGE", f"{p.sex}/{p.age}"),
        ("ACCT/FIN", p.account), ("ADMIT", md4y(p.service_date)), ("MR NO", p.mrn),
    ]),
    LabelLayout("box_first_last", "top_left", "box", "serif", lambda p: [
        f"Name: {_first_last(p)}",
        f"Birthdate: {md4y(p.dob)}   Sex: {p.sex}",
        f"MR#: {p.mrn}   CSN: {p.encounter}",
        f"Date of Service: {dmon(p.service_date)}",
    ]),
    LabelLayout("plain_mixed_case", "bottom_left", "plain", "serif", lambda p: [
        f"{_last_first_mixed(p)}   {p.age}Y {p.sex}",
        f"Med Rec No. {p.mrn}",
        f"Birth Date {dmon(p.dob)}",
        f"Visit # {p.encounter}   Visit Date {mdy4(p.service_date)}",
    ]),
    LabelLayout("thermal_fin_first", "top_right", "thermal", "sans", lambda p: [
        f"FIN: {p.account}",
        p.label_name,
        f"MRN: {p.mrn}   {p.sex}/{p.age}",
        f"DOB: {md4y(p.dob)}",
        f"Admit: {md2y(p.service_date)}   Rm {p.room}",
    ], barcode=True),
)

# Written for the second blind check (branch 'blind2') without reading the extractor, to stay unseen while the
# extractor is improved against BLIND: other keys ('Hosp #', 'Med Rec Number', 'MRN#', 'Pt Name:', 'Patient:',
# 'DOB/Age', 'Admitted', 'Svc Date', 'Adm Date', 'Gender'), ISO, '04 Mar 1952', '04MAR1952', '03-04-1952'
# and '3/4/52 (72 yrs)' dates, 'Male'/'Female', names without a comma or in mixed case, the account beside the
# MRN, a barcode on a bottom label, an imprint with no keys at all. Only measured, never tuned on.
BLIND2: tuple[LabelLayout, ...] = (
    LabelLayout("thermal_hosp_no_barcode", "bottom_left", "thermal", "mono", lambda p: [
        p.label_name,
        f"Hosp #: {p.mrn}  Acct #: {p.account}",
        f"DOB/Age: {mdy4(p.dob)} / {p.age}Y  Sex: {p.sex}",
        f"Admitted: {mdy4(p.service_date)}",
        f"Dr. {p.attending}",
    ], barcode=True),
    LabelLayout("imprint_keyless_no_comma", "top_right", "imprint", "imprint", lambda p: [
        _last_first_bare(p),
        f"{p.mrn}   {dmon_compact(p.dob)}   {p.sex}",
        f"{p.account}   {dmon_compact(p.service_date)}",
        f"DR {_att(p)}",
    ]),
    LabelLayout("strip_pt_name_iso", "bottom", "strip", "serif", lambda p: [
        f"Pt Name: {_last_first_mixed(p)} | MRN#: {p.mrn} | DOB: {p.dob.isoformat()} | Sex: {_sex_word(p)} | "
        f"Svc Date: {p.service_date.isoformat()}",
    ]),
    LabelLayout("grid_acct_beside_mrn", "bottom", "grid", "sans", lambda p: [
        ("PATIENT NAME", p.label_name), ("MEDICAL RECORD #", p.mrn), ("ACCOUNT #", p.account),
        ("DOB/AGE", f"{mdy4_dash(p.dob)} / {p.age}"), ("SEX", p.sex),
        ("VISIT DATE", mdy4_dash(p.service_date)),
    ]),
    LabelLayout("box_patient_first_last", "top_right", "box", "sans", lambda p: [
        f"Patient: {_first_last(p)}",
        f"Med Rec Number: {p.mrn}",
        f"DOB: {md2y(p.dob)} ({p.age} yrs)   Sex: {p.sex}",
        f"Visit Date: {md2y(p.service_date)}",
    ]),
    LabelLayout("thermal_har_sex_word", "top_left", "thermal", "sans", lambda p: [
        p.label_name,
        f"MR#: {p.mrn}   HAR: {p.account}",
        f"D.O.B.: {dmon_space(p.dob)}   Sex: {_sex_word(p)}",
        f"DOS: {dmon_space(p.service_date)}",
        f"Room: {p.room}",
    ]),
    LabelLayout("plain_header_encounter_first", "top_left", "plain", "serif", lambda p: [
        f"Patient Name: {p.label_name}",
        f"Encounter #: {p.encounter}     MRN: {p.mrn}",
        f"Birthdate: {mdy4_dash(p.dob)}   Age: {p.age}   Gender: {_sex_word(p)}",
        f"Date of Service: {mdy4_dash(p.service_date)}",
    ]),
    LabelLayout("thermal_compact_dates", "bottom_right", "thermal", "sans", lambda p: [
        p.label_name,
        f"Med Rec #: {p.mrn}",
        f"Visit #: {p.encounter}",
        f"DOB: {dmon_compact(p.dob)}  {p.age}Y  {p.sex}",
        f"Adm Date: {dmon_compact(p.service_date)}",
    ]),
)
# fmt: on

SPLITS: dict[str, tuple[LabelLayout, ...]] = {
    "tuning": TUNING,
    "held_out": HELD_OUT,
    "blind": BLIND,
    "blind2": BLIND2,
}
