"""Retention applied to archived documents: catalog first, then the store's lock.

The catalog keeps the date the rules give and the rule that won; the object
version in the store is locked until that date (never shorter than a minimum,
so even a record already past retention at scan time is not deletable by
accident) and is only ever extended. When a new encounter or a DOB correction
arrives, every document of the patient is recomputed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from chartvault.archive.models import DOC_DISPOSED, DOC_SUPERSEDED, Document, Patient
from chartvault.archive.objectstore import ObjectRef, ObjectStore
from chartvault.archive.renditions import rendition_ref
from chartvault.archive.retention import (
    RetentionDecision,
    RetentionFacts,
    RuleSet,
    add_years,
    compute_retention,
    default_rules,
    load_rules,
)
from chartvault.config import Settings

log = logging.getLogger(__name__)

__all__ = [
    "RetentionPolicy",
    "apply_retention",
    "document_ref",
    "object_tags",
    "recompute_patient",
]

INACTIVE = (DOC_DISPOSED, DOC_SUPERSEDED)


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """The rules plus the settings that turn a rule date into a store lock."""

    rules: RuleSet
    state: str | None
    min_lock: timedelta
    permanent_years: int

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        rules = (
            load_rules(settings.retention_rules_path) if settings.retention_rules_path else default_rules()
        )
        return cls(
            rules=rules,
            state=settings.facility_state,
            min_lock=timedelta(seconds=settings.object_lock_min_seconds),
            permanent_years=settings.permanent_lock_years,
        )

    def lock_until(self, decision: RetentionDecision, now: datetime) -> datetime:
        """The store lock for a decision: the end of its last day, at least ``min_lock`` from now."""
        if decision.retain_until is None:
            target = add_years(now.date(), self.permanent_years)
        else:
            target = decision.retain_until + timedelta(days=1)  # kept through retain_until itself
        until = datetime.combine(target, time.min, tzinfo=UTC)
        return max(until, now + self.min_lock)


def document_ref(doc: Document) -> ObjectRef:
    """The exact stored version the catalog row names."""
    if not doc.object_key:
        raise ValueError(f"document {doc.id} has no stored object")
    return ObjectRef(key=doc.object_key, sha256=doc.sha256, size=doc.size, version_id=doc.object_version)


def object_tags(doc: Document, decision: RetentionDecision) -> dict[str, str]:
    """Operator labels on the object: type, retention class and date, batch (never names)."""
    return {
        "doc_type": doc.doc_type or "unknown",
        "retention_rule": decision.rule_id,
        "retain_until": decision.retain_until.isoformat() if decision.retain_until else "permanent",
        "batch": doc.batch_id,
    }


def _latest_service_date(s: Session, mrn: str) -> date | None:
    """The most recent date of service among an MRN's live documents."""
    return s.scalar(
        select(func.max(Document.date_of_service)).where(
            Document.mrn == mrn, Document.status.not_in(INACTIVE)
        )
    )


def _last_encounter(s: Session, doc: Document, patient_latest: date | None = None) -> date | None:
    """The patient's most recent date of service among live documents (this one included).

    ``patient_latest`` is that query's answer when the caller already has it (one query
    for a whole patient's recompute instead of one per document).
    """
    latest = doc.date_of_service
    if doc.mrn:
        other = patient_latest if patient_latest is not None else _latest_service_date(s, doc.mrn)
        if other is not None and (latest is None or other > latest):
            latest = other
    return latest


def _facts(
    s: Session, doc: Document, policy: RetentionPolicy, today: date, patient_latest: date | None = None
) -> RetentionFacts:
    dob = doc.dob
    if doc.patient_id:
        patient = s.get(Patient, doc.patient_id)
        dob = patient.dob if patient is not None and patient.dob else dob
    created = doc.date_of_service or (doc.archived_at.date() if doc.archived_at else today)
    # An unknown date of service counts as today: later anchors keep records longer, never shorter.
    last = _last_encounter(s, doc, patient_latest) or created
    if dob is not None and (dob > created or dob > last):
        dob = None  # an impossible DOB (OCR error) must not make a record look like a minor's
    return RetentionFacts(
        record_created=created,
        doc_type=doc.doc_type or "other",
        last_encounter=last,
        dob=dob,
        state=policy.state,
    )


def decide(
    s: Session,
    doc: Document,
    policy: RetentionPolicy,
    now: datetime | None = None,
    patient_latest: date | None = None,
) -> RetentionDecision:
    """The retention the rules give this document today."""
    now = now or datetime.now(UTC)
    return compute_retention(_facts(s, doc, policy, now.date(), patient_latest), policy.rules)


def apply_retention(
    s: Session,
    store: ObjectStore,
    doc: Document,
    policy: RetentionPolicy,
    now: datetime | None = None,
    patient_latest: date | None = None,
) -> RetentionDecision:
    """Record the decision on the row and extend the stored version's lock to match (never shorten).

    The caller commits. The store is changed first: a crash after it leaves a lock
    at least as long as the catalog says, which is the safe direction.
    """
    now = now or datetime.now(UTC)
    decision = decide(s, doc, policy, now, patient_latest)
    until = policy.lock_until(decision, now)
    if doc.object_key and (doc.object_retain_until is None or until > doc.object_retain_until):
        if (rendition := rendition_ref(doc)) is not None:  # the rendition first: never shorter
            store.extend_retention(rendition, until)
        _mode, applied = store.extend_retention(document_ref(doc), until)
        doc.object_retain_until = applied
    doc.retain_until = decision.retain_until
    doc.retention_rule = decision.rule_id
    doc.retention_computed_at = now
    return decision


def recompute_patient(
    s: Session, store: ObjectStore, mrn: str, policy: RetentionPolicy, skip: Iterable[str] = ()
) -> list[str]:
    """Recompute every live document of an MRN (a new encounter or DOB correction arrived).

    Returns the ids whose retain-until or rule changed. The caller commits.
    """
    skipped = set(skip)
    changed: list[str] = []
    docs = s.scalars(
        select(Document).where(
            Document.mrn == mrn, Document.status.not_in(INACTIVE), Document.object_key.is_not(None)
        )
    ).all()
    latest = _latest_service_date(s, mrn)
    for doc in docs:
        if doc.id in skipped:
            continue
        before = (doc.retain_until, doc.retention_rule)
        decision = apply_retention(s, store, doc, policy, patient_latest=latest)
        if (decision.retain_until, decision.rule_id) != before:
            changed.append(doc.id)
    if changed:
        log.info("retention recomputed documents=%d", len(changed))
    return changed
