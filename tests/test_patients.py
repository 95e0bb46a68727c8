"""The patient index: the registration import, linking by two agreeing identifiers, no silent orphans.

Chart pages are drawn with Pillow at 300 dpi and go through the real pipeline (tesseract, the
identifier extractor, the catalog) on SQLite and on PostgreSQL; the CLI runs through typer's runner on
the same data folder. Every name, number and date is invented.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import api_client, as_json, ingest_files
from PIL import Image, ImageDraw, ImageFont
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session
from typer.testing import CliRunner
from webfixtures import PASSWORD, csrf_of, follow_job, sign_in, web_client

from chartvault.archive.db import session_factory
from chartvault.archive.models import AuditEvent, Batch, BatchFile, Document, Patient, new_id
from chartvault.archive.patients import NEW_PATIENT_MIN_CONFIDENCE, name_keys, settle_patient, settle_pending
from chartvault.archive.registration import (
    _CHUNK,
    _CHUNKS_PER_COMMIT,
    MAX_ROW_ERRORS,
    BadFile,
    import_registration,
)
from chartvault.classify import extract_identifiers, merge_identifiers
from chartvault.classify.checkdigit import CheckDigit
from chartvault.config import Settings
from chartvault.errors import InvalidInput, TooLarge
from chartvault.services import Services

DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
BODY = [
    "REASON FOR CONSULTATION: Knee pain after a fall. I was asked to see the patient",
    "at the request of the primary care team for a consultation regarding the right knee.",
    "HISTORY OF PRESENT ILLNESS: Pain began after a fall; ibuprofen gives partial relief.",
    "PHYSICAL EXAMINATION: The right knee shows a small effusion without warmth.",
    "IMPRESSION: Knee sprain.",
    "RECOMMENDATIONS: Rest, ice and physical therapy. We would recommend follow up.",
]

# The registration list: (mrn, last, first, middle, dob, sex)
REGISTERED = [
    ("004417823", "Holloway", "Margaret", "Anne", "1952-03-14", "F"),  # A: label with MRN and DOB
    ("007730194", "Ferreira", "Tomas", "", "1968-07-22", "M"),  # B: label without an MRN
    ("002268145", "Lindqvist", "Harald", "", "1944-11-02", "M"),  # C: MRN printed with another DOB/name
    ("009912007", "Okafor", "Chidi", "", "1990-01-30", "M"),
]
LABELS = {
    "a": ["Patient Name: HOLLOWAY, MARGARET A", "MRN: 004417823", "DOB: 03/14/1952"],
    "b": ["Patient Name: FERREIRA, TOMAS", "DOB: 07/22/1968"],
    "c": ["Patient Name: PRUITT, DELIA", "MRN: 002268145", "DOB: 05/09/1977"],
    "d": [],  # no identifier at all
    "e": ["Patient Name: NAKAMURA, KEIKO", "DOB: 12/01/1985"],  # registered after the list was imported
}
LATE = ("005550321", "Nakamura", "Keiko", "", "1985-12-01", "F")


def _font(name: str, px: int) -> ImageFont.FreeTypeFont:
    path = DEJAVU / name
    if not path.is_file():
        pytest.skip(f"font {name} not installed")
    return ImageFont.truetype(str(path), px)


def render_page(path: Path, label: list[str]) -> Path:
    """A letter page at 300 dpi: hospital header, a boxed patient label top right, report lines."""
    page = Image.new("L", (2550, 3300), 255)
    draw = ImageDraw.Draw(page)
    draw.text((200, 150), "Riverbend General Hospital", font=_font("DejaVuSans-Bold.ttf", 66), fill=0)
    draw.text((200, 240), "CONSULTATION NOTE", font=_font("DejaVuSans-Bold.ttf", 52), fill=0)
    body = _font("DejaVuSerif.ttf", 44)
    for i, ln in enumerate(BODY):
        draw.text((200, 1100 + 62 * i), ln, font=body, fill=0)
    if label:
        font = _font("DejaVuSansMono.ttf", 42)
        step = 58
        for i, ln in enumerate(label):
            draw.text((1380, 420 + i * step), ln, font=font, fill=0)
        width = max(int(font.getlength(ln)) for ln in label)
        draw.rectangle((1350, 390, 1410 + width, 450 + step * len(label)), outline=0, width=3)
    page.save(path, dpi=(300, 300))
    return path


def registration_csv(path: Path, rows: list[tuple[str, ...]] = REGISTERED, extra: str = "") -> Path:
    lines = ["mrn,last_name,first_name,middle_name,dob,sex"]
    lines += [",".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def _audit(services: Services, action: str) -> list[AuditEvent]:
    with services.parts.sessions() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def _doc_of(services: Services, batch_id: str, name: str) -> Document:
    with services.parts.sessions() as s:
        doc = s.scalars(
            select(Document)
            .join(BatchFile, BatchFile.id == Document.file_id)
            .where(Document.batch_id == batch_id, BatchFile.original_name == name)
        ).one()
        s.expunge(doc)
        return doc


# ------------------------------------------------------------------------------------------ names


def test_names_compare_across_order_case_punctuation_and_middle_initials() -> None:
    key = {"HOLLOWAY|MARGARET"}
    for printed in (
        "HOLLOWAY, MARGARET A",
        "Holloway, Margaret Anne",
        "Margaret A. Holloway",
        "margaret holloway",
        "HOLLOWAY,MARGARET",
        "Mrs. Margaret Holloway",
    ):
        assert key <= name_keys(printed), printed
    assert name_keys("O'Brien-Smith, Seán") == {"OBRIENSMITH|SEAN"}
    assert "VANDERBERG|EDWARD" in name_keys("Edward van der Berg")
    assert name_keys("HOLLOWAY") == frozenset() and name_keys(None) == frozenset()
    assert not name_keys("HOLLOWAY, MARGRET") & key  # a different first name is not the same patient


# ---------------------------------------------------------------------------------- the import


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("CHARTVAULT_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("CHARTVAULT_DATABASE_URL", settings.catalog_url)
    return CliRunner()


def _invoke(runner: CliRunner, *args: str) -> Any:
    from chartvault.cli import app

    return runner.invoke(app, list(args))


def test_import_counts_rows_refuses_bad_ones_by_line_and_is_idempotent(
    vault: Services, settings: Settings, cli: CliRunner, tmp_path: Path
) -> None:
    bad = (
        "007730199,Quint,,,1971-02-03,F\n"  # line 6: no first name
        "007730200,Quint,Ada,,1971-02-30,F\n"  # line 7: not a date
        "007730201,Quint,Ada,,2999-01-01,F\n"  # line 8: in the future
        "0077 30202,Quint,Ada,,1971-02-03,F\n"  # line 9: a space in the MRN
        "007730203,Quint,Ada,,1971-02-03,Q\n"  # line 10: sex
        "004417823,Holloway,Margaret,,1952-03-14,F\n"  # line 11: repeats line 2
        "007730204,Quint,Ada,1971-02-03\n"  # line 12: too few columns
        "007730205,Quint,Ada,,02/03/1971,F\n"  # line 13: good (US date)
    )
    csv_path = registration_csv(tmp_path / "registration.csv", extra=bad)
    result = _invoke(cli, "patients", "import", str(csv_path), "--json")
    assert result.exit_code == 1, result.output  # some rows refused
    answer = json.loads(result.stdout)
    assert (answer["imported"], answer["updated"], answer["unchanged"], answer["refused"]) == (5, 0, 0, 7)
    errors = {e["line"]: e["code"] for e in answer["errors"]}
    assert errors == {
        6: "first_name_missing",
        7: "dob_invalid",
        8: "dob_out_of_range",
        9: "mrn_invalid",
        10: "sex_invalid",
        11: "mrn_repeated",
        12: "columns",
    }
    # Messages and logs name fields and lines, never the values (no name, MRN or date).
    said = result.output + json.dumps(answer["errors"])
    for value in ("Quint", "Ada", "0077", "1971", "2999", "Holloway"):
        assert value not in said

    with vault.parts.sessions() as s:
        a = s.scalars(select(Patient).where(Patient.mrn == "004417823")).one()
        assert (a.name, a.dob, a.sex, a.source, a.name_key) == (
            "HOLLOWAY, MARGARET A",
            date(1952, 3, 14),
            "F",
            "registration",
            "HOLLOWAY|MARGARET",
        )
        us = s.scalars(select(Patient).where(Patient.mrn == "007730205")).one()
        assert us.dob == date(1971, 2, 3)

    # The same file again: nothing changes. A changed name is an update; a changed DOB is refused.
    again = json.loads(_invoke(cli, "patients", "import", str(csv_path), "--json").stdout)
    assert (again["imported"], again["updated"], again["unchanged"], again["refused"]) == (0, 0, 5, 7)
    rows = [list(r) for r in REGISTERED]
    rows[1][1] = "Ferreira-Lima"  # B married
    rows[2][4] = "1944-11-03"  # C's DOB differs from the catalog's
    changed = registration_csv(tmp_path / "changed.csv", [tuple(r) for r in rows])
    third = vault.patients.import_registration(changed)
    assert (third.imported, third.updated, third.unchanged, third.refused) == (0, 1, 2, 1)
    assert [(e.line, e.code) for e in third.errors] == [(4, "dob_differs")]

    # Audited as an admin action: counts and line numbers, no values.
    entries = _audit(vault, "patients.import")
    assert len(entries) == 3
    assert entries[0].detail["refused_lines"] == [6, 7, 8, 9, 10, 11, 12]
    assert "Holloway" not in json.dumps([e.detail for e in entries])

    # A file without the required columns is refused as a whole (usage error).
    headless = tmp_path / "bad.csv"
    headless.write_text("mrn,name\n1,x\n")
    result = _invoke(cli, "patients", "import", str(headless))
    assert result.exit_code == 2 and "dob" in result.output

    # The API takes the same CSV as the request body (HIM administrators and admins only).
    body = registration_csv(tmp_path / "api.csv", [*REGISTERED, LATE]).read_bytes()
    csv_type = {"Content-Type": "text/csv"}
    with api_client(settings, "him_admin") as client:
        answer = client.post("/patients/import", content=body, headers=csv_type)
        assert answer.status_code == 200, answer.text
        got = answer.json()
        assert (got["imported"], got["updated"], got["refused"]) == (1, 1, 0)  # LATE; B's name back
        assert client.post("/patients/import", content=b"\xff\xfe\x00", headers=csv_type).status_code == 422
    with api_client(settings, "staff") as client:
        assert client.post("/patients/import", content=body, headers=csv_type).status_code == 403


# ---------------------------------------------------- a large export, streamed (both backends)


def _letters(i: int) -> str:
    return "".join(chr(ord("A") + int(d)) for d in str(i))


def big_registration(path: Path, rows: int, dob: Callable[[int], str] = lambda i: "1960-01-01") -> Path:
    """``rows`` patients (made-up names), row i on line i + 1 with MRN ``R{i:06d}``; ``dob(i)`` its DOB."""
    lines = ["mrn,last_name,first_name,dob,sex"]
    lines += [f"R{i:06d},Row{_letters(i)},Pat,{dob(i)},F" for i in range(1, rows + 1)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _patients(services: Services) -> dict[str, Patient]:
    with services.parts.sessions() as s:
        return {p.mrn: p for p in s.scalars(select(Patient))}


def test_a_file_of_many_chunks_refuses_an_mrn_repeated_chunks_apart(
    catalog_settings: Settings, tmp_path: Path
) -> None:
    assert _CHUNK < 2500
    path = big_registration(tmp_path / "big.csv", 2500)
    lines = path.read_text().splitlines()
    lines[2400] = lines[10].replace(f"Row{_letters(10)}", "Other")  # line 2401 repeats row 10's MRN (line 11)
    path.write_text("\n".join(lines) + "\n")
    with Services(catalog_settings) as services:
        result = services.patients.import_registration(path)
        assert (result.imported, result.updated, result.unchanged, result.refused) == (2499, 0, 0, 1)
        assert [(e.line, e.code, e.message) for e in result.errors] == [
            (2401, "mrn_repeated", "line 2401: mrn repeats line 11")
        ]
        assert result.errors_note is None
        patients = _patients(services)
        assert len(patients) == 2499 and patients["R000010"].name == f"ROW{_letters(10)}, PAT"
        again = services.patients.import_registration(path)  # the same file again: every chunk unchanged
        assert (again.imported, again.updated, again.unchanged, again.refused) == (0, 0, 2499, 1)


def test_a_bad_utf8_byte_near_the_end_refuses_the_whole_file(
    catalog_settings: Settings, tmp_path: Path
) -> None:
    """Two chunks of good rows are written before the byte is met; the import's transaction undoes them."""
    path = big_registration(tmp_path / "latin1.csv", 2500)
    data = path.read_bytes()
    at = data.rindex(b"Pat")  # the last row's first name, some 60 KB into the file
    path.write_bytes(data[:at] + "Pât".encode("latin-1") + data[at + 3 :])
    with Services(catalog_settings) as services:
        with pytest.raises(InvalidInput, match="the file is not UTF-8 text"):
            services.patients.import_registration(path)
        assert _patients(services) == {}
        entries = _audit(services, "patients.import")
        assert [(e.outcome, e.detail) for e in entries] == [
            ("refused", {"error": "the file is not UTF-8 text"})
        ]
        # The same as bytes (as the archive function takes them): refused, nothing left in the session
        with services.parts.sessions() as s:
            with pytest.raises(BadFile, match="not UTF-8"):
                import_registration(s, path.read_bytes())
            s.rollback()
            assert s.scalars(select(Patient)).all() == []


def test_refused_rows_are_all_counted_and_the_first_by_line_listed(
    catalog_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1,201 refused rows, more than are kept: the count is whole, the list is the first 1,000 by line
    (line 2's DOB differs from the catalog's: found when its chunk is written, after later lines' errors),
    and the answer says so."""
    assert MAX_ROW_ERRORS == 1000
    path = big_registration(
        tmp_path / "many-bad.csv", 2500, lambda i: "1960-02-30" if i % 2 == 0 and i <= 2400 else "1960-01-01"
    )
    with Services(catalog_settings) as services:
        with services.parts.sessions() as s:
            s.add(Patient(mrn="R000001", name="ROWB, PAT", dob=date(1961, 1, 1), source="registration"))
            s.commit()
        result = services.patients.import_registration(path)
        assert (result.imported, result.unchanged, result.refused) == (1299, 0, 1201)
        assert len(result.errors) == 1000
        assert (result.errors[0].line, result.errors[0].code) == (2, "dob_differs")
        assert [e.line for e in result.errors[1:]] == [
            2 * k + 1 for k in range(1, 1000)
        ]  # rows 2, 4, ... 1998
        assert {e.code for e in result.errors[1:]} == {"dob_invalid"}
        assert result.errors_note == "first 1,000 of 1,201 refused lines shown (by line number)"
        entry = _audit(services, "patients.import")[-1]
        assert entry.detail["refused"] == 1201 and len(entry.detail["refused_lines"]) == 200
    # The command line lists them and says how many there were (exit 1: rows refused)
    monkeypatch.setenv("CHARTVAULT_DATA_DIR", str(catalog_settings.data_dir))
    monkeypatch.setenv("CHARTVAULT_DATABASE_URL", catalog_settings.catalog_url)
    shown = _invoke(CliRunner(), "patients", "import", str(path))
    assert shown.exit_code == 1
    assert "line 1999: dob is not a date" in shown.output and "line 2001:" not in shown.output
    assert "first 1,000 of 1,201 refused lines shown (by line number)" in shown.output
    assert "unchanged 1299, refused 1201" in shown.output


def test_page_and_api_stage_the_list_under_its_own_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page and the API stage the export to disk under the registration cap (not the scanned-file
    limit), remove it after, and the page says when it lists fewer refused lines than were refused; a
    file (the CLI's) over the cap is refused too."""
    settings = Settings(data_dir=tmp_path / "data", max_file_bytes=4096, workers=1, _env_file=None)
    incoming = settings.data_dir / "staging" / ".incoming"
    path = big_registration(
        tmp_path / "big.csv", 2500, lambda i: "1960-02-30" if i % 10 == 0 else "1960-01-01"
    )
    assert path.stat().st_size > 10 * settings.max_file_bytes
    with Services(settings) as services:
        services.access.create_user("him", "Test HIM", "him_admin", password=PASSWORD)
    with web_client(settings, "him") as web:
        form = {"csrf": csrf_of(web.get("/ui/patient-index").text)}
        sent = web.post(
            "/ui/patient-index", data=form, files={"registration": ("big.csv", path.read_bytes())}
        )
        assert sent.status_code == 200, sent.text
        done = follow_job(web, sent.url.path)
        assert "2,250 new patient(s)" in done.text and "250 row(s) refused" in done.text
        assert "the first 200 of 250 refused lines shown</caption>" in done.text
        assert len(re.findall(r"<tr><td>\d+</td>", done.text)) == 200
        assert list(incoming.iterdir()) == [] and list((settings.data_dir / "jobs").iterdir()) == []
    csv_type = {"Content-Type": "text/csv"}
    with api_client(settings, "him_admin") as client:
        answer = client.post("/patients/import", content=path.read_bytes(), headers=csv_type)
        assert answer.status_code == 200, answer.text
        got = answer.json()
        assert (got["unchanged"], got["refused"], got["errors_note"]) == (2250, 250, None)
        assert list(incoming.iterdir()) == []
        monkeypatch.setattr("chartvault.api.routes.patients.MAX_REGISTRATION_BYTES", 10_000)
        over = client.post("/patients/import", content=path.read_bytes(), headers=csv_type)
        assert over.status_code == 413 and "at most 10,000 bytes" in over.text
        assert list(incoming.iterdir()) == []
    monkeypatch.setattr("chartvault.services.patients.MAX_REGISTRATION_BYTES", 10_000)  # the CLI's file
    with Services(settings) as services, pytest.raises(TooLarge, match="at most 10,000 bytes"):
        services.patients.import_registration(path)


# ---------------------------------------------------------------------- linking, on both backends


def _seed_doc(s: Session, **ids: Any) -> Document:
    batch = Batch(id=new_id(), source="test")
    bf = BatchFile(seq=1, original_name="x.png", sha256="0" * 64, size=1)
    batch.files.append(bf)
    doc = Document(
        id=new_id(),
        file=bf,
        batch_id=batch.id,
        page_count=1,
        sha256="0" * 64,
        size=1,
        mime="image/png",
        status="archived",
        identifier_confidence={"name": 0.9, "dob": 0.95},
        **ids,
    )
    s.add(batch)
    s.add(doc)
    s.flush()
    return doc


def test_settle_links_by_two_identifiers_or_says_why(db_engine: Engine) -> None:
    sessions = session_factory(db_engine)
    with sessions() as s:
        s.add(Patient(mrn="1001", name="ROE, ANN", dob=date(1960, 1, 1), name_key="ROE|ANN"))
        s.add(Patient(mrn="1002", name="ROE, ANN B", dob=date(1970, 5, 5), name_key="ROE|ANN"))
        s.add(Patient(mrn="1003", name="ROE, ANN C", dob=date(1970, 5, 5), name_key="ROE|ANN"))
        s.flush()
        by_mrn_dob = _seed_doc(s, mrn="1001", dob=date(1960, 1, 1))
        by_mrn_name = _seed_doc(s, mrn="1001", patient_name="Ann Roe")
        by_name_dob = _seed_doc(s, patient_name="ROE, ANN", dob=date(1960, 1, 1))
        twins = _seed_doc(s, patient_name="ROE, ANN", dob=date(1970, 5, 5))
        conflict = _seed_doc(s, mrn="1001", patient_name="DOE, JOHN", dob=date(1961, 2, 2))
        other_dob = _seed_doc(s, mrn="1001", patient_name="Ann Roe", dob=date(1985, 3, 3))  # name agrees only
        mrn_only = _seed_doc(s, mrn="1001")
        nothing = _seed_doc(s)
        new = _seed_doc(s, mrn="2001", patient_name="NEW, PAT", dob=date(1999, 9, 9))
        borrowed = _seed_doc(s, mrn="2002", patient_name="ROE, ANN", dob=date(1960, 1, 1))
        outcomes = {
            name: settle_patient(s, doc)
            for name, doc in [
                ("mrn_dob", by_mrn_dob),
                ("mrn_name", by_mrn_name),
                ("name_dob", by_name_dob),
                ("twins", twins),
                ("conflict", conflict),
                ("other_dob", other_dob),
                ("mrn_only", mrn_only),
                ("nothing", nothing),
                ("new", new),
                ("borrowed", borrowed),
            ]
        }
        s.commit()
        a = s.scalars(select(Patient).where(Patient.mrn == "1001")).one()
        assert by_mrn_dob.patient_id == by_mrn_name.patient_id == by_name_dob.patient_id == a.id
        assert [outcomes[k].via for k in ("mrn_dob", "mrn_name", "name_dob", "new")] == [
            "mrn_dob",
            "mrn_name",
            "name_dob",
            "new_patient",
        ]
        # Found by name and DOB: the MRN comes from the index, and the confidences say so.
        assert (
            by_name_dob.mrn == "1001" and by_name_dob.identifier_confidence["mrn_source"] == "patient_index"
        )
        assert by_name_dob.review_status is None
        assert new.patient_id is not None and new.review_status is None
        held = {
            "twins": (twins, "no_patient_identified"),
            "conflict": (conflict, "patient_conflict"),
            "other_dob": (other_dob, "patient_conflict"),
            "mrn_only": (mrn_only, "no_patient_identified"),
            "nothing": (nothing, "no_patient_identified"),
            "borrowed": (borrowed, "patient_conflict"),  # an unknown MRN with a registered name and DOB
        }
        for name, (doc, code) in held.items():
            assert doc.patient_id is None and doc.review_status == "pending", name
            assert [r["code"] for r in doc.review_reasons] == [code], name
        assert nothing.review_reasons[0]["message"].startswith("No MRN, name or DOB was read.")
        assert conflict.review_reasons[0]["fields_read"] == ["mrn", "name", "dob"]
        assert "the dob read disagrees" in other_dob.review_reasons[0]["message"].lower()
        assert "2 patients" in twins.review_reasons[0]["message"]
        # Never a value in a reason.
        reasons = json.dumps([d.review_reasons for d, _ in held.values()])
        for value in ("1001", "ROE", "DOE", "1960", "1961", "1970", "2002"):
            assert value not in reasons
        # Settling again changes nothing (a resumed stage): the reason is not added twice.
        settle_patient(s, conflict)
        assert [r["code"] for r in conflict.review_reasons] == ["patient_conflict"]

        # Once a registration list is loaded it decides which MRNs exist: an unknown one is held, and
        # linked when an import brings it.
        a.source = "registration"
        unknown = _seed_doc(s, mrn="3001", patient_name="POE, EDGAR", dob=date(1949, 1, 19))
        assert settle_patient(s, unknown).reason["code"] == "no_patient_identified"
        assert "registration list" in unknown.review_reasons[0]["message"]
        s.add(Patient(mrn="3001", name="POE, EDGAR", dob=date(1949, 1, 19), source="registration"))
        s.flush()
        relinked = settle_pending(s)
        assert [(d.id, o.via) for d, o in relinked if o.patient_id] == [(unknown.id, "mrn_dob")]
        assert unknown.review_status is None and unknown.review_reasons is None


def test_no_patient_record_is_opened_on_a_doubtful_mrn(db_engine: Engine) -> None:
    # Found on a fax page (bench.linking --split tuning): two OCR readings of one label gave two MRNs a digit
    # apart; the document opened a new patient under the misread one. A new record needs a clean reading.
    sessions = session_factory(db_engine)
    with sessions() as s:
        doubtful = _seed_doc(s, mrn="3900855414", patient_name="ROE, ANN", dob=date(1985, 11, 21))
        doubtful.identifier_confidence = {"mrn": 0.5, "name": 0.9, "dob": 0.95}
        clean = _seed_doc(s, mrn="3960855419", patient_name="ROE, ANN", dob=date(1985, 11, 21))
        clean.identifier_confidence = {"mrn": 0.97, "name": 0.9, "dob": 0.95}
        held = settle_patient(s, doubtful)
        assert held.patient_id is None and held.reason is not None
        assert held.reason["code"] == "no_patient_identified"
        assert "3900855414" not in held.reason["message"] and "read cleanly" in held.reason["message"]
        assert s.scalars(select(Patient)).all() == []
        assert settle_patient(s, clean).via == "new_patient"
        # Once the patient is in the index, a doubtful reading that agrees with it links as before
        again = _seed_doc(s, mrn="3960855419", dob=date(1985, 11, 21))
        again.identifier_confidence = {"mrn": 0.5, "dob": 0.95}
        assert settle_patient(s, again).via == "mrn_dob"


# A facility whose nine-digit MRNs end in a Luhn check digit: a patient's number, a fax's reading of it (one
# look-alike digit, 8 -> 3, that only one look-alike change makes valid again), and another misreading
# (8 -> 9) that several look-alike changes would make valid: nothing says which.
CHECKED, MISREAD, AMBIGUOUS = "004417820", "004417320", "004417920"


def _checked_read(s: Session, mrn: str, check: CheckDigit) -> Document:
    """A document whose label printed ``mrn``, read and merged as the pipeline does with ``check`` set."""
    text = f"Patient Name: HOLLOWAY, MARGARET A\nMRN: {mrn}\nDOB: 03/14/1952\n\n{BODY[0]}"
    page = extract_identifiers(text, mrn_pattern=r"\d{9}", mrn_check_digit=check, today=date(2024, 6, 1))
    ids = merge_identifiers([page], mrn_check_digit=check, mrn_pattern=r"\d{9}")
    assert ids.mrn is not None and ids.name is not None and ids.dob is not None
    doc = _seed_doc(s, mrn=ids.mrn.value, patient_name=ids.name.value, dob=date.fromisoformat(ids.dob.value))
    doc.identifier_confidence = {k: v.confidence for k, v in ids.as_items() if v is not None}
    return doc


def test_a_misread_mrn_failing_the_check_digit_opens_no_patient(db_engine: Engine) -> None:
    sessions = session_factory(db_engine)
    with sessions() as s:
        # Without the setting the misread opens a phantom record under a number no patient has.
        assert settle_patient(s, _checked_read(s, MISREAD, "none")).via == "new_patient"
        assert list(s.scalars(select(Patient.mrn))) == [MISREAD]
        s.rollback()

        for misread in (MISREAD, AMBIGUOUS):  # read back or not, the document waits for a person
            doc = _checked_read(s, misread, "luhn")
            held = settle_patient(s, doc)
            assert held.patient_id is None and held.reason is not None, misread
            assert held.reason["code"] == "no_patient_identified" and doc.review_status == "pending"
            assert "read cleanly" in held.reason["message"] and misread not in held.reason["message"]
        assert s.scalars(select(Patient)).all() == []

        # A clean reading of the right number opens the record as before ...
        assert settle_patient(s, _checked_read(s, CHECKED, "luhn")).via == "new_patient"
        # ... and a later misreading the look-alike digit reads back links to it, the DOB agreeing.
        later = _checked_read(s, MISREAD, "luhn")
        assert settle_patient(s, later).via == "mrn_dob" and later.mrn == CHECKED
        # One that nothing reads back stays held: its number is in no record.
        ambiguous = settle_patient(s, _checked_read(s, AMBIGUOUS, "luhn"))
        assert ambiguous.reason is not None and ambiguous.reason["code"] == "no_patient_identified"
        assert list(s.scalars(select(Patient.mrn))) == [CHECKED]


@pytest.mark.slow
def test_a_misread_mrn_failing_the_check_digit_is_held_not_opened_as_a_patient(tmp_path: Path) -> None:
    """A fax turned one digit of the label's MRN into its look-alike ('004417820', whose last digit is its
    Luhn check digit, printed as '004417320'), and OCR reads it as cleanly as any. Through the whole pipeline
    (tesseract, the label pass, the identify stage, a SQLite catalog, no registration list): without the
    facility's check digit the document opens a phantom patient under that number; with it (Luhn) the
    document is held for a person, its MRN read back (the one look-alike digit that makes it valid) but
    below what opens a record."""
    label = ["Patient Name: HOLLOWAY, MARGARET A", f"MRN: {MISREAD}", "DOB: 03/14/1952"]
    for check in ("none", "luhn"):
        settings = Settings(
            data_dir=tmp_path / check, workers=1, watch_settle_s=0, mrn_check_digit=check, _env_file=None
        )
        with Services(settings) as services:
            batch_id = ingest_files(services, render_page(tmp_path / f"{check}.png", label), source="cli")
            doc = _doc_of(services, batch_id, f"{check}.png")
            with services.parts.sessions() as s:
                patients = list(s.scalars(select(Patient.mrn)))
        if check == "none":
            assert doc.mrn == MISREAD and doc.patient_id is not None and patients == [MISREAD]
            continue
        assert patients == [] and doc.patient_id is None and doc.review_status == "pending"
        assert [r["code"] for r in doc.review_reasons] == ["no_patient_identified"]
        assert doc.mrn == CHECKED and doc.identifier_confidence["mrn"] < NEW_PATIENT_MIN_CONFIDENCE


# -------------------------------------------------------------------- the pipeline, end to end


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def catalog_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    url = None if request.param == "sqlite" else request.getfixturevalue("pg_url")
    return Settings(data_dir=tmp_path / "data", workers=2, watch_settle_s=0, database_url=url, _env_file=None)


@pytest.fixture
def world(catalog_settings: Settings, tmp_path: Path) -> Iterator[tuple[Services, str]]:
    """A registration list imported, then one batch of five pages: A to E (see LABELS)."""
    with Services(catalog_settings) as services:
        services.patients.import_registration(registration_csv(tmp_path / "reg.csv"))
        pages = [render_page(tmp_path / f"{k}.png", label) for k, label in LABELS.items()]
        batch_id = ingest_files(services, *pages, source="cli")
        services.intake.index_now()
        yield services, batch_id


@pytest.mark.slow
def test_mixed_batch_links_or_holds_every_document_and_check_counts_orphans(
    world: tuple[Services, str], catalog_settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    services, batch_id = world
    a, b, c, d, e = (_doc_of(services, batch_id, f"{k}.png") for k in "abcde")
    with services.parts.sessions() as s:
        pid = {p.mrn: p.id for p in s.scalars(select(Patient))}
    # A: MRN and DOB read, both agree with the registration.
    assert a.patient_id == pid["004417823"] and a.review_status is None
    # B: no MRN on the label; the one patient with that name and DOB; the MRN comes from the index.
    assert b.patient_id == pid["007730194"] and b.review_status is None
    assert b.mrn == "007730194" and b.identifier_confidence["mrn_source"] == "patient_index"
    shown = as_json(services.documents.get(b.id))["identifiers"]["mrn"]
    assert shown["value"] == "007730194" and shown["source"] == "patient_index"
    # C: the MRN is registered, but the name and DOB printed with it are someone else's.
    assert c.patient_id is None and c.review_status == "pending"
    assert [r["code"] for r in c.review_reasons] == ["patient_conflict"]
    # D: nothing read.
    assert d.patient_id is None and [r["code"] for r in d.review_reasons] == ["no_patient_identified"]
    assert "PRUITT" not in json.dumps(c.review_reasons) and "002268145" not in json.dumps(c.review_reasons)

    # The queue shows the reasons; check finds no lost chart; the quality report agrees.
    queue = as_json(services.review.queue())
    assert {i["document_id"]: [r["code"] for r in i["reasons"]] for i in queue["items"]} == {
        c.id: ["patient_conflict"],
        d.id: ["no_patient_identified"],
        e.id: ["no_patient_identified"],
    }
    assert services.patients.unlinked_outside_review() == 0
    report = services.records.check(fixity=False)
    assert report["unlinked_outside_review"] == 0 and report["consistent"], report

    # The next night's registration list brings E: the held document is linked by its name and DOB.
    later = services.patients.import_registration(registration_csv(tmp_path / "r2.csv", [*REGISTERED, LATE]))
    assert (later.imported, later.unchanged, later.documents_linked) == (1, 4, 1)
    e = _doc_of(services, batch_id, "e.png")
    assert (e.mrn, e.review_status, e.identifier_confidence["mrn_source"]) == (LATE[0], None, "patient_index")
    assert e.patient_id is not None and e.retention_rule is not None

    # Older code (or a hand edit) left two documents with neither a patient nor a review.
    with services.parts.sessions() as s:
        s.execute(
            update(Document)
            .where(Document.id.in_([a.id, d.id]))
            .values(patient_id=None, review_status=None, review_reasons=None)
        )
        s.commit()
    assert services.patients.unlinked_outside_review() == 2
    monkeypatch.setenv("CHARTVAULT_DATA_DIR", str(catalog_settings.data_dir))
    if catalog_settings.database_url:
        monkeypatch.setenv("CHARTVAULT_DATABASE_URL", catalog_settings.database_url)
    result = _invoke(CliRunner(), "check", "--no-fixity", "--json")
    assert result.exit_code == 1 and json.loads(result.stdout)["unlinked_outside_review"] == 2
    table = _invoke(CliRunner(), "check", "--no-fixity")
    assert "unlinked_outside_review: 2 " in table.stdout
    unlinked = _unlinked_report(services)
    assert unlinked["no_mrn"] + unlinked["mrn_not_confirmed"] == 2

    # `resume` settles them: A is linked again, D goes back to the queue.
    services.intake.resume()
    assert _doc_of(services, batch_id, "a.png").patient_id == pid["004417823"]
    assert _doc_of(services, batch_id, "d.png").review_status == "pending"
    assert services.patients.unlinked_outside_review() == 0
    assert _invoke(CliRunner(), "check", "--no-fixity").exit_code == 0

    # `check --repair` does the same.
    with services.parts.sessions() as s:
        s.execute(update(Document).where(Document.id == d.id).values(review_status="resolved"))
        s.commit()
    repaired = _invoke(CliRunner(), "check", "--no-fixity", "--repair", "--json")
    assert repaired.exit_code == 0, repaired.output
    assert json.loads(repaired.stdout)["unlinked_settled"] == 1
    assert _doc_of(services, batch_id, "d.png").review_status == "pending"


def _unlinked_report(services: Services) -> dict[str, int]:
    """The quality report's unlinked documents by cause (its outside-review causes must match check)."""
    from chartvault.reports import run_report

    now = datetime.now(UTC)
    with services.parts.catalog[0].connect() as conn:
        r = run_report(
            conn, "quality", date_from=date(2020, 1, 1), date_to=now.date(), period="month", now=now
        )
    return {row[0]: row[1] for row in r.table("unlinked").rows}


@pytest.mark.slow
def test_person_confirms_the_patient_with_two_identifiers(world: tuple[Services, str]) -> None:
    services, batch_id = world
    c, d = (_doc_of(services, batch_id, f"{k}.png") for k in "cd")
    # Confirming without a second identifier that agrees leaves the document held, saying why.
    again = as_json(services.review.resolve(c.id))
    assert again == {"document_id": c.id, "review_status": "pending", "patient_linked": False}
    assert [r["code"] for r in _doc_of(services, batch_id, "c.png").review_reasons] == ["patient_conflict"]
    # Nothing was read on D: on the web review page the person types the MRN and DOB they compared.
    services.access.create_user("him", "Test HIM", "him_admin", password=PASSWORD)
    with web_client(services.settings) as web:
        assert sign_in(web, "him").status_code == 303
        listed = web.get("/ui/review").text
        assert "No MRN, name or DOB was read." in listed and "disagree with that patient" in listed
        page = web.get(f"/ui/review/{d.id}").text
        assert "No MRN, name or DOB was read." in page and 'name="dob"' in page
        form = {"csrf": csrf_of(page), "mrn": "009912007", "two_identifiers": "1"}
        url = f"/ui/documents/{d.id}/review/resolve"
        one = web.post(url, data=form, follow_redirects=False)  # the MRN alone links no one
        assert one.headers["location"] == f"/ui/review/{d.id}?done=unlinked"
        assert "Not linked" in web.get(one.headers["location"]).text
        two = web.post(url, data=form | {"dob": "1990-01-30"}, follow_redirects=False)
        assert two.headers["location"] == "/ui/review?done=resolved"
    assert _doc_of(services, batch_id, "d.png").patient_id is not None
    assert as_json(services.review.queue())["total"] == 2
    # The API does the same with {"mrn", "dob"}.
    with api_client(services.settings) as client:
        wrong = client.post(
            f"/documents/{c.id}/review/resolve", json={"mrn": "002268145", "dob": "1977-05-09"}
        )
        assert wrong.status_code == 200 and wrong.json()["review_status"] == "pending"
        ok = client.post(f"/documents/{c.id}/review/resolve", json={"mrn": "002268145", "dob": "1944-11-02"})
        assert ok.json() == {"document_id": c.id, "review_status": "resolved", "patient_linked": True}
        assert client.get("/review").json()["total"] == 1
    entries = _audit(services, "document.review_resolve")
    assert [e.detail["patient_linked"] for e in entries] == [False, False, True, False, True]


@pytest.mark.slow
def test_him_admin_loads_the_registration_list_from_a_page(
    settings: Settings, cli: CliRunner, tmp_path: Path
) -> None:
    with Services(settings) as services:
        services.patients.import_registration(registration_csv(tmp_path / "reg.csv"))
        with services.parts.sessions() as s:  # a document read with the MRN of a patient registered later
            held = _seed_doc(s, mrn=LATE[0], patient_name="NAKAMURA, KEIKO", dob=date(1985, 12, 1))
            assert settle_patient(s, held).reason["code"] == "no_patient_identified"
            s.commit()
            held_id = held.id
        services.access.create_user("him", "Test HIM", "him_admin", password=PASSWORD)
        services.access.create_user("clerk", "Test staff", "staff", password=PASSWORD)
    later = [LATE, ("001234", "Doe", "Jane", "", "31/31/1999", "F")]  # the second row's DOB is no date
    body = registration_csv(tmp_path / "later.csv", later).read_bytes()
    with web_client(settings) as web:
        assert sign_in(web, "him").status_code == 303
        before = web.get("/ui/patient-index")
        assert before.status_code == 200 and 'href="/ui/patient-index" aria-current="page"' in before.text
        assert re.search(r"registration list</th><td>4<", before.text)
        assert re.search(r"no patient identified</th><td><a href=\"/ui/review\">1<", before.text)
        form = {"csrf": csrf_of(before.text)}
        csv_file = {"registration": ("later.csv", body, "text/csv")}
        sent = web.post("/ui/patient-index", data=form, files=csv_file, follow_redirects=False)
        assert sent.status_code == 303, sent.text
        job_url = sent.headers["location"]
        assert re.fullmatch(r"/ui/patient-index/jobs/[0-9a-f]{32}", job_url)
        done = follow_job(web, job_url)
        assert 'id="job-state">Done<' in done.text, done.text
        assert "1 new patient(s)" in done.text and "1 row(s) refused; 1 held document(s) linked" in done.text
        assert re.search(r"<tr><td>3</td><td>[^<]+</td>", done.text)  # the refused row, by line number
        assert "31/31/1999" not in done.text and "Doe" not in done.text  # never a value of a row
        assert re.search(r"registration list</th><td>5<", done.text)
        assert re.search(r"no patient identified</th><td>0<", done.text)
        fragment = web.get(job_url + "/progress")  # what htmx swaps in: the same outcome, no page around it
        assert "1 new patient(s)" in fragment.text and "<h1>" not in fragment.text
        empty = web.post(
            "/ui/patient-index", data=form, files={"registration": ("", b"", "application/octet-stream")}
        )
        assert empty.status_code == 422 and "choose the registration list" in empty.text
        headless = web.post(
            "/ui/patient-index", data=form, files={"registration": ("x.csv", b"mrn,name\n1,x\n", "text/csv")}
        )
        assert headless.status_code == 200 and headless.url.path.startswith("/ui/patient-index/jobs/")
        refused = follow_job(web, headless.url.path)
        assert 'id="job-state">Failed<' in refused.text and "the header lacks the column(s)" in refused.text
        assert "dob" in refused.text
        no_token = web.post("/ui/patient-index", files=csv_file)
        assert no_token.status_code == 403
    with web_client(settings) as web:
        assert sign_in(web, "clerk").status_code == 303
        assert web.get("/ui/patient-index").status_code == 403
        assert web.get(job_url).status_code == 403 and web.get(job_url + "/progress").status_code == 403
        assert "/ui/patient-index" not in web.get("/ui/search").text  # not in a clerk's menu
    with api_client(settings, "him_admin") as client:  # the page's table, from the API
        index = client.get("/patients/index").json()
        assert index == {
            "registered": 5,
            "from_documents": 0,
            "held_no_patient": 0,
            "held_conflict": 0,
            "unlinked_outside_review": 0,
        }
    with api_client(settings, "staff") as client:
        assert client.get("/patients/index").status_code == 403
    shown = _invoke(cli, "patients", "index", "--json")  # and from the command line
    assert shown.exit_code == 0 and json.loads(shown.stdout) == index
    with Services(settings) as services:
        assert services.documents.get(held_id).review_status is None  # linked by the page's import
        entries = _audit(services, "patients.import")
        assert [e.outcome for e in entries] == ["ok", "ok", "refused"]
        assert entries[1].actor.startswith("user:") and entries[1].detail["refused_lines"] == [3]


def test_migration_keys_the_names_already_in_the_catalog(db_engine: Engine) -> None:
    """0012_patient_index on a catalog that has patients: their names get keys (not a name whose surname
    is ambiguous), they are marked as met on documents, and a document without an MRN finds them by name
    and DOB."""
    from alembic import command
    from sqlalchemy import text

    from chartvault.archive.db import alembic_config, upgrade

    with db_engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0010_report_rollups")
        conn.execute(
            text("INSERT INTO patients (id, mrn, name, dob, created_at) VALUES (:i, :m, :n, :d, :c)"),
            [
                {
                    "i": "p1",
                    "m": "4401",
                    "n": "Holloway, Margaret A",
                    "d": date(1952, 3, 14),
                    "c": datetime.now(UTC),
                },
                {
                    "i": "p2",
                    "m": "4402",
                    "n": "Ana Maria Souza",
                    "d": date(1968, 7, 22),
                    "c": datetime.now(UTC),
                },
            ],
        )
    upgrade(db_engine)
    with session_factory(db_engine)() as s:
        rows = {p.mrn: (p.name_key, p.source) for p in s.scalars(select(Patient))}
        assert rows == {"4401": ("HOLLOWAY|MARGARET", "document"), "4402": (None, "document")}
        doc = _seed_doc(s, patient_name="HOLLOWAY, MARGARET", dob=date(1952, 3, 14))
        assert settle_patient(s, doc).via == "name_dob" and doc.mrn == "4401"


def test_a_long_import_lets_other_writers_in_between_its_chunks(tmp_path: Path) -> None:
    """On SQLite one transaction for the whole import held the write lock from its first chunk to its end
    (some 40 s a million rows): the pipeline, writing beside a nightly import, waited and failed past the
    30 s busy timeout. Every few chunks are committed as they go: another writer gets the lock mid-import."""
    import sqlite3
    import threading

    settings = Settings(data_dir=tmp_path / "data", workers=2, _env_file=None)
    rows = 3 * _CHUNKS_PER_COMMIT * _CHUNK  # two commits before the last
    path = big_registration(tmp_path / "big.csv", rows)
    with Services(settings) as services:
        importing = threading.Thread(target=services.patients.import_registration, args=(path,))
        con = sqlite3.connect(settings.data_dir / "catalog.sqlite3", timeout=0, isolation_level=None)
        got_in_mid_import = False
        try:
            importing.start()
            while importing.is_alive() and not got_in_mid_import:
                try:
                    con.execute("BEGIN IMMEDIATE")  # the write lock, without waiting for it
                except sqlite3.OperationalError:
                    continue  # a chunk is being written
                written = con.execute("SELECT count(*) FROM patients").fetchone()[0]
                con.execute("ROLLBACK")
                got_in_mid_import = 0 < written < rows and importing.is_alive()
        finally:
            importing.join()
            con.close()
        assert got_in_mid_import, "no other writer got the write lock while the import ran"
        assert len(_patients(services)) == rows
