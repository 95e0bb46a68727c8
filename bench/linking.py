"""Where the held-out documents end: linked to the right patient, linked to another, in review, or orphaned.

    python -m bench.linking [--per-layout N] [--workers W] [--split held_out|tuning] [--seed S]
                            [--check-digit luhn|mod11 [--no-check-setting]]

The documents are those of ``bench.generated``'s held-out label layouts (OCR cached under
``bench/results/ocr-cache``; missing ones are OCR'd first). Each document's identifiers are read as
``bench.generated`` reads them (text and word boxes, facility MRN pattern set), written to a real SQLite
catalog as an archived document, and settled by the pipeline's own ``settle_patient`` in document
order, in two situations:

* ``registration``: the hospital's registration list (every held-out patient) was imported first with
  ``import_registration`` (the code behind ``chartvault patients import``);
* ``catalog_only``: no list; the index holds only the patients met on earlier documents.

Counted per situation: ``linked_right`` (the patient whose MRN is the printed one), ``linked_wrong``
(any other patient: a misfile, the figure that must stay at 0), ``in_review`` by reason, and
``orphaned`` (neither linked nor in review: ``chartvault check``'s ``unlinked_outside_review``, must be
0). ``new_patients_wrong_mrn`` counts the phantom patients among the wrong links: records opened under an
MRN no patient has (a misread). ``--check-digit luhn`` (or ``mod11``) draws the same documents with each
MRN's last digit made its check digit and reads them with the matching ``mrn_check_digit`` setting;
``--no-check-setting`` reads those pages without it. Document ids only, never names.
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
from collections import Counter
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.generated import (
    BARCODES,
    LABEL_PASS,
    REREAD,
    SEEDS,
    OcrDoc,
    add_check_digit_args,
    label_all,
    merged_identifiers,
    ocr_all,
    split_specs,
)
from bench.pages import DocSpec

if TYPE_CHECKING:
    from chartvault.classify.checkdigit import CheckDigit

SITUATIONS = ("registration", "catalog_only")


def _registration_csv(specs: list[DocSpec], path: Path) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["mrn", "last_name", "first_name", "middle_name", "dob", "sex"])
        for spec in specs:
            p = spec.patient
            w.writerow([p.mrn, p.last, p.first, p.middle, p.dob.isoformat(), p.sex])
    return path


def _as_date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def settle_all(
    specs: list[DocSpec],
    docs: dict[str, OcrDoc],
    labels: dict[str, list[dict[str, Any] | None]] | None,
    situation: str,
    tmp: Path,
    use_check_digit: bool = True,
) -> dict[str, Any]:
    """One situation on a fresh catalog: every document archived, then settled as the pipeline does (with
    the facility's check digit set, if its MRNs carry one, unless ``use_check_digit`` is off)."""
    from sqlalchemy import select

    from chartvault.archive.check import unlinked_outside_review
    from chartvault.archive.db import make_engine, session_factory, upgrade
    from chartvault.archive.models import Batch, BatchFile, Document, Patient, new_id
    from chartvault.archive.patients import settle_patient
    from chartvault.archive.registration import import_registration

    engine = make_engine(f"sqlite:///{tmp / f'{situation}.sqlite3'}")
    upgrade(engine)
    sessions = session_factory(engine)
    out: Counter[str] = Counter()
    wrong: list[str] = []
    real = {spec.patient.mrn for spec in specs}
    phantoms = 0
    with sessions() as s:
        if situation == "registration":
            counts = import_registration(s, _registration_csv(specs, tmp / "registration.csv"))
            assert counts.refused == 0, counts.errors
            s.commit()
        batch = Batch(id=new_id(), source="bench")
        s.add(batch)
        for seq, spec in enumerate(specs, 1):
            check = spec.patient.facility.check_digit if use_check_digit else "none"
            got = merged_identifiers(
                docs[spec.doc_id],
                spec.patient.facility.mrn_pattern,
                labels.get(spec.doc_id) if labels else None,
                check,
            )
            bf = BatchFile(seq=seq, original_name=f"{spec.doc_id}.png", sha256="0" * 64, size=1)
            batch.files.append(bf)
            doc = Document(
                id=new_id(),
                file=bf,
                batch_id=batch.id,
                page_count=len(docs[spec.doc_id].pages),
                sha256="0" * 64,
                size=1,
                mime="image/png",
                status="archived",
                mrn=got.mrn.value if got.mrn else None,
                patient_name=got.name.value if got.name else None,
                dob=_as_date(got.dob.value if got.dob else None),
                identifier_confidence={k: round(v.confidence, 3) for k, v in got.as_items() if v is not None},
            )
            s.add(doc)
            s.flush()
            settled = settle_patient(s, doc)
            if settled.patient_id is None:
                out[f"in_review:{settled.reason['code'] if settled.reason else 'misfile'}"] += 1
                continue
            mrn = s.scalar(select(Patient.mrn).where(Patient.id == settled.patient_id))
            if mrn == spec.patient.mrn:
                out[f"linked_right:{settled.via}"] += 1
            else:
                out[f"linked_wrong:{settled.via}"] += 1
                wrong.append(spec.doc_id)
                if settled.via == "new_patient" and mrn not in real:
                    phantoms += 1
        s.commit()
        orphaned = unlinked_outside_review(s)
    engine.dispose()
    total = len(specs)
    summary = {
        "documents": total,
        "linked_right": sum(v for k, v in out.items() if k.startswith("linked_right")),
        "linked_wrong": sum(v for k, v in out.items() if k.startswith("linked_wrong")),
        "new_patients_wrong_mrn": phantoms,
        "in_review": sum(v for k, v in out.items() if k.startswith("in_review")),
        "orphaned": orphaned,
        "by_outcome": dict(sorted(out.items())),
        "linked_wrong_ids": wrong,
    }
    return summary


def linking_figures(
    per_layout: int,
    workers: int,
    split: str = "held_out",
    seed: int | None = None,
    check_digit: CheckDigit = "none",
    use_check_digit: bool = True,
) -> dict[str, Any]:
    """Both situations over the held-out documents (``bench.quality`` prints this beside its figures), or
    over the tuning layouts' (more fax pages: where damaged labels end); ``seed`` draws other documents
    (new patients and texts) than the split's usual ones; ``check_digit`` gives their MRNs one."""
    seed = SEEDS[split] if seed is None else seed
    specs = split_specs(split, per_layout, seed, check_digit)
    docs = ocr_all(split, per_layout, seed, workers, check_digit)
    labels = label_all(split, per_layout, seed, workers, check_digit) if LABEL_PASS["on"] else None
    with tempfile.TemporaryDirectory(prefix="cv-link-") as tmp:
        return {sit: settle_all(specs, docs, labels, sit, Path(tmp), use_check_digit) for sit in SITUATIONS}


def print_linking(result: dict[str, Any], split: str = "held_out") -> None:
    target = "target: 0 orphaned, 0 linked to another patient"
    print(f"\n[{split.replace('_', '-')} layouts] where documents end ({target})")
    head = f"{'docs':>5} {'linked':>7} {'wrong':>6} {'phantom':>8} {'review':>7} {'orphaned':>9}"
    print(f"  {'situation':14s} {head}")
    for sit, r in result.items():
        print(
            f"  {sit:14s} {r['documents']:5d} {r['linked_right']:7d} {r['linked_wrong']:6d} "
            f"{r['new_patients_wrong_mrn']:8d} {r['in_review']:7d} {r['orphaned']:9d}"
        )
        print(f"    {', '.join(f'{k} {v}' for k, v in r['by_outcome'].items())}")
        if r["linked_wrong_ids"]:
            print(f"    linked to another patient: {' '.join(r['linked_wrong_ids'])}")


def held_out_linking(
    per_layout: int, workers: int, split: str = "held_out", seed: int | None = None
) -> dict[str, Any]:
    """The one call ``bench.quality`` makes: figures computed and printed."""
    result = linking_figures(per_layout, workers, split, seed)
    print_linking(result, split)
    return result


def with_linking(held_out: dict[str, Any], per_layout: int, workers: int) -> dict[str, Any]:
    """``bench.quality``'s held-out figures with where those documents end added (``linking``)."""
    return held_out | {"linking": held_out_linking(per_layout, workers)} if held_out else held_out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-layout", type=int, default=12)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--split", choices=sorted(SEEDS), default="held_out")
    ap.add_argument("--seed", type=int, default=None, help="Other documents than the split's usual ones.")
    add_check_digit_args(ap)
    ap.add_argument("--no-reread", action="store_true", help="Ignore the vote of the MRN's words read again.")
    ap.add_argument("--no-barcodes", action="store_true", help="Ignore the patient labels' barcodes.")
    args = ap.parse_args()
    import json

    REREAD["on"] = not args.no_reread
    BARCODES["on"] = not args.no_barcodes

    result = linking_figures(
        args.per_layout, args.workers, args.split, args.seed, args.check_digit, not args.no_check_setting
    )
    print_linking(result, args.split)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
