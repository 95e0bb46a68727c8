"""The patient index: what an import of the registration list did (counts and row errors, no values)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class RowRefusal:
    line: int
    code: str
    message: str  # names the field, never its value


@dataclass(frozen=True, slots=True, kw_only=True)
class PatientImport:
    imported: int  # new patients
    updated: int  # patients already in the index whose name, sex or source changed
    unchanged: int  # rows that were in the index already as they are (a re-import)
    refused: int  # rows with an error, all counted
    errors: list[RowRefusal]  # by line number: all of them, or the first 1,000 (MAX_ROW_ERRORS)
    errors_note: str | None  # "first 1,000 of 5,321 refused lines shown (by line number)"; None: all are
    documents_linked: int  # held documents (no_patient_identified) the new rows let link
    # An operator cancelled it (the jobs page, ``chartvault jobs cancel``): it stopped at a commit; the rows
    # committed until then stay, the rest of the file was not read.
    cancelled: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class PatientIndexSummary:
    """What the index holds and what waits on it (counts only: the page shows no patient)."""

    registered: int  # patients from the hospital's registration list
    from_documents: int  # patients first met on a document (no list loaded, or before it was)
    held_no_patient: int  # documents in review: what was read does not name one patient
    held_conflict: int  # documents in review: what was read points to a patient and something disagrees
    unlinked_outside_review: int  # documents with neither a patient nor a review (must be 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionChange:
    """One live document of a patient: its retention now, and after a DOB correction (if one was asked)."""

    document_id: str
    doc_type: str | None
    date_of_service: str | None
    retain_until: str | None  # None with a rule: kept permanently
    rule: str | None
    new_retain_until: str | None
    new_rule: str | None
    changed: bool  # the retain-until or the rule would change


@dataclass(frozen=True, slots=True, kw_only=True)
class DobCorrection:
    """What correcting a patient's DOB would change (nothing is changed by computing it)."""

    mrn: str
    dob: str | None  # on record now
    new_dob: str | None  # the correction asked for (None: the retention now only)
    documents: list[RetentionChange]  # the patient's live archived documents, by date of service
    changed: int  # how many of them the correction would give another retain-until or rule


@dataclass(frozen=True, slots=True, kw_only=True)
class DobCorrected:
    """A patient's DOB corrected: their live documents' retention recomputed (store locks only extend)."""

    mrn: str
    dob: str  # the date now on record
    documents_changed: list[str]  # the documents whose retain-until or rule changed
