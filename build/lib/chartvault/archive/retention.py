"""Retention engine: how long a record must be kept, from rules kept as data.

``retain_until`` is the latest date among every federal, state and policy rule that
applies (the law sets floors; keeping longer is always allowed, destroying earlier
never). The id of the winning rule is kept with the record so a destruction
certificate can say why the record became eligible. Pure: no database, no clock.
The result feeds object-lock retain-until, which can only be extended - matching
rules that run from the *most recent* encounter.

Rules live in ``retention_rules.yaml`` (the format is described at its top) and
are validated when loaded, so a bad edit fails at start-up, not at disposition.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "DEFAULT_RULES_PATH",
    "RetentionDecision",
    "RetentionFacts",
    "RetentionRulesError",
    "Rule",
    "RuleSet",
    "Term",
    "compute_retention",
    "default_rules",
    "load_rules",
]

DEFAULT_RULES_PATH = Path(__file__).with_name("retention_rules.yaml")

ANCHORS = frozenset({"last_encounter", "record_created", "date_of_death", "majority"})
_ID_RE = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_STATE_RE = re.compile(r"[A-Z]{2}")
_RULE_KEYS = frozenset({"id", "citation", "description", "applies", "permanent", "terms"})
_APPLIES_KEYS = frozenset({"states", "doc_types", "doc_types_except", "minor", "adult"})
_TOP_KEYS = frozenset({"version", "majority_age", "parameters", "rules"})


class RetentionRulesError(ValueError):
    """The rules file is malformed; the message names the file and the rule."""


@dataclass(frozen=True, slots=True)
class RetentionFacts:
    """What the rules look at. Dates only; no names or identifiers (no PHI beyond dates)."""

    record_created: date
    doc_type: str
    last_encounter: date | None = None
    dob: date | None = None
    state: str | None = None
    date_of_death: date | None = None


@dataclass(frozen=True, slots=True)
class RetentionDecision:
    """The outcome: ``retain_until`` None means permanent; ``considered`` lists every applicable rule."""

    retain_until: date | None
    rule_id: str
    considered: list[tuple[str, date | None]] = field(default_factory=list)

    @property
    def permanent(self) -> bool:
        return self.retain_until is None


@dataclass(frozen=True, slots=True)
class Term:
    """One candidate date: ``anchor`` + ``years``, or (anchor 'dob') the patient's ``years``-th birthday."""

    anchor: str
    years: int


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    citation: str
    description: str
    terms: tuple[Term, ...] = ()
    permanent: bool = False
    states: frozenset[str] | None = None
    doc_types: frozenset[str] | None = None
    doc_types_except: frozenset[str] = frozenset()
    minor: bool | None = None
    adult: bool | None = None


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...]
    majority_age: int
    source: str


def add_years(d: date, years: int) -> date:
    """``d`` plus whole years; 29 February becomes 1 March (the later date: retention errs long)."""
    try:
        return d.replace(year=d.year + years)
    except ValueError:
        return date(d.year + years, 3, 1)


# -- loading -----------------------------------------------------------------------------------


def _str_set(value: object, where: str, what: str, pattern: re.Pattern[str] | None = None) -> frozenset[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise RetentionRulesError(f"{where}: {what} must be a non-empty list of strings")
    if pattern is not None:
        bad = [v for v in value if not pattern.fullmatch(v)]
        if bad:
            raise RetentionRulesError(f"{where}: {what} has malformed entries {bad}")
    return frozenset(value)


def _years(value: object, params: Mapping[str, int], where: str) -> int:
    if isinstance(value, str):
        if value not in params:
            raise RetentionRulesError(f"{where}: unknown parameter {value!r}")
        return params[value]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 200:
        raise RetentionRulesError(f"{where}: years must be a whole number 0-200 or a parameter name")
    return value


def _term(raw: object, params: Mapping[str, int], where: str) -> Term:
    if not isinstance(raw, dict):
        raise RetentionRulesError(f"{where}: a term must be a mapping")
    if set(raw) == {"age"}:
        return Term("dob", _years(raw["age"], params, where))
    if set(raw) == {"after", "years"}:
        if raw["after"] not in ANCHORS:
            raise RetentionRulesError(
                f"{where}: 'after' must be one of {sorted(ANCHORS)}, got {raw['after']!r}"
            )
        return Term(raw["after"], _years(raw["years"], params, where))
    raise RetentionRulesError(
        f"{where}: a term is {{after: ANCHOR, years: N}} or {{age: N}}, got keys {sorted(raw)}"
    )


def _rule(raw: object, index: int, params: Mapping[str, int], source: str) -> Rule:
    where = f"{source}: rule #{index + 1}"
    if not isinstance(raw, dict):
        raise RetentionRulesError(f"{where}: must be a mapping")
    rid = raw.get("id")
    if not isinstance(rid, str) or not _ID_RE.fullmatch(rid):
        raise RetentionRulesError(f"{where}: id must match {_ID_RE.pattern}")
    where = f"{where} ({rid})"
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        raise RetentionRulesError(f"{where}: unknown keys {sorted(unknown)}")
    for key in ("citation", "description"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise RetentionRulesError(f"{where}: {key} is required")
    permanent = raw.get("permanent", False)
    if not isinstance(permanent, bool):
        raise RetentionRulesError(f"{where}: permanent must be true or false")
    terms_raw = raw.get("terms")
    if permanent and terms_raw is not None:
        raise RetentionRulesError(f"{where}: a permanent rule has no terms")
    if not permanent and (not isinstance(terms_raw, list) or not terms_raw):
        raise RetentionRulesError(f"{where}: terms must be a non-empty list (or permanent: true)")
    terms = tuple(_term(t, params, f"{where} term #{i + 1}") for i, t in enumerate(terms_raw or []))

    applies = raw.get("applies") or {}
    if not isinstance(applies, dict):
        raise RetentionRulesError(f"{where}: applies must be a mapping")
    unknown = set(applies) - _APPLIES_KEYS
    if unknown:
        raise RetentionRulesError(f"{where}: unknown applies keys {sorted(unknown)}")
    for flag in ("minor", "adult"):
        if flag in applies and not isinstance(applies[flag], bool):
            raise RetentionRulesError(f"{where}: applies.{flag} must be true or false")
    return Rule(
        id=rid,
        citation=raw["citation"].strip(),
        description=raw["description"].strip(),
        terms=terms,
        permanent=permanent,
        states=_str_set(applies["states"], where, "states", _STATE_RE) if "states" in applies else None,
        doc_types=_str_set(applies["doc_types"], where, "doc_types") if "doc_types" in applies else None,
        doc_types_except=(
            _str_set(applies["doc_types_except"], where, "doc_types_except")
            if "doc_types_except" in applies
            else frozenset()
        ),
        minor=applies.get("minor"),
        adult=applies.get("adult"),
    )


def load_rules(path: str | Path | None = None, *, parameters: Mapping[str, int] | None = None) -> RuleSet:
    """Load and validate a rules file (default: the packaged one); ``parameters`` override the file's."""
    src = Path(path) if path is not None else DEFAULT_RULES_PATH
    source = str(src)
    try:
        data: Any = yaml.safe_load(src.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RetentionRulesError(f"{source}: cannot read rules file: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise RetentionRulesError(f"{source}: not valid YAML{at}") from None
    if not isinstance(data, dict):
        raise RetentionRulesError(f"{source}: must be a mapping with version, majority_age, rules")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise RetentionRulesError(f"{source}: unknown top-level keys {sorted(unknown)}")
    if data.get("version") != 1:
        raise RetentionRulesError(f"{source}: version must be 1, got {data.get('version')!r}")
    majority = data.get("majority_age")
    if isinstance(majority, bool) or not isinstance(majority, int) or not 14 <= majority <= 25:
        raise RetentionRulesError(f"{source}: majority_age must be a whole number 14-25")

    params_raw = data.get("parameters") or {}
    if not isinstance(params_raw, dict):
        raise RetentionRulesError(f"{source}: parameters must be a mapping")
    params: dict[str, int] = {}
    for name, value in {**params_raw, **(parameters or {})}.items():
        if not isinstance(name, str) or not _ID_RE.fullmatch(name):
            raise RetentionRulesError(f"{source}: malformed parameter name {name!r}")
        if name not in params_raw:
            raise RetentionRulesError(f"{source}: override of unknown parameter {name!r}")
        params[name] = _years(value, {}, f"{source}: parameter {name}")

    rules_raw = data.get("rules")
    if not isinstance(rules_raw, list) or not rules_raw:
        raise RetentionRulesError(f"{source}: rules must be a non-empty list")
    rules = tuple(_rule(r, i, params, source) for i, r in enumerate(rules_raw))
    seen: set[str] = set()
    for r in rules:
        if r.id in seen:
            raise RetentionRulesError(f"{source}: duplicate rule id {r.id!r}")
        seen.add(r.id)
    return RuleSet(rules=rules, majority_age=majority, source=source)


@cache
def default_rules() -> RuleSet:
    """The packaged rules, loaded once."""
    return load_rules()


# -- computing ---------------------------------------------------------------------------------


def _age_flags(facts: RetentionFacts, majority_age: int) -> tuple[bool, bool]:
    """(minor when the record was made, adult at the most recent encounter).

    Minor status is fixed by the record's date, so a record made for a child keeps
    the minor rules; adulthood is judged at the latest encounter, so a new encounter
    can only add rules, never drop one (retention only extends). Unknown DOB: adult.
    """
    if facts.dob is None:
        return False, True
    majority = add_years(facts.dob, majority_age)
    return facts.record_created < majority, (facts.last_encounter or facts.record_created) >= majority


def _applies(rule: Rule, facts: RetentionFacts, minor: bool, adult: bool) -> bool:
    if rule.states is not None and (facts.state or "").upper() not in rule.states:
        return False
    if rule.doc_types is not None and facts.doc_type not in rule.doc_types:
        return False
    if facts.doc_type in rule.doc_types_except:
        return False
    if rule.minor is not None and rule.minor != minor:
        return False
    return rule.adult is None or rule.adult == adult


def _term_date(term: Term, facts: RetentionFacts, majority_age: int) -> date | None:
    if term.anchor == "dob" or term.anchor == "majority":
        if facts.dob is None:
            return None
        base = add_years(facts.dob, majority_age) if term.anchor == "majority" else facts.dob
        return add_years(base, term.years)
    anchor: date | None = getattr(facts, term.anchor)
    return None if anchor is None else add_years(anchor, term.years)


def compute_retention(facts: RetentionFacts, rules: RuleSet | None = None) -> RetentionDecision:
    """The latest retain-until among the applicable rules (None = permanent) and the winning rule.

    Ties go to the rule listed first. Raises ValueError when no rule applies, so a
    record never silently gets no retention.
    """
    rs = rules or default_rules()
    if facts.dob is not None and facts.last_encounter is not None and facts.last_encounter < facts.dob:
        raise ValueError("last_encounter is before dob")
    minor, adult = _age_flags(facts, rs.majority_age)
    considered: list[tuple[str, date | None]] = []
    permanent_id: str | None = None
    best: tuple[date, str] | None = None
    for rule in rs.rules:
        if not _applies(rule, facts, minor, adult):
            continue
        if rule.permanent:
            considered.append((rule.id, None))
            permanent_id = permanent_id or rule.id
            continue
        dates = [d for t in rule.terms if (d := _term_date(t, facts, rs.majority_age)) is not None]
        if not dates:
            continue  # nothing to anchor on (e.g. no DOB or no encounter)
        until = max(dates)
        considered.append((rule.id, until))
        if best is None or until > best[0]:
            best = (until, rule.id)
    if permanent_id is not None:
        return RetentionDecision(None, permanent_id, considered)
    if best is None:
        raise ValueError(f"no retention rule applies (doc_type {facts.doc_type!r}, rules {rs.source})")
    return RetentionDecision(best[0], best[1], considered)
