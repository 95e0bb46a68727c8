"""Search backends compared on a synthetic archive, both in the same run.

    python -m bench.search [--docs 10000,100000] [--queries Q] [--batch B] [--kinds whoosh,tantivy]
                           [--whoosh-procs P] [--workdir DIR]

1. Generates the largest ``--docs`` size of synthetic documents (``bench.synth``: ~300 words on 1-3
   pages, medical vocabulary, MRNs, encounters, types, dates) into an SQLite page store standing in for
   the catalog (untimed).
2. For each backend, bulk-loads them as ``chartvault reindex`` does (commits of ``B`` documents, then
   one merge), first up to the first size, then on to the next. At each size it reports indexing
   documents/s (time in ``backend.index`` and ``optimize``) and index size; query latency p50/p95 over
   ``Q`` queries of 1-3 words (words of a sampled document, so queries find something), without and
   with an MRN filter, returning the top 10 with highlighted snippets (page text read from the store,
   as the service does) and facet counts; the same words with one letter changed ("typo": mostly a
   miss, then the fuzzy "did you mean" retry); the word queries without facets; patient timelines
   (``Q`` MRNs); "more like this" (``Q/10`` documents); and incremental indexing as the live queue
   does it (1,000 documents upserted in commits of 200).
3. Ratios tantivy/whoosh for every figure (docs/s above 1 and latencies below 1 mean tantivy wins),
   and each backend against the goals at the largest size: p95 <= 20 ms with highlights, timeline
   p95 <= 10 ms, indexing >= 2,000 docs/s.

Tables first; the last line is one JSON object with every figure.
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
    mrn_of,
)
from chartvault.search import IndexDocument, SearchBackend, SearchQuery
from chartvault.search.lifecycle import open_at
from chartvault.search.query import parse_user_query
from chartvault.search.whoosh_backend import WhooshBackend

GOALS = {"text_p95_ms": 20.0, "timeline_p95_ms": 10.0, "index_docs_per_s": 2000.0}
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


def index_range(
    be: SearchBackend, store: PageStore, start: int, stop: int, batch: int, label: str, merge: bool = False
) -> float:
    """Index documents ``start``..``stop-1`` in commits of ``batch``; seconds spent in ``index()``."""
    spent = 0.0
    pending: list[IndexDocument] = []
    last_report = time.perf_counter()
    done = start

    def flush() -> None:
        nonlocal spent, done, last_report
        t0 = time.perf_counter()
        be.index(pending, merge=merge)
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


def run_timelines(be: SearchBackend, mrns: Sequence[str]) -> dict[str, float]:
    """Latency of a patient timeline (every document of one MRN, in date order)."""
    times: list[float] = []
    sizes: list[int] = []
    for mrn in mrns:
        t0 = time.perf_counter()
        entries = be.timeline(mrn)
        times.append(time.perf_counter() - t0)
        sizes.append(len(entries))
    return {
        "p50_ms": round(percentile(times, 50) * 1000, 2),
        "p95_ms": round(percentile(times, 95) * 1000, 2),
        "mean_docs": round(sum(sizes) / len(sizes), 1),
        "max_docs": max(sizes),
    }


def run_similar(be: SearchBackend, store: PageStore, doc_ids: Sequence[str]) -> dict[str, float]:
    """Latency of "more like this" (top 10), page text read from the store as the service does."""
    times: list[float] = []
    for doc_id in doc_ids:
        t0 = time.perf_counter()
        be.more_like_this(doc_id, store.load_pages(doc_id), 10)
        times.append(time.perf_counter() - t0)
    return {
        "p50_ms": round(percentile(times, 50) * 1000, 2),
        "p95_ms": round(percentile(times, 95) * 1000, 2),
    }


def open_kind(kind: str, root: Path, whoosh_procs: int) -> SearchBackend:
    if kind == "whoosh":
        return WhooshBackend(root / kind, procs=whoosh_procs, multisegment=whoosh_procs > 1)
    return open_at(kind, root / kind)


def table(rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-markdown table (first row is the header)."""
    lines = ["| " + " | ".join(str(c) for c in rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join("-" if c is None else str(c) for c in row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def parse_sizes(text: str) -> list[int]:
    """``10000,100000`` -> [10000, 100000] (sorted, unique, positive)."""
    try:
        sizes = sorted({int(part.replace("_", "")) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError("--docs: sizes as integers, comma-separated") from None
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError("--docs: sizes must be positive")
    return sizes


RATIO_KEYS = (
    "index_docs_per_s",
    "incremental_docs_per_s",
    "index_mb",
    "text_p50_ms",
    "text_p95_ms",
    "text_mrn_p50_ms",
    "text_mrn_p95_ms",
    "typo_p50_ms",
    "typo_p95_ms",
    "text_nofacets_p50_ms",
    "text_nofacets_p95_ms",
    "timeline_p50_ms",
    "timeline_p95_ms",
    "similar_p50_ms",
    "similar_p95_ms",
)


def measure_size(
    be: SearchBackend,
    kind: str,
    root: Path,
    store: PageStore,
    size: int,
    indexed: int,
    args: argparse.Namespace,
    workload: dict[str, Any],
) -> dict[str, Any]:
    """Bulk-load up to ``size``, merge, then every latency figure, then incremental upserts."""
    spent = index_range(be, store, indexed, size, args.batch, f"{kind} {size}")
    t0 = time.perf_counter()
    be.optimize()
    merge_s = time.perf_counter() - t0
    stage_docs = size - indexed
    run_queries(be, store, workload["warmup"])
    row: dict[str, Any] = {
        "index_docs_per_s": round(stage_docs / (spent + merge_s), 1),
        "index_s": round(spent + merge_s, 1),
        "merge_s": round(merge_s, 1),
        "index_mb": round(dir_bytes(root / kind) / 1e6, 2),
    }
    passes = (
        ("text", workload["plain"], True),
        ("text_mrn", workload["with_mrn"], True),
        ("typo", workload["typos"], True),
        ("text_nofacets", workload["plain"], False),  # what counting every match costs
    )
    for name, queries, facets in passes:
        for key, value in run_queries(be, store, queries, facets).items():
            row[f"{name}_{key}"] = value
    for key, value in run_timelines(be, workload["mrns"]).items():
        row[f"timeline_{key}"] = value
    for key, value in run_similar(be, store, workload["similar"]).items():
        row[f"similar_{key}"] = value
    # The live queue: upserts of documents already indexed, 200 per commit (ingest.indexer's size).
    upserts = min(1_000, size)
    t0 = time.perf_counter()
    index_range(be, store, 0, upserts, 200, f"{kind} {size} upserts", merge=True)
    row["incremental_docs_per_s"] = round(upserts / (time.perf_counter() - t0), 1)
    return row


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--docs", type=parse_sizes, default=[10_000, 100_000], help="archive sizes (default 10000,100000)"
    )
    ap.add_argument("--queries", type=int, default=200, help="queries per kind (default 200)")
    ap.add_argument("--batch", type=int, default=1000, help="documents per bulk commit (default 1000)")
    ap.add_argument("--whoosh-procs", type=int, default=1, help="whoosh writer processes (default 1)")
    ap.add_argument("--kinds", default=",".join(KINDS), help="backends to measure (default both)")
    ap.add_argument("--workdir", type=Path, help="keep store and indexes here (default: temp, removed)")
    args = ap.parse_args(argv)
    if args.queries < 1 or args.batch < 1:
        ap.error("--queries and --batch must be positive")
    kinds = [k for k in args.kinds.split(",") if k]
    sizes: list[int] = args.docs
    work = args.workdir or Path(tempfile.mkdtemp(prefix="cv-search-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {
        "sizes": sizes,
        "batch": args.batch,
        "queries": args.queries,
        "whoosh_procs": args.whoosh_procs,
        "goals": GOALS,
    }
    store = PageStore(work / "pages.sqlite")
    try:
        t0 = time.perf_counter()
        before = len(store)
        store.fill(sizes[-1])
        if len(store) > before:
            figures["generate_docs_per_s"] = round((len(store) - before) / (time.perf_counter() - t0))
        figures["store_mb"] = round((work / "pages.sqlite").stat().st_size / 1e6, 1)
        pool = sizes[0]  # sampled among documents present at every size: same queries throughout
        plain = make_queries(args.queries, pool, SEED, with_mrn=False)
        rng = random.Random(SEED + 7)
        workload = {
            "plain": plain,
            "with_mrn": make_queries(args.queries, pool, SEED, with_mrn=True),
            "typos": misspell(plain, SEED),  # mostly the "did you mean" path: a miss, then a fuzzy retry
            "warmup": make_queries(10, pool, SEED + 99, with_mrn=False),
            "mrns": [generate_doc(rng.randrange(pool), SEED).mrn or mrn_of(0) for _ in range(args.queries)],
            "similar": [f"syn-{rng.randrange(pool):07d}" for _ in range(max(1, args.queries // 10))],
        }

        per_size: dict[str, dict[str, Any]] = {str(size): {} for size in sizes}
        for kind in kinds:
            root = work / "index"
            shutil.rmtree(root / kind, ignore_errors=True)
            be = open_kind(kind, root, args.whoosh_procs)
            try:
                indexed = 0
                for size in sizes:
                    row = measure_size(be, kind, root, store, size, indexed, args, workload)
                    indexed = size
                    per_size[str(size)][kind] = row
                    print(f"[{kind} {size}] {json.dumps(row)}", file=sys.stderr, flush=True)
            finally:
                be.close()
        for row in per_size.values():
            if not all(kind in row for kind in KINDS):
                continue
            w, t = row["whoosh"], row["tantivy"]
            row["tantivy_over_whoosh"] = {
                key: ratio(t[key], w[key]) for key in RATIO_KEYS if t.get(key) is not None and w.get(key)
            }
            # Both engines hold the same terms, so they must agree on how many documents match.
            keys = ("text_mean_total", "text_mrn_mean_total", "typo_mean_total", "typo_suggested")
            row["same_totals"] = all(w[key] == t[key] for key in keys)
        largest = per_size[str(sizes[-1])]
        figures["goals_at_largest"] = {
            kind: {
                "text_p95_ms": largest[kind]["text_p95_ms"] <= GOALS["text_p95_ms"],
                "timeline_p95_ms": largest[kind]["timeline_p95_ms"] <= GOALS["timeline_p95_ms"],
                "index_docs_per_s": largest[kind]["index_docs_per_s"] >= GOALS["index_docs_per_s"],
            }
            for kind in kinds
        }
        figures["results"] = per_size
    finally:
        store.close()
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    print_tables(figures, kinds)
    print(json.dumps(figures))
    return figures


def print_tables(figures: dict[str, Any], kinds: Sequence[str]) -> None:
    """One table per size: each backend's figures side by side, with the ratio."""
    labels = (
        ("index_docs_per_s", "bulk indexing, docs/s (incl. merge)"),
        ("incremental_docs_per_s", "incremental upserts, docs/s (200/commit)"),
        ("index_mb", "index size, MB"),
        ("text_p50_ms", "query p50, ms (top 10, highlights, facets)"),
        ("text_p95_ms", "query p95, ms (top 10, highlights, facets)"),
        ("text_mrn_p50_ms", "query + MRN filter p50, ms"),
        ("text_mrn_p95_ms", "query + MRN filter p95, ms"),
        ("text_nofacets_p95_ms", "query p95 without facets, ms"),
        ("typo_p95_ms", "typo (did-you-mean) p95, ms"),
        ("timeline_p50_ms", "timeline p50, ms"),
        ("timeline_p95_ms", "timeline p95, ms"),
        ("similar_p95_ms", "more-like-this p95, ms"),
    )
    for size, row in figures["results"].items():
        header = ["figure", *kinds] + (["tantivy/whoosh"] if "tantivy_over_whoosh" in row else [])
        rows: list[list[object]] = [header]
        for key, label in labels:
            line: list[object] = [label, *(row[kind].get(key) for kind in kinds)]
            if "tantivy_over_whoosh" in row:
                line.append(row["tantivy_over_whoosh"].get(key))
            rows.append(line)
        print(f"\n{int(size):,} documents")
        print(table(rows))
    print("\ngoals at the largest size (p95 <= 20 ms, timeline p95 <= 10 ms, >= 2,000 docs/s):")
    for kind, met in figures["goals_at_largest"].items():
        print(f"  {kind}: " + ", ".join(f"{key} {'met' if ok else 'MISSED'}" for key, ok in met.items()))


if __name__ == "__main__":
    main()
