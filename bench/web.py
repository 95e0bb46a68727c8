"""The web pages' cost: the search results page against the JSON search API, and page images.

    python -m bench.web [--docs 10000] [--queries 200]

One run, one real ``chartvault serve`` on loopback over a catalog of ``--docs`` synthetic documents
(``bench.synth``: the same documents as the search benchmark, written to the catalog and indexed
by the real rebuild):

* the same queries (1-3 words, top 20 with highlights and facets) asked as ``GET /search`` with a
  token and as ``GET /ui/search`` with a signed-in session, alternating, after a warm-up; p50/p95
  of each and the ratio of the page's p95 to the API's (goal: at most 1.5);
* a 300-dpi letter page (a corpus TIFF scan, ingested through the pipeline) fetched as a page image
  1,000 px wide: cold (the cache folder emptied before each fetch, so the original is read back
  from the store, verified and rendered) and cached; p95 of each (goals: 300 ms and 30 ms).

The last line printed is JSON with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.common import corpus_dir, load_manifest
from bench.search import make_queries, percentile
from bench.synth import SEED, generate

PASSWORD = "benchmark passphrase"
LETTER_300DPI = (2550, 3300)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fill_catalog(settings: Any, docs: int) -> None:
    """``docs`` synthetic documents as archived catalog rows (pages with text), then the index rebuilt."""
    from sqlalchemy import insert

    from chartvault.archive.models import Batch, BatchFile, Document, Page
    from chartvault.services import Services

    now = datetime.now(UTC)
    with Services(settings) as services:
        engine = services.parts.catalog[0]
        with engine.begin() as conn:
            conn.execute(insert(Batch), [{"id": "bench", "source": "bench", "status": "complete"}])
            files, documents, pages = [], [], []
            for i, doc in enumerate(generate(0, docs, SEED)):
                file_id = f"f{i:07d}"
                sha = f"{i:064x}"
                files.append(
                    {
                        "id": file_id,
                        "batch_id": "bench",
                        "seq": i + 1,
                        "original_name": "x.pdf",
                        "sha256": sha,
                        "size": 1,
                        "status": "archived",
                        "kind": "pdf",
                        "page_count": len(doc.pages),
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                documents.append(
                    {
                        "id": doc.doc_id,
                        "file_id": file_id,
                        "batch_id": "bench",
                        "first_page": 1,
                        "page_count": len(doc.pages),
                        "sha256": sha,
                        "size": 1,
                        "mime": "application/pdf",
                        "doc_type": doc.doc_type,
                        "mrn": doc.mrn,
                        "patient_name": doc.patient_name,
                        "date_of_service": doc.date_of_service,
                        "encounter": doc.encounter,
                        "icd_codes": doc.icd_codes,
                        "status": "indexed",
                        "identifier_confidence": {},
                        "created_at": now,
                        "archived_at": now,
                    }
                )
                pages += [
                    {
                        "id": f"p{i:07d}-{n}",
                        "file_id": file_id,
                        "document_id": doc.doc_id,
                        "page_no": n,
                        "status": "indexed",
                        "text": text,
                        "source": "ocr",
                        "updated_at": now,
                    }
                    for n, text in enumerate(doc.pages, start=1)
                ]
                if len(documents) >= 1000:
                    _flush(conn, files, documents, pages, BatchFile, Document, Page)
            _flush(conn, files, documents, pages, BatchFile, Document, Page)
        t0 = time.perf_counter()
        indexed = services.search.reindex(fresh=True)
        print(f"indexed {indexed} documents in {time.perf_counter() - t0:.1f} s", file=sys.stderr)


def _flush(conn: Any, files: list, documents: list, pages: list, *tables: Any) -> None:
    from sqlalchemy import insert

    for table, rows in zip(tables, (files, documents, pages), strict=True):
        if rows:
            conn.execute(insert(table), rows)
            rows.clear()


def ingest_letter_page(settings: Any) -> str:
    """A 300-dpi letter-size scanned page from the corpus, through the real pipeline; its document id."""
    from PIL import Image

    from chartvault.services import Services
    from chartvault.services.intake import Incoming

    root = corpus_dir()
    for entry in load_manifest(root):
        if entry["format"] == "tiff_g4" and entry["page_count"] == 1:
            with Image.open(entry["file"]) as im:
                if im.size == LETTER_300DPI:
                    path = Path(entry["file"])
                    break
    else:
        raise SystemExit("no 300-dpi letter TIFF in the corpus")
    with Services(settings) as services:
        received = services.intake.receive([Incoming(path.name, path=path)], source="bench")
        services.intake.process(received.batch_id)
        services.intake.index_now()
        return services.intake.batch(received.batch_id).files[0].documents[0]


def make_callers(settings: Any) -> str:
    """A staff user for the pages and a staff token for the API; the token."""
    from chartvault.services import Services

    with Services(settings) as services:
        services.access.create_user("bench", "Bench Staff", "staff", password=PASSWORD)
        return services.access.create_token("staff", "bench").token


def sign_in(client: httpx.Client) -> None:
    form = client.get("/ui/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf, "no sign-in form"
    done = client.post("/ui/sign-in", data={"csrf": csrf.group(1), "username": "bench", "password": PASSWORD})
    assert done.status_code == 303, done.status_code


def time_get(client: httpx.Client, url: str, params: dict[str, Any] | None = None, **kw: Any) -> float:
    t0 = time.perf_counter()
    resp = client.get(url, params=params, **kw)
    elapsed = (time.perf_counter() - t0) * 1000
    if resp.status_code != 200:
        raise SystemExit(f"{url} answered {resp.status_code}")
    return elapsed


def summary(values: Sequence[float]) -> dict[str, float]:
    return {"p50_ms": round(percentile(values, 50), 2), "p95_ms": round(percentile(values, 95), 2)}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--image-runs", type=int, default=30)
    args = ap.parse_args(argv)

    from chartvault.config import Settings

    work = Path(tempfile.mkdtemp(prefix="cv-bench-web-"))
    settings = Settings(data_dir=work / "data", workers=1, _env_file=None)
    fill_catalog(settings, args.docs)
    letter = ingest_letter_page(settings)
    token = make_callers(settings)
    port = _free_port()
    env = {**os.environ, "CHARTVAULT_DATA_DIR": str(settings.data_dir), "CHARTVAULT_WORKERS": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "chartvault.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        web = httpx.Client(base_url=base, timeout=30)
        sign_in(web)
        queries = [q for q, _ in make_queries(args.queries + 20, min(args.docs, 10_000), SEED, False)]
        for q in queries[:20]:  # warm-up: caches, the index reader, the template
            time_get(api, "/search", {"q": q, "limit": 20})
            time_get(web, "/ui/search", {"q": q})
        api_ms: list[float] = []
        page_ms: list[float] = []
        for i, q in enumerate(queries[20:]):
            pair = [(api_ms, api, "/search", {"q": q, "limit": 20}), (page_ms, web, "/ui/search", {"q": q})]
            for out, client, url, params in pair if i % 2 == 0 else reversed(pair):
                out.append(time_get(client, url, params))
        image_url = f"/ui/documents/{letter}/pages/1/image"
        cache = settings.data_dir / "cache"
        cold: list[float] = []
        for _ in range(args.image_runs):
            shutil.rmtree(cache, ignore_errors=True)
            cold.append(time_get(web, image_url, {"w": 1000}))
        cached = [time_get(web, image_url, {"w": 1000}) for _ in range(args.image_runs * 3)]
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)

    figures: dict[str, Any] = {
        "docs": args.docs,
        "queries": len(api_ms),
        "search_api": summary(api_ms),
        "search_page": summary(page_ms),
        "page_image_cold": summary(cold),
        "page_image_cached": summary(cached),
    }
    figures["search_p95_ratio_page_to_api"] = round(
        figures["search_page"]["p95_ms"] / figures["search_api"]["p95_ms"], 3
    )
    rows = [
        ("search, JSON API (GET /search)", figures["search_api"], "-"),
        (
            "search, results page (GET /ui/search)",
            figures["search_page"],
            f"p95 ratio {figures['search_p95_ratio_page_to_api']} (goal <= 1.5)",
        ),
        (
            "page image 1000 px of a 300-dpi letter scan, cold",
            figures["page_image_cold"],
            "goal p95 < 300 ms",
        ),
        ("the same, cached", figures["page_image_cached"], "goal p95 < 30 ms"),
    ]
    for what, f, goal in rows:
        print(f"{what:55s} p50 {f['p50_ms']:8.2f} ms  p95 {f['p95_ms']:8.2f} ms  {goal}")
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
