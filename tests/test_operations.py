"""What the engineer on call sees: /metrics after real ingests, /health/ready part by part, JSON logs.

Metrics are read back with prometheus-client's own parser. The process's counters are shared by
every app made in this test process, so the checks compare a scrape after the work with one before.
"""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import api_client, ingest_files, pick
from prometheus_client.parser import text_string_to_metric_families
from s3fixtures import *  # noqa: F403 - s3_settings, s3_store
from sqlalchemy import func, select

import chartvault
from chartvault.archive.models import AuditEvent, Batch, Page
from chartvault.config import Settings
from chartvault.services.operations import OperationsService
from chartvault.telemetry.logs import JsonFormatter, configure_logging, template_fields

SCRAPE_TOKEN = "scrape-" + "s" * 32

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: Any) -> Samples:
    r = client.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def osettings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", workers=2, metrics_token=SCRAPE_TOKEN, _env_file=None)


# -- /metrics ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_metrics_after_real_ingests(osettings: Settings, corpus: list[dict]) -> None:
    scanned, digital = pick(corpus, "png", tier="clean"), pick(corpus, "pdf_text", pages=2)
    pages = scanned["page_count"] + digital["page_count"]
    with api_client(osettings, "admin", start_background=False) as c:
        services = c.app.state.services
        services.operations.gauges_ttl_s = 0  # every scrape reads the catalog again
        before = scrape(c)
        ingest_files(services, scanned["file"], digital["file"])
        with services.parts.sessions() as s:
            archived = s.scalar(select(func.count()).select_from(Page).where(Page.status == "archived"))
        mid = scrape(c)
        services.intake.index_now()
        assert c.get("/search", params={"mrn": scanned["patient"]["mrn"]}).status_code == 200
        assert c.get("/documents/nope").status_code == 404
        services.parts.audit_log.checkpoint()
        after = scrape(c)

    # pages read, their OCR time, the rate: what this process did
    assert (
        value(mid, "chartvault_pages_read_total", outcome="ok")
        - value(before, "chartvault_pages_read_total", outcome="ok")
        == pages
    )
    assert (
        value(mid, "chartvault_ocr_page_seconds_count") - value(before, "chartvault_ocr_page_seconds_count")
        == pages
    )
    ocr_seconds = value(mid, "chartvault_ocr_page_seconds_sum") - value(
        before, "chartvault_ocr_page_seconds_sum"
    )
    assert ocr_seconds > 0.1  # the scanned page took tesseract a real fraction of a second at least
    assert value(mid, "chartvault_pages_per_second") >= pages / 60
    assert value(mid, "chartvault_worker_tasks_in_flight") == 0
    # the catalog: archived pages and documents wait for the index writer until it runs
    assert archived == pages
    assert value(mid, "chartvault_pages", state="archived") == pages
    assert value(mid, "chartvault_pages", state="received") == 0
    assert value(mid, "chartvault_index_queue_depth") == 2
    assert value(mid, "chartvault_unfinished_batches") == 0
    assert value(after, "chartvault_pages", state="archived") == 0
    assert value(after, "chartvault_index_queue_depth") == 0
    assert value(after, "chartvault_oldest_unfinished_batch_age_seconds") == 0
    # the API: latency by route template, errors by code, search latency
    search = {"method": "GET", "route": "/search", "status": "200"}
    assert (
        value(after, "chartvault_http_request_seconds_count", **search)
        - value(before, "chartvault_http_request_seconds_count", **search)
        == 1
    )
    assert (
        value(after, "chartvault_api_errors_total", code="not_found", status="404")
        - value(before, "chartvault_api_errors_total", code="not_found", status="404")
        == 1
    )
    assert (
        value(after, "chartvault_search_seconds_count", kind="search")
        - value(before, "chartvault_search_seconds_count", kind="search")
        == 1
    )
    assert 0 <= value(after, "chartvault_audit_checkpoint_age_seconds") < 60
    assert value(after, "process_resident_memory_bytes") > 0
    # no id, MRN or path in any label: routes are templates
    labels = {v for (_, pairs) in after for (_, v) in pairs}
    assert scanned["patient"]["mrn"] not in labels and "/documents/nope" not in labels
    assert "/documents/{doc_id}" in labels


def test_metrics_for_admins_and_the_scrape_token_only(osettings: Settings) -> None:
    with api_client(osettings, "staff", start_background=False) as c:
        assert c.get("/metrics").status_code == 403
        c.headers["Authorization"] = f"Bearer {SCRAPE_TOKEN}"
        sessions = c.app.state.services.parts.sessions
        with sessions() as s:
            audited = s.scalar(select(func.count()).select_from(AuditEvent))
        assert c.get("/metrics").status_code == 200
        with sessions() as s:  # a scrape every few seconds is not written to the audit log
            assert s.scalar(select(func.count()).select_from(AuditEvent)) == audited
        assert c.get("/reports").status_code == 401  # the scrape token opens /metrics and nothing else
        c.headers["Authorization"] = f"Bearer {SCRAPE_TOKEN[:-1]}x"
        assert c.get("/metrics").status_code == 401
        c.headers.pop("Authorization")
        assert c.get("/metrics").status_code == 401
    without = osettings.model_copy(update={"metrics_token": None})
    with api_client(without, "admin", start_background=False) as c:
        assert c.get("/metrics").status_code == 200
        c.headers["Authorization"] = f"Bearer {SCRAPE_TOKEN}"
        assert c.get("/metrics").status_code == 401


def test_catalog_gauges_are_cached_for_a_few_seconds(vault: Any) -> None:
    now = [100.0]
    ops = OperationsService(
        vault.settings,
        vault.parts.sessions,
        lambda: vault.parts.store,
        lambda: vault.parts.indexer,
        lambda: now[0],
    )
    assert ops.gauges().unfinished_batches == 0
    with vault.parts.sessions() as s:
        s.add(Batch(id="b" * 32, source="test", status="receiving"))
        s.commit()
    assert ops.gauges().unfinished_batches == 0  # cached
    now[0] += ops.gauges_ttl_s
    assert ops.gauges().unfinished_batches == 1
    ops.close()


# -- readiness -----------------------------------------------------------------------------------------


def test_ready_when_every_part_answers(osettings: Settings) -> None:
    with api_client(osettings, "admin", start_background=False) as c:
        c.headers.pop("Authorization")  # public, like /health
        r = c.get("/health/ready")
        assert c.get("/health").status_code == 200
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ready"
    assert [(x["part"], x["ok"], x["error"]) for x in body["checks"]] == [
        ("catalog", True, None),
        ("object_store", True, None),
        ("index", True, None),
    ]


@pytest.mark.slow
def test_not_ready_when_the_object_store_refuses(osettings: Settings) -> None:
    refusing = osettings.model_copy(
        update={"object_store": "s3", "s3_endpoint": f"127.0.0.1:{_free_port()}", "s3_secure": False}
    )
    with api_client(refusing, "admin", start_background=False) as c:
        started = time.monotonic()
        r = c.get("/health/ready")
        took = time.monotonic() - started
        live = c.get("/health")
    assert r.status_code == 503
    checks = {x["part"]: x for x in r.json()["checks"]}
    assert r.json()["status"] == "unavailable"
    assert not checks["object_store"]["ok"] and checks["object_store"]["error"] in (
        "ObjectStoreError",
        "timeout",
    )
    assert checks["catalog"]["ok"] and checks["index"]["ok"]
    assert took < 10  # answered within the probe time limit, not after the client's retries
    assert live.status_code == 200  # liveness does not depend on the store


@pytest.mark.slow
def test_ready_on_s3_and_the_broker_is_checked_with_celery(
    osettings: Settings, s3_settings: Settings, s3_store: Any
) -> None:
    on_s3 = s3_settings.model_copy(
        update={"data_dir": osettings.data_dir, "s3_bucket": s3_store.bucket, "metrics_token": SCRAPE_TOKEN}
    )
    with api_client(on_s3, "admin", start_background=False) as c:
        assert c.get("/health/ready").status_code == 200
    no_broker = on_s3.model_copy(
        update={"executor": "celery", "celery_broker_url": f"redis://127.0.0.1:{_free_port()}/0"}
    )
    with api_client(no_broker, "admin", start_background=False) as c:
        r = c.get("/health/ready")
    assert r.status_code == 503
    checks = {x["part"]: x for x in r.json()["checks"]}
    assert not checks["broker"]["ok"] and checks["object_store"]["ok"]


# -- JSON logs -----------------------------------------------------------------------------------------


def _json_line(template: str, *args: Any, exc: BaseException | None = None) -> dict[str, Any]:
    record = logging.LogRecord("chartvault.test", logging.INFO, __file__, 1, template, args, None)
    if exc is not None:
        record.exc_info = (type(exc), exc, exc.__traceback__)
    return json.loads(JsonFormatter().format(record))


def test_json_log_lines_keep_the_template_and_its_ids_only() -> None:
    line = _json_line("document archived doc=%s file=%s batch=%s pages=%d", "d" * 32, "f1", "b1", 3)
    assert line["event"] == "document archived doc=%s file=%s batch=%s pages=%d"
    assert line["fields"] == {"doc": "d" * 32, "file": "f1", "batch": "b1", "pages": 3}
    assert line["level"] == "INFO" and line["logger"] == "chartvault.test"
    # an unnamed argument, a field that is not an id, an id field holding text: all dropped
    leaky = _json_line("page read %s mrn=%s doc=%s", "HALL, GRACE W", "4874449078", "HALL GRACE")
    dumped = json.dumps(leaky)
    assert "HALL" not in dumped and "4874449078" not in dumped and "fields" not in leaky
    try:
        raise ValueError("patient HALL, GRACE W, MRN 4874449078")
    except ValueError as exc:
        failed = _json_line("batch failed batch=%s", "b1", exc=exc)
    assert failed["exception"]["type"] == "ValueError"
    assert "HALL" not in json.dumps(failed) and failed["fields"] == {"batch": "b1"}
    assert template_fields("misfile split doc=%s into=%s", ("d1", ["n1", "n2"])) == {
        "doc": "d1",
        "into": ["n1", "n2"],
    }
    # a route is a template: a path with an id or an MRN in it is not one
    assert template_fields("request route=%s", ("/patients/{mrn}/timeline",)) == {
        "route": "/patients/{mrn}/timeline"
    }
    assert template_fields("request route=%s", ("/patients/4874449078/timeline",)) == {}


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """Every log record of the test as JSON lines in a buffer; the previous logging restored after."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    buffer = io.StringIO()
    configure_logging("json", logging.INFO)
    root.handlers[0].setStream(buffer)  # type: ignore[attr-defined]
    try:
        yield buffer
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


@pytest.mark.slow
def test_json_logs_of_an_ingest_and_its_requests_carry_no_page_text(
    osettings: Settings, corpus: list[dict], json_logs: io.StringIO
) -> None:
    entry = pick(corpus, "pdf_text", pages=2)
    with api_client(osettings, "admin", start_background=False) as c:
        ingest_files(c.app.state.services, entry["file"])
        c.app.state.services.intake.index_now()
        mrn = entry["patient"]["mrn"]
        assert c.get(f"/patients/{mrn}/timeline").status_code == 200
        assert c.get("/search", params={"mrn": mrn}).status_code == 200
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    events = {line["event"] for line in lines}
    assert "document archived doc=%s file=%s batch=%s pages=%d" in events
    access = [line["fields"] for line in lines if line["logger"] == "chartvault.api.access"]
    assert {"method": "GET", "route": "/patients/{mrn}/timeline", "status": 200} in [
        {k: a[k] for k in ("method", "route", "status")} for a in access
    ]
    dumped = json_logs.getvalue()
    patient = entry["patient"]
    assert mrn not in dumped and patient["name_printed"] not in dumped and patient["last"] not in dumped
    # words of the page that are not words of ChartVault's own code (a log template is code)
    code = " ".join(path.read_text() for path in Path(chartvault.__file__).parent.rglob("*.py"))
    words = {w for p in entry["pages"] for w in p["text"].split() if len(w) > 5 and w.isalpha()}
    words = {w for w in words if w not in code}
    assert len(words) > 20 and not [w for w in words if w in dumped]


@pytest.mark.slow
def test_cli_writes_json_log_lines(tmp_path: Path, corpus: list[dict]) -> None:
    entry = pick(corpus, "pdf_text", pages=2)
    env = {**os.environ, "CHARTVAULT_DATA_DIR": str(tmp_path / "data"), "CHARTVAULT_LOG_FORMAT": "json"}
    done = subprocess.run(
        [sys.executable, "-m", "chartvault.cli", "-v", "ingest", str(entry["file"]), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    assert any(line["event"].startswith("document archived") for line in lines)
    assert entry["patient"]["mrn"] not in done.stderr
