"""The audit log says what was seen: the documents of every read and of every result list, and never an MRN.

Real app, real catalog and index, born-digital PDFs of two patients; the audit rows are read back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import api_client
from fastapi.testclient import TestClient
from recordsfixtures import chart_pdf, ingest
from sqlalchemy import select

from chartvault.archive.models import AuditEvent, Patient
from chartvault.services import Services

MRN, OTHER_MRN, UNKNOWN_MRN = "00710001", "00710002", "00719999"


@dataclass
class World:
    client: TestClient
    vault: Services
    docs: list[str]


@pytest.fixture
def world(settings, tmp_path: Path) -> Iterator[World]:
    with api_client(settings, role="admin") as c:
        vault: Services = c.app.state.services
        paths = [
            chart_pdf(tmp_path / f"d{i}.pdf", mrn=MRN, dob="03/04/1970", dos=f"05/0{i + 1}/2024")
            for i in range(4)
        ]
        paths.append(
            chart_pdf(
                tmp_path / "other.pdf", mrn=OTHER_MRN, dob="09/10/1980", dos="05/07/2024", name="OTHER, PAT"
            )
        )
        docs = ingest(vault, *paths)
        assert len(docs) == 5
        yield World(c, vault, docs)


def _rows(vault: Services, action: str) -> list[AuditEvent]:
    with vault.parts.sessions() as s:
        rows = list(s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)))
        for r in rows:
            s.expunge(r)
        return rows


def _patient_id(vault: Services, mrn: str) -> str:
    with vault.parts.sessions() as s:
        return s.scalars(select(Patient.id).where(Patient.mrn == mrn)).one()


def _no_mrn_anywhere(vault: Services) -> None:
    with vault.parts.sessions() as s:
        for e in s.scalars(select(AuditEvent)):
            blob = json.dumps([e.target_id, e.detail, e.actor])
            for mrn in (MRN, OTHER_MRN, UNKNOWN_MRN):
                assert mrn not in blob, (e.action, blob)


@pytest.mark.slow
def test_reads_record_the_document(world: World) -> None:
    c, doc = world.client, world.docs[0]
    assert c.get(f"/documents/{doc}/pages/1/text").status_code == 200
    assert c.get(f"/documents/{doc}/original").status_code == 200
    page_reads = _rows(world.vault, "document.page_text")
    assert [(r.target_type, r.target_id, r.detail) for r in page_reads] == [("document", doc, {"page_no": 1})]
    assert [r.target_id for r in _rows(world.vault, "document.download")] == [doc]


@pytest.mark.slow
def test_search_timeline_and_similar_record_every_id_shown_and_no_mrn(world: World) -> None:
    c, vault = world.client, world.vault
    answer = c.get("/search", params={"mrn": MRN, "limit": 3}).json()
    shown = [h["document_id"] for h in answer["hits"]]
    assert len(shown) == 3
    searches = _rows(vault, "search")
    assert searches[-1].detail["documents"] == shown
    assert searches[-1].detail["filters"]["patient"] == f"patient:{_patient_id(vault, MRN)}"

    c.get("/search", params={"mrn": UNKNOWN_MRN})
    unknown = _rows(vault, "search")[-1].detail["filters"]["patient"]
    assert unknown.startswith("hmac:k") and UNKNOWN_MRN not in unknown
    c.get("/search", params={"mrn": UNKNOWN_MRN})
    assert (
        _rows(vault, "search")[-1].detail["filters"]["patient"] == unknown
    )  # stable: findable by key holders

    timeline = c.get(f"/patients/{MRN}/timeline").json()
    listed = [d["document_id"] for g in timeline["encounters"] for d in g["documents"]]
    row = _rows(vault, "patient.timeline")[-1]
    assert row.target_id == f"patient:{_patient_id(vault, MRN)}"
    assert row.detail["documents"] == listed and len(listed) == 4

    similar = c.get(f"/documents/{world.docs[0]}/similar").json()
    assert _rows(vault, "document.similar")[-1].detail["documents"] == [
        h["document_id"] for h in similar["hits"]
    ]

    assert c.get(f"/patients/{MRN}/disclosures").status_code == 200
    assert _rows(vault, "disclosure.accounting")[-1].target_id == f"patient:{_patient_id(vault, MRN)}"
    _no_mrn_anywhere(vault)


@pytest.mark.slow
def test_cursor_pages_through_every_hit_once(world: World) -> None:
    c = world.client
    seen: list[str] = []
    params: dict[str, Any] = {"mrn": MRN, "limit": 1, "sort": "date_asc"}
    answer = c.get("/search", params=params).json()
    while True:
        seen += [h["document_id"] for h in answer["hits"]]
        if answer["next_cursor"] is None:
            break
        answer = c.get("/search", params={**params, "cursor": answer["next_cursor"]}).json()
    by_offset = [
        c.get("/search", params={**params, "offset": i}).json()["hits"][0]["document_id"] for i in range(4)
    ]
    assert seen == by_offset and len(set(seen)) == 4

    first = c.get("/search", params=params).json()
    other_query = c.get("/search", params={**params, "mrn": OTHER_MRN, "cursor": first["next_cursor"]})
    assert other_query.status_code == 422 and other_query.json()["error"]["code"] == "bad_cursor"
    both = c.get("/search", params={**params, "offset": 1, "cursor": first["next_cursor"]})
    assert both.status_code == 422


def test_a_polled_view_is_audited_once_a_window_and_anything_new_at_once(tmp_path: Path, monkeypatch) -> None:
    """A page that polls (a batch's live part, every 2 s) shows one person the same thing again and again:
    one entry a window (``REPEAT_READ_WINDOW_S``). A new view, another person, another target or the
    window gone by each write their own."""
    from chartvault.config import Settings
    from chartvault.services import caller
    from chartvault.services.caller import Caller

    clock = [1000.0]
    monkeypatch.setattr(caller, "_RECENT_READS", caller._RecentReads(clock=lambda: clock[0]))
    with Services(Settings(data_dir=tmp_path / "data", _env_file=None)) as services:
        ann = services.acting_as(Caller("user:ann", "scanner", user_id="ann")).audit
        bob = services.acting_as(Caller("user:bob", "scanner", user_id="bob")).audit
        view = (("file-1",), ("doc-1",))
        for _ in range(5):
            ann.seen_once("batch.read", "batch", "b1", ["doc-1"], view)
        bob.seen_once("batch.read", "batch", "b1", ["doc-1"], view)
        ann.seen_once("batch.read", "batch", "b2", ["doc-9"], (("file-9",), ("doc-9",)))
        ann.seen_once("batch.read", "batch", "b1", ["doc-1", "doc-2"], (("file-1",), ("doc-1", "doc-2")))
        clock[0] += caller.REPEAT_READ_WINDOW_S - 1
        ann.seen_once("batch.read", "batch", "b1", ["doc-1", "doc-2"], (("file-1",), ("doc-1", "doc-2")))
        clock[0] += 2
        ann.seen_once("batch.read", "batch", "b1", ["doc-1", "doc-2"], (("file-1",), ("doc-1", "doc-2")))
        with services.parts.sessions() as s:
            entries = s.scalars(
                select(AuditEvent).where(AuditEvent.action == "batch.read").order_by(AuditEvent.seq)
            ).all()
    assert [(e.actor, e.target_id, e.detail["documents"]) for e in entries] == [
        ("user:ann", "b1", ["doc-1"]),
        ("user:bob", "b1", ["doc-1"]),
        ("user:ann", "b2", ["doc-9"]),
        ("user:ann", "b1", ["doc-1", "doc-2"]),  # something new: at once
        ("user:ann", "b1", ["doc-1", "doc-2"]),  # the same, a window later
    ]
