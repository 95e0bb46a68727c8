"""End to end over HTTP: a multi-format batch goes in; every document is found by a phrase and by MRN."""

from __future__ import annotations

import re
import time

import pytest
from badfiles import truncated
from conftest import api_client, pick
from fastapi.testclient import TestClient


@pytest.fixture
def client(settings):
    with api_client(settings) as c:
        yield c


def wait_for_batch(client: TestClient, batch_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        report = client.get(f"/batches/{batch_id}").json()
        if report["done"] and report["status"] != "processing":
            return report
        time.sleep(0.5)
    raise AssertionError("batch did not finish in time")


def wait_until_indexed(client: TestClient, mrn: str, n: int, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        res = client.get("/search", params={"mrn": mrn}).json()
        if len(res["hits"]) >= n or time.monotonic() > deadline:
            return res
        time.sleep(0.3)


def phrase_of(entry: dict) -> str:
    """Four consecutive plain words from the middle of page 1's body: a phrase a person would type."""
    tokens = entry["pages"][0]["body_text"].split()
    runs = [
        tokens[i : i + 4]
        for i in range(len(tokens) - 4)
        if all(re.fullmatch(r"[A-Za-z]{3,}", t) for t in tokens[i : i + 4])
    ]
    assert runs, "no plain four-word phrase on page 1"
    return " ".join(runs[len(runs) // 2])


@pytest.mark.slow
def test_multi_format_batch_end_to_end(client, corpus, tmp_path):
    # Clean scans: a typed phrase must match exactly (OCR-error tolerance is fuzzy search's job).
    entries = [
        pick(corpus, "png", tier="clean"),
        pick(corpus, "jpeg", tier="clean"),
        pick(corpus, "tiff_g4", pages=2, tier="clean"),
        pick(corpus, "pdf_image", pages=2, tier="clean"),
        pick(corpus, "pdf_text"),
    ]
    bad = truncated(pick(corpus, "jpeg", tier="typical")["file"], tmp_path / "cut.jpg")
    files = [("files", (e["file"].name, e["file"].read_bytes(), "application/octet-stream")) for e in entries]
    files.append(("files", ("notes.pdf", b"just some text, not a pdf", "application/pdf")))
    files.append(("files", ("cut.jpg", bad.read_bytes(), "image/jpeg")))
    resp = client.post("/batches", files=files, data={"station": "scan-01", "operator": "op-7"})
    assert resp.status_code == 202, resp.text
    batch_id = resp.json()["batch_id"]

    report = wait_for_batch(client, batch_id)
    by_name = {f["name"]: f for f in report["files"]}
    assert report["status"] == "complete_with_errors"
    assert by_name["notes.pdf"]["status"] == "quarantined"
    assert by_name["notes.pdf"]["reason_code"] == "unsupported_type"
    assert by_name["cut.jpg"]["status"] == "quarantined" and by_name["cut.jpg"]["reason_code"] == "corrupt"
    for e in entries:
        f = by_name[e["file"].name]
        assert f["status"] == "archived", f
        assert f["page_count"] == e["page_count"]
        assert all(p["status"] in ("archived", "indexed") for p in f["pages"])

    for e in entries:
        mrn = e["patient"]["mrn"]
        res = wait_until_indexed(client, mrn, 1)
        doc_id = by_name[e["file"].name]["documents"][0]
        assert doc_id in [h["document_id"] for h in res["hits"]], f"MRN search missed {e['format']}"
        phrase = phrase_of(e)
        res = client.get("/search", params={"q": f'"{phrase}"'}).json()
        hit = next((h for h in res["hits"] if h["document_id"] == doc_id), None)
        assert hit is not None, f"phrase search missed {e['format']}"
        assert 1 in hit["pages"] and any("<mark>" in s["html"] for s in hit["snippets"])

    # Facets count every match; a date sort orders by date of service.
    everything = client.get("/search", params={"batch": batch_id, "sort": "date_asc", "limit": 50}).json()
    assert sum(everything["facets"]["doc_type"].values()) == len(entries) == everything["total"]
    dates = [h["date_of_service"] for h in everything["hits"] if h["date_of_service"]]
    assert dates == sorted(dates)
    assert client.get("/search", params={"batch": batch_id, "sort": "sideways"}).status_code == 422

    # Metadata, page text and the original, byte for byte.
    e = entries[2]
    doc_id = by_name[e["file"].name]["documents"][0]
    meta = client.get(f"/documents/{doc_id}").json()
    assert meta["identifiers"]["mrn"]["value"] == e["patient"]["mrn"]
    assert meta["page_count"] == 2 and meta["sha256"] == by_name[e["file"].name]["sha256"]
    page2 = client.get(f"/documents/{doc_id}/pages/2/text").json()
    assert e["patient"]["mrn"] in page2["text"]
    original = client.get(f"/documents/{doc_id}/original")
    assert original.status_code == 200 and original.content == e["file"].read_bytes()
    assert original.headers["content-type"] == "image/tiff"


def test_errors_are_json_with_the_right_status(client):
    r = client.get("/documents/does-not-exist")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = client.get("/documents/does-not-exist/pages/1/text")
    assert r.status_code == 404
    r = client.get("/search")
    assert r.status_code == 422 and "filter" in r.json()["error"]["message"]
    r = client.get("/search", params={"mrn": "1", "limit": 0})
    assert r.status_code == 422
    r = client.post("/batches", content=b"hello", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and r.json()["error"]["code"] == "bad_upload"
    r = client.post(
        "/batches", files=[("files", ("a.png", b"x", "image/png"))], data={"manifest": "{not json"}
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "bad_manifest"
    assert client.get("/batches/nope").status_code == 404
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/health").json()["status"] == "ok"


def test_upload_over_byte_limit_is_refused_with_reason(tmp_path):
    from chartvault.config import Settings

    small = Settings(data_dir=tmp_path / "d", max_file_bytes=1000, workers=1, _env_file=None)
    with api_client(small) as c:
        r = c.post(
            "/batches", files=[("files", ("big.png", b"\x89PNG\r\n\x1a\n" + b"0" * 5000, "image/png"))]
        )
        assert r.status_code == 202
        f = r.json()["files"][0]
        assert f["status"] == "quarantined" and f["reason_code"] == "too_large"
        assert "1,000" in f["reason"]
