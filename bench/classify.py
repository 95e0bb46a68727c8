"""Document type and identifiers over the corpus ground-truth text: rules alone vs rules + trained model.

    python -m bench.classify [--cv] [--folds K]

1. Trains the document-type model from dev_texts.csv + the packaged samples (timed; no cache).
2. Document type over the corpus page texts (manifest.jsonl ``pages[].text``, 'letter' -> 'correspondence'):
   per document (classify_document over its pages), per page (classify_text), accuracy and macro-F1,
   confusion matrix, for the rules alone and for rules + model. Every corpus text is also a dev_texts row
   (same text_key), so these are in-sample figures: ``bench.typecv`` measures types out of sample.
3. Identifiers (MRN, DOB, name, date of service) exact match per page and merged per document. They do not
   depend on the classifier, so one set of figures serves both.
4. ``--cv``: stratified K-fold over dev_texts + samples (model trained on the other folds), and the corpus
   with the full model, over a grid of blend weights. ``doctype._MODEL_WEIGHT`` was first chosen this way;
   a stratified split keeps note families on both sides and the corpus is in-sample, so both reward memory:
   it is now chosen by family-grouped cross-validation (``python -m bench.typecv --tune``).

Ground-truth text only; OCR'd text is measured by bench.pipeline. The last line is a JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter

from bench.common import corpus_dir, load_manifest
from chartvault.classify import DOC_TYPES, doctype, extract_identifiers, merge_identifiers
from chartvault.classify import model as mdl

LABEL_MAP = {"letter": "correspondence"}


def scores(y_true: list[str], y_pred: list[str]) -> dict[str, float]:
    """Accuracy and macro-F1 over the labels that occur in y_true (a type never seen cannot be averaged)."""
    labels = sorted(set(y_true))
    f1s = []
    for lb in labels:
        tp = sum(t == lb and p == lb for t, p in zip(y_true, y_pred, strict=True))
        fp = sum(t != lb and p == lb for t, p in zip(y_true, y_pred, strict=True))
        fn = sum(t == lb and p != lb for t, p in zip(y_true, y_pred, strict=True))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    acc = sum(t == p for t, p in zip(y_true, y_pred, strict=True)) / len(y_true)
    return {"accuracy": round(acc, 4), "macro_f1": round(sum(f1s) / len(f1s), 4), "n": len(y_true)}


def confusion(y_true: list[str], y_pred: list[str]) -> str:
    """Rows: truth; columns: prediction (types that occur in either)."""
    labels = [t for t in DOC_TYPES if t in set(y_true) | set(y_pred)]
    short = {t: t[:8] for t in labels}
    counts = Counter(zip(y_true, y_pred, strict=True))
    out = ["truth \\ pred".ljust(22) + " ".join(short[t].rjust(8) for t in labels)]
    for t in labels:
        out.append(t[:21].ljust(22) + " ".join(str(counts[(t, p)] or ".").rjust(8) for p in labels))
    return "\n".join(out)


def corpus_doc_type(manifest: list[dict], model: mdl.DocTypeModel | None) -> dict:
    """Predictions per document and per page; model None = rules alone."""
    use = model is not None
    truth_doc, pred_doc, truth_page, pred_page = [], [], [], []
    for doc in manifest:
        want = LABEL_MAP.get(doc["doc_type"], doc["doc_type"])
        texts = [p["text"] for p in doc["pages"]]
        truth_doc.append(want)
        pred_doc.append(doctype.classify_document(texts, model=model, use_model=use).doc_type)
        for t in texts:
            truth_page.append(want)
            pred_page.append(doctype.classify_text(t, model=model, use_model=use).doc_type)
    return {
        "document": scores(truth_doc, pred_doc),
        "page": scores(truth_page, pred_page),
        "_doc": (truth_doc, pred_doc),
    }


def _label_area(page: dict) -> str:
    """The printed header/label of a page: everything before the report body."""
    body = page["body_text"]
    cut = page["text"].find(body[:40]) if body else -1
    return page["text"][:cut] if cut > 0 else ""


def identifier_rates(manifest: list[dict]) -> dict:
    """Exact-match rates per page (DOS only where the label prints it) and merged per document."""
    fields = {"mrn": "mrn", "dob": "dob", "name": "name_printed", "date_of_service": "service_date"}
    page_hits, page_n = Counter(), Counter()
    doc_hits = Counter()
    for doc in manifest:
        pt = doc["patient"]
        per_page = []
        for page in doc["pages"]:
            ids = extract_identifiers(page["text"])
            per_page.append(ids)
            for attr, key in fields.items():
                if attr == "date_of_service" and pt["service_date_printed"] not in _label_area(page):
                    continue  # scored only where the patient label prints it
                ex = getattr(ids, attr)
                page_n[attr] += 1
                page_hits[attr] += ex is not None and ex.value == pt[key]
        merged = merge_identifiers(per_page)
        for attr, key in fields.items():
            ex = getattr(merged, attr)
            doc_hits[attr] += ex is not None and ex.value == pt[key]
    return {
        "page": {a: round(page_hits[a] / page_n[a], 4) for a in fields if page_n[a]},
        "page_n": dict(page_n),
        "document": {a: round(doc_hits[a] / len(manifest), 4) for a in fields},
    }


def cross_validate(manifest: list[dict], folds: int) -> dict:
    """Out-of-fold model probabilities on dev_texts + samples, full-model probabilities on the corpus, then
    every blend in the grid scored on both."""
    from sklearn.model_selection import StratifiedKFold

    dev_path = mdl.dev_texts_path()
    assert dev_path is not None
    d_texts, d_labels = mdl.read_dev_texts(dev_path)
    s_texts, s_labels, _ = mdl.sample_data()
    texts, labels = d_texts + s_texts, d_labels + s_labels
    is_dev = [True] * len(d_texts) + [False] * len(s_texts)
    oof: list[dict[str, float] | None] = [None] * len(texts)
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    t0 = time.perf_counter()
    for tr, te in skf.split(texts, labels):
        m = mdl.train([texts[i] for i in tr], [labels[i] for i in tr])
        for i, p in zip(te, m.proba([texts[i] for i in te]), strict=True):
            oof[i] = p
    cv_train_s = (time.perf_counter() - t0) / folds
    rule = [doctype._scores([t]) for t in texts]
    words = [len(mdl.model_text(t).split()) for t in texts]

    full = mdl.train(texts, labels)
    docs = []  # (truth, rule scores, titled, probs, words) per document and per page
    pages = []
    for doc in manifest:
        want = LABEL_MAP.get(doc["doc_type"], doc["doc_type"])
        ptexts = [p["text"] for p in doc["pages"]]
        docs.append(
            (want, *doctype._scores(ptexts), full.proba([ptexts])[0], len(mdl.model_text(ptexts).split()))
        )
        for t in ptexts:
            pages.append((want, *doctype._scores([t]), full.proba([t])[0], len(mdl.model_text(t).split())))

    grid = []
    for weight in (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
        for full_words in (1, 30, 60, 120, 250):
            if weight == 0.0 and full_words != 1:
                continue
            dev_t, dev_p, smp_t, smp_p = [], [], [], []
            for i, (sc, titled) in enumerate(rule):
                pred = doctype.blend(sc, titled, oof[i], words[i], weight, full_words).doc_type
                (dev_t if is_dev[i] else smp_t).append(labels[i])
                (dev_p if is_dev[i] else smp_p).append(pred)
            cd = [doctype.blend(s, ti, p, w, weight, full_words).doc_type for _, s, ti, p, w in docs]
            cp = [doctype.blend(s, ti, p, w, weight, full_words).doc_type for _, s, ti, p, w in pages]
            row = {
                "weight": weight,
                "full_words": full_words,
                "dev": scores(dev_t, dev_p),
                "samples": scores(smp_t, smp_p),
                "corpus_doc": scores([d[0] for d in docs], cd),
                "corpus_page": scores([p[0] for p in pages], cp),
            }
            row["objective"] = round(
                (row["dev"]["macro_f1"] + row["corpus_doc"]["accuracy"] + row["corpus_page"]["accuracy"]) / 3,
                4,
            )
            grid.append(row)
    best = max(grid, key=lambda r: r["objective"])
    return {"folds": folds, "train_s_per_fold": round(cv_train_s, 2), "grid": grid, "best": best}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cv", action="store_true", help="cross-validate the blend grid (slower)")
    ap.add_argument("--folds", type=int, default=5)
    args = ap.parse_args()
    corpus_dir()  # exits with a message when the corpus is missing
    manifest = load_manifest()

    texts, labels = mdl.training_data()
    t0 = time.perf_counter()
    model = mdl.train(texts, labels)
    train_s = time.perf_counter() - t0
    print(f"model: {len(texts)} training texts, trained in {train_s:.1f} s, version {model.version}")

    result: dict = {"train_s": round(train_s, 2), "n_train": len(texts)}
    for name, m in (("rules", None), ("combined", model)):
        r = corpus_doc_type(manifest, m)
        truth, pred = r.pop("_doc")
        result[name] = r
        print(f"\n== {name}: document {r['document']}  page {r['page']}")
        print(confusion(truth, pred))

    ids = identifier_rates(manifest)
    result["identifiers"] = ids
    print(
        "\n== identifiers (same for both): exact match per page", ids["page"], "per document", ids["document"]
    )

    if args.cv:
        cv = cross_validate(manifest, args.folds)
        print(f"\n== cross-validation ({cv['folds']} folds, {cv['train_s_per_fold']} s training per fold)")
        print("weight full_words  dev_acc dev_mF1  smp_acc  doc_acc doc_mF1  page_acc  objective")
        for r in cv["grid"]:
            dev, doc = r["dev"], r["corpus_doc"]
            print(
                f"{r['weight']:6.1f} {r['full_words']:10d}  {dev['accuracy']:.3f}   {dev['macro_f1']:.3f}"
                f"    {r['samples']['accuracy']:.3f}    {doc['accuracy']:.3f}   {doc['macro_f1']:.3f}"
                f"    {r['corpus_page']['accuracy']:.3f}     {r['objective']:.4f}"
            )
        b = cv["best"]
        print(f"best: weight {b['weight']} full_words {b['full_words']} (objective {b['objective']})")
        result["cv"] = {
            "folds": cv["folds"],
            "best": b,
            "rules_only": next(r for r in cv["grid"] if r["weight"] == 0.0),
            "current": next(
                (
                    r
                    for r in cv["grid"]
                    if r["weight"] == doctype._MODEL_WEIGHT and r["full_words"] == doctype._MODEL_FULL_WORDS
                ),
                None,
            ),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
