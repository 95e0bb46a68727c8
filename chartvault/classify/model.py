"""Trained document-type model: TF-IDF over word and character n-grams, then logistic regression.

Why a model next to the rules: half the pages print no title, and keyword rules miss reports whose wording
the rule tables never saw. Word 1-2-grams carry the vocabulary of each report type; character 3-5-grams
(``char_wb``) still match when OCR breaks a word ('hemostasls'). A linear SVM with sigmoid calibration
(``CalibratedClassifierCV``) gives probabilities that can be blended with the rule scores (``doctype.py``);
it trained several times faster than multinomial logistic regression here, with equal or better held-out
macro-F1.

No binary is shipped: the model is trained on first use from the labelled report bodies (``dev_texts.csv``),
the synthetic samples in ``samples/<type>/*.txt`` (types the corpus lacks) and optional staff corrections,
then cached with joblib. The cached file records a version (hash of training data, parameters and the
scikit-learn version) and is retrained when that no longer matches. Load only files this code wrote:
unpickling runs code.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import io
import json
import os
import pickle
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import numpy as np
import sklearn
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC

from chartvault.classify.features import is_label_line, strip_label_lines, title_votes
from chartvault.classify.types import DOC_TYPES, DocTypePrediction

__all__ = [
    "MODEL_FORMAT",
    "PARAMS",
    "SAMPLES_DIR",
    "DocTypeModel",
    "ModelVersionError",
    "cache_path",
    "default_model",
    "dev_texts_path",
    "load",
    "model_text",
    "retrain",
    "sample_data",
    "train",
    "training_data",
    "training_version",
]

MODEL_FORMAT = 2  # 2: class counts stored with the model (prior correction)
# What ``model_text`` keeps and drops. Part of the model version: a model cached by code that prepared its
# text differently must never be loaded by this code. Change it whenever ``model_text`` or the label-line
# rules it uses (``features.py``) change.
FEATURES_VERSION = "3: every key synonym, keyless and values-only label lines, footer strips stripped"
SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
LABEL_MAP = {"letter": "correspondence"}  # corpus vocabulary -> ours
_CACHE_NAME = "doctype-model.joblib"

# Hyperparameters; part of the model version, so changing one retrains the cached model.
PARAMS: dict[str, object] = {
    "max_chars": 3000,  # about one page: the first page says what it is; also bounds training time
    "word_ngrams": (1, 2),
    "word_min_df": 2,
    "char_ngrams": (3, 5),
    "char_min_df": 2,
    "char_max_features": 150_000,
    "C": 0.5,
    "class_weight": "balanced",  # dev_texts is half operative reports
    "calibration_folds": 3,
    "seed": 0,
    # Probabilities are divided by (training share of the type) ** prior_power: the training texts are half
    # operative reports and a tenth as many H&Ps as consults, a chart's pages are not; 0 keeps the
    # training mix, 1 treats every type as equally likely. Chosen by family-grouped cross-validation.
    "prior_power": 0.75,
}

_DIGITS = re.compile(r"\d")
_SPACES = re.compile(r"[ \t]+")
_HOSPITAL_ZONE = 6  # hospital name, address and phone sit above the patient label


class ModelVersionError(RuntimeError):
    """A saved model that this code must not use (other scikit-learn version, format or training data)."""


def model_text(pages: str | Sequence[str]) -> str:
    """What the model sees: report text without hospital header, patient label, footer; digits as '0'.

    The header and label are printed on every page whatever the type, and numbers (MRNs, dates, doses) only
    add noise, so they are removed the same way for training and prediction.
    """
    if isinstance(pages, str):
        pages = [pages]
    out: list[str] = []
    for page in pages:
        if not page or not page.strip():
            continue
        lines = page.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        first_label = next(
            (i for i, ln in enumerate(lines[:_HOSPITAL_ZONE]) if is_label_line(ln)),
            0,
        )
        head = [ln for ln in lines[:first_label] if title_votes([ln])]  # keep a title printed above
        out.extend(head + strip_label_lines(lines[first_label:]))
    text = "\n".join(ln for ln in out if ln.strip())
    text = _SPACES.sub(" ", _DIGITS.sub("0", text))
    return text[: int(PARAMS["max_chars"])]  # type: ignore[call-overload]


def _pipeline(params: dict[str, object]) -> Pipeline:
    words = TfidfVectorizer(
        analyzer="word",
        ngram_range=params["word_ngrams"],
        min_df=params["word_min_df"],
        token_pattern=r"(?u)\b[^\W\d_][^\W\d_]+\b",
        sublinear_tf=True,
        dtype=np.float64,
    )
    chars = TfidfVectorizer(
        analyzer="char_wb",
        ngram_range=params["char_ngrams"],
        min_df=params["char_min_df"],
        max_features=params["char_max_features"],
        sublinear_tf=True,
        dtype=np.float64,
    )
    svm = LinearSVC(
        C=params["C"],
        class_weight=params["class_weight"],
        random_state=params["seed"],
    )
    folds = StratifiedKFold(n_splits=params["calibration_folds"])  # no shuffle
    clf = CalibratedClassifierCV(svm, method="sigmoid", cv=folds)
    return Pipeline([("features", FeatureUnion([("word", words), ("char", chars)])), ("clf", clf)])


def training_version(
    texts: Sequence[str], labels: Sequence[str], params: dict[str, object] | None = None
) -> str:
    """Hash of training data + parameters + scikit-learn version: equal hashes, interchangeable models."""
    h = hashlib.sha256()
    meta = {
        "format": MODEL_FORMAT,
        "features": FEATURES_VERSION,
        "params": params or PARAMS,
        "sklearn": sklearn.__version__,
    }
    h.update(json.dumps(meta, sort_keys=True, default=str).encode())
    for text, label in zip(texts, labels, strict=True):
        h.update(label.encode() + b"\x00" + text.encode("utf-8", "surrogatepass") + b"\x01")
    return h.hexdigest()[:16]


@dataclass
class DocTypeModel:
    """A fitted pipeline plus the version it was trained as."""

    pipeline: Pipeline
    version: str
    sklearn_version: str = field(default_factory=lambda: sklearn.__version__)
    n_train: int = 0
    class_counts: dict[str, int] = field(default_factory=dict)  # training texts per type
    prior_power: float = 0.0

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.pipeline.classes_]

    def proba(self, texts: Sequence[str | Sequence[str]]) -> list[dict[str, float]]:
        """Probability per type in DOC_TYPES (0 for types the model never saw) for each text or page list."""
        probs = self.pipeline.predict_proba([model_text(t) for t in texts])
        classes = self.classes
        out = []
        for row in probs:
            d = dict.fromkeys(DOC_TYPES, 0.0)
            d.update(self._without_training_prior(dict(zip(classes, (float(p) for p in row), strict=True))))
            out.append(d)
        return out

    def _without_training_prior(self, probs: dict[str, float]) -> dict[str, float]:
        """Divide out (part of) the training mix, so a rare type is not out-voted by its frequency alone."""
        total = sum(self.class_counts.values())
        if self.prior_power <= 0 or total <= 0:
            return probs
        scaled = {c: p / (self.class_counts.get(c, 1) / total) ** self.prior_power for c, p in probs.items()}
        norm = sum(scaled.values()) or 1.0
        return {c: p / norm for c, p in scaled.items()}

    def predict(self, text: str | Sequence[str]) -> DocTypePrediction:
        """Model-only prediction for one page, or a document given as a list of pages."""
        probs = self.proba([text])[0]
        best = max(DOC_TYPES, key=lambda t: probs[t])
        return DocTypePrediction(
            best, round(probs[best], 4), {k: round(v, 4) for k, v in probs.items()}, source="model"
        )

    def save(self, path: Path) -> None:
        """Write atomically (another process may be loading the same cache file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = {
            "format": MODEL_FORMAT,
            "version": self.version,
            "sklearn_version": self.sklearn_version,
            "n_train": self.n_train,
            "class_counts": self.class_counts,
            "prior_power": self.prior_power,
            # Pickled separately so the header can be checked before any scikit-learn object is unpickled.
            "pipeline": pickle.dumps(self.pipeline, protocol=pickle.HIGHEST_PROTOCOL),
        }
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        joblib.dump(blob, tmp, compress=3)
        os.replace(tmp, path)
        # The version beside the model, readable without unpickling anything (ops, `classifier train`).
        meta = {k: blob[k] for k in ("format", "version", "sklearn_version", "n_train")}
        side = path.with_suffix(".json")
        tmp_meta = side.with_name(f".{side.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp_meta.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp_meta, side)


def load(path: Path, expected_version: str | None = None) -> DocTypeModel:
    """Load a saved model; ModelVersionError if it was written by another format/scikit-learn or is stale."""
    blob = joblib.load(Path(path))
    if not isinstance(blob, dict) or blob.get("format") != MODEL_FORMAT:
        raise ModelVersionError(f"{path}: not a ChartVault doc-type model of format {MODEL_FORMAT}")
    if blob.get("sklearn_version") != sklearn.__version__:
        raise ModelVersionError(
            f"{path}: trained with scikit-learn {blob.get('sklearn_version')}, "
            f"running {sklearn.__version__}; retrain it"
        )
    if expected_version is not None and blob.get("version") != expected_version:
        raise ModelVersionError(f"{path}: model {blob.get('version')} is stale (expected {expected_version})")
    pipeline = pickle.loads(blob["pipeline"])
    return DocTypeModel(
        pipeline,
        blob["version"],
        blob["sklearn_version"],
        blob.get("n_train", 0),
        dict(blob.get("class_counts") or {}),
        float(blob.get("prior_power", 0.0)),
    )


def train(
    texts: Sequence[str], labels: Sequence[str], params: dict[str, object] | None = None
) -> DocTypeModel:
    """Fit the pipeline (deterministic: fixed seed, input order kept). Labels use our DOC_TYPES vocabulary."""
    params = dict(params or PARAMS)
    labels = [LABEL_MAP.get(lb, lb) for lb in labels]
    unknown = sorted(set(labels) - set(DOC_TYPES))
    if unknown:
        raise ValueError(f"unknown document types: {unknown}")
    pipe = _pipeline(params)
    pipe.fit([model_text(t) for t in texts], labels)
    return DocTypeModel(
        pipe,
        training_version(texts, labels, params),
        n_train=len(texts),
        class_counts=dict(Counter(labels)),
        prior_power=float(params.get("prior_power", 0.0)),  # type: ignore[arg-type]
    )


PACKAGED_DEV_TEXTS = Path(__file__).with_name("data") / "dev_texts.csv.gz"


def dev_texts_path() -> Path | None:
    """dev_texts.csv of the development corpus (CHARTVAULT_CORPUS, else ../shared/corpus next to the repo),
    else the gzip copy packaged with ChartVault (public MTSamples texts, CC0), so a deployment without
    the corpus still trains the same model."""
    repo = Path(__file__).resolve().parents[2]
    root = Path(os.environ.get("CHARTVAULT_CORPUS", repo.parent / "shared" / "corpus"))
    path = root / "dev_texts.csv"
    if path.is_file():
        return path
    return PACKAGED_DEV_TEXTS if PACKAGED_DEV_TEXTS.is_file() else None


def read_dev_texts(path: Path) -> tuple[list[str], list[str]]:
    """Report bodies and labels (ours: 'letter' -> 'correspondence') from dev_texts.csv, in file order."""
    opener = gzip.open if Path(path).suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(io.StringIO(fh.read())))
    return [r["transcription"] for r in rows], [LABEL_MAP.get(r["doc_type"], r["doc_type"]) for r in rows]


def sample_data(root: Path = SAMPLES_DIR) -> tuple[list[str], list[str], list[str]]:
    """Synthetic samples for the types the corpus lacks: texts, labels and file names, sorted by path."""
    texts: list[str] = []
    labels: list[str] = []
    names: list[str] = []
    for path in sorted(Path(root).glob("*/*.txt")):
        if path.parent.name not in DOC_TYPES:
            continue
        texts.append(path.read_text(encoding="utf-8"))
        labels.append(path.parent.name)
        names.append(f"{path.parent.name}/{path.name}")
    return texts, labels, names


def training_data(
    dev_path: Path | None = None, corrections: Iterable[tuple[str, str]] = ()
) -> tuple[list[str], list[str]]:
    """dev_texts + packaged samples + staff corrections ((text, doc_type) pairs, 'other' dropped)."""
    path = dev_path or dev_texts_path()
    if path is None:
        raise FileNotFoundError("dev_texts.csv not found: set CHARTVAULT_CORPUS to the development corpus")
    texts, labels = read_dev_texts(path)
    s_texts, s_labels, _ = sample_data()
    texts += s_texts
    labels += s_labels
    for text, label in corrections:
        label = LABEL_MAP.get(label, label)
        if label in DOC_TYPES and label != "other" and text and text.strip():
            texts.append(text)
            labels.append(label)
    return texts, labels


_train_lock = threading.Lock()


def cache_path(cache_dir: Path) -> Path:
    """Where ``default_model`` keeps the model in a cache folder (its version sits beside it as .json)."""
    return Path(cache_dir) / _CACHE_NAME


# The stages of a retraining, as ``retrain`` tells them to ``at_stage`` (its caller reads the corrections
# first). The fit cannot be interrupted: a retraining asked to stop while it fits stops when the fit ends,
# before its model is saved.
RETRAIN_STAGES = ("corrections", "texts", "fit", "save")


def _no_stage(stage: str) -> None:
    """``retrain`` told of no stage (the command line, the first batch)."""


def retrain(
    cache_dir: Path,
    corrections: Iterable[tuple[str, str]] = (),
    dev_path: Path | None = None,
    at_stage: Callable[[str], None] = _no_stage,
) -> DocTypeModel:
    """Train now (whatever the cache holds) and replace the cached model: ``chartvault classifier train``.

    ``at_stage`` is called as each stage begins ("texts", "fit", "save"); an exception it raises ends the
    retraining there, and before "save" nothing is written: the cached model stays as it was."""
    at_stage("texts")
    texts, labels = training_data(dev_path, corrections)
    with _train_lock:
        at_stage("fit")
        model = train(texts, labels)
        at_stage("save")
        model.save(cache_path(cache_dir))
    return model


def default_model(
    cache_dir: Path, corrections: Iterable[tuple[str, str]] = (), dev_path: Path | None = None
) -> DocTypeModel:
    """The cached model for the current training data; trained (a few seconds) when missing or stale."""
    texts, labels = training_data(dev_path, corrections)
    version = training_version(texts, labels)
    path = Path(cache_dir) / _CACHE_NAME
    with _train_lock:
        if path.is_file():
            try:
                return load(path, expected_version=version)
            except Exception:  # stale, other sklearn, truncated or corrupt: a cache never blocks
                pass  # retrain below
        model = train(texts, labels)
        with contextlib.suppress(OSError):  # read-only cache: still usable in memory
            model.save(path)
        return model
