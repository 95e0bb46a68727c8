"""Pipeline throughput against bare tesseract, measured in the same run.

    python -m bench.pipeline [--files N] [--workers W] [--born-digital-pages P]

1. Scanned pages (PNG, JPEG, G4 TIFF, image-only PDF) of ``../shared/corpus``:
   bare ``tesseract IMAGE out`` over the same pages with W processes
   (``OMP_THREAD_LIMIT=1``), pages pre-extracted to image files *outside* the
   timing (generous to the baseline), versus ``chartvault`` ingesting the same
   files end to end (staging, sniffing, OCR, classification, archive, index)
   with W workers. Prints both pages/s and the ratio (goal >= 0.9).
2. Born-digital pages: PDFs with a real text layer (built here from the
   corpus ground-truth text) ingested end to end; pages/s (goal >= 20).

The last line is a JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import load_manifest, timed

SCANNED = ("png", "jpeg", "tiff_g4", "pdf_image")


def extract_pages(entries: list[dict], out: Path, dpi: int = 300) -> list[Path]:
    """Every page as an image file tesseract reads directly (untimed preparation for the baseline)."""
    import pypdfium2 as pdfium
    from PIL import Image

    pages: list[Path] = []
    for e in entries:
        src: Path = e["file"]
        if e["format"] in ("png", "jpeg"):
            pages.append(src)
        elif e["format"] == "tiff_g4":
            with Image.open(src) as im:
                for i in range(im.n_frames):
                    im.seek(i)
                    dst = out / f"{src.stem}-{i + 1}.pbm"
                    im.convert("1").save(dst)
                    pages.append(dst)
        else:
            pdf = pdfium.PdfDocument(src)
            for i in range(len(pdf)):
                dst = out / f"{src.stem}-{i + 1}.pgm"
                pdf[i].render(scale=dpi / 72, grayscale=True).to_pil().save(dst)
                pages.append(dst)
            pdf.close()
    return pages


def bare_tesseract(pages: list[Path], workers: int, out: Path) -> float:
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}

    def one(i_page: tuple[int, Path]) -> None:
        i, page = i_page
        subprocess.run(
            ["tesseract", str(page), str(out / f"t{i}")],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    with timed() as t, ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, enumerate(pages)))
    return t["s"]


def found_by_mrn(data: Path, entries: list[dict], report: dict) -> int:
    """How many corpus documents ``chartvault search --mrn <their MRN>`` finds (after ingest)."""
    from chartvault.config import Settings
    from chartvault.search.types import SearchQuery
    from chartvault.services import Caller, Services

    doc_of = {Path(f["name"]).name: (f["documents"] or [None])[0] for f in report["files"]}
    found = 0
    with Services(Settings(data_dir=data, _env_file=None), Caller("bench")) as services:
        for e in entries:
            hits = services.search.search(SearchQuery(mrn=e["patient"]["mrn"], limit=50)).hits
            found += doc_of.get(e["file"].name) in {h.document_id for h in hits}
    return found


def open_vault(data: Path, workers: int):  # -> Services, imported late (forkserver workers)
    from chartvault.config import Settings
    from chartvault.services import Caller, Services

    services = Services(Settings(data_dir=data, workers=workers, _env_file=None), Caller("bench"))
    # Warm-up outside the timing, like the baseline's: start the workers, load the classifier.
    services.parts.executor.start()
    services.parts.classifier.current()
    return services


def chartvault_ingest(services, files: list[Path]) -> tuple[float, dict]:
    """Ingest ``files`` as one batch, end to end through indexing; (seconds, batch report as JSON)."""
    from chartvault.schemas.common import to_jsonable

    with timed() as t:
        summary = services.intake.ingest(files, source="cli", station="bench")
    return t["s"], to_jsonable(services.intake.batch(summary.batch_id))


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=0, help="Scanned files to use (0 = all 80).")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--born-digital-pages", type=int, default=200)
    ap.add_argument("--chunks", type=int, default=4, help="Alternating baseline/pipeline rounds.")
    args = ap.parse_args()

    entries = [e for e in load_manifest() if e["format"] in SCANNED]
    if args.files:
        # Keep the format mix: round-robin over formats.
        by_fmt = {f: [e for e in entries if e["format"] == f] for f in SCANNED}
        entries = [by_fmt[f][i] for i in range(args.files) for f in SCANNED if i < len(by_fmt[f])][
            : args.files
        ]
    n_pages = sum(e["page_count"] for e in entries)
    results: dict[str, object] = {
        "workers": args.workers,
        "scanned_files": len(entries),
        "scanned_pages": n_pages,
    }

    with tempfile.TemporaryDirectory(prefix="cv-bench-") as tmp:
        tmpd = Path(tmp)
        (tmpd / "pages").mkdir()
        (tmpd / "txt").mkdir()
        print(
            f"scanned: {len(entries)} files, {n_pages} pages, {args.workers} processes, {args.chunks} chunks"
        )
        # Shared machines drift: run baseline and pipeline chunk by chunk, alternating which goes
        # first, so a burst of outside load lands on both sides instead of biasing one.
        chunks = [entries[k :: args.chunks] for k in range(args.chunks)]
        base_s = pipe_s = 0.0
        files_report: list[dict] = []
        vault = open_vault(tmpd / "data", args.workers)
        try:
            for k, chunk in enumerate(chunks):
                pages = extract_pages(chunk, tmpd / "pages")
                order = ("bare", "pipe") if k % 2 == 0 else ("pipe", "bare")
                for side in order:
                    if side == "bare":
                        base_s += bare_tesseract(pages, args.workers, tmpd / "txt")
                    else:
                        secs, report = chartvault_ingest(vault, [e["file"] for e in chunk])
                        pipe_s += secs
                        files_report += report["files"]
                print(
                    f"  chunk {k + 1}/{args.chunks}: bare {base_s:6.1f} s, chartvault {pipe_s:6.1f} s so far"
                )
        finally:
            vault.close()
        report = {"files": files_report}
        print(f"  bare tesseract : {base_s:7.1f} s  {n_pages / base_s:6.3f} pages/s")
        archived = sum(1 for f in report["files"] if f["status"] == "archived")
        print(
            f"  chartvault     : {pipe_s:7.1f} s  {n_pages / pipe_s:6.3f} pages/s  "
            f"({archived} files archived)"
        )
        by_mrn = found_by_mrn(tmpd / "data", entries, report)
        print(f"  found by `search --mrn`: {by_mrn} of {len(entries)} documents")
        ratio = base_s / pipe_s
        print(f"  ratio (chartvault / bare tesseract throughput): {ratio:.3f}  (goal >= 0.9)")
        results.update(
            bare_tesseract_pages_per_s=round(n_pages / base_s, 3),
            chartvault_pages_per_s=round(n_pages / pipe_s, 3),
            ratio=round(ratio, 3),
            files_archived=archived,
            found_by_mrn=by_mrn,
        )

        if args.born_digital_pages:
            (tmpd / "born").mkdir()
            born = born_digital_pdfs(load_manifest(), args.born_digital_pages, tmpd / "born")
            vault = open_vault(tmpd / "born-data", args.workers)
            try:
                born_s, born_report = chartvault_ingest(vault, born)
            finally:
                vault.close()
            born_pages = sum(f["page_count"] or 0 for f in born_report["files"])
            text_layer = sum(
                1 for f in born_report["files"] for p in f["pages"] if p["source"] == "text_layer"
            )
            print(
                f"born-digital: {born_pages} pages in {born_s:.2f} s = {born_pages / born_s:.1f} pages/s "
                f"({text_layer} read from the text layer; goal >= 20)"
            )
            results.update(
                born_digital_pages=born_pages,
                born_digital_pages_per_s=round(born_pages / born_s, 1),
                born_digital_text_layer_pages=text_layer,
            )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
