"""Release of information: requests, authorizations, decisions and the accounting of disclosures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class PackageInfo:
    sha256: str | None
    size: int | None
    pages: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorizationView:
    id: str
    release_id: str
    image_sha256: str | None
    image_mime: str | None
    elements: dict[str, Any]
    expires_on: str | None
    covers_psychotherapy_notes: bool
    covers_substance_use: bool
    revoked_at: str | None
    created_at: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorizationAttached(AuthorizationView):
    """A stored authorization and what it still lacks (164.508(c) elements and statements)."""

    problems: list[dict[str, str]]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseView:
    """A release request as staff see it (a vendor sees the same fields, without authorizations)."""

    id: str
    mrn: str
    requester_type: str
    recipient: str
    recipient_address: str | None
    purpose: str
    document_ids: list[str] | None
    criteria: dict[str, Any] | None
    approved_document_ids: list[str] | None
    vendor: str | None
    status: str
    revoked: bool
    revoked_at: str | None
    received_at: str | None
    due_at: str | None
    overdue: bool
    extended: bool
    extension_reason: str | None
    requested_by: str | None
    requested_by_user: str | None  # the person: separation of duties compares users, not tokens
    decided_by: str | None
    decided_by_user: str | None
    decided_at: str | None
    access_expires_at: str | None
    package: PackageInfo | None
    fulfilled_at: str | None
    closed_at: str | None
    sent_at: str | None  # staff recorded it as sent to the recipient (the disclosure)
    suspended: bool  # a document was refiled or split after approval: rebuild and approve again
    suspended_reason: str | None
    disclosures: int  # how many times it left (one per release; repeated fetches are accesses)
    authorizations: list[AuthorizationView] | None = None  # staff only, on a single release


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseList:
    items: list[ReleaseView]


@dataclass(frozen=True, slots=True, kw_only=True)
class DisclosureView:
    """One accounting line (164.528(b)(2)) and how and by whom it went."""

    id: str
    release_id: str | None
    date: str
    recipient: str
    recipient_address: str | None
    description: str
    purpose: str
    disclosed_by: str | None
    vendor: str | None
    method: str | None
    document_ids: list[str] | None
    accountable: bool
    exemption_basis: str | None
    accesses: int  # fetches of the package under this disclosure (the first included)
    privacy_review: bool  # what left was (partly) another patient's record: a privacy officer must look
    review_reason: str | None
    corrects_disclosure_id: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class DisclosureAccounting:
    mrn: str
    years: int
    disclosures: list[DisclosureView]
