"""Retention engine: every packaged rule with a worked example, and the rules-file validation."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from chartvault.archive.retention import (
    DEFAULT_RULES_PATH,
    RetentionFacts,
    RetentionRulesError,
    add_years,
    compute_retention,
    default_rules,
    load_rules,
)


def facts(
    last: date | None,
    *,
    dob: date | None = None,
    created: date | None = None,
    doc_type: str = "discharge_summary",
    state: str | None = None,
    death: date | None = None,
) -> RetentionFacts:
    return RetentionFacts(
        record_created=created or last or date(2020, 1, 1),
        doc_type=doc_type,
        last_encounter=last,
        dob=dob,
        state=state,
        date_of_death=death,
    )


def considered(decision) -> dict[str, date | None]:
    return dict(decision.considered)


# -- federal and AHIMA ---------------------------------------------------------------------------


def test_adult_ten_years_after_last_encounter() -> None:
    d = compute_retention(facts(date(2020, 3, 15), dob=date(1970, 5, 1)))
    assert (d.retain_until, d.rule_id) == (date(2030, 3, 15), "ahima.adult")
    assert considered(d) == {"federal.cms_482_24": date(2025, 3, 15), "ahima.adult": date(2030, 3, 15)}
    assert not d.permanent


def test_unknown_dob_counts_as_adult() -> None:
    d = compute_retention(facts(date(2020, 3, 15)))
    assert (d.retain_until, d.rule_id) == (date(2030, 3, 15), "ahima.adult")


def test_minor_majority_plus_limitations() -> None:
    f = facts(date(2015, 1, 10), dob=date(2010, 6, 1))
    d = compute_retention(f)
    # majority 2028-06-01 + 3 years (packaged minor_limitations_years)
    assert (d.retain_until, d.rule_id) == (date(2031, 6, 1), "ahima.minor")
    assert "ahima.adult" not in considered(d)
    rules = load_rules(parameters={"minor_limitations_years": 7})
    assert compute_retention(f, rules).retain_until == date(2035, 6, 1)


def test_minor_near_majority_federal_floor_wins() -> None:
    d = compute_retention(facts(date(2019, 12, 1), dob=date(2002, 1, 1)))
    assert considered(d)["ahima.minor"] == date(2023, 1, 1)
    assert (d.retain_until, d.rule_id) == (date(2024, 12, 1), "federal.cms_482_24")


def test_diagnostic_image_exception_replaces_ahima_general_rule() -> None:
    d = compute_retention(facts(date(2020, 1, 1), created=date(2020, 2, 1), doc_type="diagnostic_image"))
    assert (d.retain_until, d.rule_id) == (date(2025, 2, 1), "ahima.diagnostic_image")
    assert "ahima.adult" not in considered(d)


def test_fetal_monitor_ten_years_after_infant_majority() -> None:
    d = compute_retention(facts(date(2020, 4, 4), dob=date(2020, 4, 4), doc_type="fetal_monitor_strip"))
    assert (d.retain_until, d.rule_id) == (date(2048, 4, 4), "ahima.fetal_monitor")


def test_indexes_ten_years_without_encounter() -> None:
    d = compute_retention(facts(None, created=date(2020, 1, 1), doc_type="operative_index"))
    assert (d.retain_until, d.rule_id) == (date(2030, 1, 1), "ahima.index")


@pytest.mark.parametrize(
    "doc_type", ["master_patient_index", "birth_register", "death_register", "surgical_register"]
)
def test_permanent_classes(doc_type: str) -> None:
    d = compute_retention(facts(date(2020, 1, 1), doc_type=doc_type, state="TX"))
    assert d.retain_until is None and d.permanent and d.rule_id == "ahima.permanent"
    assert ("ahima.permanent", None) in d.considered


# -- states -------------------------------------------------------------------------------------


def test_california_seven_years_after_discharge() -> None:
    d = compute_retention(
        facts(date(2020, 1, 1), created=date(2020, 1, 2), doc_type="diagnostic_image", state="CA")
    )
    assert (d.retain_until, d.rule_id) == (date(2027, 1, 1), "state.ca")


def test_california_minor_one_year_after_18() -> None:
    rules = load_rules(parameters={"minor_limitations_years": 0})
    d = compute_retention(facts(date(2010, 1, 1), dob=date(2005, 3, 1), state="CA"), rules)
    assert (d.retain_until, d.rule_id) == (date(2024, 3, 1), "state.ca.minor")


def test_california_minor_never_less_than_seven_years() -> None:
    rules = load_rules(parameters={"minor_limitations_years": 0})
    d = compute_retention(facts(date(2021, 1, 1), dob=date(2003, 6, 1), state="ca"), rules)
    assert d.retain_until == date(2028, 1, 1)
    assert considered(d)["state.ca.minor"] == date(2028, 1, 1)
    assert d.rule_id == "state.ca"  # a tie goes to the rule listed first


def test_texas_ten_years_or_age_20() -> None:
    adult_image = facts(date(2020, 5, 5), dob=date(1980, 1, 1), doc_type="diagnostic_image", state="TX")
    d = compute_retention(adult_image)
    assert (d.retain_until, d.rule_id) == (date(2030, 5, 5), "state.tx")
    child_image = facts(date(2016, 2, 2), dob=date(2015, 1, 1), doc_type="diagnostic_image", state="TX")
    d = compute_retention(child_image)
    assert (d.retain_until, d.rule_id) == (date(2035, 1, 1), "state.tx")


def test_new_york_six_years_or_age_21_or_death() -> None:
    child = facts(date(2012, 1, 1), dob=date(2010, 1, 1), doc_type="diagnostic_image", state="NY")
    d = compute_retention(child)
    assert (d.retain_until, d.rule_id) == (date(2031, 1, 1), "state.ny")
    adult = facts(date(2020, 1, 1), dob=date(1950, 1, 1), doc_type="diagnostic_image", state="NY")
    assert compute_retention(adult).retain_until == date(2026, 1, 1)
    died = replace(adult, date_of_death=date(2024, 6, 1))
    d = compute_retention(died)
    assert (d.retain_until, d.rule_id) == (date(2030, 6, 1), "state.ny")


def test_maryland_five_years_after_made_or_age_21() -> None:
    child = facts(
        date(2019, 7, 1),
        dob=date(2010, 2, 2),
        doc_type="diagnostic_image",
        state="MD",
        created=date(2019, 7, 3),
    )
    d = compute_retention(child)
    assert (d.retain_until, d.rule_id) == (date(2031, 2, 2), "state.md")
    adult = replace(child, dob=date(1960, 2, 2))
    d = compute_retention(adult)
    assert d.retain_until == date(2024, 7, 3) == considered(d)["state.md"]


def test_other_state_rules_do_not_apply() -> None:
    d = compute_retention(facts(date(2020, 1, 1), state="WA"))
    assert not any(rid.startswith("state.") for rid, _ in d.considered)


# -- combination --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "f",
    [
        facts(date(2020, 3, 15), dob=date(1970, 5, 1), state="TX"),
        facts(date(2016, 2, 2), dob=date(2015, 1, 1), state="NY", death=date(2018, 1, 1)),
        facts(date(2019, 7, 1), dob=date(2010, 2, 2), state="MD"),
        facts(date(2021, 1, 1), dob=date(2003, 6, 1), state="CA", doc_type="fetal_monitor_strip"),
    ],
)
def test_latest_applicable_rule_wins(f: RetentionFacts) -> None:
    d = compute_retention(f)
    assert d.retain_until == max(u for _, u in d.considered if u is not None)
    assert dict(d.considered)[d.rule_id] == d.retain_until
    assert len(d.considered) >= 2


def test_later_encounter_only_extends() -> None:
    created = date(2010, 1, 1)  # a record made while the patient was a child
    for state in (None, "CA", "TX", "NY", "MD"):
        for dob in (date(2004, 6, 1), date(1960, 1, 1), None):
            previous = date.min
            for year in range(2010, 2040):
                f = facts(date(year, 9, 1), dob=dob, created=created, state=state)
                until = compute_retention(f).retain_until
                assert until is not None and until >= previous, (state, dob, year)
                previous = until


def test_dob_correction_recomputes() -> None:
    f = facts(date(2015, 1, 10), dob=date(1990, 6, 1), state="NY")
    assert compute_retention(f).rule_id == "ahima.adult"
    corrected = replace(f, dob=date(2010, 6, 1))  # the patient was a child after all
    d = compute_retention(corrected)
    assert (d.retain_until, d.rule_id) == (date(2031, 6, 1), "ahima.minor")
    with pytest.raises(ValueError, match="before dob"):
        compute_retention(replace(f, dob=date(2016, 1, 1)))


def test_leap_day_rounds_later() -> None:
    assert add_years(date(2020, 2, 29), 1) == date(2021, 3, 1)
    assert add_years(date(2020, 2, 29), 4) == date(2024, 2, 29)


def test_no_rule_applies_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(
        "version: 1\nmajority_age: 18\nrules:\n"
        "  - {id: only.tx, citation: c, description: d, applies: {states: [TX]}, "
        "terms: [{after: last_encounter, years: 1}]}\n"
    )
    with pytest.raises(ValueError, match="no retention rule applies"):
        compute_retention(facts(date(2020, 1, 1)), load_rules(path))


# -- the rules file -----------------------------------------------------------------------------


def test_packaged_rules_load() -> None:
    rs = default_rules()
    assert rs.source == str(DEFAULT_RULES_PATH) and rs.majority_age == 18
    ids = {r.id for r in rs.rules}
    assert {"federal.cms_482_24", "ahima.adult", "ahima.minor", "state.ca", "state.tx", "state.ny"} <= ids


GOOD_RULE = "  - {id: r1, citation: c, description: d, terms: [{after: last_encounter, years: 5}]}\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: [\n", "not valid YAML at line"),
        ("- just a list\n", "must be a mapping"),
        ("version: 2\nmajority_age: 18\nrules:\n" + GOOD_RULE, "version must be 1"),
        ("version: 1\nmajority_age: 99\nrules:\n" + GOOD_RULE, "majority_age"),
        ("version: 1\nmajority_age: 18\nrules: []\n", "non-empty list"),
        ("version: 1\nmajority_age: 18\nextra: 1\nrules:\n" + GOOD_RULE, "unknown top-level keys"),
        ("version: 1\nmajority_age: 18\nrules:\n" + GOOD_RULE + GOOD_RULE, "duplicate rule id 'r1'"),
        (
            "version: 1\nmajority_age: 18\nrules:\n"
            "  - {id: r1, citation: c, description: d, terms: [{after: birthday, years: 5}]}\n",
            r"rule #1 \(r1\) term #1: 'after' must be one of",
        ),
        (
            "version: 1\nmajority_age: 18\nrules:\n"
            "  - {id: r1, citation: c, description: d, terms: [{after: last_encounter, years: -1}]}\n",
            "years must be a whole number",
        ),
        (
            "version: 1\nmajority_age: 18\nrules:\n"
            "  - {id: r1, citation: c, description: d, terms: [{after: last_encounter, years: nope}]}\n",
            "unknown parameter 'nope'",
        ),
        (
            "version: 1\nmajority_age: 18\nrules:\n  - {id: r1, citation: c, description: d}\n",
            r"rule #1 \(r1\): terms must be a non-empty list",
        ),
        (
            "version: 1\nmajority_age: 18\nrules:\n"
            "  - {id: r1, citation: c, description: d, permanent: true, terms: [{age: 3}]}\n",
            "a permanent rule has no terms",
        ),
        (
            "version: 1\nmajority_age: 18\nrules:\n"
            "  - {id: r1, citation: c, description: d, applies: {state: [CA]}, terms: [{age: 3}]}\n",
            "unknown applies keys",
        ),
        (
            "version: 1\nmajority_age: 18\nrules:\n"
            "  - {id: r1, citation: c, description: d, applies: {states: [California]}, terms: [{age: 3}]}\n",
            "states has malformed entries",
        ),
        (
            "version: 1\nmajority_age: 18\nrules:\n"
            "  - {id: r1, citation: c, description: d, applies: {minor: maybe}, terms: [{age: 3}]}\n",
            "applies.minor must be true or false",
        ),
        (
            "version: 1\nmajority_age: 18\nrules:\n  - {id: R 1, citation: c, description: d}\n",
            "id must match",
        ),
        (
            "version: 1\nmajority_age: 18\nrules:\n  - {id: r1, description: d, terms: [{age: 3}]}\n",
            "citation",
        ),
        (
            "version: 1\nmajority_age: 18\nrules:\n"
            "  - {id: r1, citation: c, description: d, terms: [{age: 3, years: 2}]}\n",
            "a term is",
        ),
    ],
)
def test_malformed_rules_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(RetentionRulesError, match=message) as exc:
        load_rules(path)
    assert str(path) in str(exc.value)


def test_missing_file_and_unknown_override(tmp_path: Path) -> None:
    with pytest.raises(RetentionRulesError, match="cannot read"):
        load_rules(tmp_path / "absent.yaml")
    with pytest.raises(RetentionRulesError, match="unknown parameter 'x'"):
        load_rules(parameters={"x": 1})
