"""The document-type model's text and version: label lines of every layout stay out of what it learns, a
change of features never loads a stale cached model, and the prior correction; no import cycle between
the rules and the model. Small synthetic texts only (training here takes well under a second)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytest.importorskip("sklearn")

from chartvault.classify import features
from chartvault.classify import model as mdl

CLASSIFY = Path(mdl.__file__).resolve().parent

OP = "The patient was prepped and draped in the usual sterile fashion. An incision was made and closed."
RAD = "Axial images were obtained without contrast. Findings: no acute abnormality. Impression: normal."


def tiny_training() -> tuple[list[str], list[str]]:
    texts = [f"{OP} Case {w}." for w in "abcdef"] + [f"{RAD} Study {w}." for w in "abcdef"]
    return texts, ["operative_report"] * 6 + ["radiology_report"] * 6


@pytest.mark.parametrize(
    "label_line",
    [
        "Patient ID: 001234567",
        "Chart #: E0012345",
        "EMPI 001234567 | DOE, JANE Q | DOB 03/14/1952 | Sex F",
        "Unit #: M000123456  Acct #: V0001234567",
        "HAR 7766554433  ADM 05/02/2023",
        "DOE, JANE Q  001234567  F  03/14/52",
        "05/02/23   DR SMITH",
        "Visit Date: 05/02/2023",
        "Adm/Disch: 05/02/23 -",
        "DATE OF BIRTH: 03/14/1952",
        "ADM DATE: 5/02/23",
        "F 03/14/1952 72Y",
        "03/14/52 M 72",
        "MR00123456 0012345678",
        "Patient: THORNBURY-YAMAMOTO, ALMA R   MR#: M000123456   D.O.B.: 03/14/1952   Sex: F   "
        "Visit Date: 05/02/2023",  # a footer strip longer than a label line
    ],
)
def test_label_lines_of_every_layout_are_not_report_text(label_line: str) -> None:
    page = f"RIVERBEND GENERAL HOSPITAL\n{label_line}\nSUBJECTIVE: Doing well since the last visit."
    assert features.is_label_line(label_line)
    text = mdl.model_text(page)
    assert "SUBJECTIVE: Doing well" in text
    assert label_line.split()[0].rstrip(":#,") not in text.split()


def test_report_lines_are_kept() -> None:
    for line in (
        "HISTORY OF PRESENT ILLNESS: Knee pain since a fall.",
        "Dear Dr. Smith:",
        "DOE is a name",
        "1. Hypertension.",
        "140 4.2 102 24",  # lab values: numbers, but no date and no long number
        "Seen on 05/02/2023 for follow-up of her knee pain, which is better since the injection.",
    ):
        assert not features.is_label_line(line)


def test_a_change_of_features_never_loads_a_stale_cached_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts, labels = tiny_training()
    model = mdl.train(texts, labels)
    path = tmp_path / "doctype-model.joblib"
    model.save(path)
    assert mdl.load(path, expected_version=mdl.training_version(texts, labels)).version == model.version
    monkeypatch.setattr(mdl, "FEATURES_VERSION", mdl.FEATURES_VERSION + " changed")
    new_version = mdl.training_version(texts, labels)
    assert new_version != model.version
    with pytest.raises(mdl.ModelVersionError):
        mdl.load(path, expected_version=new_version)


def test_prior_correction_lifts_a_rare_type_and_round_trips(tmp_path: Path) -> None:
    texts, labels = tiny_training()
    model = mdl.train(texts, labels)
    assert model.class_counts == {"operative_report": 6, "radiology_report": 6}
    skewed = mdl.DocTypeModel(model.pipeline, model.version, class_counts={"a": 90, "b": 10}, prior_power=1.0)
    lifted = skewed._without_training_prior({"a": 0.6, "b": 0.4})
    assert lifted["b"] > lifted["a"] and abs(sum(lifted.values()) - 1.0) < 1e-9
    kept = mdl.DocTypeModel(model.pipeline, model.version, class_counts={"a": 90, "b": 10}, prior_power=0.0)
    assert kept._without_training_prior({"a": 0.6, "b": 0.4}) == {"a": 0.6, "b": 0.4}
    model.save(tmp_path / "m.joblib")
    loaded = mdl.load(tmp_path / "m.joblib")
    assert (loaded.class_counts, loaded.prior_power) == (model.class_counts, model.prior_power)


def _imports(module: str) -> set[str]:
    tree = ast.parse((CLASSIFY / f"{module}.py").read_text(encoding="utf-8"))
    return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}


def test_rules_and_model_share_helpers_without_importing_each_other() -> None:
    assert "chartvault.classify.doctype" not in _imports("model")
    assert "chartvault.classify.features" in _imports("model") & _imports("doctype")
