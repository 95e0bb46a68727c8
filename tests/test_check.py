"""`chartvault check`: fixity, orphans, index agreement and unfinished batches, on both stores."""

from __future__ import annotations

import hashlib
from pathlib import Path

from recordsfixtures import *  # noqa: F403 - the rv and records_settings fixtures
from recordsfixtures import chart_pdf, doc_row, ingest
from s3fixtures import *  # noqa: F403 - s3_settings

from chartvault.archive.lifecycle import document_ref
from chartvault.archive.localstore import LocalObjectStore
from chartvault.service import Vault


def test_clean_archive_is_consistent(rv: Vault, tmp_path: Path) -> None:
    ingest(rv, chart_pdf(tmp_path / "a.pdf", mrn="00510001", dob="01/02/1970", dos="03/04/2024"))
    result = rv.check()
    assert result["consistent"], result
    assert result["store"]["objects_checked"] == 1 and result["store"]["bytes_checked"] > 0


def test_missing_and_orphaned_objects_are_reported(rv: Vault, tmp_path: Path) -> None:
    (gone,) = ingest(rv, chart_pdf(tmp_path / "a.pdf", mrn="00510002", dob="01/02/1970", dos="03/04/2024"))
    ingest(rv, chart_pdf(tmp_path / "b.pdf", mrn="00510003", dob="01/02/1970", dos="03/04/2024"))
    rv.store.delete_version(document_ref(doc_row(rv, gone)), bypass_governance=True)  # behind the catalog
    stray = tmp_path / "stray.bin"
    stray.write_bytes(b"bytes no catalog row names")
    rv.store.put_file(str(stray), hashlib.sha256(stray.read_bytes()).hexdigest(), "application/octet-stream")
    result = rv.check(repair=True)
    assert not result["consistent"]
    assert result["store"]["missing"] == [f"document:{gone}"]
    assert len(result["store"]["orphans"]) == 1


def test_corrupt_object_detected_by_fixity(tmp_path: Path) -> None:
    from chartvault.config import Settings

    with Vault(Settings(data_dir=tmp_path / "data", workers=1, _env_file=None)) as v:
        (doc_id,) = ingest(
            v, chart_pdf(tmp_path / "a.pdf", mrn="00510004", dob="01/02/1970", dos="03/04/2024")
        )
        assert isinstance(v.store, LocalObjectStore)
        obj = v.store.root / doc_row(v, doc_id).object_key
        data = bytearray(obj.read_bytes())
        data[len(data) // 2] ^= 0xFF  # one flipped byte, same size
        obj.chmod(0o644)
        obj.write_bytes(bytes(data))
        assert v.check(fixity=False)["consistent"]  # presence alone cannot see it
        result = v.check()
        assert result["store"]["corrupt"] == [f"document:{doc_id}"] and not result["consistent"]


def test_index_disagreement_is_repaired(rv: Vault, tmp_path: Path) -> None:
    (doc_id,) = ingest(rv, chart_pdf(tmp_path / "a.pdf", mrn="00510005", dob="01/02/1970", dos="03/04/2024"))
    rv.backend().delete([doc_id])  # the index loses a document the catalog shows
    broken = rv.check()
    assert not broken["consistent"] and broken["index"]["missing"] == [doc_id]
    repaired = rv.check(repair=True)
    assert repaired["index"]["repaired"] is True
    assert rv.check()["consistent"]
