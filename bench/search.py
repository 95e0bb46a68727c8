"""Search backends compared on a synthetic archive, both in the same run.

    python -m bench.search [--docs N] [--queries Q] [--batch B] [--whoosh-procs P] [--workdir DIR]

1. Generates ``N`` synthetic documents (``bench.synth``: ~300 words on 1-3 pages, medical vocabulary,
   MRNs, types, dates) into an SQLite page store standing in for the catalog (untimed for indexing).
2. For each backend, indexes them in batches of ``B`` (one commit each; ``ingest.indexer`` commits 200
   at a time, the default), first up to 10,000 documents, then on to ``N``. At each size it reports
   indexing documents/s (time spent in ``backend.index`` only) and index size, then query latency
   p50/p95 over ``Q`` queries of 1-3 words (words of a sampled document, so queries find something),
   without and with an MRN filter, returning the top 10 with snippets (page text read from the store,
   as the service does) and facet counts; and the same word queries with one letter changed ("typo":
   mostly a miss, then the fuzzy "did you mean" retry), and the word queries again without facets.
3. Ratios tantivy/whoosh for every figure (docs/s above 1 and latencies below 1 mean tantivy wins).
   ``--whoosh-procs 2`` indexes whoosh batches with two processes (whoosh's ``MpWriter``).

``--docs 2000`` measures only that size (a quick check). The last line is a JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.synth import (
    ANATOMY,
    DIAGNOSES,
    DRUGS,
    FINDINGS,
    LABS,
    PROCEDURES,
    SEED,
    SPECIALTIES,
    SYMPTOMS,
    PageStore,
    generate_doc,
)
from chartvault.search import IndexDocument, SearchBackend, SearchQuery, open_backend
from chartvault.search.query import parse_user_query
from chartvault.search.whoosh_backend import WhooshBackend

SMALL_SIZE = 10_000
KINDS = ("whoosh", "tantivy")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]{3,}")
# Words a user would search for: clinical content, not connective prose.
QUERY_VOCAB = frozenset(
    word
    for phrase in (
        *DRUGS,
        *DIAGNOSES,
        *SYMPTOMS,
        *PROCEDURES,
        *FINDINGS,
        *ANATOMY,
        *SPECIALTIES,
        *(lab[0] for lab in LABS),
    )
    for word in _WORD.findall(phrase)
) - {"with", "without", "left", "right", "type", "stage", "percent", "small", "mild", "moderate", "acute"}


def make_queries(count: int, pool: int, seed: int, with_mrn: bool) -> list[tuple[str, str | None]]:
    """``count`` queries of 1-3 words taken from random documents among the first ``pool``.

    With ``with_mrn`` each query carries its document's MRN as a filter. Deterministic for a seed.
    """
    rng = random.Random(seed + (1 if with_mrn else 0))
    out: list[tuple[str, str | None]] = []
    while len(out) < count:
        doc = generate_doc(rng.randrange(pool), SEED)
        words = sorted({w.lower() for page in doc.pages for w in _WORD.findall(page)} & QUERY_VOCAB)
        if not words:
            continue
        k = min(len(words), rng.choices((1, 2, 3), weights=(40, 35, 25))[0])
        out.append((" ".join(rng.sample(words, k)), doc.mrn if with_mrn else None))
    return out


def misspell(queries: Sequence[tuple[str, str | None]], seed: int) -> list[tuple[str, str | None]]:
    """The same queries with one letter of one word changed, as OCR or a hurried typist would."""
    rng = random.Random(seed + 2)
    out: list[tuple[str, str | None]] = []
    for text, mrn in queries:
        words = text.split()
        i = rng.randrange(len(words))
        word = words[i]
        pos = rng.randrange(1, len(word) - 1)
        swap = "e" if word[pos] != "e" else "a"
        words[i] = word[:pos] + swap + word[pos + 1 :]
        out.append((" ".join(words), mrn))
    return out


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: a reported latency was actually observed)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def index_range(be: SearchBackend, store: PageStore, start: int, stop: int, batch: int, label: str) -> float:
    """Index documents ``start``..``stop-1`` in commits of ``batch``; seconds spent in ``index()``."""
    spent = 0.0
    pending: list[IndexDocument] = []
    last_report = time.perf_counter()
    done = start

    def flush() -> None:
        nonlocal spent, done, last_report
        t0 = time.perf_counter()
        be.index(pending)
        spent += time.perf_counter() - t0
        done += len(pending)
        pending.clear()
        now = time.perf_counter()
        if now - last_report > 10 or done == stop:
            rate = (done - start) / spent if spent else 0.0
            eta = (stop - done) / rate if rate else 0.0
            print(
                f"[{label}] indexed {done}/{stop} ({rate:.0f} docs/s, ~{eta / 60:.1f} min left)",
                file=sys.stderr,
                flush=True,
            )
            last_report = now

    for doc in store.docs(start, stop):
        pending.append(doc)
        if len(pending) >= batch:
            flush()
    if pending:
        flush()
    return spent


def run_queries(
    be: SearchBackend, store: PageStore, queries: Sequence[tuple[str, str | None]], facets: bool = True
) -> dict[str, float]:
    """Latency of each query (top 10 with snippets), query-parse cache cleared first."""
    parse_user_query.cache_clear()
    times: list[float] = []
    totals: list[int] = []
    suggested = 0
    for text, mrn in queries:
        t0 = time.perf_counter()
        q = SearchQuery(text=text, mrn=mrn, limit=10, with_facets=facets)
        results = be.search(q, load_pages=store.load_pages)
        times.append(time.perf_counter() - t0)
        totals.append(results.total)
        suggested += results.suggestion is not None
    return {
        "p50_ms": round(percentile(times, 50) * 1000, 2),
        "p95_ms": round(percentile(times, 95) * 1000, 2),
        "mean_total": round(sum(totals) / len(totals), 1),
        "no_hits": sum(1 for t in totals if t == 0),
        "suggested": suggested,
    }


def open_kind(kind: str, root: Path, whoosh_procs: int) -> SearchBackend:
    if kind == "whoosh":
        return WhooshBackend(root / kind, procs=whoosh_procs, multisegment=whoosh_procs > 1)
    return open_backend(kind, root)


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=100_000, help="largest archive size (default 100000)")
    ap.add_argument("--queries", type=int, default=200, help="queries per kind (default 200)")
    ap.add_argument(
        "--batch", type=int, default=200, help="documents per commit (default 200, as ingest.indexer does)"
    )
    ap.add_argument("--whoosh-procs", type=int, default=1, help="whoosh writer processes (default 1)")
    ap.add_argument("--workdir", type=Path, help="keep store and indexes here (default: temp, removed)")
    args = ap.parse_args(argv)
    if args.docs < 1 or args.queries < 1 or args.batch < 1:
        ap.error("--docs, --queries and --batch must be positive")

    sizes = sorted({min(SMALL_SIZE, args.docs), args.docs})
    work = args.workdir or Path(tempfile.mkdtemp(prefix="cv-search-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {
        "docs": args.docs,
        "sizes": sizes,
        "batch": args.batch,
        "queries": args.queries,
        "whoosh_procs": args.whoosh_procs,
    }
    store = PageStore(work / "pages.sqlite")
    try:
        t0 = time.perf_counter()
        before = len(store)
        store.fill(args.docs)
        if len(store) > before:
            figures["generate_docs_per_s"] = round((len(store) - before) / (time.perf_counter() - t0))
        figures["store_mb"] = round((work / "pages.sqlite").stat().st_size / 1e6, 1)
        pool = sizes[0]  # sampled among documents present at every size: same queries throughout
        plain = make_queries(args.queries, pool, SEED, with_mrn=False)
        with_mrn = make_queries(args.queries, pool, SEED, with_mrn=True)
        typos = misspell(plain, SEED)  # mostly the "did you mean" path: a miss, then a fuzzy retry
        warmup = make_queries(10, pool, SEED + 99, with_mrn=False)

        per_size: dict[str, dict[str, Any]] = {str(size): {} for size in sizes}
        for kind in KINDS:
            root = work / "index"
            shutil.rmtree(root / kind, ignore_errors=True)
            be = open_kind(kind, root, args.whoosh_procs)
            try:
                indexed, spent_total = 0, 0.0
                for size in sizes:
                    spent = index_range(be, store, indexed, size, args.batch, f"{kind} {size}")
                    spent_total += spent
                    stage_docs, indexed = size - indexed, size
                    run_queries(be, store, warmup)
                    row: dict[str, Any] = {
                        "index_docs_per_s": round(stage_docs / spent, 1) if spent else None,
                        "index_docs_per_s_cumulative": round(size / spent_total, 1) if spent_total else None,
                        "index_mb": round(dir_bytes(root / kind) / 1e6, 2),
                    }
                    passes = (
                        ("text", plain, True),
                        ("text_mrn", with_mrn, True),
                        ("typo", typos, True),
                        ("text_nofacets", plain, False),  # what counting every match costs
                    )
                    for name, queries, facets in passes:
                        for key, value in run_queries(be, store, queries, facets).items():
                            row[f"{name}_{key}"] = value
                    per_size[str(size)][kind] = row
                    print(f"[{kind} {size}] {json.dumps(row)}", file=sys.stderr, flush=True)
            finally:
                be.close()
        for row in per_size.values():
            w, t = row["whoosh"], row["tantivy"]
            row["tantivy_over_whoosh"] = {
                key: ratio(t[key], w[key])
                for key in (
                    "index_docs_per_s",
                    "index_mb",
                    "text_p50_ms",
                    "text_p95_ms",
                    "text_mrn_p50_ms",
                    "text_mrn_p95_ms",
                    "typo_p50_ms",
                    "typo_p95_ms",
                    "text_nofacets_p50_ms",
                    "text_nofacets_p95_ms",
                )
                if t[key] is not None and w[key] is not None
            }
            # Both engines hold the same terms, so they must agree on how many documents match.
            keys = ("text_mean_total", "text_mrn_mean_total", "typo_mean_total", "typo_suggested")
            row["same_totals"] = all(w[key] == t[key] for key in keys)
        figures["results"] = per_size
    finally:
        store.close()
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    for size, row in figures["results"].items():
        r = row["tantivy_over_whoosh"]
        print(
            f"{size} docs: "
            + ", ".join(
                f"{kind} {row[kind]['index_docs_per_s']} docs/s {row[kind]['index_mb']} MB "
                f"p50/p95 {row[kind]['text_p50_ms']}/{row[kind]['text_p95_ms']} ms "
                f"(+MRN {row[kind]['text_mrn_p50_ms']}/{row[kind]['text_mrn_p95_ms']} ms)"
                for kind in KINDS
            )
            + f"; tantivy/whoosh {json.dumps(r)}"
        )
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
