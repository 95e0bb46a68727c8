"""ChartVault end to end against bare tesseract and OCRmyPDF, on the same pages in the same run.

    python -m bench.pipeline [--files N] [--workers W] [--chunks C] [--born-digital-pages P]
                             [--no-ocrmypdf]

1. Scanned pages (PNG, JPEG, G4 TIFF, image-only PDF) of ``../shared/corpus``, three sides, chunk by
   chunk in rotating order (so a burst of outside load lands on every side), each with W processes:

   * **bare tesseract**: ``tesseract IMAGE stdout`` W at a time (``OMP_THREAD_LIMIT=1``), TIFF frames and
     PDF pages pre-extracted to image files *outside* its timing (generous to the baseline);
   * **ChartVault**: the same files ingested end to end (staging, sniffing, OCR, barcodes, identifiers,
     classification, archive, index) with W workers and the default settings (preprocessing on);
   * **OCRmyPDF**: ``ocrmypdf -j W --sidecar`` on one image PDF of the chunk's pages (lossless, made
     outside its timing), its defaults otherwise (PDF/A output).

   Printed: pages/s and the ratio of each to bare tesseract; CER / WER of each against the ground
   truth, overall, per scan tier and per format (``bench.quality``'s Levenshtein); and ChartVault's CPU
   seconds per page by stage (worker stages as the page reader timed them, tesseract included; the
   driver's by wrapping its methods here; sniff re-run in this process on the same files), and the
   searchable-PDF rendition stage's CPU per page against tesseract's (goal: at most 10 %).
2. Born-digital pages: PDFs with a real text layer (built here from the corpus ground-truth text)
   ingested end to end; pages/s (goal >= 20).

Goals: ChartVault >= 1.0x bare tesseract's pages/s with preprocessing on; its fax-tier CER at
least 20 % below bare tesseract's. The last line is a JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from bench.common import load_manifest, timed
from bench.quality import (
    TIERS,
    Side,
    bare_tesseract,
    catalog_rows,
    extract_pages,
    pct,
    score_ocr,
    select_entries,
    side_cpu,
)

SCANNED = ("png", "jpeg", "tiff_g4", "pdf_image")
SIDES = ("bare", "chartvault", "ocrmypdf")
# The stages of ChartVault's CPU table, in the order a page goes through them.
STAGES = (
    "staging",
    "sniff",
    "decode",
    "preprocess",
    "ocr",
    "labels",
    "blank",
    "barcodes",
    "identifiers",
    "page results",
    "classify",
    "archive",
    "rendition",
    "index",
)


# ------------------------------------------------------------------------------------ ChartVault side


def open_services(data: Path, workers: int):  # -> Services, imported late (forkserver workers)
    """ChartVault's services with the workers started and the classifier loaded, outside any timing (as
    the baseline's tesseract needs no warm-up either)."""
    from chartvault.config import Settings
    from chartvault.services import Caller, Services

    services = Services(Settings(data_dir=data, workers=workers, _env_file=None), Caller("bench"))
    services.parts.executor.start()
    services.parts.classifier.current()
    return services


def chartvault_ingest(services: Any, files: list[Path]) -> tuple[float, str]:
    """Ingest ``files`` as one batch, end to end through indexing; (seconds, batch id).

    The one place this benchmark drives ChartVault's ingest.
    """
    with timed() as t:
        summary = services.intake.ingest(files, source="cli", station="bench")
    return t["s"], summary.batch_id


def worker_side(services: Any) -> Side:
    """ChartVault's worker processes, for ``side_cpu``."""
    return Side(
        ingest=lambda files: chartvault_ingest(services, files),
        rows=lambda ids: {},
        worker_pids=services.parts.executor.worker_pids,
    )


class StageMeter:
    """CPU seconds by stage of ChartVault runs, without changing the service.

    The driver's steps are timed by wrapping the services' methods on these instances, and the
    pipeline's file stages in its list (exclusive time: a step's nested steps are not counted twice);
    the workers' steps come back with each page (``PageText.cpu_ms``, read as the driver receives it).
    """

    DRIVER: ClassVar[dict[str, tuple[str, ...]]] = {
        "staging": ("intake", "_take"),
        "page results": ("parts", "pipeline", "_on_page"),
        "index": ("parts", "indexer", "run_once"),
    }
    # The pipeline's file stages, by the column they are counted in.
    FILE_STAGES: ClassVar[dict[str, str]] = {
        "segment": "classify",
        "classify": "classify",
        "identify": "classify",
        "archive": "archive",
        "rendition": "rendition",
        "enqueue": "archive",
    }

    def __init__(self, services: Any) -> None:
        from chartvault.ingest import pipeline

        self.seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self._stack: list[float] = []  # CPU of nested steps, per open step
        for stage, path in self.DRIVER.items():
            owner = services
            for name in path[:-1]:
                owner = getattr(owner, name)
            setattr(owner, path[-1], self._timed(stage, getattr(owner, path[-1])))
        pipeline.FILE_STAGES = tuple(
            self._timed(self.FILE_STAGES[fn.__name__], fn) for fn in pipeline.FILE_STAGES
        )

    def _timed(self, stage: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def step(*args: Any, **kwargs: Any) -> Any:
            for arg in args:  # a page's outcome from a worker carries the worker's own timings
                for name, ms in (getattr(getattr(arg, "page", None), "cpu_ms", None) or {}).items():
                    self.seconds[name] = self.seconds.get(name, 0.0) + ms / 1000
            self._stack.append(0.0)
            start = time.thread_time()
            try:
                return real(*args, **kwargs)
            finally:
                spent = time.thread_time() - start
                nested = self._stack.pop()
                self.seconds[stage] += spent - nested
                if self._stack:
                    self._stack[-1] += spent

        return step

    def sniff(self, files: list[Path], limits: Any) -> None:
        """Sniffing runs in the workers and reports no time: the same files sniffed again here."""
        from chartvault.ingest.sniff import sniff

        start = time.thread_time()
        for f in files:
            sniff(f, limits)
        self.seconds["sniff"] += time.thread_time() - start


# ------------------------------------------------------------------------------------ OCRmyPDF side


def image_pdf(chunk: list[dict], out: Path) -> list[tuple[str, int]]:
    """One lossless image PDF of every scanned page of the chunk; the (file name, page) of each page."""
    import img2pdf
    import pikepdf

    merged = pikepdf.new()
    order: list[tuple[str, int]] = []
    for e in chunk:
        src: Path = e["file"]
        data = src.read_bytes() if e["format"] == "pdf_image" else img2pdf.convert(str(src))
        with pikepdf.open(_bytes_io(data)) as part:
            merged.pages.extend(part.pages)
        order += [(src.name, n) for n in range(1, e["page_count"] + 1)]
    merged.save(out)
    return order


def _bytes_io(data: bytes):  # -> io.BytesIO
    import io

    return io.BytesIO(data)


def ocrmypdf(chunk: list[dict], workers: int, tmp: Path) -> tuple[float, dict[tuple[str, int], str]]:
    """``ocrmypdf -j W`` over the chunk's pages; (seconds, text per page from its sidecar)."""
    pdf_in, pdf_out, sidecar = tmp / "ocrmypdf-in.pdf", tmp / "ocrmypdf-out.pdf", tmp / "ocrmypdf.txt"
    order = image_pdf(chunk, pdf_in)
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    cmd = [_ocrmypdf_cmd(), "-q", "-j", str(workers), "--sidecar", str(sidecar), str(pdf_in), str(pdf_out)]
    with timed() as t:
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    pages = sidecar.read_text().split("\f")
    return t["s"], {key: pages[i] if i < len(pages) else "" for i, key in enumerate(order)}


def _ocrmypdf_cmd() -> str:
    import sys

    beside = Path(sys.executable).with_name("ocrmypdf")
    return str(beside) if beside.exists() else (shutil.which("ocrmypdf") or "ocrmypdf")


def has_ocrmypdf() -> bool:
    try:
        subprocess.run([_ocrmypdf_cmd(), "--version"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return False
    return True


# ------------------------------------------------------------------------------------ the run


def scanned_entries(files: int) -> list[dict]:
    entries = [e for e in load_manifest() if e["format"] in SCANNED]
    return select_entries(entries, files)


def run_scanned(entries: list[dict], workers: int, chunks: int, sides: tuple[str, ...], tmpd: Path) -> dict:
    """Every side over every chunk; seconds, CPU seconds and page texts per side, ChartVault's stages."""
    seconds = dict.fromkeys(sides, 0.0)
    cpu = dict.fromkeys(sides, 0.0)
    texts: dict[str, dict[tuple[str, int], str]] = {s: {} for s in sides}
    batches: list[str] = []
    services = open_services(tmpd / "data", workers)
    ours = worker_side(services)
    meter = StageMeter(services)
    try:
        for k in range(chunks):
            chunk = entries[k::chunks]
            pages = extract_pages(chunk, tmpd / "pages")
            for side in sides[k % len(sides) :] + sides[: k % len(sides)]:
                cpu0 = side_cpu(ours if side == "chartvault" else None)
                if side == "bare":
                    secs, got = bare_tesseract(pages, workers)
                    texts["bare"].update(got)
                elif side == "ocrmypdf":
                    secs, got = ocrmypdf(chunk, workers, tmpd)
                    texts["ocrmypdf"].update(got)
                else:
                    secs, batch = chartvault_ingest(services, [e["file"] for e in chunk])
                    batches.append(batch)
                cpu[side] += side_cpu(ours if side == "chartvault" else None) - cpu0
                seconds[side] += secs
            meter.sniff([e["file"] for e in chunk], services.parts.pipeline.options.limits)
            print(f"  chunk {k + 1}/{chunks}: " + ", ".join(f"{s} {seconds[s]:6.1f} s" for s in sides))
        rows = catalog_rows(services.parts.sessions, batches)
    finally:
        services.close()
    texts["chartvault"] = {(n, no): p["text"] for n, r in rows.items() for no, p in r["pages"].items()}
    return {"seconds": seconds, "cpu": cpu, "texts": texts, "stages": meter.seconds, "rows": rows}


def report_scanned(entries: list[dict], run: dict, n_pages: int) -> dict[str, Any]:
    seconds, cpu, stages = run["seconds"], run["cpu"], run["stages"]
    out: dict[str, Any] = {"pages_per_s": {}, "ratio_to_bare": {}, "cpu_s_per_page": {}, "ocr": {}}
    print(f"\n  {'side':16s} {'seconds':>8} {'pages/s':>8} {'ratio':>6} {'CPU s/page':>10}")
    for side, secs in seconds.items():
        ratio = seconds["bare"] / secs
        out["pages_per_s"][side] = round(n_pages / secs, 3)
        out["ratio_to_bare"][side] = round(ratio, 3)
        out["cpu_s_per_page"][side] = round(cpu[side] / n_pages, 3)
        print(f"  {side:16s} {secs:8.1f} {n_pages / secs:8.3f} {ratio:6.3f} {cpu[side] / n_pages:10.3f}")
    for side, texts in run["texts"].items():
        out["ocr"][side] = score_ocr(entries, texts)
    print_cer(out["ocr"])
    out["chartvault_stages_cpu_s_per_page"] = stage_table(stages, cpu.get("chartvault", 0.0), n_pages)
    out["rendition"] = rendition_cost(stages, n_pages)
    fax_ok = fax_check(out["ocr"])
    out["fax_cer_below_bare_by_20pct"] = fax_ok
    archived = sum(1 for r in run["rows"].values() if r["status"] == "archived")
    out["files_archived"] = archived
    print(f"\n  ChartVault archived {archived} of {len(entries)} files")
    return out


def print_cer(ocr: dict[str, dict[str, Any]]) -> None:
    groups = ["all", *(f"tier:{t}" for t in TIERS), *(f"format:{f}" for f in SCANNED)]
    print("\n  CER / WER on the same pages (whitespace-normalised, micro-averaged)")
    print(f"  {'group':18s} {'pages':>5} " + " ".join(f"{s:>17}" for s in ocr))
    for g in groups:
        rows = [s.get(g) for s in ocr.values()]
        if not any(rows):
            continue
        pages = max(r["pages"] for r in rows if r)
        cells = [f"{pct(r['cer'])} / {pct(r['wer'])}" if r else "-" for r in rows]
        print(f"  {g:18s} {pages:5d} " + " ".join(f"{c:>17}" for c in cells))


def stage_table(stages: dict[str, float], total_cpu: float, n_pages: int) -> dict[str, float]:
    """ChartVault's CPU seconds per page by stage, the rest of its CPU as 'other'."""
    known = sum(stages.values())
    table = {k: round(v / n_pages, 3) for k, v in stages.items()}
    # Sniff was re-run outside the side's CPU count: it is not part of `total_cpu`.
    table["other (scheduling, catalog, workers' idle)"] = round(
        (total_cpu - (known - stages.get("sniff", 0.0))) / n_pages, 3
    )
    print("\n  ChartVault CPU s per page by stage (workers' stages include their tesseract)")
    for k, v in table.items():
        print(f"    {k:44s} {v:6.3f}")
    return table


def rendition_cost(stages: dict[str, float], n_pages: int) -> dict[str, float | None]:
    """The searchable-PDF stage's CPU per page against OCR's (goal: at most 10 % of tesseract's)."""
    rendition, ocr = stages.get("rendition", 0.0), stages.get("ocr", 0.0)
    reading = sum(stages.get(k, 0.0) for k in ("decode", "preprocess", "ocr", "blank", "barcodes"))
    out = {
        "cpu_ms_per_page": round(1000 * rendition / n_pages, 1),
        "ocr_cpu_ms_per_page": round(1000 * ocr / n_pages, 1),
        "ratio_to_ocr": round(rendition / ocr, 4) if ocr else None,
        "ratio_to_page_reading": round(rendition / reading, 4) if reading else None,
    }
    print(
        f"\n  rendition: {out['cpu_ms_per_page']} ms CPU per page, {out['ratio_to_ocr']} of tesseract's "
        f"({out['ocr_cpu_ms_per_page']} ms; goal <= 0.10), {out['ratio_to_page_reading']} of the whole "
        "page reading (decode, preprocess, ocr, blank, barcodes)"
    )
    return out


def fax_check(ocr: dict[str, dict[str, Any]]) -> bool | None:
    bare = (ocr["bare"].get("tier:fax") or {}).get("cer")
    ours = (ocr["chartvault"].get("tier:fax") or {}).get("cer")
    if not bare or ours is None:
        return None
    ok = ours <= 0.8 * bare
    print(f"\n  fax tier CER: ChartVault {pct(ours)} vs bare {pct(bare)}: {ours / bare:.2f}x (goal <= 0.80x)")
    return ok


def found_by_mrn(data: Path, entries: list[dict]) -> int:
    """How many corpus documents ``chartvault search --mrn <their MRN>`` finds (after ingest)."""
    from sqlalchemy import select

    from chartvault.archive.models import BatchFile, Document
    from chartvault.config import Settings
    from chartvault.search.types import SearchQuery
    from chartvault.services import Caller, Services

    found = 0
    with Services(Settings(data_dir=data, _env_file=None), Caller("bench")) as services:
        with services.parts.sessions() as s:
            docs = s.execute(select(Document.id, Document.file_id, Document.first_page)).all()
            names = dict(s.execute(select(BatchFile.id, BatchFile.original_name)).all())
        # A file's first document (a file split at cover sheets has several).
        first = sorted(docs, key=lambda d: -d.first_page)
        doc_of = {Path(names[d.file_id]).name: d.id for d in first}
        for e in entries:
            hits = services.search.search(SearchQuery(mrn=e["patient"]["mrn"], limit=50)).hits
            found += doc_of.get(e["file"].name) in {h.document_id for h in hits}
    return found


def born_digital_pdfs(entries: list[dict], pages: int, out: Path) -> list[Path]:
    """Distinct text-layer PDFs (2 pages each) from the corpus ground truth, so none is a duplicate."""
    from reportlab.lib.pagesizes import letter
    from reportlab.pdfgen import canvas

    texts = [p["text"] for e in entries for p in e["pages"]]
    files = []
    for n in range(0, pages, 2):
        path = out / f"born-{n:05d}.pdf"
        c = canvas.Canvas(str(path), pagesize=letter)
        for k in range(2):
            y = 750
            c.setFont("Courier", 9)
            c.drawString(40, y + 15, f"Copy {n + k}")
            for line in texts[(n + k) % len(texts)].splitlines()[:70]:
                c.drawString(40, y, line[:110])
                y -= 10.5
            c.showPage()
        c.save()
        files.append(path)
    return files


def run_born_digital(pages: int, workers: int, tmpd: Path) -> dict[str, Any]:
    (tmpd / "born").mkdir()
    born = born_digital_pdfs(load_manifest(), pages, tmpd / "born")
    services = open_services(tmpd / "born-data", workers)
    try:
        secs, batch = chartvault_ingest(services, born)
        report = services.intake.batch(batch)
    finally:
        services.close()
    n = sum(f.page_count or 0 for f in report.files)
    text_layer = sum(1 for f in report.files for p in f.pages if p.source == "text_layer")
    print(
        f"\nborn-digital: {n} pages in {secs:.2f} s = {n / secs:.1f} pages/s "
        f"({text_layer} read from the text layer; goal >= 20)"
    )
    return {"pages": n, "pages_per_s": round(n / secs, 1), "text_layer_pages": text_layer}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--files", type=int, default=0, help="Scanned files to use (0 = all 80), format mix kept."
    )
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--chunks", type=int, default=3, help="Rounds in which the sides take turns.")
    ap.add_argument("--born-digital-pages", type=int, default=200)
    ap.add_argument("--no-ocrmypdf", action="store_true", help="Leave OCRmyPDF out.")
    args = ap.parse_args()

    entries = scanned_entries(args.files)
    n_pages = sum(e["page_count"] for e in entries)
    sides = SIDES if not args.no_ocrmypdf and has_ocrmypdf() else SIDES[:2]
    if "ocrmypdf" not in sides and not args.no_ocrmypdf:
        print("OCRmyPDF not installed (scripts/setup.sh bench): left out")
    print(f"scanned: {len(entries)} files, {n_pages} pages, {args.workers} processes, {args.chunks} chunks")
    results: dict[str, Any] = {
        "workers": args.workers,
        "scanned_files": len(entries),
        "scanned_pages": n_pages,
    }
    with tempfile.TemporaryDirectory(prefix="cv-bench-") as tmp:
        tmpd = Path(tmp)
        (tmpd / "pages").mkdir()
        run = run_scanned(entries, args.workers, args.chunks, sides, tmpd)
        results.update(report_scanned(entries, run, n_pages))
        by_mrn = found_by_mrn(tmpd / "data", entries)
        print(f"  found by `search --mrn`: {by_mrn} of {len(entries)} documents")
        results["found_by_mrn"] = by_mrn
        ratio = results["ratio_to_bare"]["chartvault"]
        print(f"  ratio (ChartVault / bare tesseract throughput): {ratio:.3f}  (goal >= 1.0)")
        if args.born_digital_pages:
            results["born_digital"] = run_born_digital(args.born_digital_pages, args.workers, tmpd)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
