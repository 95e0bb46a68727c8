"""Identifier and document-type quality on generated chart pages (bench.pages) with label layouts of our own.

    python -m bench.generated [--split tuning|held_out|blind|blind2] [--per-layout N] [--seed S] [--workers W]
                              [--no-pattern] [--check-digit luhn|mod11 [--no-check-setting]]

Each document is rendered, OCR'd page by page with ChartVault's own OCR (``chartvault.ocr.extract_page``,
default options: preprocessing on) and its identifiers read with ``extract_identifiers`` from the text *and*
the word boxes, then merged over the pages: the OCR + classify level, no Vault involved. OCR results are
cached under ``bench/results/ocr-cache`` (keyed by the document's spec and ``GENERATOR_VERSION``), so a rerun
after a change to the extractor costs seconds.

Document types: every text is classified by a model that never saw its family (family-grouped folds of
``dev_texts.csv``, ``bench.typecv``), so a page's figure is out-of-sample; untitled pages are scored apart.

The label pass (``chartvault.ocr.labels``) is run as the OCR worker runs it: on the pages whose first
reading asks for it (``chartvault.classify.labelpass.needs_label_pass``), the page is rendered again and its
label zones read (cached beside the OCR as ``labels-*.json.gz``, with the CPU it took); ``--no-label-pass``
leaves it out.

Identifiers are scored against the truth the label printed: MRN, DOB, date of service and sex exact, name
normalised (case, spacing, punctuation ignored). ``--no-pattern`` reads without the facility MRN pattern (a
site that configured nothing). ``--check-digit luhn`` (or ``mod11``) draws the same documents with each MRN's
last digit made its check digit (pages, and so OCR, differ: cached apart) and reads them with the matching
``mrn_check_digit`` setting; ``--no-check-setting`` reads those pages without it. Misses are listed by
document id only (ids carry no patient data).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.common import REPO
from bench.labels import SPLITS
from bench.pages import DocSpec, make_specs
from bench.quality import norm_name

if TYPE_CHECKING:
    from chartvault.classify.checkdigit import CheckDigit

GENERATOR_VERSION = "5"  # 5: a glued initial's blank measured on the letters' height; a trailing '_' ignored
CACHE = REPO / "bench" / "results" / "ocr-cache"
SEEDS = {"tuning": 1, "held_out": 2, "blind": 3, "blind2": 4}
FIELDS = ("mrn", "dob", "date_of_service", "name", "sex")
TODAY = date(2025, 1, 1)  # fixed so two-digit years resolve the same way in every run


@dataclass(slots=True)
class OcrDoc:
    """The OCR of one rendered document: per page text, word boxes (as tuples) and pixel size."""

    doc_id: str
    pages: list[dict[str, Any]]


def _cache_key(spec: DocSpec) -> str:
    from bench.pages import _FONTS

    fonts = [p.name for pair in _FONTS[spec.layout.font] for p in pair]
    raw = (
        f"{GENERATOR_VERSION}|{spec.doc_id}|{spec.seed}|{spec.text.text_key}|{spec.title}|{spec.tier}|{fonts}"
    )
    if spec.patient.facility.check_digit != "none":  # other MRNs printed: other pages
        raw += f"|check:{spec.patient.facility.check_digit}"
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def ocr_document(spec: DocSpec) -> OcrDoc:
    """Render and OCR one document, or read it from the cache (a worker-process function); each page
    with the barcodes the OCR worker would read on it (``page_codes``)."""
    doc = _ocr_document(spec)
    for page, codes in zip(doc.pages, page_codes(spec), strict=True):
        page["barcodes"] = codes
    return doc


BARCODES = {"on": True}  # --no-barcodes: the label's barcode is read but not used
BARCODE_PASS_VERSION = "1"


def page_codes(spec: DocSpec) -> list[list[dict[str, str]]]:
    """Per page, the barcodes the OCR worker reads from the decoded pixels (``scan_decoded``: the whole
    page at ~100 dpi, the label bands again at ~300 when that found no linear code), cached beside the OCR."""
    from chartvault.ocr.barcodes import LABEL_DPI, scan_decoded
    from chartvault.ocr.types import LABEL_BOTTOM, LABEL_TOP

    raw = f"{_cache_key(spec)}|{LABEL_TOP}|{LABEL_BOTTOM}|{LABEL_DPI}|{BARCODE_PASS_VERSION}"
    path = CACHE / f"codes-{hashlib.sha256(raw.encode()).hexdigest()[:24]}.json.gz"
    if path.is_file():
        return json.loads(gzip.decompress(path.read_bytes()))
    from bench.pages import DPI, render_document

    codes = [scan_decoded(img, DPI, few_words=False) for img in render_document(spec).pages]
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp_path = path.with_suffix(f".{os.getpid()}.tmp")
    tmp_path.write_bytes(gzip.compress(json.dumps(codes).encode()))
    tmp_path.replace(path)
    return codes


def _ocr_document(spec: DocSpec) -> OcrDoc:
    path = CACHE / f"{_cache_key(spec)}.json.gz"
    if path.is_file():
        return OcrDoc(spec.doc_id, json.loads(gzip.decompress(path.read_bytes())))
    import tempfile

    from bench.pages import render_document, save_png
    from chartvault.filetypes import FileKind
    from chartvault.ocr import extract_page
    from chartvault.ocr.types import OcrOptions

    pages = []
    with tempfile.TemporaryDirectory(prefix="cv-gen-") as tmp:
        for i, img in enumerate(render_document(spec).pages, 1):
            png = save_png(img, Path(tmp) / f"p{i}.png")
            page = extract_page(png, FileKind.PNG, 1, OcrOptions(), Path(tmp) / "work")
            words = [[w.text, w.conf, w.left, w.top, w.width, w.height] for w in page.words]
            pages.append({"text": page.text, "words": words, "width": page.width, "height": page.height})
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp_path = path.with_suffix(f".{os.getpid()}.tmp")
    tmp_path.write_bytes(gzip.compress(json.dumps(pages).encode()))
    tmp_path.replace(path)
    return OcrDoc(spec.doc_id, pages)


@cache
def split_specs(split: str, per_layout: int, seed: int, check_digit: CheckDigit = "none") -> list[DocSpec]:
    """The documents of a split (deterministic; rebuilt in worker processes: layouts do not pickle); with a
    ``check_digit``, the same documents with MRNs that end in one."""
    from bench.texts import read_dev_texts

    return make_specs(split, read_dev_texts(), per_layout, seed, check_digit=check_digit)


Job = tuple[str, int, int, "CheckDigit", int]  # split, per layout, seed, check digit, document


def _jobs(split: str, per_layout: int, seed: int, check_digit: CheckDigit) -> list[Job]:
    count = len(split_specs(split, per_layout, seed, check_digit))
    return [(split, per_layout, seed, check_digit, i) for i in range(count)]


def _ocr_nth(args: Job) -> OcrDoc:
    split, per_layout, seed, check_digit, i = args
    return ocr_document(split_specs(split, per_layout, seed, check_digit)[i])


def ocr_all(
    split: str, per_layout: int, seed: int, workers: int, check_digit: CheckDigit = "none"
) -> dict[str, OcrDoc]:
    """OCR every document of a split, ``workers`` at a time (tesseract single-threaded in each)."""
    os.environ["OMP_THREAD_LIMIT"] = "1"
    jobs = _jobs(split, per_layout, seed, check_digit)
    if workers <= 1:
        return {d.doc_id: d for d in map(_ocr_nth, jobs)}
    with ProcessPoolExecutor(workers) as pool:
        return {d.doc_id: d for d in pool.map(_ocr_nth, jobs, chunksize=1)}


def truth(spec: DocSpec) -> dict[str, str]:
    p = spec.patient
    return {
        "mrn": p.mrn,
        "dob": p.dob.isoformat(),
        "date_of_service": p.service_date.isoformat(),
        "name": norm_name(p.label_name),
        "sex": p.sex if spec.layout.prints_sex else None,
    }


# ------------------------------------------------------------------------------------- the label pass

LABEL_PASS = {"on": True}  # bench.quality and bench.generated --no-label-pass turn it off


def _label_key(spec: DocSpec) -> str:
    """The cache key of a document's label pass: its first pass's, and the zones and mode it reads."""
    from chartvault.ocr.labels import LABEL_ZONES, SINGLE_BLOCK

    raw = f"{_cache_key(spec)}|{LABEL_ZONES}|{SINGLE_BLOCK}|{LABEL_PASS_VERSION}"
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


LABEL_PASS_VERSION = "4"  # 3: pages whose name is missing are read again too; 4: the MRN's words re-read
REREAD = {"on": True}  # --no-reread: the MRN's words are read again but their vote is ignored


def _page_ids(page: dict[str, Any], mrn_pattern: str | None, check_digit: CheckDigit = "none") -> Any:
    from chartvault.classify import extract_identifiers
    from chartvault.ocr.types import Word

    words = [Word(t, c, x, y, w, h) for t, c, x, y, w, h in page["words"]]
    return extract_identifiers(
        page["text"],
        words=words,
        page_size=(page["width"], page["height"]),
        mrn_pattern=mrn_pattern,
        mrn_check_digit=check_digit,
        today=TODAY,
    )


def label_pass(spec: DocSpec, doc: OcrDoc) -> list[dict[str, Any] | None]:
    """Per page, the label zones read again (``chartvault.ocr.pages.relook_labels``) when the first pass's
    identifiers ask for it with the facility pattern, without one or with the shipped default (and with the
    facility's check digit or without), with the CPU milliseconds it took; None for a page that needs no
    second look. Cached beside the OCR (a worker-process function)."""
    from chartvault.classify.labelpass import needs_label_pass

    path = CACHE / f"labels-{_label_key(spec)}.json.gz"
    if path.is_file():
        return json.loads(gzip.decompress(path.read_bytes()))
    from chartvault.config import DEFAULT_MRN_PATTERN

    patterns = (spec.patient.facility.mrn_pattern, None, DEFAULT_MRN_PATTERN)
    checks = {"none", spec.patient.facility.check_digit}
    firsts = [[_page_ids(p, pat, check) for pat in patterns for check in checks] for p in doc.pages]
    wanted = [any(needs_label_pass(ids) for ids in page_ids) for page_ids in firsts]
    targets = [_reread_targets(page, page_ids) for page, page_ids in zip(doc.pages, firsts, strict=True)]
    out: list[dict[str, Any] | None] = [None] * len(doc.pages)
    if any(wanted) or any(targets):
        import tempfile

        from bench.pages import render_document, save_png
        from chartvault.filetypes import FileKind
        from chartvault.ocr.clock import StageClock
        from chartvault.ocr.pages import relook_labels, reread_page_words
        from chartvault.ocr.types import OcrOptions

        with tempfile.TemporaryDirectory(prefix="cv-lab-") as tmp:
            for i, img in enumerate(render_document(spec).pages):
                if not wanted[i] and not targets[i]:
                    continue
                png = save_png(img, Path(tmp) / f"p{i}.png")
                clock = StageClock()
                work = Path(tmp) / "work"
                reads = relook_labels(png, FileKind.PNG, 1, OcrOptions(), work, clock) if wanted[i] else []
                readings = reread_page_words(png, FileKind.PNG, 1, OcrOptions(), work, targets[i], clock)
                out[i] = {
                    "cpu_ms": clock.ms,
                    "reads": [
                        {
                            "zone": r.zone,
                            "text": r.text,
                            "box": list(r.box),
                            "words": [list(_w(w)) for w in r.words],
                        }
                        for r in reads
                    ],
                    "rereads": [
                        {"word": list(_w(w)), "readings": r}
                        for w, r in zip(targets[i], readings, strict=False)
                    ],
                }
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp_path = path.with_suffix(f".{os.getpid()}.tmp")
    tmp_path.write_bytes(gzip.compress(json.dumps(out).encode()))
    tmp_path.replace(path)
    return out


def _reread_targets(page: dict[str, Any], firsts: list[Any]) -> list[Any]:
    """The page's words that some reading setting's first MRN would have read again (each once)."""
    from chartvault.classify.reread import mrn_words
    from chartvault.ocr.types import Word

    words = [Word(t, c, x, y, w, h) for t, c, x, y, w, h in page["words"]]
    chosen = {_w(w): w for ids in firsts for w in mrn_words(ids, words)}
    return list(chosen.values())


def _w(w: Any) -> tuple[str, float, int, int, int, int]:
    return (w.text, w.conf, w.left, w.top, w.width, w.height)


def _label_nth(args: Job) -> tuple[str, list[dict[str, Any] | None]]:
    split, per_layout, seed, check_digit, i = args
    spec = split_specs(split, per_layout, seed, check_digit)[i]
    return spec.doc_id, label_pass(spec, ocr_document(spec))


def label_all(
    split: str, per_layout: int, seed: int, workers: int, check_digit: CheckDigit = "none"
) -> dict[str, list[dict[str, Any] | None]]:
    """The label pass of every document of a split, ``workers`` at a time."""
    os.environ["OMP_THREAD_LIMIT"] = "1"
    jobs = _jobs(split, per_layout, seed, check_digit)
    if workers <= 1:
        return dict(map(_label_nth, jobs))
    with ProcessPoolExecutor(workers) as pool:
        return dict(pool.map(_label_nth, jobs, chunksize=1))


def label_pass_cost(split: str, per_layout: int, pages: int) -> dict[str, Any]:
    """The page reader's CPU by stage on ``pages`` first pages of the split (spread over its layouts), each
    read with the label pass forced: what a second look costs beside the first pass, on the same pages."""
    import tempfile

    from bench.pages import render_document, save_png
    from chartvault.filetypes import FileKind
    from chartvault.ocr.pages import scan_page
    from chartvault.ocr.types import OcrOptions

    specs = split_specs(split, per_layout, SEEDS[split])
    chosen = specs[:: max(1, len(specs) // pages)][:pages]
    total: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="cv-cost-") as tmp:
        for spec in chosen:
            png = save_png(render_document(spec).pages[0], Path(tmp) / "p.png")
            scan = scan_page(
                png, FileKind.PNG, 1, OcrOptions(), Path(tmp) / "w", barcodes=True, relook=lambda p: True
            )
            total.update(scan.page.cpu_ms)
    per_page = {k: round(v / len(chosen)) for k, v in total.items()}
    return {
        "pages": len(chosen),
        "cpu_ms_per_page": per_page,
        "labels_vs_ocr": round(total["labels"] / total["ocr"], 3),
    }


def page_identifiers(
    doc: OcrDoc,
    mrn_pattern: str | None,
    labels: list[dict[str, Any] | None] | None = None,
    check_digit: CheckDigit = "none",
) -> list[Any]:
    """Each page's identifiers from its text and word boxes, with the label pass's reads joined on the
    pages whose first reading asks for them (as the OCR worker does)."""
    from chartvault.classify.labelcodes import with_label_barcodes
    from chartvault.classify.labelpass import needs_label_pass, with_label_reads
    from chartvault.ocr.labels import LabelRead
    from chartvault.ocr.types import Word

    per_page = []
    for i, page in enumerate(doc.pages):
        ids = first = _page_ids(page, mrn_pattern, check_digit)
        extra = labels[i] if labels else None
        if extra is not None and extra["reads"] and needs_label_pass(ids):
            reads = [
                LabelRead(r["zone"], r["text"], [Word(*w) for w in r["words"]], tuple(r["box"]))
                for r in extra["reads"]
            ]
            words = [Word(t, c, x, y, w, h) for t, c, x, y, w, h in page["words"]]
            ids = with_label_reads(
                ids,
                page["text"],
                words,
                (page["width"], page["height"]),
                reads,
                mrn_pattern=mrn_pattern,
                mrn_check_digit=check_digit,
                today=TODAY,
            )
        if extra is not None and extra.get("rereads") and REREAD["on"]:
            ids = _voted(ids, first, page, extra["rereads"], mrn_pattern, check_digit)
        if page.get("barcodes") and BARCODES["on"]:
            ids = with_label_barcodes(
                ids, page["barcodes"], mrn_pattern=mrn_pattern, mrn_check_digit=check_digit
            )
        per_page.append(ids)
    return per_page


def _voted(
    ids: Any, first: Any, page: dict[str, Any], rereads: list[dict[str, Any]], pattern: str | None, check: Any
) -> Any:
    """``ids`` after the vote of the re-readings of the words this setting's first MRN names (as the OCR
    worker does)."""
    from chartvault.classify.reread import mrn_words, voted
    from chartvault.ocr.types import Word

    words = [Word(t, c, x, y, w, h) for t, c, x, y, w, h in page["words"]]
    named = {_w(w) for w in mrn_words(first, words)}
    readings = [r["readings"] for r in rereads if tuple(r["word"]) in named]
    return voted(ids, first.mrn, readings, mrn_pattern=pattern, mrn_check_digit=check)


def merged_identifiers(
    doc: OcrDoc,
    mrn_pattern: str | None,
    labels: list[dict[str, Any] | None] | None = None,
    check_digit: CheckDigit = "none",
) -> Any:
    """The document's identifiers: ``page_identifiers`` merged as the pipeline's identify stage does."""
    from chartvault.classify import merge_identifiers

    pages = page_identifiers(doc, mrn_pattern, labels, check_digit)
    return merge_identifiers(pages, mrn_check_digit=check_digit, mrn_pattern=mrn_pattern)


def read_identifiers(
    doc: OcrDoc,
    mrn_pattern: str | None,
    labels: list[dict[str, Any] | None] | None = None,
    check_digit: CheckDigit = "none",
) -> dict[str, str | None]:
    """The document's merged identifiers as strings, the name normalised."""
    merged = merged_identifiers(doc, mrn_pattern, labels, check_digit)
    got: dict[str, str | None] = {
        f: (getattr(merged, f).value if getattr(merged, f) else None) for f in FIELDS
    }
    got["name"] = norm_name(got["name"]) if got["name"] else None
    return got


def score_identifiers(
    specs: list[DocSpec],
    docs: dict[str, OcrDoc],
    use_pattern: bool | str,
    labels: dict[str, list[dict[str, Any] | None]] | None = None,
    use_check_digit: bool = True,
) -> dict[str, Any]:
    """Exact-match share per field, overall and per layout and tier; misses by document id; the label
    pass's CPU (pages read again under this setting, milliseconds per page over all pages). The facility's
    check digit, if its MRNs carry one, is set with the pattern unless ``use_check_digit`` is off."""
    hits: dict[str, Counter[str]] = {}
    totals: Counter[str] = Counter()
    misses: dict[str, list[str]] = {f: [] for f in FIELDS}
    ocr_lost: list[str] = []
    relooked = pages = reread_ms = 0
    label_ms: Counter[str] = Counter()
    for spec in specs:
        pattern = use_pattern if isinstance(use_pattern, str) else spec.patient.facility.mrn_pattern
        pattern = pattern if use_pattern else None
        check = spec.patient.facility.check_digit if use_pattern and use_check_digit else "none"
        doc_labels = labels.get(spec.doc_id) if labels else None
        got = read_identifiers(docs[spec.doc_id], pattern, doc_labels, check)
        pages += len(docs[spec.doc_id].pages)
        for page, extra in zip(docs[spec.doc_id].pages, doc_labels or [], strict=False):
            if extra is not None and _needs(page, pattern, check):
                relooked += 1
                label_ms.update(extra["cpu_ms"])
            if extra is not None and extra.get("rereads"):
                reread_ms += extra["cpu_ms"].get("reread", 0)
        want = truth(spec)
        for group in ("all", f"layout:{spec.layout.name}", f"tier:{spec.tier}"):
            totals[group] += 1
            c = hits.setdefault(group, Counter())
            for f in FIELDS:
                c[f] += got[f] == want[f]
        for f in FIELDS:
            if got[f] != want[f]:
                misses[f].append(spec.doc_id)
        if got["mrn"] != want["mrn"] and not _printed_in_ocr(spec.patient.mrn, docs[spec.doc_id], doc_labels):
            ocr_lost.append(spec.doc_id)
    exact = {g: {f: round(hits[g][f] / totals[g], 4) for f in FIELDS} | {"docs": totals[g]} for g in hits}
    cost = {
        "pages": pages,
        "pages_read_again": relooked,
        "label_zones_ms_per_page_read_again": round(label_ms["labels"] / relooked) if relooked else 0,
        "label_zones_ms_per_page_overall": round(label_ms["labels"] / pages) if pages else 0,
        "mrn_reread_ms_per_page_overall": round(reread_ms / pages) if pages else 0,
    }
    return {"exact": exact, "misses": misses, "mrn_not_in_ocr_text": ocr_lost, "label_pass": cost}


def _needs(page: dict[str, Any], pattern: str | None, check_digit: CheckDigit = "none") -> bool:
    from chartvault.classify.labelpass import needs_label_pass

    return needs_label_pass(_page_ids(page, pattern, check_digit))


def _printed_in_ocr(value: str, doc: OcrDoc, labels: list[dict[str, Any] | None] | None = None) -> bool:
    """Whether the OCR text of any page (or of its label zones read again) holds the value as a whole token:
    if not, no reader could find it."""
    texts = [p["text"] for p in doc.pages] + [r["text"] for x in labels or [] if x for r in x["reads"]]
    return any(re.search(rf"(?<![A-Za-z0-9]){re.escape(value)}(?![0-9])", t) for t in texts)


def score_types(
    specs: list[DocSpec], docs: dict[str, OcrDoc], models: list[Any], fold_of: dict[str, int]
) -> dict:
    """Document type of every rendered document by the model that never saw its text's family."""
    from bench.typecv import metrics
    from chartvault.classify import classify_document

    rows = []
    for spec in specs:
        model = models[fold_of[spec.text.text_key]]
        pred = classify_document([p["text"] for p in docs[spec.doc_id].pages], model=model).doc_type
        rows.append((spec.text.doc_type, pred, bool(spec.title), spec.doc_id))
    untitled = [r for r in rows if not r[2]]
    return {
        "all": metrics([r[0] for r in rows], [r[1] for r in rows]),
        "untitled": metrics([r[0] for r in untitled], [r[1] for r in untitled]),
        "titled": metrics([r[0] for r in rows if r[2]], [r[1] for r in rows if r[2]]),
        "misses": [f"{r[3]} ({r[0]} -> {r[1]})" for r in rows if r[0] != r[1]],
    }


def score_types_both(specs: list[DocSpec], docs: dict[str, OcrDoc], models: list[Any], fold_of: dict) -> dict:
    """``score_types`` with the shipped blend, and with the alternative weight (``bench.typecv``)."""
    from bench.typecv import ALTERNATIVE_WEIGHT, blend_weight

    shipped = score_types(specs, docs, models, fold_of)
    with blend_weight(ALTERNATIVE_WEIGHT):
        shipped["alternative"] = score_types(specs, docs, models, fold_of)
    shipped["alternative"]["weight"] = ALTERNATIVE_WEIGHT
    return shipped


def held_out_figures(per_layout: int, workers: int) -> dict[str, Any]:
    """Everything ``bench.quality`` reports beside the corpus: held-out label layouts (identifiers with and
    without the facility MRN pattern; document type on those pages, untitled ones apart) and the
    family-grouped cross-validation of the type classifier (``bench.typecv``)."""
    from bench import typecv
    from bench.texts import family_folds, read_dev_texts

    split, seed = "held_out", SEEDS["held_out"]
    specs = split_specs(split, per_layout, seed)
    docs = ocr_all(split, per_layout, seed, workers)
    labels = label_all(split, per_layout, seed, workers) if LABEL_PASS["on"] else None
    texts = read_dev_texts()
    folds = family_folds(texts, typecv.FOLDS)
    models, train_s = typecv.fold_models(texts, folds)
    fold_of = {t.text_key: f for t, f in zip(texts, folds, strict=True)}
    return {
        "documents": len(specs),
        "pages": sum(len(d.pages) for d in docs.values()),
        "layouts": [layout.name for layout in SPLITS[split]],
        "identifiers": score_identifiers(specs, docs, use_pattern=True, labels=labels),
        "identifiers_no_pattern": score_identifiers(specs, docs, use_pattern=False, labels=labels),
        "types": score_types_both(specs, docs, models, fold_of),
        "type_cv": typecv.report(texts, folds, models) | {"train_s_per_fold": train_s},
    }


def print_identifiers(title: str, result: dict[str, Any]) -> None:
    print(f"\n[{title}] identifiers, exact match (targets: MRN, DOB, date of service 0.97)")
    print(f"  {'group':34s} {'docs':>4} " + " ".join(f"{f:>15}" for f in FIELDS))
    for group, row in sorted(result["exact"].items(), key=lambda kv: (kv[0] != "all", kv[0])):
        print(f"  {group:34s} {row['docs']:4d} " + " ".join(f"{row[f]:15.3f}" for f in FIELDS))


def add_check_digit_args(ap: argparse.ArgumentParser) -> None:
    """``--check-digit`` and ``--no-check-setting``, as bench.generated and bench.linking take them."""
    ap.add_argument(
        "--check-digit",
        choices=("none", "luhn", "mod11"),
        default="none",
        help="The facilities' MRNs end in this check digit, and are read with the matching setting.",
    )
    ap.add_argument(
        "--no-check-setting",
        action="store_true",
        help="With --check-digit: read those pages without the check-digit setting.",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=sorted(SEEDS), default="tuning")
    ap.add_argument("--per-layout", type=int, default=10)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument(
        "--seed", type=int, default=None, help="Draw other pages than the split's usual ones (new patients)."
    )
    ap.add_argument("--no-pattern", action="store_true", help="Read without the facility MRN pattern.")
    ap.add_argument("--no-label-pass", action="store_true", help="First OCR pass only (no label zones).")
    ap.add_argument("--no-reread", action="store_true", help="Ignore the vote of the MRN's words read again.")
    ap.add_argument("--no-barcodes", action="store_true", help="Ignore the patient labels' barcodes.")
    ap.add_argument(
        "--default-pattern", action="store_true", help="Read with the shipped default CHARTVAULT_MRN_PATTERN."
    )
    add_check_digit_args(ap)
    ap.add_argument(
        "--cost-pages",
        type=int,
        default=0,
        help="Only: CPU by stage of N pages read with the label pass forced.",
    )
    args = ap.parse_args()
    os.environ["OMP_THREAD_LIMIT"] = "1"
    REREAD["on"] = not args.no_reread
    BARCODES["on"] = not args.no_barcodes
    if args.cost_pages:
        print(json.dumps(label_pass_cost(args.split, args.per_layout, args.cost_pages)))
        return
    seed = SEEDS[args.split] if args.seed is None else args.seed
    check = args.check_digit
    specs = split_specs(args.split, args.per_layout, seed, check)
    docs = ocr_all(args.split, args.per_layout, seed, args.workers, check)
    labels = None if args.no_label_pass else label_all(args.split, args.per_layout, seed, args.workers, check)
    from chartvault.config import DEFAULT_MRN_PATTERN

    use: bool | str = DEFAULT_MRN_PATTERN if args.default_pattern else not args.no_pattern
    result = score_identifiers(
        specs, docs, use_pattern=use, labels=labels, use_check_digit=not args.no_check_setting
    )
    setting = check if use and not args.no_check_setting else "none"
    print_identifiers(
        f"{args.split}, MRN pattern {use if isinstance(use, str) else 'on' if use else 'off'}, "
        f"MRNs {'with a ' + check + ' check digit' if check != 'none' else 'unchecked'}, "
        f"check-digit setting {setting}",
        result,
    )
    for f, ids in result["misses"].items():
        if ids:
            print(f"  missed {f}: {' '.join(ids[:20])}{' ...' if len(ids) > 20 else ''}")
    lost = result["mrn_not_in_ocr_text"]
    print(f"  MRN misses whose value is nowhere in the OCR text (lost by OCR): {len(lost)}")
    print(f"  label pass: {json.dumps(result['label_pass'])}")
    print(json.dumps(result["exact"]["all"]))


if __name__ == "__main__":
    main()
