"""classify/model.py: the trained document-type model and its blend with the title/keyword rules.

Floors were measured when the model was built (numbers next to each) and sit a little below, so unrelated
edits do not flap. Training is deterministic (fixed seeds, input order kept), so the numbers are exact for a
given scikit-learn version.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import joblib
import pytest

pytest.importorskip("sklearn")

from sklearn.model_selection import train_test_split

from chartvault.classify import DOC_TYPES, classify_document, classify_text
from chartvault.classify import model as mdl

CORPUS = Path(os.environ.get("CHARTVAULT_CORPUS", Path(__file__).resolve().parents[2] / "shared" / "corpus"))
LABEL_MAP = {"letter": "correspondence"}
CORPUS_TYPES = {"history_and_physical", "consult_note", "progress_note", "discharge_summary",
                "operative_report", "radiology_report", "ed_note", "correspondence"}  # fmt: skip
NON_CORPUS_TYPES = sorted(set(DOC_TYPES) - CORPUS_TYPES - {"other"})  # covered by our own samples only

# dev_texts: stratified 80/20 split (seed 0), model trained on the 80 % + 75 % of the samples; 194 held out.
# Rules alone on the same held-out texts: accuracy 0.835, macro-F1 0.708. The model's probabilities are
# prior-corrected (model.PARAMS["prior_power"]): it no longer leans on dev_texts' mix (half operative
# reports), which costs plain accuracy on this split of that mix (0.928 -> 0.892) and gains balanced
# accuracy on unseen families (python -m bench.typecv); the family-grouped figures are the ones to trust.
FLOOR_DEV_MODEL_ACC = 0.87  # measured 0.892 (model alone)
FLOOR_DEV_MODEL_MACRO_F1 = 0.76  # 0.782
FLOOR_DEV_COMBINED_ACC = 0.90  # 0.923 (rules + model, classify_text with the split model)
FLOOR_DEV_COMBINED_MACRO_F1 = 0.78  # 0.803
# Held-out 25 % of our own samples (35 texts of the 7 non-corpus types); rules alone 0.714.
FLOOR_SAMPLES_MODEL = 0.88  # 0.976 (40/41)
FLOOR_SAMPLES_COMBINED = 0.82  # 0.976 (40/41)
# Corpus page texts, model trained on all of dev_texts + samples (which include every corpus text: in-sample).
FLOOR_CORPUS_DOCUMENT = 0.97  # 1.000 (86 documents); rules alone 0.930
FLOOR_CORPUS_PAGE = 0.90  # 0.924 (118 pages); rules alone 0.797
TRAIN_SECONDS_MAX = 60.0  # measured 6-13 s on the shared 2-core machine under load (bench.classify)


def _rate(hits: int, total: int) -> float:
    assert total > 0
    return hits / total


def _acc(truth: list[str], pred: list[str]) -> float:
    return _rate(sum(p == t for p, t in zip(pred, truth, strict=True)), len(truth))


def _macro_f1(truth: list[str], pred: list[str]) -> float:
    f1s = []
    for lb in sorted(set(truth)):
        tp = sum(t == lb == p for t, p in zip(truth, pred, strict=True))
        fp = sum(t != lb and p == lb for t, p in zip(truth, pred, strict=True))
        fn = sum(t == lb and p != lb for t, p in zip(truth, pred, strict=True))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(f1s) / len(f1s)


@pytest.fixture(scope="module")
def dev() -> tuple[list[str], list[str]]:
    path = CORPUS / "dev_texts.csv"
    if not path.is_file():
        pytest.skip(f"dev_texts.csv not found in {CORPUS} (set CHARTVAULT_CORPUS)")
    return mdl.read_dev_texts(path)


@pytest.fixture(scope="module")
def samples() -> tuple[list[str], list[str]]:
    texts, labels, _ = mdl.sample_data()
    return texts, labels


@pytest.fixture(scope="module")
def split(dev: tuple[list[str], list[str]], samples: tuple[list[str], list[str]]) -> dict:
    d_tr, d_te, dl_tr, dl_te = train_test_split(*dev, test_size=0.2, stratify=dev[1], random_state=0)
    s_tr, s_te, sl_tr, sl_te = train_test_split(*samples, test_size=0.25, stratify=samples[1], random_state=0)
    t0 = time.perf_counter()
    model = mdl.train(d_tr + s_tr, dl_tr + sl_tr)
    return {
        "model": model,
        "train_s": time.perf_counter() - t0,
        "dev": (d_te, dl_te),
        "samples": (s_te, sl_te),
    }


@pytest.fixture(scope="module")
def full_model(tmp_path_factory: pytest.TempPathFactory, dev: tuple) -> mdl.DocTypeModel:
    return mdl.default_model(tmp_path_factory.mktemp("model-cache"), dev_path=CORPUS / "dev_texts.csv")


@pytest.fixture(scope="module")
def manifest() -> list[dict]:
    import json

    path = CORPUS / "manifest.jsonl"
    if not path.is_file():
        pytest.skip(f"corpus manifest not found in {CORPUS}")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# --------------------------------------------------------------------------------------------------------
# Accuracy on held-out data


def test_samples_cover_the_non_corpus_types(samples: tuple[list[str], list[str]]) -> None:
    counts = {t: samples[1].count(t) for t in NON_CORPUS_TYPES}
    # Our samples: the 7 types the corpus lacks, plus 'other' chart sections and more correspondence.
    assert set(samples[1]) == {*NON_CORPUS_TYPES, "other", "correspondence"}
    assert all(n >= 15 for n in counts.values()), counts
    assert samples[1].count("other") >= 10 and samples[1].count("correspondence") >= 8


@pytest.mark.slow
def test_training_is_fast(split: dict) -> None:
    assert split["train_s"] < TRAIN_SECONDS_MAX


@pytest.mark.slow
def test_dev_held_out_model_alone(split: dict) -> None:
    texts, labels = split["dev"]
    pred = [p.doc_type for p in (split["model"].predict(t) for t in texts)]
    assert _acc(labels, pred) >= FLOOR_DEV_MODEL_ACC
    assert _macro_f1(labels, pred) >= FLOOR_DEV_MODEL_MACRO_F1


@pytest.mark.slow
def test_dev_held_out_combined(split: dict) -> None:
    texts, labels = split["dev"]
    pred = [classify_text(t, model=split["model"]).doc_type for t in texts]
    assert _acc(labels, pred) >= FLOOR_DEV_COMBINED_ACC
    assert _macro_f1(labels, pred) >= FLOOR_DEV_COMBINED_MACRO_F1


def test_non_corpus_types_recognised_on_held_out_samples(split: dict) -> None:
    texts, labels = split["samples"]
    assert set(NON_CORPUS_TYPES) <= set(labels)
    combined = [classify_text(t, model=split["model"]).doc_type for t in texts]
    alone = [split["model"].predict(t).doc_type for t in texts]
    assert _acc(labels, combined) >= FLOOR_SAMPLES_COMBINED
    assert _acc(labels, alone) >= FLOOR_SAMPLES_MODEL


@pytest.mark.slow
def test_corpus_pages_combined_not_worse_than_rules(
    manifest: list[dict], full_model: mdl.DocTypeModel
) -> None:
    docs = pages = hits_doc = hits_page = rules_doc = rules_page = 0
    for doc in manifest:
        want = LABEL_MAP.get(doc["doc_type"], doc["doc_type"])
        texts = [p["text"] for p in doc["pages"]]
        docs += 1
        hits_doc += classify_document(texts, model=full_model).doc_type == want
        rules_doc += classify_document(texts, use_model=False).doc_type == want
        for t in texts:
            pages += 1
            hits_page += classify_text(t, model=full_model).doc_type == want
            rules_page += classify_text(t, use_model=False).doc_type == want
    assert _rate(hits_doc, docs) >= FLOOR_CORPUS_DOCUMENT
    assert _rate(hits_page, pages) >= FLOOR_CORPUS_PAGE
    assert hits_doc >= rules_doc
    assert hits_page >= rules_page


# --------------------------------------------------------------------------------------------------------
# Behaviour of the blend


def test_prediction_is_a_distribution_over_doc_types(split: dict) -> None:
    text = "The patient was prepped and draped in the usual sterile fashion. Incision was made. " * 5
    for pred in (split["model"].predict(text), classify_text(text, model=split["model"])):
        assert set(pred.scores) == set(DOC_TYPES)
        assert abs(sum(pred.scores.values()) - 1.0) < 1e-3
        assert 0.0 <= pred.confidence <= 1.0
        assert pred.doc_type == "operative_report"


def test_printed_title_still_decides(split: dict) -> None:
    body = "GENERAL HOSPITAL\nPATIENT: QUILL, AVERY R\nMRN: 0012345\nCONSENT FOR SURGERY\n" + (
        "The patient was prepped and draped in the usual sterile fashion. " * 10
    )
    assert classify_text(body, model=split["model"]).doc_type == "consent"


def test_empty_and_label_only_text_stay_other(split: dict) -> None:
    for text in ("", "  \n ", "GENERAL HOSPITAL\nPATIENT: QUILL, AVERY R\nMRN: 0012345\n"):
        pred = classify_text(text, model=split["model"])
        assert pred.doc_type == "other" and pred.confidence < 0.3


def test_hint_still_wins(split: dict) -> None:
    assert classify_text("HOSPITAL COURSE: fine.", hint="billing", model=split["model"]).confidence == 1.0


def test_model_text_strips_header_and_label() -> None:
    page = (
        "Brindlewood Community Hospital\n6273 Harbor Avenue, Cobalt Springs, OR 34969\n"
        "Tel (725) 555-0133   Fax (725) 555-0195\nPATIENT: HALL, GRACE W\nMRN: 4874449078  ACCT: 4555463079\n"
        "DOB: 06/21/1973  SEX: F  AGE: 47Y\nCONSULT NOTE\nREASON FOR CONSULTATION: Seizures since 2002.\n"
    )
    text = mdl.model_text(page)
    assert "Brindlewood" not in text and "HALL" not in text and "4874449078" not in text
    assert text.startswith("CONSULT NOTE") and "since 0000" in text


# --------------------------------------------------------------------------------------------------------
# Persistence and versions


@pytest.mark.slow
def test_save_load_round_trip(tmp_path: Path, split: dict) -> None:
    model = split["model"]
    path = tmp_path / "m.joblib"
    model.save(path)
    loaded = mdl.load(path, expected_version=model.version)
    texts = split["dev"][0][:20] + split["samples"][0][:10]
    assert loaded.version == model.version
    assert loaded.proba(texts) == model.proba(texts)


@pytest.mark.slow
def test_other_sklearn_version_refused(tmp_path: Path, split: dict) -> None:
    path = tmp_path / "m.joblib"
    split["model"].save(path)
    blob = joblib.load(path)
    blob["sklearn_version"] = "0.0.1"
    joblib.dump(blob, path)
    with pytest.raises(mdl.ModelVersionError, match=r"scikit-learn 0\.0\.1"):
        mdl.load(path)


@pytest.mark.slow
def test_stale_version_refused(tmp_path: Path, split: dict) -> None:
    path = tmp_path / "m.joblib"
    split["model"].save(path)
    with pytest.raises(mdl.ModelVersionError, match="stale"):
        mdl.load(path, expected_version="0" * 16)


@pytest.mark.slow
def test_default_model_caches_and_retrains_when_stale(tmp_path: Path, full_model: mdl.DocTypeModel) -> None:
    dev_path = CORPUS / "dev_texts.csv"
    cache = tmp_path / "cache"
    cache.mkdir()
    full_model.save(cache / "doctype-model.joblib")
    again = mdl.default_model(cache, dev_path=dev_path)  # loaded, not retrained
    assert again.version == full_model.version
    # A cached model from another scikit-learn version is replaced by a fresh one.
    blob = joblib.load(cache / "doctype-model.joblib")
    blob["sklearn_version"] = "0.0.1"
    joblib.dump(blob, cache / "doctype-model.joblib")
    fresh = mdl.default_model(cache, dev_path=dev_path)
    assert fresh.version == full_model.version
    assert mdl.load(cache / "doctype-model.joblib").version == full_model.version
    # Staff corrections change the training data, hence the version.
    texts, labels = mdl.training_data(
        dev_path, [("THIS IS NOT A BILL. Claim #: 1. Amount due $0.", "billing")]
    )
    assert mdl.training_version(texts, labels) != full_model.version


@pytest.mark.slow
def test_training_is_deterministic(samples: tuple[list[str], list[str]]) -> None:
    texts, labels = samples
    a, b = mdl.train(texts, labels), mdl.train(texts, labels)
    assert a.version == b.version
    assert a.proba(texts[:10]) == b.proba(texts[:10])


def test_unknown_label_rejected() -> None:
    with pytest.raises(ValueError, match="unknown document types"):
        mdl.train(["a b c", "d e f"], ["operative_report", "not_a_type"])
