"""Document type by family-grouped cross-validation of ``dev_texts.csv``: no note family on both sides.

    python -m bench.typecv            # 5-fold CV over every family + the held-out families (fold 4)
    python -m bench.typecv --tune     # the blend grid over the tuning families only (folds 0-3)

Families (``bench.texts``) are split into five folds once (``StratifiedGroupKFold``, seed 0). Folds 0-3 are
the *tuning* families: the blend weight and the prior correction were chosen on a 4-fold CV among them
(``--tune``). Fold 4 is never tuned on; "held-out families" is the model trained on folds 0-3 scored on it.
The 5-fold figure covers every family (each scored by the model that did not see it); it includes the
families the design was tuned on, so it is the less strict of the two.

Each text is printed as the first page of a chart would show it: hospital header, a patient label (text of
the bench's label layouts), optionally a title, then the report wrapped to a page width; classified with
``classify_document``. Untitled and titled pages are scored apart. Because a chart's mix of types is not
dev_texts' (half operative reports), balanced accuracy (the mean recall per type, what accuracy would be
on a page set with every type equally often) and macro-F1 are reported beside plain accuracy.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from bench.labels import FACILITIES, HELD_OUT, TUNING, make_patient
from bench.pages import TITLES
from bench.texts import DevText, family_folds, read_dev_texts, report_paragraphs, wrap_paragraphs

FOLDS = 5
HELD_OUT_FOLD = 4
PAGE_LINES = 45  # body lines of a first page at 10-11 pt
PAGE_CHARS = 95


def page_text(t: DevText, *, titled: bool, seed: int) -> str:
    """The printed text of the first page of ``t`` with a header and a patient label of the bench."""
    rng = random.Random(f"{t.text_key}:{seed}")
    facility = rng.choice(FACILITIES)
    layout = rng.choice(TUNING + HELD_OUT)
    label = [
        c if isinstance(c, str) else f"{c[0]}: {c[1]}" for c in layout.content(make_patient(rng, facility))
    ]
    header = [facility.name, facility.address, f"Tel {facility.phone}   Fax {facility.fax}"]
    titles = TITLES.get(t.doc_type, ())
    title = [rng.choice(titles)] if titled and titles else []
    body = wrap_paragraphs(report_paragraphs(t.transcription), lambda s: len(s) <= PAGE_CHARS)[:PAGE_LINES]
    return "\n".join(header + label + title + body)


def train_without(texts: Sequence[DevText], folds: list[int], excluded: set[int], params: dict | None = None):
    """The model trained on every text outside the ``excluded`` folds, plus the packaged samples."""
    from chartvault.classify import model as mdl

    keep = [i for i, f in enumerate(folds) if f not in excluded]
    s_texts, s_labels, _ = mdl.sample_data()
    return mdl.train(
        [texts[i].transcription for i in keep] + s_texts, [texts[i].doc_type for i in keep] + s_labels, params
    )


def metrics(truth: list[str], pred: list[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, balanced accuracy and recall per type; balanced figures weigh types equally."""
    labels = sorted(set(truth))
    n = Counter(truth)
    recall = {lb: sum(t == p == lb for t, p in zip(truth, pred, strict=True)) / n[lb] for lb in labels}
    f1, bal_f1 = [], []
    for lb in labels:
        tp = sum(t == p == lb for t, p in zip(truth, pred, strict=True))
        fp = sum(t != lb and p == lb for t, p in zip(truth, pred, strict=True))
        f1.append(2 * tp / (2 * tp + fp + (n[lb] - tp)) if tp else 0.0)
        fp_w = sum(1 / n[t] for t, p in zip(truth, pred, strict=True) if p == lb and t != lb)
        r = recall[lb]
        bal_f1.append(2 * r / (2 * r + fp_w + 1 - r) if r else 0.0)
    return {
        "n": len(truth),
        "accuracy": round(sum(t == p for t, p in zip(truth, pred, strict=True)) / len(truth), 4),
        "macro_f1": round(sum(f1) / len(f1), 4),
        "balanced_accuracy": round(sum(recall.values()) / len(labels), 4),
        "balanced_macro_f1": round(sum(bal_f1) / len(bal_f1), 4),
        "recall": {lb: round(r, 3) for lb, r in recall.items()},
    }


ALTERNATIVE_WEIGHT = 0.7  # the weight shipped before, for comparison (doctype._MODEL_WEIGHT comment)


def _predict(model, pages: list[str]) -> list[tuple[str, float]]:
    from chartvault.classify import classify_document

    return [(p.doc_type, p.confidence) for p in (classify_document([pg], model=model) for pg in pages)]


def review_shares(truth: list[str], pred: list[tuple[str, float]], threshold: float) -> dict[str, Any]:
    """What the review threshold holds: the share of mistyped pages and of correctly typed ones below it."""
    wrong = [c for t, (p, c) in zip(truth, pred, strict=True) if p != t]
    right = [c for t, (p, c) in zip(truth, pred, strict=True) if p == t]
    return {
        "threshold": threshold,
        "mistyped": len(wrong),
        "mistyped_held": round(sum(c < threshold for c in wrong) / len(wrong), 3) if wrong else None,
        "correct": len(right),
        "correct_held": round(sum(c < threshold for c in right) / len(right), 3) if right else None,
    }


@contextmanager
def blend_weight(weight: float | None) -> Iterator[None]:
    """Classify with another rule/model blend weight for a while (None: the shipped one)."""
    from chartvault.classify import doctype

    saved = doctype._MODEL_WEIGHT
    doctype._MODEL_WEIGHT = saved if weight is None else weight
    try:
        yield
    finally:
        doctype._MODEL_WEIGHT = saved


def fold_models(texts: list[DevText], folds: list[int]) -> tuple[list[Any], float]:
    """One model per fold, trained without it (model ``k`` never saw fold ``k``'s families); seconds each."""
    started = time.perf_counter()
    models = [train_without(texts, folds, {k}) for k in range(FOLDS)]
    return models, round((time.perf_counter() - started) / FOLDS, 1)


def report(texts: list[DevText], folds: list[int], models: list[Any]) -> dict[str, Any]:
    """5-fold family CV (untitled and titled pages) and the held-out families (fold 4, tuned on 0-3), with
    the shipped blend and, untitled pages only, the weight shipped before (``ALTERNATIVE_WEIGHT``)."""
    result = _report(texts, folds, models)
    with blend_weight(ALTERNATIVE_WEIGHT):
        alt = _report(texts, folds, models, titled=False)
    result["alternative_weight"] = ALTERNATIVE_WEIGHT
    result["alternative_cv_untitled"] = alt["cv_untitled"]
    result["alternative_held_out_families_untitled"] = alt["held_out_families_untitled"]
    return result


def _report(texts: list[DevText], folds: list[int], models: list[Any], titled: bool = True) -> dict[str, Any]:
    truth = [t.doc_type for t in texts]
    untitled = [page_text(t, titled=False, seed=0) for t in texts]
    with_title = [page_text(t, titled=True, seed=0) for t in texts] if titled else untitled
    pred_u: list[tuple[str, float]] = [("", 0.0)] * len(texts)
    pred_t: list[tuple[str, float]] = [("", 0.0)] * len(texts)
    for k, model in enumerate(models):
        idx = [i for i, f in enumerate(folds) if f == k]
        for i, p in zip(idx, _predict(model, [untitled[i] for i in idx]), strict=True):
            pred_u[i] = p
        if titled:
            for i, p in zip(idx, _predict(model, [with_title[i] for i in idx]), strict=True):
                pred_t[i] = p
        else:
            pred_t = pred_u
    held = [i for i, f in enumerate(folds) if f == HELD_OUT_FOLD]
    tuning = [i for i, f in enumerate(folds) if f != HELD_OUT_FOLD]
    both = [i for i in range(len(texts)) if TITLES.get(truth[i])]  # letters print no title
    types_u = [p for p, _ in pred_u]
    types_t = [p for p, _ in pred_t]
    return {
        "cv_untitled": metrics(truth, types_u),
        "cv_titled": metrics([truth[i] for i in both], [types_t[i] for i in both]),
        "held_out_families_untitled": metrics([truth[i] for i in held], [types_u[i] for i in held]),
        "held_out_families_titled": metrics(
            [truth[i] for i in held if i in both], [types_t[i] for i in held if i in both]
        ),
        # The review threshold on untitled and titled pages together (a chart prints a title on about half).
        "review_held_out_families": _review(truth, pred_u, pred_t, held, both),
        "review_tuning_families": _review(truth, pred_u, pred_t, tuning, both),
        "families": len(set(t.family for t in texts)),
        "held_out_families": len({texts[i].family for i in held}),
    }


def _review(
    truth: list[str], pred_u: list, pred_t: list, idx: list[int], titled: list[int]
) -> dict[str, Any]:
    from chartvault.config import Settings

    threshold = Settings.model_fields["review_confidence_threshold"].default
    has_title = set(titled)
    pages = [(truth[i], pred_u[i]) for i in idx] + [(truth[i], pred_t[i]) for i in idx if i in has_title]
    return review_shares([t for t, _ in pages], [p for _, p in pages], threshold)


def tune(texts: list[DevText], folds: list[int]) -> list[dict[str, Any]]:
    """The blend grid on a 4-fold CV among the tuning families (fold 4 left out of everything)."""
    from chartvault.classify import doctype
    from chartvault.classify import model as mdl

    pool = [i for i, f in enumerate(folds) if f != HELD_OUT_FOLD]
    rows = []  # (truth, rule scores, probabilities without prior correction, words, class counts)
    for k in range(FOLDS - 1):
        model = train_without(texts, folds, {k, HELD_OUT_FOLD}, {**mdl.PARAMS, "prior_power": 0.0})
        for i in (i for i in pool if folds[i] == k):
            page = page_text(texts[i], titled=False, seed=0)
            scores, _ = doctype._scores([page])
            words = len(mdl.model_text([page]).split())
            rows.append((texts[i].doc_type, scores, model.proba([[page]])[0], words, model.class_counts))
    grid = []
    for power in (0.0, 0.5, 0.75, 1.0):
        for weight in (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 1.0):
            pred = [
                doctype.blend(sc, False, _corrected(pr, counts, power), w, weight).doc_type
                for _, sc, pr, w, counts in rows
            ]
            m = metrics([r[0] for r in rows], pred)
            grid.append({"prior_power": power, "weight": weight, **m})
    return grid


def _corrected(probs: dict[str, float], counts: dict[str, int], power: float) -> dict[str, float]:
    total = sum(counts.values())
    scaled = {c: p / (counts.get(c, 1) / total) ** power if p else 0.0 for c, p in probs.items()}
    norm = sum(scaled.values()) or 1.0
    return {c: p / norm for c, p in scaled.items()}


def print_metrics(name: str, m: dict[str, Any]) -> None:
    print(
        f"  {name:30s} n={m['n']:4d}  accuracy {m['accuracy']:.3f}  macro-F1 {m['macro_f1']:.3f}  "
        f"balanced accuracy {m['balanced_accuracy']:.3f}  balanced macro-F1 {m['balanced_macro_f1']:.3f}"
    )
    print("  " + " " * 31 + "recall " + ", ".join(f"{k[:12]} {v:.2f}" for k, v in m["recall"].items()))


def print_review(name: str, r: dict[str, Any]) -> None:
    print(
        f"  {name:30s} review threshold {r['threshold']}: {r['mistyped_held']} of {r['mistyped']} mistyped "
        f"pages held, {r['correct_held']} of {r['correct']} correct ones (untitled + titled pages)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tune", action="store_true", help="Grid of blend weight x prior power (tuning folds).")
    args = ap.parse_args()
    texts = read_dev_texts()
    folds = family_folds(texts, FOLDS)
    if args.tune:
        grid = tune(texts, folds)
        for g in grid:
            print(
                f"prior {g['prior_power']:.2f} weight {g['weight']:.1f}: balanced accuracy "
                f"{g['balanced_accuracy']:.3f}, balanced macro-F1 {g['balanced_macro_f1']:.3f}"
            )
        top = max(grid, key=lambda g: g["balanced_accuracy"] + g["balanced_macro_f1"])
        print("best:", json.dumps({k: top[k] for k in ("prior_power", "weight", "balanced_accuracy")}))
        return
    models, train_s = fold_models(texts, folds)
    result = report(texts, folds, models) | {"train_s_per_fold": train_s}
    print(f"document type, family-grouped CV ({result['families']} families, {FOLDS} folds)")
    for key in ("cv_untitled", "cv_titled", "held_out_families_untitled", "held_out_families_titled"):
        print_metrics(key, result[key])
    for key in ("review_tuning_families", "review_held_out_families"):
        print_review(key, result[key])
    print(f"  with blend weight {ALTERNATIVE_WEIGHT} (shipped before)")
    for key in ("alternative_cv_untitled", "alternative_held_out_families_untitled"):
        print_metrics(key, result[key])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
