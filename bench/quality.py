"""OCR, document-type and identifier quality on the development corpus, beside bare tesseract.

    python -m bench.quality [--limit N] [--workers W] [--preprocess on|off|both] [--chunks C]
                            [--held-out-docs N] [--skip-corpus]

Every file of ``../shared/corpus`` (or the first N, keeping the format mix) is ingested end to end by
ChartVault (``Vault`` on a temporary data folder and SQLite catalog, W worker processes), once per
preprocessing mode asked for, each mode in its own data folder (a second ingest of the same bytes
would be linked as a duplicate, not OCR'd again). Bare ``tesseract IMAGE stdout`` (default settings,
``OMP_THREAD_LIMIT=1``, W at a time) reads the same scanned pages: PNG/JPEG as they are, TIFF frames
and PDF pages rendered at 300 dpi extracted to uncompressed TIFF outside its timing. The sides run
chunk by chunk in rotating order so load on the shared machine lands on all of them.

Printed, from the catalog's Document and Page rows against ``manifest.jsonl``:

* document type: accuracy, macro-F1 (over the corpus's eight labels; ``letter`` is our
  ``correspondence``) and the confusion matrix;
* exact match of MRN, date of birth, patient name (case, spacing and punctuation ignored) and date of
  service, overall and per scan-quality tier;
* character and word error rate (Levenshtein over characters / words; whitespace collapsed within each
  line, empty lines dropped, lines joined with a newline) of ChartVault's page text and of bare
  tesseract's, overall, per tier (``render.degrade.tier``) and per format; born-digital PDFs (read
  from their text layer) separately;
* pages/s of each side over the scanned pages.

Targets (corpus): macro-F1 >= 0.90, MRN and DOB exact >= 0.99, date of service >= 0.97, CER below
bare tesseract's.

Then, beside the corpus figures, what the corpus cannot show (``bench.generated``, ``bench.typecv``): chart
pages rendered with the *held-out* label layouts of ``bench.labels`` (thermal labels with Patient ID /
Chart # / two-digit years, addressograph imprints without keys, an EMPI strip, a form grid with keys above
values, a label with a barcode; never tuned on), N documents per layout, OCR'd by ChartVault's OCR and read
at the OCR + classify level: MRN, DOB, date of service and name exact match (with and without the facility
MRN pattern), document type on those pages (each text classified by a model that never saw its family;
untitled pages apart), and the family-grouped cross-validation of the type classifier on dev_texts.
Targets (held-out layouts and families): MRN, DOB, date of service >= 0.97; type macro-F1 >= 0.95;
accuracy on untitled pages >= 0.92. The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import resource
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import load_manifest, timed

LABEL_MAP = {"letter": "correspondence"}  # corpus label -> ours (as chartvault.classify's hint aliases)
FORMATS = ("png", "jpeg", "tiff_g4", "pdf_image", "pdf_text")
TIERS = ("clean", "typical", "poor", "fax")
IDENTIFIERS = ("mrn", "dob", "name", "date_of_service")


# ------------------------------------------------------------------------------------------ metrics


def levenshtein(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Edit distance between two sequences (characters or words): O(n*m), one numpy row at a time.

    Within a row the insertion chain is a running minimum: D[j] = min_k<=j (T[k] + j - k), i.e. a
    cumulative minimum of T[k] - k, so each row is a handful of vector operations.
    """
    import numpy as np

    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    vocab: dict[Any, int] = {}
    ia = np.array([vocab.setdefault(x, len(vocab)) for x in a], dtype=np.int64)
    ib = np.array([vocab.setdefault(x, len(vocab)) for x in b], dtype=np.int64)
    m = len(ib)
    ramp = np.arange(m + 1, dtype=np.int64)
    prev = ramp.copy()
    row = np.empty(m + 1, dtype=np.int64)
    for i in range(1, len(ia) + 1):
        row[0] = i
        np.minimum(prev[1:] + 1, prev[:-1] + (ib != ia[i - 1]), out=row[1:])
        prev = np.minimum.accumulate(row - ramp) + ramp
    return int(prev[m])


def norm_text(text: str) -> str:
    """Whitespace collapsed within each line, empty lines dropped, lines joined with a newline."""
    return "\n".join(" ".join(line.split()) for line in text.splitlines() if line.strip())


def norm_name(name: str | None) -> str:
    """Upper case, punctuation to spaces, spaces collapsed: 'Hall, Grace W.' == 'HALL GRACE W'."""
    return " ".join(re.sub(r"[^A-Z0-9]+", " ", (name or "").upper()).split())


@dataclasses.dataclass
class Errors:
    """Summed edit counts: rates are micro-averaged (long pages weigh more, as they should)."""

    char_edits: int = 0
    chars: int = 0
    word_edits: int = 0
    words: int = 0
    pages: int = 0

    def add(self, hypothesis: str, reference: str) -> None:
        hyp, ref = norm_text(hypothesis), norm_text(reference)
        self.char_edits += levenshtein(hyp, ref)
        self.chars += len(ref)
        self.word_edits += levenshtein(hyp.split(), ref.split())
        self.words += len(ref.split())
        self.pages += 1

    @property
    def cer(self) -> float | None:
        return self.char_edits / self.chars if self.chars else None

    @property
    def wer(self) -> float | None:
        return self.word_edits / self.words if self.words else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "pages": self.pages,
            "cer": None if self.cer is None else round(self.cer, 5),
            "wer": None if self.wer is None else round(self.wer, 5),
        }


def tier_of(entry: dict) -> str:
    degrade = (entry.get("render") or {}).get("degrade") or {}
    return degrade.get("tier") or ("born_digital" if entry["kind"] == "born_digital" else "unknown")


# ------------------------------------------------------------------------------------------- sides


def select_entries(entries: list[dict], limit: int) -> list[dict]:
    """The first `limit` files, round-robin over formats so a small sample keeps the mix."""
    if not limit:
        return entries
    by_fmt = {f: [e for e in entries if e["format"] == f] for f in FORMATS}
    longest = max(len(v) for v in by_fmt.values())
    return [by_fmt[f][i] for i in range(longest) for f in FORMATS if i < len(by_fmt[f])][:limit]


def extract_pages(entries: list[dict], out: Path, dpi: int = 300) -> dict[tuple[str, int], Path]:
    """Every scanned page as an image file bare tesseract reads (untimed preparation).

    PNG/JPEG as they are; TIFF frames and PDF pages (rendered in grey at `dpi` with pypdfium2, as
    chartvault.ocr.pdf does) as uncompressed TIFF carrying their resolution, so bare tesseract is
    not left to guess it.
    """
    import pypdfium2 as pdfium
    from PIL import Image

    pages: dict[tuple[str, int], Path] = {}
    for e in entries:
        src: Path = e["file"]
        if e["kind"] != "synthetic_scan":
            continue
        if e["format"] in ("png", "jpeg"):
            pages[(src.name, 1)] = src
        elif e["format"] == "tiff_g4":
            with Image.open(src) as im:
                for i in range(getattr(im, "n_frames", 1)):
                    im.seek(i)
                    dst = out / f"{src.stem}-{i + 1}.tif"
                    im.save(dst, dpi=im.info.get("dpi", (dpi, dpi)))
                    pages[(src.name, i + 1)] = dst
        else:
            pdf = pdfium.PdfDocument(src)
            try:
                for i in range(len(pdf)):
                    dst = out / f"{src.stem}-{i + 1}.tif"
                    pdf[i].render(scale=dpi / 72, grayscale=True).to_pil().save(dst, dpi=(dpi, dpi))
                    pages[(src.name, i + 1)] = dst
            finally:
                pdf.close()
    return pages


def bare_tesseract(pages: dict[tuple[str, int], Path], workers: int) -> tuple[float, dict]:
    """`tesseract IMAGE stdout` with default settings over every page; (seconds, text per page)."""
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}

    def one(path: Path) -> str:
        done = subprocess.run(
            ["tesseract", str(path), "stdout"], check=True, env=env, capture_output=True, text=True
        )
        return done.stdout

    keys = list(pages)
    with timed() as t, ThreadPoolExecutor(workers) as pool:
        texts = list(pool.map(one, [pages[k] for k in keys]))
    return t["s"], dict(zip(keys, texts, strict=True))


@dataclasses.dataclass(frozen=True)
class Side:
    """What the corpus run needs from ChartVault end to end (built by ``vault_side`` alone)."""

    ingest: Callable[[list[Path]], tuple[float, str]]  # files -> (seconds, batch id), through indexing
    rows: Callable[[list[str]], dict[str, dict]]  # batch ids -> per file name: document fields, pages
    worker_pids: Callable[[], list[int]]  # OCR worker processes, for CPU accounting


@contextlib.contextmanager
def vault_side(data: Path, workers: int, preprocess: bool) -> Iterator[Side]:
    """The one place that drives ChartVault end to end: its services on their own data folder (workers
    started and classifier loaded outside any timing). Imported late: the worker pool forks a server."""
    from chartvault.config import Settings
    from chartvault.services import Caller, Services

    settings = Settings(data_dir=data, workers=workers, _env_file=None, ocr_preprocess=preprocess)
    services = Services(settings, Caller("bench"))
    executor = services.parts.executor
    executor.start()
    services.parts.classifier.current()

    def ingest(files: list[Path]) -> tuple[float, str]:
        with timed() as t:
            summary = services.intake.ingest(files, source="cli", station="bench")
        return t["s"], summary.batch_id

    def worker_pids() -> list[int]:
        return executor.worker_pids()  # type: ignore[attr-defined,no-any-return]  # the local pool

    try:
        yield Side(ingest, lambda batch_ids: catalog_rows(services.parts.sessions, batch_ids), worker_pids)
    finally:
        services.close()


def catalog_rows(sessions: Callable[[], Any], batch_ids: list[str]) -> dict[str, dict]:
    """Per original file name: the document's fields and each page's text/source, from the catalog."""
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    from chartvault.archive.models import BatchFile, Document

    out: dict[str, dict] = {}
    with sessions() as s:
        files = s.scalars(
            select(BatchFile)
            .where(BatchFile.batch_id.in_(batch_ids))
            .options(selectinload(BatchFile.pages), selectinload(BatchFile.documents))
        ).all()
        for f in files:
            docs = sorted(f.documents, key=lambda d: d.first_page)
            doc: Document | None = docs[0] if docs else None
            out[Path(f.original_name).name] = {
                "status": f.status,
                "documents": len(docs),
                "doc_type": doc.doc_type if doc else None,
                "mrn": doc.mrn if doc else None,
                "name": doc.patient_name if doc else None,
                "dob": doc.dob.isoformat() if doc and doc.dob else None,
                "date_of_service": doc.date_of_service.isoformat() if doc and doc.date_of_service else None,
                "pages": {
                    p.page_no: {"text": p.text or "", "source": p.source, "blank": p.blank} for p in f.pages
                },
            }
    return out


# ------------------------------------------------------------------------------------------ CPU time


def _proc_cpu(pid: int) -> float:
    """CPU seconds of a live process and of the children it has waited for (tesseract runs)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    # utime, stime, cutime, cstime: fields 14-17 of proc(5), 12-15 after the ")".
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def side_cpu(side: Side | None) -> float:
    """CPU seconds so far of one side: this process and bare tesseract's children, plus ChartVault's
    worker processes (and their tesseract children) when given.

    Wall-clock pages/s on a shared machine moves with everyone else's load; CPU time per page does
    not, so the two sides' costs compare even when the run was disturbed.
    """
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    return total + sum(_proc_cpu(pid) for pid in (side.worker_pids() if side else []))


# ------------------------------------------------------------------------------------------ scoring


def score_types(entries: list[dict], rows: dict[str, dict]) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    truth = [LABEL_MAP.get(e["doc_type"], e["doc_type"]) for e in entries]
    pred = [rows.get(e["file"].name, {}).get("doc_type") or "(none)" for e in entries]
    labels = sorted(set(truth))
    shown = labels + sorted(set(pred) - set(labels))
    return {
        "accuracy": round(float(accuracy_score(truth, pred)), 4),
        "macro_f1": round(float(f1_score(truth, pred, labels=labels, average="macro", zero_division=0)), 4),
        "labels": shown,
        "confusion": confusion_matrix(truth, pred, labels=shown).tolist(),
    }


def truth_ids(entry: dict) -> dict[str, str]:
    p = entry["patient"]
    name = f"{p['last']}, {p['first']} {p.get('middle_initial') or ''}"
    return {"mrn": p["mrn"], "dob": p["dob"], "name": norm_name(name), "date_of_service": p["service_date"]}


def score_identifiers(entries: list[dict], rows: dict[str, dict]) -> dict[str, Any]:
    """Exact-match share per identifier, overall and per tier; misses listed by file name only."""
    groups: dict[str, dict[str, list[int]]] = {}
    misses: dict[str, list[str]] = {k: [] for k in IDENTIFIERS}
    for e in entries:
        row = rows.get(e["file"].name, {})
        got = {k: row.get(k) for k in IDENTIFIERS}
        got["name"] = norm_name(got["name"])
        want = truth_ids(e)
        for group in ("all", tier_of(e)):
            g = groups.setdefault(group, {k: [0, 0] for k in IDENTIFIERS})
            for k in IDENTIFIERS:
                g[k][0] += got[k] == want[k]
                g[k][1] += 1
        for k in IDENTIFIERS:
            if got[k] != want[k]:
                misses[k].append(e["file"].name)
    return {
        "exact": {
            group: {k: round(v[0] / v[1], 4) for k, v in g.items()} | {"files": next(iter(g.values()))[1]}
            for group, g in groups.items()
        },
        "misses": misses,
    }


def score_ocr(entries: list[dict], texts: dict[tuple[str, int], str]) -> dict[str, dict[str, Any]]:
    """CER/WER of `texts` (per (file name, page)) overall, per tier and per format."""
    groups: dict[str, Errors] = {}
    for e in entries:
        for i, page in enumerate(e["pages"], 1):
            key = (e["file"].name, i)
            if key not in texts:
                continue
            names = ("all", f"tier:{tier_of(e)}", f"format:{e['format']}")
            if e["kind"] == "born_digital":
                names = ("born_digital", f"format:{e['format']}")
            for g in names:
                groups.setdefault(g, Errors()).add(texts[key], page["text"])
    return {g: err.as_dict() for g, err in groups.items()}


# ------------------------------------------------------------------------------------------ output


def pct(x: float | None) -> str:
    return "   -  " if x is None else f"{100 * x:5.2f}%"


def print_types(name: str, t: dict[str, Any]) -> None:
    print(f"\n[{name}] document type: accuracy {t['accuracy']:.3f}, macro-F1 {t['macro_f1']:.3f} (goal 0.90)")
    short = [lbl[:6] for lbl in t["labels"]]
    print("  " + " " * 22 + " ".join(f"{s:>6}" for s in short) + "   <- predicted")
    for lbl, row in zip(t["labels"], t["confusion"], strict=True):
        print(f"  {lbl:22s}" + " ".join(f"{v:6d}" for v in row))


def print_identifiers(name: str, ids: dict[str, Any]) -> None:
    print(f"\n[{name}] identifiers, exact match (goals: MRN, DOB 0.99; date of service 0.97)")
    print(f"  {'group':14s} {'files':>5} " + " ".join(f"{k:>15}" for k in IDENTIFIERS))
    for group in ("all", *TIERS, "born_digital"):
        g = ids["exact"].get(group)
        if g:
            print(f"  {group:14s} {g['files']:5d} " + " ".join(f"{g[k]:15.3f}" for k in IDENTIFIERS))


def print_ocr(sides: dict[str, dict[str, dict[str, Any]]]) -> None:
    groups = [g for g in ("all", *(f"tier:{t}" for t in TIERS)) if any(g in s for s in sides.values())]
    groups += sorted({g for s in sides.values() for g in s if g.startswith("format:")})
    groups += ["born_digital"] if any("born_digital" in s for s in sides.values()) else []
    print("\nOCR character / word error rate (pages; whitespace-normalised; micro-averaged)")
    print(f"  {'group':18s} {'pages':>5} " + " ".join(f"{name:>22}" for name in sides))
    for g in groups:
        pages = max((s[g]["pages"] for s in sides.values() if g in s), default=0)
        cells = []
        for s in sides.values():
            r = s.get(g)
            cells.append(f"{pct(r['cer'])} / {pct(r['wer'])}" if r else "-")
        print(f"  {g:18s} {pages:5d} " + " ".join(f"{c:>22}" for c in cells))


# -------------------------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=0, help="Files to use (0 = all), format mix kept.")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--preprocess", choices=("on", "off", "both"), default="both")
    ap.add_argument("--chunks", type=int, default=2, help="Rounds in which the sides take turns.")
    ap.add_argument(
        "--held-out-docs",
        type=int,
        default=12,
        help="Generated documents per held-out label layout (0: none).",
    )
    ap.add_argument("--skip-corpus", action="store_true", help="Only the held-out layouts and families.")
    args = ap.parse_args()
    corpus = {} if args.skip_corpus else corpus_figures(args)
    held_out = held_out_part(args.held_out_docs, args.workers) if args.held_out_docs > 0 else {}
    from bench.linking import with_linking  # where those documents end: linked, in review, orphaned

    held_out = with_linking(held_out, args.held_out_docs, args.workers)
    if corpus and held_out:
        print_side_by_side(held_out, corpus)
    print(json.dumps({"corpus": corpus, "held_out": held_out}))


def held_out_part(per_layout: int, workers: int) -> dict[str, Any]:
    from bench.generated import held_out_figures, print_identifiers
    from bench.typecv import print_metrics

    result = held_out_figures(per_layout, workers)
    print(f"\nheld-out label layouts: {', '.join(result['layouts'])}")
    print(f"{result['documents']} documents, {result['pages']} pages")
    print_identifiers("held-out layouts, facility MRN pattern set", result["identifiers"])
    print_identifiers("held-out layouts, no MRN pattern", result["identifiers_no_pattern"])
    for field, ids in result["identifiers"]["misses"].items():
        if ids:
            print(f"  missed {field}: {' '.join(ids)}")
    lost = result["identifiers"]["mrn_not_in_ocr_text"]
    print(f"  MRN misses whose value is nowhere in the OCR text (lost by OCR, not by reading): {len(lost)}")
    for key in ("identifiers", "identifiers_no_pattern"):
        print(f"  label pass ({key}): {json.dumps(result[key]['label_pass'])}")
    print("\n[held-out layouts] document type, each text by a model that never saw its family")
    for key in ("all", "titled", "untitled"):
        print_metrics(key, result["types"][key])
    alt = result["types"]["alternative"]
    print(f"  with blend weight {alt['weight']} (shipped before)")
    for key in ("all", "untitled"):
        print_metrics(key, alt[key])
    print("\n[dev_texts] document type, family-grouped cross-validation (text pages, no OCR)")
    for key in ("cv_untitled", "cv_titled", "held_out_families_untitled", "held_out_families_titled"):
        print_metrics(key, result["type_cv"][key])
    for key in ("alternative_cv_untitled", "alternative_held_out_families_untitled"):
        print_metrics(key, result["type_cv"][key])
    return result


def print_side_by_side(held_out: dict[str, Any], corpus: dict[str, Any]) -> None:
    side = corpus.get("preprocess_on") or next(v for k, v in corpus.items() if k.startswith("preprocess_"))
    ids, types = held_out["identifiers"]["exact"]["all"], held_out["types"]
    rows = [
        ("MRN exact", ids["mrn"], side["identifiers"]["all"]["mrn"]),
        ("DOB exact", ids["dob"], side["identifiers"]["all"]["dob"]),
        ("date of service exact", ids["date_of_service"], side["identifiers"]["all"]["date_of_service"]),
        ("name exact", ids["name"], side["identifiers"]["all"]["name"]),
        ("type macro-F1", types["all"]["macro_f1"], side["doc_type"]["macro_f1"]),
        ("type accuracy, untitled", types["untitled"]["accuracy"], side.get("untitled_accuracy")),
    ]
    print(
        "\n== held-out label layouts and families | corpus (targets: 0.97 ids, 0.95 macro-F1, 0.92 untitled)"
    )
    for name, ours, theirs in rows:
        theirs_s = "   -" if theirs is None else f"{theirs:.3f}"
        print(f"  {name:26s} {ours:.3f} | {theirs_s}")
    cv = held_out["type_cv"]
    print(
        f"  family CV, untitled pages: accuracy {cv['cv_untitled']['accuracy']:.3f}, balanced "
        f"{cv['cv_untitled']['balanced_accuracy']:.3f}, macro-F1 {cv['cv_untitled']['macro_f1']:.3f}; "
        f"held-out families: balanced accuracy {cv['held_out_families_untitled']['balanced_accuracy']:.3f}"
    )


def corpus_figures(args: argparse.Namespace) -> dict[str, Any]:
    """The corpus run end to end through the Vault, beside bare tesseract (the original bench)."""

    entries = select_entries(load_manifest(), args.limit)
    scanned = [e for e in entries if e["kind"] == "synthetic_scan"]
    n_scanned = sum(len(e["pages"]) for e in scanned)
    modes = {"on": [True], "off": [False], "both": [False, True]}[args.preprocess]
    sides = ["bare"] + [f"preprocess_{'on' if m else 'off'}" for m in modes]
    print(
        f"{len(entries)} files ({len(scanned)} scanned, {n_scanned} scanned pages), "
        f"{args.workers} processes, sides {', '.join(sides)}, {args.chunks} chunks"
    )

    seconds = dict.fromkeys(sides, 0.0)
    cpu_seconds = dict.fromkeys(sides, 0.0)
    bare_texts: dict[tuple[str, int], str] = {}
    batches: dict[str, list[str]] = {s: [] for s in sides[1:]}
    rows: dict[str, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory(prefix="cv-quality-") as tmp, contextlib.ExitStack() as stack:
        tmpd = Path(tmp)
        (tmpd / "pages").mkdir()
        chartvault = {
            f"preprocess_{'on' if m else 'off'}": stack.enter_context(
                vault_side(tmpd / f"data-{m}", args.workers, m)
            )
            for m in modes
        }
        chunks = [entries[k :: args.chunks] for k in range(args.chunks)]
        for k, chunk in enumerate(chunks):
            pages = extract_pages(chunk, tmpd / "pages")
            order = sides[k % len(sides) :] + sides[: k % len(sides)]
            for side in order:
                ours = chartvault.get(side)
                cpu0 = side_cpu(ours)
                if ours is None:
                    secs, texts = bare_tesseract(pages, args.workers)
                    bare_texts.update(texts)
                else:
                    secs, batch = ours.ingest([e["file"] for e in chunk])
                    batches[side].append(batch)
                cpu_seconds[side] += side_cpu(ours) - cpu0
                seconds[side] += secs
            print(
                f"  chunk {k + 1}/{args.chunks}: "
                + ", ".join(f"{s} {seconds[s]:6.1f} s" for s in sides)
                + " so far"
            )
        for side, ours in chartvault.items():
            rows[side] = ours.rows(batches[side])

    results: dict[str, Any] = {
        "files": len(entries),
        "scanned_pages": n_scanned,
        "workers": args.workers,
        "pages_per_s": {s: round(n_scanned / seconds[s], 3) for s in sides},
        # CPU seconds per scanned page (ChartVault sides include born-digital files, a few percent).
        "cpu_s_per_page": {s: round(cpu_seconds[s] / n_scanned, 3) for s in sides},
    }
    ocr: dict[str, dict[str, dict[str, Any]]] = {"bare": score_ocr(scanned, bare_texts)}
    for side in sides[1:]:
        texts = {(name, no): p["text"] for name, r in rows[side].items() for no, p in r["pages"].items()}
        ocr[side] = score_ocr(entries, texts)
        types = score_types(entries, rows[side])
        ids = score_identifiers(entries, rows[side])
        print_types(side, types)
        print_identifiers(side, ids)
        results[side] = {
            "doc_type": {k: types[k] for k in ("accuracy", "macro_f1", "labels", "confusion")},
            "identifiers": ids["exact"],
            "identifier_misses": ids["misses"],
            "files_archived": sum(1 for r in rows[side].values() if r["status"] == "archived"),
            # Scored on the first document of a file; a file split in several is counted here.
            "files_split": sum(1 for r in rows[side].values() if r["documents"] > 1),
            # Every corpus page has text: any page flagged blank here is a false positive.
            "pages_flagged_blank": sum(
                1 for r in rows[side].values() for p in r["pages"].values() if p["blank"]
            ),
        }
        print(f"  pages flagged blank (every corpus page has text): {results[side]['pages_flagged_blank']}")
        results[side]["untitled_accuracy"] = untitled_accuracy(entries, rows[side])
    print_ocr(ocr)
    results["ocr"] = ocr
    print(
        "\npages/s over the scanned pages: "
        + ", ".join(f"{s} {v:.3f}" for s, v in results["pages_per_s"].items())
    )
    print(
        "CPU s per scanned page (load-independent): "
        + ", ".join(f"{s} {v:.3f}" for s, v in results["cpu_s_per_page"].items())
    )
    if "preprocess_on" in cpu_seconds and "preprocess_off" in cpu_seconds and cpu_seconds["preprocess_on"]:
        print(f"  on/off by CPU: {cpu_seconds['preprocess_off'] / cpu_seconds['preprocess_on']:.3f}")
    base_cer = ocr["bare"]["all"]["cer"]
    for side in sides[1:]:
        cer = ocr[side].get("all", {}).get("cer")
        if cer is not None and base_cer:
            verdict = "below" if cer < base_cer else "NOT below"
            print(f"  {side}: CER {pct(cer)} vs bare {pct(base_cer)} ({verdict})")
    return results


def untitled_accuracy(entries: list[dict], rows: dict[str, dict]) -> float | None:
    """Document-type accuracy over the corpus files that print no title."""
    untitled = [e for e in entries if not e.get("has_title")]
    if not untitled:
        return None
    hits = sum(
        rows.get(e["file"].name, {}).get("doc_type") == LABEL_MAP.get(e["doc_type"], e["doc_type"])
        for e in untitled
    )
    return round(hits / len(untitled), 4)


if __name__ == "__main__":
    main()
