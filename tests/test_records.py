"""Retention, legal holds and disposition end to end, on the local folder and on a real S3 server.

Each test names who refused: the catalog (ChartVault's own check) or the store
(the object lock, even when ChartVault is bypassed with the raw minio SDK).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from conftest import as_json
from minio import Minio
from minio.deleteobjects import DeleteObject
from recordsfixtures import *  # noqa: F403 - rv, records_settings
from recordsfixtures import MIN_LOCK_S, chart_pdf, doc_row, ingest
from s3fixtures import *  # noqa: F403 - s3_settings

from chartvault.archive.lifecycle import document_ref
from chartvault.archive.models import Document, Page
from chartvault.archive.objectstore import RetentionLockedError
from chartvault.config import Settings
from chartvault.errors import NotFound
from chartvault.search.types import SearchQuery
from chartvault.services import Caller, Services


def raw_delete_errors(v: Services, doc: Document, bypass: bool) -> list:
    """Delete the version behind ChartVault's back with the minio SDK; the store's errors."""
    client: Minio = v.parts.store.client  # type: ignore[attr-defined]
    return list(
        client.remove_objects(
            v.parts.store.bucket,  # type: ignore[attr-defined]
            [DeleteObject(doc.object_key, version_id=doc.object_version)],
            bypass_governance_mode=bypass,
        )
    )


# -- retention on write --------------------------------------------------------------------------


@pytest.mark.slow
def test_archived_document_carries_retention_lock_and_tags(rv: Services, tmp_path: Path) -> None:
    (doc_id,) = ingest(rv, chart_pdf(tmp_path / "a.pdf", mrn="00420001", dob="03/04/1970", dos="05/06/2024"))
    doc = doc_row(rv, doc_id)
    # Adult, AHIMA: 10 years after the most recent encounter beats the 5-year federal floor.
    assert doc.retention_rule == "ahima.adult"
    assert doc.retain_until == date(2034, 5, 6)
    info = rv.records.retention(doc_id)
    assert {r for r, _ in info["considered"]} >= {"federal.cms_482_24", "ahima.adult"}
    store = info["store"]
    assert store["mode"] == "GOVERNANCE"
    assert datetime.fromisoformat(store["retain_until"]) >= datetime(2034, 5, 7, tzinfo=UTC)
    assert store["tags"]["retention_rule"] == "ahima.adult"
    assert store["tags"]["retain_until"] == "2034-05-06"
    assert store["tags"]["doc_type"] == doc.doc_type
    assert store["legal_hold"] is False


@pytest.mark.slow
def test_new_encounter_extends_earlier_documents_and_their_locks(rv: Services, tmp_path: Path) -> None:
    (first,) = ingest(rv, chart_pdf(tmp_path / "a.pdf", mrn="00420002", dob="03/04/1970", dos="05/06/2015"))
    assert doc_row(rv, first).retain_until == date(2025, 5, 6)
    ingest(
        rv,
        chart_pdf(
            tmp_path / "b.pdf", mrn="00420002", dob="03/04/1970", dos="07/08/2022", title="PROGRESS NOTE"
        ),
    )
    doc = doc_row(rv, first)
    assert doc.retain_until == date(2032, 7, 8)  # 10 years after the *most recent* encounter
    _mode, until = rv.parts.store.retention(document_ref(doc))
    assert until is not None and until >= datetime(2032, 7, 9, tzinfo=UTC)


@pytest.mark.slow
def test_dob_correction_recomputes_minor_rules(rv: Services, tmp_path: Path) -> None:
    (doc_id,) = ingest(rv, chart_pdf(tmp_path / "a.pdf", mrn="00420003", dob="03/04/1970", dos="05/06/2020"))
    assert doc_row(rv, doc_id).retain_until == date(2030, 5, 6)
    changed = rv.records.correct_dob("00420003", date(2015, 1, 1)).documents_changed  # a child then
    assert changed == [doc_id]
    doc = doc_row(rv, doc_id)
    assert doc.retention_rule in {"ahima.adult", "ahima.minor"}
    # Minor: majority (2033-01-01) + 3 years beats 10 years after the encounter.
    assert doc.retain_until == date(2036, 1, 1)
    _mode, until = rv.parts.store.retention(document_ref(doc))
    assert until is not None and until >= datetime(2036, 1, 2, tzinfo=UTC)


# -- holds ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_hold_blocks_disposition_in_catalog_and_store(rv: Services, tmp_path: Path) -> None:
    (old,) = ingest(rv, chart_pdf(tmp_path / "a.pdf", mrn="00420004", dob="03/04/1950", dos="05/06/2005"))
    hold = rv.records.place_hold(
        "Smith v. Hospital 2026-17", "patient", "litigation anticipated", value="00420004"
    )
    assert hold["documents"] == [old]
    doc = doc_row(rv, old)
    assert rv.parts.store.legal_hold(document_ref(doc)) is True
    time.sleep(MIN_LOCK_S + 0.5)  # the minimum lock has run out; only the hold protects it now

    planned = rv.records.disposition_plan()
    assert [c.document_id for c in planned.held] == [old]
    assert planned.eligible == []
    # Asked to destroy it anyway, the catalog refuses.
    result = rv.records.dispose([old], approved_by="HIM manager")
    assert result.destroyed == [] and result.refused[0]["by"] == "catalog"
    assert "hold" in result.refused[0]["reason"]
    # And the store refuses a delete that goes around ChartVault entirely.
    with pytest.raises(RetentionLockedError, match="legal hold"):
        rv.parts.store.delete_version(document_ref(doc), bypass_governance=True)
    if rv.settings.object_store == "s3":
        assert raw_delete_errors(rv, doc, bypass=True), "the S3 server deleted a held version"

    # A document archived later for the held patient joins the hold.
    (later,) = ingest(rv, chart_pdf(tmp_path / "b.pdf", mrn="00420004", dob="03/04/1950", dos="01/02/2006"))
    assert rv.parts.store.legal_hold(document_ref(doc_row(rv, later))) is True
    assert later in rv.records.holds()[0]["documents"] and rv.records.retention(later)["holds"] == [
        hold["id"]
    ]

    released = rv.records.release_hold(hold["id"], "matter settled")
    assert released["status"] == "released"
    assert rv.parts.store.legal_hold(document_ref(doc)) is False
    assert sorted(c.document_id for c in rv.records.disposition_plan().eligible) == sorted([old, later])


def test_overlapping_holds_keep_the_store_flag_until_the_last_is_released(
    rv: Services, tmp_path: Path
) -> None:
    (doc_id,) = ingest(rv, chart_pdf(tmp_path / "a.pdf", mrn="00420005", dob="03/04/1950", dos="05/06/2020"))
    a = rv.records.place_hold("matter A", "documents", "subpoena", document_ids=[doc_id])
    b = rv.records.place_hold("matter B", "encounter", "audit", value=doc_row(rv, doc_id).encounter)
    rv.records.release_hold(a["id"], "done")
    assert rv.parts.store.legal_hold(document_ref(doc_row(rv, doc_id))) is True
    rv.records.release_hold(b["id"], "done")
    assert rv.parts.store.legal_hold(document_ref(doc_row(rv, doc_id))) is False


# -- disposition ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_disposition_destroys_expired_and_certifies(rv: Services, tmp_path: Path) -> None:
    old_pdf = chart_pdf(
        tmp_path / "old.pdf", mrn="00420006", dob="03/04/1950", dos="05/06/2005", name="OLDPATIENT, ZED"
    )
    (current,) = ingest(
        rv, chart_pdf(tmp_path / "new.pdf", mrn="00420007", dob="03/04/1950", dos="05/06/2024")
    )
    (old,) = ingest(rv, old_pdf)  # last, so its minimum lock surely still runs at the early attempt
    assert as_json(rv.search.search(SearchQuery(text="", mrn="00420006")))["total"] == 1

    # Freshly stored: the catalog says eligible, but the store's minimum lock still runs.
    assert [c.document_id for c in rv.records.disposition_plan().eligible] == [old]
    early = rv.records.dispose([old], approved_by="HIM manager")
    assert early.destroyed == [] and early.refused[0]["by"] == "store"
    assert doc_row(rv, old).status != "disposed"

    time.sleep(MIN_LOCK_S + 0.5)
    planned = rv.records.disposition_plan()
    (cand,) = planned.eligible
    assert (cand.document_id, cand.rule_id, cand.retain_until) == (old, "ahima.adult", "2015-05-06")
    refs = rv.parts.store.versions(document_ref(doc_row(rv, old)))
    assert refs

    result = rv.records.dispose([old, current], approved_by="HIM manager", witness="Records clerk")
    assert result.destroyed == [old]
    assert result.refused == [
        {"document_id": current, "by": "catalog", "reason": "retention runs until 2034-05-06"}
    ]

    # Every version is gone from the store, the text from the catalog, the entry from the index.
    assert rv.parts.store.versions(refs[0]) == []
    tomb = doc_row(rv, old)
    assert tomb.status == "disposed" and tomb.disposition_id == result.disposition_id
    assert tomb.patient_name is None and tomb.dob is None
    with rv.parts.sessions() as s:
        assert s.query(Page).filter(Page.document_id == old).count() == 0
    assert as_json(rv.search.search(SearchQuery(text="", mrn="00420006")))["total"] == 0
    with pytest.raises(NotFound, match="destroyed"):
        rv.documents.original(old)

    cert = rv.records.certificate(result.disposition_id)
    assert cert["statement"].startswith("The information described below was destroyed")
    assert cert["facility"] == "Synthetic Community Hospital"
    assert cert["department_manager"] == "HIM manager" and cert["witness"] == "Records clerk"
    assert cert["inclusive_dates"] == {"from": "2005-05-06", "to": "2005-05-06"}
    (item,) = cert["items"]
    assert item["document_id"] == old and item["rule_id"] == "ahima.adult"
    assert len(item["versions_deleted"]) == len(refs)
    assert item["derived_removed"]["index_entry"] is True
    assert len(cert["audit_entry_hash"]) == 64
    assert "OLDPATIENT" not in str(cert) and "00420006" not in str(cert)
    # The certificate itself is archived as a permanent, locked record.
    with rv.parts.sessions() as s:
        from chartvault.archive.models import Disposition

        row = s.get(Disposition, result.disposition_id)
        assert row is not None and row.status == "partial" and row.certificate_sha256
        cert_ref = document_ref_of_certificate(row)
    _mode, until = rv.parts.store.retention(cert_ref)
    assert until is not None and until > datetime.now(UTC) + timedelta(days=365 * 90)


def document_ref_of_certificate(row):
    from chartvault.archive.objectstore import ObjectRef

    return ObjectRef(
        row.certificate_key, row.certificate_sha256, row.certificate_size, row.certificate_version
    )


def test_store_refuses_early_delete_through_the_raw_sdk(rv: Services, tmp_path: Path) -> None:
    (doc_id,) = ingest(rv, chart_pdf(tmp_path / "a.pdf", mrn="00420008", dob="03/04/1970", dos="05/06/2024"))
    doc = doc_row(rv, doc_id)
    with pytest.raises(RetentionLockedError, match="GOVERNANCE retention"):
        rv.parts.store.delete_version(document_ref(doc))
    if rv.settings.object_store == "s3":
        errors = raw_delete_errors(rv, doc, bypass=False)
        assert errors and errors[0].code == "AccessDenied"
        assert rv.parts.store.exists(document_ref(doc))


# -- misfile correction --------------------------------------------------------------------------


def two_patient_pdf(path: Path, first: dict[str, str], second: dict[str, str]) -> Path:
    """Two pages scanned together: the second belongs to another patient (the classic misfile)."""
    import pypdfium2 as pdfium

    parts = [chart_pdf(path.with_suffix(f".{i}.pdf"), **p) for i, p in enumerate((first, second))]
    out = pdfium.PdfDocument.new()
    for part in parts:
        with pdfium.PdfDocument(str(part)) as src:
            out.import_pages(src)
    out.save(str(path))
    out.close()
    return path


A = {"mrn": "00420010", "dob": "03/04/1970", "dos": "05/06/2024", "name": "ALPHA, ANN"}
B = {"mrn": "00420011", "dob": "07/08/1980", "dos": "05/06/2024", "name": "BETA, BOB"}


@pytest.mark.slow
def test_misfiled_page_split_out_by_break_glass(rv: Services, tmp_path: Path) -> None:
    ingest(rv, chart_pdf(tmp_path / "b.pdf", **B, title="PROGRESS NOTE"))  # patient B is known
    (mixed,) = ingest(rv, two_patient_pdf(tmp_path / "mixed.pdf", A, B))
    original = rv.parts.store.versions(document_ref(doc_row(rv, mixed)))
    assert original

    from chartvault.archive.corrections import MisfileRefused

    with pytest.raises(MisfileRefused, match="break-glass"):
        rv.records.correct_misfile(mixed, B["mrn"], "page 2 is another patient's", pages=[2])
    result = rv.records.correct_misfile(
        mixed, B["mrn"], "page 2 is another patient's", pages=[2], break_glass=True
    )

    assert result.mode == "split" and len(result.new_documents) == 2
    stays, moved = (doc_row(rv, d) for d in result.new_documents)
    assert (stays.page_count, moved.page_count) == (1, 1)
    assert moved.mrn == B["mrn"] and moved.patient_id is not None
    assert doc_row(rv, mixed).status == "superseded"
    # The mixed original is gone from the store (GOVERNANCE bypass); the parts are locked.
    assert rv.parts.store.versions(original[0]) == []
    for d in (stays, moved):
        mode, until = rv.parts.store.retention(document_ref(d))
        assert mode == "GOVERNANCE" and until is not None and until > datetime.now(UTC)
    assert as_json(rv.search.search(SearchQuery(text="", mrn=B["mrn"])))["total"] == 2
    hits = as_json(rv.search.search(SearchQuery(text="", mrn=A["mrn"])))["hits"]
    assert [h["document_id"] for h in hits] == [stays.id]
    with rv.parts.sessions() as s:
        from chartvault.archive.models import AuditEvent

        events = s.query(AuditEvent).filter(AuditEvent.action == "document.misfile_correction").all()
        assert [e.outcome for e in events] == ["refused", "ok"]
        assert events[-1].detail["governance_bypass"] is True


@pytest.mark.slow
def test_whole_document_refiled_without_touching_the_store(rv: Services, tmp_path: Path) -> None:
    ingest(rv, chart_pdf(tmp_path / "b.pdf", **B, title="PROGRESS NOTE"))
    (doc_id,) = ingest(rv, chart_pdf(tmp_path / "a.pdf", **A))
    before = rv.parts.store.versions(document_ref(doc_row(rv, doc_id)))
    result = rv.records.correct_misfile(doc_id, B["mrn"], "filed under the wrong chart")
    assert result.mode == "refile" and result.versions_deleted == []
    assert doc_row(rv, doc_id).mrn == B["mrn"]
    assert rv.parts.store.versions(document_ref(doc_row(rv, doc_id))) == before


@pytest.mark.slow
def test_compliance_refuses_the_split(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data", workers=1, s3_lock_mode="COMPLIANCE", object_store="local", _env_file=None
    )
    with Services(settings, Caller("test:him_admin")) as v:
        ingest(v, chart_pdf(tmp_path / "b.pdf", **B, title="PROGRESS NOTE"))
        (mixed,) = ingest(v, two_patient_pdf(tmp_path / "mixed.pdf", A, B))
        from chartvault.archive.corrections import MisfileRefused

        with pytest.raises(MisfileRefused, match="COMPLIANCE retention until"):
            v.records.correct_misfile(
                mixed, B["mrn"], "page 2 is another patient's", pages=[2], break_glass=True
            )
        assert doc_row(v, mixed).status != "superseded"
        assert v.parts.store.versions(document_ref(doc_row(v, mixed)))


@pytest.mark.slow
@pytest.mark.postgres
def test_hold_and_disposition_on_postgresql_and_s3(
    tmp_path: Path, pg_url: str, s3_settings: Settings
) -> None:
    """The production combination: PostgreSQL catalog, S3 object lock."""
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=pg_url,
        workers=1,
        object_lock_min_seconds=MIN_LOCK_S,
        s3_endpoint=s3_settings.s3_endpoint,
        s3_access_key=s3_settings.s3_access_key,
        s3_secret_key=s3_settings.s3_secret_key,
        s3_secure=s3_settings.s3_secure,
        s3_cert_check=s3_settings.s3_cert_check,
        s3_bucket=f"cv-pg-{uuid.uuid4().hex[:12]}",
        _env_file=None,
    )
    assert settings.object_store == "s3"  # chosen by the endpoint alone
    with Services(settings, Caller("test:him_admin")) as v:
        (held,) = ingest(v, chart_pdf(tmp_path / "h.pdf", mrn="00430001", dob="03/04/1950", dos="05/06/2004"))
        (old,) = ingest(v, chart_pdf(tmp_path / "o.pdf", mrn="00430002", dob="03/04/1950", dos="05/06/2004"))
        v.records.place_hold("M-1", "documents", "subpoena", document_ids=[held])
        time.sleep(MIN_LOCK_S + 0.5)
        planned = v.records.disposition_plan()
        assert [c.document_id for c in planned.eligible] == [old]
        assert [c.document_id for c in planned.held] == [held]
        result = v.records.dispose([old, held], approved_by="HIM manager")
        assert result.destroyed == [old]
        assert result.refused == [{"document_id": held, "by": "catalog", "reason": "under legal hold"}]
        assert v.parts.store.versions(document_ref(doc_row(v, held)))
        assert v.records.certificate(result.disposition_id)["items"][0]["document_id"] == old
        v.parts.catalog[0].dispose()
