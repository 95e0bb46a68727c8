"""Fixtures shared by the records tests: a Vault on the local folder and on S3, chart PDFs, ingest.

A pytest plugin module: ``from recordsfixtures import *`` brings the fixtures in.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from s3fixtures import *  # noqa: F403 - s3_settings

from chartvault.archive.models import Document
from chartvault.config import Settings
from chartvault.services import Caller, Services

__all__ = ["MIN_LOCK_S", "chart_pdf", "doc_row", "hostile_pdf", "ingest", "records_settings", "rv"]

MIN_LOCK_S = 4  # a record already past retention is still locked this long after it is stored


def chart_pdf(
    path: Path,
    *,
    mrn: str,
    dob: str,
    dos: str,
    name: str = "TESTER, ALEX Q",
    title: str = "DISCHARGE SUMMARY",
    body: str = "The patient was admitted for observation and discharged home in stable condition.",
) -> Path:
    """A born-digital chart page (text layer, so no OCR time) with the header a scanner would see."""
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=(612, 792))
    lines = [
        "Synthetic Community Hospital",
        f"PATIENT: {name}",
        f"MRN: {mrn}   ACCT: 5550001",
        f"DOB: {dob}",
        f"DOS: {dos}   ENC: 9{mrn[-4:]}{dos[-4:]}",
        title,
        body,
        "Electronically signed by: Test Author, MD",
    ]
    y = 740
    for line in lines:
        c.drawString(72, y, line)
        y -= 18
    c.showPage()
    c.save()
    return path


def hostile_pdf(path: Path, mrn: str) -> Path:
    """A born-digital chart page carrying what a PDF can run: JavaScript on opening the document and the
    page, a link running JavaScript, one launching a program, one to another site, an attached file."""
    import pikepdf
    from pikepdf import Array, Dictionary, Name, String

    pdf = pikepdf.open(chart_pdf(path.with_suffix(".plain.pdf"), mrn=mrn, dob="03/04/1970", dos="05/06/2024"))
    page = pdf.pages[0].obj

    def link(action: Dictionary) -> Dictionary:
        return pdf.make_indirect(
            Dictionary(Type=Name.Annot, Subtype=Name.Link, Rect=Array([0, 0, 9, 9]), A=action)
        )

    page["/Annots"] = Array(
        [
            link(Dictionary(S=Name.JavaScript, JS=String("app.alert('page link')"))),
            link(Dictionary(S=Name.Launch, F=String("cmd.exe"))),
            link(Dictionary(S=Name.URI, URI=String("https://evil.example/collect"))),
            pdf.make_indirect(
                Dictionary(
                    Type=Name.Annot,
                    Subtype=Name.FileAttachment,
                    Rect=Array([9, 9, 19, 19]),
                    FS=String("x.exe"),
                )
            ),
        ]
    )
    page["/AA"] = Dictionary(O=Dictionary(S=Name.JavaScript, JS=String("app.alert('page open')")))
    pdf.Root.OpenAction = Dictionary(S=Name.JavaScript, JS=String("app.alert('document open')"))
    pdf.save(path)
    return path


@pytest.fixture(params=["local", "s3"])
def records_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    common = {
        "data_dir": tmp_path / "data",
        "workers": 1,
        "object_lock_min_seconds": MIN_LOCK_S,
        "facility_name": "Synthetic Community Hospital",
        "_env_file": None,
    }
    if request.param == "local":
        return Settings(**common)
    s3: Settings = request.getfixturevalue("s3_settings")
    return Settings(
        **common,
        object_store="s3",
        s3_endpoint=s3.s3_endpoint,
        s3_access_key=s3.s3_access_key,
        s3_secret_key=s3.s3_secret_key,
        s3_secure=s3.s3_secure,
        s3_cert_check=s3.s3_cert_check,
        s3_bucket=f"cv-rec-{uuid.uuid4().hex[:16]}",
    )


@pytest.fixture
def rv(records_settings: Settings):
    with Services(records_settings, Caller("test:him_admin")) as v:
        yield v


def ingest(v: Services, *paths: Path) -> list[str]:
    """Ingest files as one batch; the ids of the documents made, in file order."""
    summary = v.intake.ingest(list(paths), source="test", station="records", operator="tester")
    return [d for f in summary.files for d in f.documents]


def doc_row(v: Services, doc_id: str) -> Document:
    with v.parts.sessions() as s:
        doc = s.get(Document, doc_id)
        assert doc is not None
        s.expunge(doc)
        return doc
