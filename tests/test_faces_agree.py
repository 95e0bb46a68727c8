"""The CLI's ``--json`` and the API answer with the same models: field for field, value for value."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import api_client, ingest_files, pick


def _cli(data: Path, *args: str) -> dict:
    env = {**os.environ, "CHARTVAULT_DATA_DIR": str(data)}
    done = subprocess.run(
        [sys.executable, "-m", "chartvault.cli", *args, "--json"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.slow
def test_cli_json_and_api_agree(settings, corpus) -> None:
    entry = pick(corpus, "pdf_text")
    mrn = entry["patient"]["mrn"]
    with api_client(settings) as client:
        services = client.app.state.services
        batch_id = ingest_files(services, entry["file"])
        services.intake.index_now()
        doc_id = services.intake.batch(batch_id).files[0].documents[0]

        api_batch = client.get(f"/batches/{batch_id}").json()
        api_doc = client.get(f"/documents/{doc_id}").json()
        api_search = client.get("/search", params={"mrn": mrn}).json()
        api_timeline = client.get(f"/patients/{mrn}/timeline").json()
        api_review = client.get("/review").json()
        api_tokens = client.get("/tokens").json()

    data = settings.data_dir
    assert _cli(data, "batch", batch_id) == api_batch
    assert _cli(data, "search", "--mrn", mrn) == api_search
    assert _cli(data, "timeline", mrn) == api_timeline
    assert _cli(data, "review") == api_review
    assert _cli(data, "token", "list") == api_tokens
    # `show` carries each page's text (the API serves text page by page); every other field is equal.
    shown = _cli(data, "show", doc_id)
    assert all(p["text"] for p in shown["pages"]) and all(p["text"] is None for p in api_doc["pages"])
    for page in shown["pages"]:
        page["text"] = None
    assert shown == api_doc
