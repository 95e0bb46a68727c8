"""`chartvault check`: fixity, orphans, index agreement and unfinished batches, on both stores."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from recordsfixtures import *  # noqa: F403 - the rv and records_settings fixtures
from recordsfixtures import chart_pdf, doc_row, ingest
from s3fixtures import *  # noqa: F403 - s3_settings

from chartvault.archive.lifecycle import document_ref
from chartvault.archive.localstore import LocalObjectStore
from chartvault.services import Services


@pytest.mark.slow
def test_clean_archive_is_consistent(rv: Services, tmp_path: Path) -> None:
    ingest(rv, chart_pdf(tmp_path / "a.pdf", mrn="00510001", dob="01/02/1970", dos="03/04/2024"))
    result = rv.records.check()
    assert result["consistent"], result
    assert result["store"]["objects_checked"] == 1 and result["store"]["bytes_checked"] > 0


@pytest.mark.slow
def test_missing_and_orphaned_objects_are_reported(rv: Services, tmp_path: Path) -> None:
    (gone,) = ingest(rv, chart_pdf(tmp_path / "a.pdf", mrn="00510002", dob="01/02/1970", dos="03/04/2024"))
    ingest(rv, chart_pdf(tmp_path / "b.pdf", mrn="00510003", dob="01/02/1970", dos="03/04/2024"))
    rv.parts.store.delete_version(
        document_ref(doc_row(rv, gone)), bypass_governance=True
    )  # behind the catalog
    stray = tmp_path / "stray.bin"
    stray.write_bytes(b"bytes no catalog row names")
    rv.parts.store.put_file(
        str(stray), hashlib.sha256(stray.read_bytes()).hexdigest(), "application/octet-stream"
    )
    result = rv.records.check(repair=True)
    assert not result["consistent"]
    assert result["store"]["missing"] == [f"document:{gone}"]
    assert len(result["store"]["orphans"]) == 1


@pytest.mark.slow
def test_corrupt_object_detected_by_fixity(tmp_path: Path) -> None:
    from chartvault.config import Settings

    with Services(Settings(data_dir=tmp_path / "data", workers=1, _env_file=None)) as v:
        (doc_id,) = ingest(
            v, chart_pdf(tmp_path / "a.pdf", mrn="00510004", dob="01/02/1970", dos="03/04/2024")
        )
        assert isinstance(v.parts.store, LocalObjectStore)
        obj = v.parts.store.root / doc_row(v, doc_id).object_key
        data = bytearray(obj.read_bytes())
        data[len(data) // 2] ^= 0xFF  # one flipped byte, same size
        obj.chmod(0o644)
        obj.write_bytes(bytes(data))
        assert v.records.check(fixity=False)["consistent"]  # presence alone cannot see it
        result = v.records.check()
        assert result["store"]["corrupt"] == [f"document:{doc_id}"] and not result["consistent"]


@pytest.mark.slow
def test_index_disagreement_is_repaired(rv: Services, tmp_path: Path) -> None:
    (doc_id,) = ingest(rv, chart_pdf(tmp_path / "a.pdf", mrn="00510005", dob="01/02/1970", dos="03/04/2024"))
    rv.parts.indexer.reader().delete([doc_id])  # the index loses a document the catalog shows
    broken = rv.records.check()
    assert not broken["consistent"] and broken["index"]["missing"] == [doc_id]
    repaired = rv.records.check(repair=True)
    assert repaired["index"]["repaired"] is True
    assert rv.records.check()["consistent"]
