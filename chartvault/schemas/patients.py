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
    refused: int  # rows with an error (listed in ``errors`` by line number)
    errors: list[RowRefusal]
    documents_linked: int  # held documents (no_patient_identified) the new rows let link


@dataclass(frozen=True, slots=True, kw_only=True)
class PatientIndexSummary:
    """What the index holds and what waits on it (counts only: the page shows no patient)."""

    registered: int  # patients from the hospital's registration list
    from_documents: int  # patients first met on a document (no list loaded, or before it was)
    held_no_patient: int  # documents in review: what was read does not name one patient
    held_conflict: int  # documents in review: what was read points to a patient and something disagrees
    unlinked_outside_review: int  # documents with neither a patient nor a review (must be 0)
