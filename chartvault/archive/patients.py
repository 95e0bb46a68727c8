"""The patient index: who a document belongs to, decided from two agreeing identifiers or left to a person.

The index is the ``patients`` table: patients the catalog met on documents (``source = document``) and
the hospital's registration list (``source = registration``, loaded by ``chartvault patients import``,
see ``chartvault.archive.registration``). A document is linked when

* the MRN read is in the index and the DOB read agrees with that patient's, or the name read agrees and no
  DOB read disagrees; or
* the MRN read is new and not doubtful (``NEW_PATIENT_MIN_CONFIDENCE``: not off the facility's pattern,
  not one of rival numbers, not contradicted by a second reading of the label, not failing the facility's
  check digit nor read back to pass it: ``classify.checkdigit``), a DOB or name was read with it, no
  other index patient has that name and DOB, and no registration list was loaded (a new patient is
  recorded, as before the index existed; once the hospital's list is loaded it is the authority, so an
  MRN missing from it is held, and linked by the next import that brings it); or
* no MRN was read, but exactly one index patient has the DOB read and a name that agrees: the document's
  MRN is then taken from the index and ``identifier_confidence["mrn_source"]`` says so.

Anything else is never a silent orphan: the document is held in the review queue with the reason
``no_patient_identified`` (its message names the fields read, never their values) or
``patient_conflict`` (what was read points to a patient, and something else read disagrees).
A document held as a possible misfile, or because the MRN its manifest or cover sheet gave fails the
facility's check digit, is linked to no one and gets no extra reason: its reason says it.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from chartvault.archive.check import LIVE_ARCHIVED, outside_review
from chartvault.archive.models import (
    PATIENT_SOURCE_DOCUMENT,
    PATIENT_SOURCE_REGISTRATION,
    REVIEW_MISFILE,
    REVIEW_MRN_CHECK_DIGIT,
    REVIEW_PENDING,
    Document,
    Patient,
    new_id,
)
from chartvault.schemas.documents import MRN_SOURCE_INDEX, MRN_SOURCE_READ_BACK

log = logging.getLogger("chartvault.patients")

__all__ = [
    "MRN_FROM_INDEX",
    "MRN_READ_BACK",
    "MRN_REFUSED",
    "NEW_PATIENT_MIN_CONFIDENCE",
    "PATIENT_REASONS",
    "REVIEW_NO_PATIENT",
    "REVIEW_PATIENT_CONFLICT",
    "UNSAFE_CHARS",
    "Settled",
    "held_unlinked",
    "name_key",
    "name_keys",
    "settle_patient",
    "settle_unlinked",
    "with_mrn_given",
    "without_refused_mrns",
]

REVIEW_NO_PATIENT = "no_patient_identified"
REVIEW_PATIENT_CONFLICT = "patient_conflict"
PATIENT_REASONS = frozenset({REVIEW_NO_PATIENT, REVIEW_PATIENT_CONFLICT})
MRN_FROM_INDEX = MRN_SOURCE_INDEX  # identifier_confidence["mrn_source"] when the MRN came from the index
# identifier_confidence["mrn_source"] when the MRN is the pages' reading with one look-alike digit changed
# to pass the facility's check digit (``classify.checkdigit.read_back``); "mrn_read" keeps what they read.
# (The MRN the re-read renderings voted for is marked alike, ``MRN_SOURCE_REREAD``.)
MRN_READ_BACK = MRN_SOURCE_READ_BACK
# identifier_confidence[MRN_REFUSED]: the MRNs a cover sheet or manifest gave that failed the facility's
# check digit, [{"source": "cover_sheet" | "manifest", "value": ...}], kept for the reviewer to compare with
# the page (a value: never in a reason, a flag, a log or the audit). A person's decision on the MRN drops it.
MRN_REFUSED = "mrn_refused"
_MRN_PROVENANCE = ("mrn_source", "mrn_read", MRN_REFUSED)


def with_mrn_given(conf: dict[str, Any] | None) -> dict[str, Any]:
    """A document's identifier confidences once a person gave its MRN (reviewer, cover sheet, manifest,
    refile): sure, and no longer found through the index, read back by the check digit nor re-read; the
    MRNs refused for the document are settled too."""
    return {**{k: v for k, v in (conf or {}).items() if k not in _MRN_PROVENANCE}, "mrn": 1.0}


def without_refused_mrns(conf: dict[str, Any] | None) -> dict[str, Any]:
    """A document's identifier confidences once a person confirmed its MRN as read: the MRNs a cover sheet
    or manifest gave and the check digit refused are settled."""
    return {k: v for k, v in (conf or {}).items() if k != MRN_REFUSED}


# Held and linked to no one until a person decides: the pages may be someone else's, or the MRN given for
# the document (manifest, cover sheet) fails the check digit.
UNLINKED_REASONS = frozenset({REVIEW_MISFILE, REVIEW_MRN_CHECK_DIGIT})
# A patient record is opened only on an MRN read at least this surely. Below it: two readings of the label
# that disagree (``classify.labelpass.DISAGREEING_READINGS``, 0.5), a number off the facility's pattern
# (0.6), a rival among several unkeyed numbers (0.45), a number failing the facility's check digit (0.45)
# or read back by one look-alike digit to pass it (0.55, ``classify.checkdigit``): each would open a
# duplicate record under a number that may be misread. Keyed numbers (0.9+), those the pattern confirms
# (0.88), those with OCR-repaired characters (0.65-0.75) and the first unkeyed one without a pattern (0.75)
# still open one. Held documents wait for a person, or link to a patient the index already has.
NEW_PATIENT_MIN_CONFIDENCE = 0.65

# -- names ---------------------------------------------------------------------------------------------

# C0 and C1 controls (NUL included), zero-width characters and bidirectional overrides/isolates: they hide
# or reorder what a person reads, and have no place in a patient's name or MRN, a station or an operator
# name (the manifest's fields and the registration list's are refused when they hold one).
UNSAFE_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")

_HONORIFICS = frozenset({"MR", "MRS", "MS", "MISS", "DR"})
_SUFFIXES = frozenset({"JR", "SR", "II", "III", "IV"})
_PARTICLES = frozenset({"VAN", "VON", "DER", "DEN", "DE", "DEL", "DELA", "LA", "LE", "DA", "DI", "DOS", "DU"})


def _letters(token: str) -> str:
    return re.sub(r"[^A-Z]", "", token)


def _tokens(text: str) -> list[str]:
    """Upper-case words without accents or punctuation (O'Brien -> OBRIEN, Smith-Jones -> SMITHJONES)."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().upper()
    return [t for t in (_letters(w) for w in plain.split()) if t]


def name_key(last: str, first: str) -> str | None:
    """The key a registration row is found by: surname letters and the first given name's letters.

    Middle names and initials are left out because labels print them either way.
    """
    last_toks, first_toks = _tokens(last), _tokens(first)
    last_toks = [t for t in last_toks if t not in _SUFFIXES] or last_toks
    if not last_toks or not first_toks or len("".join(last_toks)) < 2:
        return None
    return f"{''.join(last_toks)}|{first_toks[0]}"


def name_keys(name: str | None) -> frozenset[str]:
    """Every key a printed name could stand for: 'LAST, FIRST M' gives one; 'First M Last' gives one per
    place the surname could start (particles like 'van der' stay with it), because a label does not say."""
    if not name or not name.strip():
        return frozenset()
    if "," in name:
        last, _, given = name.partition(",")
        key = name_key(last, given)
        return frozenset({key} if key else ())
    toks = [t for t in _tokens(name) if t not in _SUFFIXES]
    while toks and toks[0] in _HONORIFICS:
        toks = toks[1:]
    if len(toks) < 2:
        return frozenset()
    keys = {name_key(" ".join(toks[i:]), toks[0]) for i in range(1, len(toks))}
    return frozenset(k for k in keys if k)


def _patient_keys(patient: Patient) -> frozenset[str]:
    return frozenset({patient.name_key}) if patient.name_key else name_keys(patient.name)


def names_agree(printed: str | None, patient: Patient) -> bool:
    """True when the name read can be this patient's (case, punctuation, order and middle initials aside)."""
    return bool(name_keys(printed) & _patient_keys(patient))


# -- the decision --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settled:
    """What ``settle_patient`` decided: the patient linked (and how), or the review reason given."""

    patient_id: str | None
    via: str | None = None  # mrn_dob | mrn_name | new_patient | name_dob
    reason: dict[str, Any] | None = None
    changed_mrn: bool = False  # the MRN was filled in from the index (retention and index follow it)


def _fields_read(doc: Document) -> list[str]:
    return [f for f, v in (("mrn", doc.mrn), ("name", doc.patient_name), ("dob", doc.dob)) if v]


_FIELD_LABEL = {"mrn": "MRN", "name": "name", "dob": "DOB"}


def _listed(fields: Iterable[str]) -> str:
    names = [_FIELD_LABEL[f] for f in fields]
    return " and ".join(names) if len(names) < 3 else f"{', '.join(names[:-1])} and {names[-1]}"


def _reason(code: str, read: list[str], why: str) -> dict[str, Any]:
    said = f"Read: {_listed(read)}. {why}" if read else "No MRN, name or DOB was read."
    return {"code": code, "message": said, "fields_read": read}


def _by_name_dob(s: Session, doc: Document) -> list[Patient]:
    keys = name_keys(doc.patient_name)
    if doc.dob is None or not keys:
        return []
    return list(s.scalars(select(Patient).where(Patient.dob == doc.dob, Patient.name_key.in_(sorted(keys)))))


def _decide(s: Session, doc: Document) -> Settled:
    """Link, record a new patient, or say why not (the Settled's reason). Never links on one identifier."""
    read = _fields_read(doc)
    if doc.mrn:
        patient = s.scalars(select(Patient).where(Patient.mrn == doc.mrn)).first()
        if patient is not None:
            return _confirm(doc, patient, read)
        return _new_mrn(s, doc, read)
    if doc.dob is None or not doc.patient_name:
        why = "No MRN was read, and finding a patient without one needs both the name and the DOB."
        return Settled(None, reason=_reason(REVIEW_NO_PATIENT, read, why))
    found = _by_name_dob(s, doc)
    if len(found) == 1:
        return Settled(found[0].id, "name_dob", changed_mrn=True)
    why = (
        "No MRN was read, and no patient in the index has that name and DOB."
        if not found
        else f"No MRN was read, and {len(found)} patients in the index have that name and DOB."
    )
    return Settled(None, reason=_reason(REVIEW_NO_PATIENT, read, why))


def _confirm(doc: Document, patient: Patient, read: list[str]) -> Settled:
    """The MRN is in the index: the DOB or the name must agree with that patient's.

    MRN and DOB agreeing link even when the name read differs (OCR varies names). MRN and name agreeing
    do not link when a DOB was read that differs: a name shared by two generations, or a label of another
    patient, is a person's call, and the DOB decides retention.
    """
    dob_differs = doc.dob is not None and patient.dob is not None and doc.dob != patient.dob
    name_differs = bool(doc.patient_name) and not names_agree(doc.patient_name, patient)
    if doc.dob is not None and doc.dob == patient.dob:
        return Settled(patient.id, "mrn_dob")
    if bool(doc.patient_name) and not name_differs and not dob_differs:
        return Settled(patient.id, "mrn_name")
    if not dob_differs and not name_differs:
        why = "The MRN is in the patient index, but a second identifier (DOB or name) is needed to link it."
        return Settled(None, reason=_reason(REVIEW_NO_PATIENT, read, why))
    differ = [f for f, bad in (("dob", dob_differs), ("name", name_differs)) if bad]
    verb = "disagree" if len(differ) > 1 else "disagrees"
    why = f"The MRN is in the patient index, but the {_listed(differ)} read {verb} with that patient's."
    return Settled(None, reason=_reason(REVIEW_PATIENT_CONFLICT, read, why))


def _new_mrn(s: Session, doc: Document, read: list[str]) -> Settled:
    """An MRN the index does not know: a new patient, unless its name and DOB are another patient's."""
    if doc.dob is None and not doc.patient_name:
        why = "The MRN is in no patient record; a second identifier (DOB or name) is needed to record one."
        return Settled(None, reason=_reason(REVIEW_NO_PATIENT, read, why))
    sureness = (doc.identifier_confidence or {}).get("mrn")  # absent on rows archived before it was kept
    if isinstance(sureness, int | float) and sureness < NEW_PATIENT_MIN_CONFIDENCE:
        why = (
            "The MRN is in no patient record and was not read cleanly enough to open one "
            f"(confidence {sureness:.2f}); confirm it."
        )
        return Settled(None, reason=_reason(REVIEW_NO_PATIENT, read, why))
    others = _by_name_dob(s, doc)
    if not others and _registration_loaded(s):
        why = (
            "The MRN is not in the registration list (a misread, or a patient registered since "
            "the last import: the next import links it)."
        )
        return Settled(None, reason=_reason(REVIEW_NO_PATIENT, read, why))
    if others:
        why = "The MRN is in no patient record, but the name and DOB are those of a patient in the index."
        return Settled(None, reason=_reason(REVIEW_PATIENT_CONFLICT, read, why))
    keys = sorted(name_keys(doc.patient_name))
    patient = Patient(
        id=new_id(),
        mrn=doc.mrn,
        name=doc.patient_name,
        dob=doc.dob,
        name_key=keys[0] if len(keys) == 1 else None,
        source=PATIENT_SOURCE_DOCUMENT,
    )
    s.add(patient)
    s.flush()
    return Settled(patient.id, "new_patient")


def _registration_loaded(s: Session) -> bool:
    """Whether the hospital's registration list is in the index (then it decides which MRNs exist)."""
    found = s.scalar(select(Patient.id).where(Patient.source == PATIENT_SOURCE_REGISTRATION).limit(1))
    return found is not None


def held_unlinked(doc: Document) -> bool:
    """True while the document waits in review for a reason that forbids any link (``UNLINKED_REASONS``):
    its pages may belong to someone else, or the MRN given for it is a typo."""
    return doc.review_status == REVIEW_PENDING and any(
        r.get("code") in UNLINKED_REASONS for r in (doc.review_reasons or [])
    )


def settle_patient(s: Session, doc: Document) -> Settled:
    """Link the document to its patient, or hold it in review saying why: never neither.

    Idempotent (a resumed stage or a sweep may run it again): the patient reasons are replaced, not
    added twice, and a link that now succeeds drops them. A possible misfile, or an MRN given that fails
    the check digit, stays held without a link.
    """
    if held_unlinked(doc):
        doc.patient_id = None
        return Settled(None)
    outcome = _decide(s, doc)
    others = [r for r in doc.review_reasons or [] if r.get("code") not in PATIENT_REASONS]
    doc.patient_id = outcome.patient_id
    if outcome.patient_id is not None:
        if outcome.changed_mrn:
            _mrn_from_index(s, doc, outcome.patient_id)
        doc.review_reasons = others or None
        if doc.review_status == REVIEW_PENDING and not others:
            doc.review_status = None
        return outcome
    assert outcome.reason is not None
    doc.review_reasons = [*others, outcome.reason]
    doc.review_status = REVIEW_PENDING
    log.info("document held for review doc=%s code=%s", doc.id, outcome.reason["code"])
    return outcome


def _mrn_from_index(s: Session, doc: Document, patient_id: str) -> None:
    patient = s.get(Patient, patient_id)
    assert patient is not None
    conf = dict(doc.identifier_confidence or {})
    read = [float(conf[f]) for f in ("name", "dob") if isinstance(conf.get(f), int | float)]
    conf["mrn"] = round(min(read), 3) if read else None
    conf["mrn_source"] = MRN_FROM_INDEX
    doc.mrn, doc.identifier_confidence = patient.mrn, conf


# -- the catalog as a whole ----------------------------------------------------------------------------


def settle_unlinked(s: Session, limit: int | None = None) -> list[tuple[Document, Settled]]:
    """Settle every lost chart (archived by older code, or made by hand): linked or held for review.

    The caller commits, and re-applies retention and the index for documents whose MRN changed.
    """
    q = select(Document).where(outside_review()).order_by(Document.created_at, Document.id)
    docs = list(s.scalars(q.limit(limit) if limit else q))
    return [(doc, settle_patient(s, doc)) for doc in docs]


def settle_pending(s: Session) -> list[tuple[Document, Settled]]:
    """Try again the documents held only because no patient was identified (e.g. after an import)."""
    pending = s.scalars(
        select(Document).where(
            Document.review_status == REVIEW_PENDING,
            Document.patient_id.is_(None),
            Document.status.in_(LIVE_ARCHIVED),
        )
    )
    out = []
    for doc in pending:
        if any(r.get("code") == REVIEW_NO_PATIENT for r in doc.review_reasons or []):
            out.append((doc, settle_patient(s, doc)))
    return out
