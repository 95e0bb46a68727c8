"""What a misfile correction does to releases: the package may hold another patient's record.

A document refiled (or split) after its release was approved is no longer what was approved: the
release is suspended until it is approved again (which rebuilds the package from the corrected record),
and a disclosure already made is recorded against the patient whose record actually left, so their
accounting of disclosures shows it, with both rows flagged for a privacy review.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from chartvault.release.disclosures import rerecord_misfiled
from chartvault.release.requests import suspend_releases_with


@dataclass(frozen=True, slots=True)
class MisfileFallout:
    suspended_releases: list[str] = field(default_factory=list)
    rerecorded_disclosures: list[str] = field(default_factory=list)  # the new rows, against the new patient


def misfile_fallout(s: Session, doc_id: str, from_mrn: str | None, to_mrn: str) -> MisfileFallout:
    """Suspend the releases whose package holds ``doc_id`` and re-record its disclosures against
    ``to_mrn`` (flagged for privacy review). The caller commits, with the correction itself."""
    if from_mrn == to_mrn:
        return MisfileFallout()
    suspended = suspend_releases_with(s, doc_id, from_mrn)
    rerecorded = rerecord_misfiled(s, doc_id, from_mrn, to_mrn)
    return MisfileFallout(suspended, [d.id for d in rerecorded])


def audit_fallout(audit: Callable[..., Any], doc_id: str, fallout: MisfileFallout) -> None:
    """One entry per suspended release and per disclosure flagged for privacy review (ids only)."""
    for release_id in fallout.suspended_releases:
        audit("release.suspend", "release", release_id, detail={"reason": "misfile", "document": doc_id})
    for disclosure_id in fallout.rerecorded_disclosures:
        audit("disclosure.privacy_review", "disclosure", disclosure_id, detail={"document": doc_id})
