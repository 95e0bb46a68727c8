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
