"""Character error per scan tier, and CPU per page by stage, at each recognition resolution and engine.

    python -m bench.resolution [--dpi 200,300] [--engines tesserocr] [--limit N] [--workers W]
                               [--preprocess on|off]

Every scanned page of ``../shared/corpus`` (or of the first N files, format mix kept) goes through
``chartvault.ocr.pages.scan_page`` (the function OCR workers run, barcodes included) in W worker
processes, once per (engine, dpi): grey pages finer than that dpi reduced to it (PDF pages rendered at
300 first), two-level pages (1-bit, fax) read as they are. Printed:
CER / WER overall, per tier and per format (``bench.quality``'s Levenshtein), and CPU seconds per page
by stage, as the page reader measured them (tesseract child processes included). What it is for:
choosing ``CHARTVAULT_OCR_DPI`` and ``CHARTVAULT_OCR_ENGINE`` on evidence. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import load_manifest, timed
from bench.quality import TIERS, pct, score_ocr, select_entries

KINDS = {"png": "png", "jpeg": "jpeg", "tiff_g4": "tiff", "pdf_image": "pdf"}


def _init() -> None:
    os.environ["OMP_THREAD_LIMIT"] = "1"


def read_one(path: str, kind: str, page_no: int, options: Any, tmp: str) -> tuple[str, dict[str, int]]:
    """One page through the worker's page reader: (text, CPU ms by stage)."""
    from chartvault.filetypes import FileKind
    from chartvault.ocr.pages import scan_page

    with tempfile.TemporaryDirectory(dir=tmp) as work:
        scan = scan_page(Path(path), FileKind(kind), page_no, options, Path(work), barcodes=True)
    return scan.page.text, scan.page.cpu_ms


def run(entries: list[dict], options: Any, workers: int, tmp: str) -> tuple[float, dict, dict[str, float]]:
    """(wall seconds, text per (file name, page), CPU seconds summed by stage) of one configuration."""
    jobs = [(e, n) for e in entries for n in range(1, e["page_count"] + 1)]
    ctx = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init) as pool:
        pool.submit(int, 0).result()  # workers started outside the timing
        with timed() as t:
            futures = [
                pool.submit(read_one, str(e["file"]), KINDS[e["format"]], n, options, tmp) for e, n in jobs
            ]
            results = [f.result() for f in futures]
    texts: dict[tuple[str, int], str] = {}
    stages: dict[str, float] = {}
    for (e, n), (text, cpu_ms) in zip(jobs, results, strict=True):
        texts[(e["file"].name, n)] = text
        for stage, ms in cpu_ms.items():
            stages[stage] = stages.get(stage, 0.0) + ms / 1000
    return t["s"], texts, stages


def main() -> None:
    from chartvault.ocr.types import OcrOptions

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dpi", default="200,300", help="Comma-separated grey-page resolutions (0: as scanned).")
    ap.add_argument("--engines", default="tesserocr", help="Comma-separated: tesserocr, pytesseract.")
    ap.add_argument("--limit", type=int, default=0, help="Files to use (0 = all scanned), format mix kept.")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--preprocess", choices=("on", "off"), default="on")
    args = ap.parse_args()

    scanned = [e for e in load_manifest() if e["kind"] == "synthetic_scan"]
    entries = select_entries(scanned, args.limit)
    n_pages = sum(e["page_count"] for e in entries)
    configs = [(eng, int(d)) for eng in args.engines.split(",") for d in args.dpi.split(",")]
    print(f"{len(entries)} files, {n_pages} pages, {args.workers} processes, preprocess {args.preprocess}")
    results: dict[str, Any] = {"files": len(entries), "pages": n_pages, "workers": args.workers, "runs": {}}
    with tempfile.TemporaryDirectory(prefix="cv-res-") as tmp:
        for engine, dpi in configs:
            options = OcrOptions(grey_dpi=dpi, engine=engine, preprocess=args.preprocess == "on")
            secs, texts, stages = run(entries, options, args.workers, tmp)
            ocr = score_ocr(entries, texts)
            name = f"{engine}@{dpi}"
            results["runs"][name] = {
                "pages_per_s": round(n_pages / secs, 3),
                "cpu_s_per_page": {k: round(v / n_pages, 3) for k, v in sorted(stages.items())},
                "cpu_s_per_page_total": round(sum(stages.values()) / n_pages, 3),
                "ocr": ocr,
            }
            total = sum(stages.values()) / n_pages
            print(f"  {name:16s} {n_pages / secs:6.3f} pages/s  CPU {total:.3f} s/page")
            cers = ", ".join(f"{g.split(':')[-1]} {pct(ocr[g]['cer'])}" for g in _groups(ocr))
            print(f"  {'':16s} CER {cers}")
            by_stage = ", ".join(f"{k} {v / n_pages:.3f}" for k, v in sorted(stages.items()))
            print(f"  {'':16s} CPU s/page {by_stage}")
    print(json.dumps(results))


def _groups(ocr: dict[str, Any]) -> list[str]:
    wanted = ["all", *(f"tier:{t}" for t in TIERS), *sorted(g for g in ocr if g.startswith("format:"))]
    return [g for g in wanted if g in ocr]


if __name__ == "__main__":
    main()
