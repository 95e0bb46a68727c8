"""The spine's batch end to end on S3, chosen only by CHARTVAULT_S3_* environment variables,
then disposition through the CLI: an expired document destroyed, a held one refused.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from recordsfixtures import chart_pdf
from s3fixtures import *  # noqa: F403 - s3_settings

from chartvault.archive.s3store import S3ObjectStore
from chartvault.config import Settings

pytestmark = pytest.mark.slow  # each test here drives a real server, browser or pipeline

CLI = [sys.executable, "-m", "chartvault.cli"]


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, env=env)


def test_batch_on_s3_then_disposition(tmp_path: Path, corpus: list[dict], s3_settings: Settings) -> None:
    bucket = f"cv-e2e-{uuid.uuid4().hex[:12]}"
    secret = s3_settings.s3_secret_key.get_secret_value() if s3_settings.s3_secret_key else ""
    env = {
        **os.environ,
        "CHARTVAULT_DATA_DIR": str(tmp_path / "data"),
        "CHARTVAULT_WORKERS": "2",
        # No CHARTVAULT_OBJECT_STORE: setting the endpoint alone selects S3.
        "CHARTVAULT_S3_ENDPOINT": str(s3_settings.s3_endpoint),
        "CHARTVAULT_S3_ACCESS_KEY": str(s3_settings.s3_access_key),
        "CHARTVAULT_S3_SECRET_KEY": secret,
        "CHARTVAULT_S3_BUCKET": bucket,
        "CHARTVAULT_S3_SECURE": "true" if s3_settings.s3_secure else "false",
        "CHARTVAULT_S3_CERT_CHECK": "true" if s3_settings.s3_cert_check else "false",
        "CHARTVAULT_S3_REGION": s3_settings.s3_region,
        "CHARTVAULT_OBJECT_LOCK_MIN_SECONDS": "2",
    }
    env.pop("CHARTVAULT_OBJECT_STORE", None)
    scans = tmp_path / "scans"
    scans.mkdir()
    picked = [e for e in corpus if e["format"] == "pdf_text"][:2] + [
        e for e in corpus if e["format"] == "png"
    ][:1]
    for e in picked:
        shutil.copy(e["file"], scans / e["file"].name)
    chart_pdf(scans / "old.pdf", mrn="00777001", dob="01/02/1940", dos="03/04/2003")

    res = _cli(env, "ingest", str(scans), "--json")
    assert res.returncode in (0, 3), res.stderr
    files = {Path(f["path"]).name: f for f in json.loads(res.stdout)["files"]}
    assert all(f["status"] == "archived" for f in files.values())
    old_doc = files["old.pdf"]["documents"][0]
    held_entry = picked[0]
    held_doc = files[held_entry["file"].name]["documents"][0]

    # Every document is a locked version in the bucket, with its retention tags.
    store = S3ObjectStore.from_settings(s3_settings, bucket=bucket)
    versions = list(store.client.list_objects(bucket, prefix="sha256/", recursive=True, include_version=True))
    # (audit checkpoints live beside them, under their own prefix); the scanned PNG has its rendition too
    assert len(versions) == len(files) + 1
    for doc_id in (old_doc, held_doc):
        info = json.loads(_cli(env, "retention", "show", doc_id, "--json").stdout)
        assert (
            info["store"]["mode"] == "GOVERNANCE" and info["store"]["tags"]["retention_rule"] == info["rule"]
        )

    mrn = held_entry["patient"]["mrn"]
    hold = _cli(
        env, "hold", "place", "--matter", "M-2026-1", "--reason", "records request", "--mrn", mrn, "--json"
    )
    assert hold.returncode == 0, hold.stderr
    assert json.loads(hold.stdout)["documents"] == [held_doc]

    time.sleep(2.5)  # the old record's minimum store lock runs out
    # Judged as of 2100 every record is past retention in the catalog; the hold still wins.
    plan = json.loads(_cli(env, "disposition", "--dry-run", "--as-of", "2100-01-01", "--json").stdout)
    assert held_doc in [c["document_id"] for c in plan["held"]]
    assert held_doc not in [c["document_id"] for c in plan["eligible"]]
    assert old_doc in [c["document_id"] for c in plan["eligible"]]

    run = _cli(
        env, "disposition", "--execute", "--as-of", "2100-01-01", "--approved-by", "HIM manager", "--json"
    )
    assert run.returncode == 1, run.stderr  # some refused
    result = json.loads(run.stdout)
    assert result["destroyed"] == [old_doc]
    refused = {r["document_id"]: r for r in result["refused"]}
    # Recent records: the catalog was told "as of 2100", but the store's lock runs to their real date.
    assert refused and all(r["by"] == "store" for r in refused.values())
    assert held_doc in result["held"] and held_doc not in refused
    # The held document's version still exists; the old one's versions are gone.
    names = {
        v.object_name
        for v in store.client.list_objects(bucket, prefix="sha256/", recursive=True, include_version=True)
    }
    cert = json.loads(_cli(env, "certificate", result["disposition_id"]).stdout)
    assert cert["items"][0]["document_id"] == old_doc
    assert cert["items"][0]["object_key"] not in names
    assert len(names) == len(files) + 1 - 1 + 1  # the PNG's rendition; one destroyed, one certificate added
    # Every CLI run left an audit checkpoint in the bucket; the chain verifies against all of them.
    audit = json.loads(_cli(env, "audit", "verify", "--json").stdout)
    assert audit["ok"] and audit["checkpoints"] >= 6
    assert audit["newest_checkpoint"]["object_key"].startswith("audit-checkpoints/")
