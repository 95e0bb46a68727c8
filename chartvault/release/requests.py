"""Release requests: creation, the state machine, deadlines and the minimum-necessary document set.

States: requested -> in_review -> approved | denied; approved -> fulfilled (first
package fetch) -> closed; approved/fulfilled -> expired once ``access_expires_at``
passes. A revoked release keeps its state for the record but stops every fetch.
Deadlines follow 164.524(b)(2): act within 30 days of receipt, with one 30-day
extension whose reason is recorded (and given within the first 30 days).
Catalog logic only; errors name ids and fields, never PHI.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, object_session

from chartvault.archive.models import (
    DOC_DISPOSED,
    DOC_SUPERSEDED,
    REQUESTER_TYPES,
    REVIEW_PENDING,
    Disclosure,
    Document,
    ReleaseRequest,
)
from chartvault.classify.types import DOC_TYPES
from chartvault.errors import Conflict, Forbidden, InvalidInput
from chartvault.release.authorization import SENSITIVE
from chartvault.schemas.common import iso
from chartvault.schemas.releases import PackageInfo, ReleaseView

DUE_DAYS = 30
EXTENSION_DAYS = 30
DEFAULT_ACCESS_DAYS = 30  # how long an approved package may be fetched
MAX_ACCESS_DAYS = 90

REQUESTED, IN_REVIEW, APPROVED, DENIED = "requested", "in_review", "approved", "denied"
FULFILLED, CLOSED, EXPIRED = "fulfilled", "closed", "expired"
UNDECIDED = (REQUESTED, IN_REVIEW)
FETCHABLE = (APPROVED, FULFILLED)
# Requester types whose release rests on a 164.508 authorization (patient requests rest on 164.524).
AUTHORIZATION_REQUIRED = frozenset({"third_party_authorized"})
RELEASABLE_TYPES = frozenset(DOC_TYPES) | frozenset(SENSITIVE)
_INACTIVE = (DOC_DISPOSED, DOC_SUPERSEDED)


class ReleaseConflict(Conflict):
    """The release is not in a state that allows the action (or the action was already used)."""


class InvalidRelease(InvalidInput):
    """A malformed request (the message names fields, never values)."""


class SeparationOfDuties(Forbidden):
    """The actor who requested a release may not decide it."""

    code = "separation_of_duties"


class ApprovalRefused(InvalidInput):
    """Approval refused; ``problems`` lists each reason as a code and a message."""

    code = "approval_refused"

    def __init__(self, message: str, problems: Sequence[Mapping[str, str]]) -> None:
        super().__init__(message, problems=problems)


def utcnow() -> datetime:
    """Aware UTC now (the catalog stores UTC)."""
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse_criteria(criteria: Mapping[str, Any]) -> dict[str, Any]:
    """Normalise ``{"from", "to", "types"}``; at least one must narrow the set (minimum necessary)."""
    unknown = set(criteria) - {"from", "to", "types"}
    if unknown:
        raise InvalidRelease(f"unknown criteria fields: {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {}
    for name in ("from", "to"):
        value = criteria.get(name)
        if value in (None, ""):
            continue
        try:
            out[name] = date.fromisoformat(str(value)).isoformat()
        except ValueError:
            raise InvalidRelease(f"criteria.{name} must be a date (YYYY-MM-DD)") from None
    if "from" in out and "to" in out and out["from"] > out["to"]:
        raise InvalidRelease("criteria.from is after criteria.to")
    types = criteria.get("types")
    if types:
        if isinstance(types, str):
            types = [types]
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            raise InvalidRelease("criteria.types must be a list of document types")
        bad = sorted(set(types) - RELEASABLE_TYPES)
        if bad:
            raise InvalidRelease(f"criteria.types has unknown types: {', '.join(bad)}")
        out["types"] = sorted(set(types))
    if not out:
        raise InvalidRelease("criteria must name at least one of from, to, types (minimum necessary)")
    return out


def _live_documents(s: Session, mrn: str) -> Any:
    """The patient's documents that may be released: archived, not destroyed or superseded, not in review."""
    return select(Document).where(
        Document.mrn == mrn,
        Document.status.not_in(_INACTIVE),
        Document.object_key.is_not(None),
        Document.disposed_at.is_(None),
        (Document.review_status.is_(None)) | (Document.review_status != REVIEW_PENDING),
    )


def check_explicit(s: Session, mrn: str, document_ids: Sequence[str]) -> list[Document]:
    """The named documents in the given order; refuses any that is not a live document of this MRN."""
    if len(set(document_ids)) != len(document_ids):
        raise InvalidRelease("document_ids has duplicates")
    found = {d.id: d for d in s.scalars(_live_documents(s, mrn).where(Document.id.in_(document_ids)))}
    missing = [d for d in document_ids if d not in found]
    if missing:
        raise InvalidRelease(
            f"documents not releasable for this request (not found, not this patient's, or not live): "
            f"{', '.join(missing)}"
        )
    return [found[d] for d in document_ids]


def resolve_documents(s: Session, release: ReleaseRequest) -> list[Document]:
    """The minimum-necessary set: the explicit ids, or the criteria applied to this MRN's live documents."""
    if release.document_ids:
        return check_explicit(s, release.mrn, [str(d) for d in release.document_ids])
    criteria = release.criteria or {}
    q = _live_documents(s, release.mrn)
    if criteria.get("types"):
        q = q.where(Document.doc_type.in_(criteria["types"]))
    if criteria.get("from"):
        q = q.where(Document.date_of_service >= date.fromisoformat(criteria["from"]))
    if criteria.get("to"):
        q = q.where(Document.date_of_service <= date.fromisoformat(criteria["to"]))
    if criteria.get("from") or criteria.get("to"):
        q = q.where(Document.date_of_service.is_not(None))
    return list(s.scalars(q.order_by(Document.date_of_service, Document.created_at, Document.id)))


def create_request(
    s: Session,
    *,
    mrn: str,
    requester_type: str,
    recipient: str,
    purpose: str,
    requested_by: str,
    requested_by_user: str | None = None,
    recipient_address: str | None = None,
    document_ids: Sequence[str] | None = None,
    criteria: Mapping[str, Any] | None = None,
    vendor: str | None = None,
    received_at: datetime | None = None,
    now: datetime | None = None,
) -> ReleaseRequest:
    """A new request, due 30 days after receipt. The caller commits."""
    now = now or utcnow()
    if requester_type not in REQUESTER_TYPES:
        raise InvalidRelease(f"requester_type must be one of {', '.join(REQUESTER_TYPES)}")
    for name, value in (("mrn", mrn), ("recipient", recipient), ("purpose", purpose)):
        if not value or not value.strip():
            raise InvalidRelease(f"{name} is required")
    if bool(document_ids) == bool(criteria):
        raise InvalidRelease("give exactly one of document_ids or criteria")
    ids = [str(d) for d in document_ids] if document_ids else None
    if ids is not None:
        check_explicit(s, mrn, ids)
    parsed = parse_criteria(criteria) if criteria else None
    received = _aware(received_at) if received_at else now
    if received > now + timedelta(minutes=5):
        raise InvalidRelease("received_at is in the future")
    row = ReleaseRequest(
        mrn=mrn,
        requester_type=requester_type,
        recipient=recipient.strip(),
        recipient_address=(recipient_address or "").strip() or None,
        purpose=purpose.strip(),
        document_ids=ids,
        criteria=parsed,
        vendor=vendor or None,
        status=REQUESTED,
        received_at=received,
        due_at=received + timedelta(days=DUE_DAYS),
        requested_by=requested_by,
        requested_by_user=requested_by_user,
    )
    s.add(row)
    s.flush()
    return row


def refresh_expiry(release: ReleaseRequest, now: datetime | None = None) -> bool:
    """Move an approved/fulfilled release whose access window has passed to expired; True if it moved."""
    now = now or utcnow()
    if release.status in FETCHABLE and release.access_expires_at and _aware(release.access_expires_at) <= now:
        release.status = EXPIRED
        return True
    return False


def is_fetchable(release: ReleaseRequest, now: datetime | None = None) -> bool:
    """Whether the package may leave now: approved/fulfilled, unexpired, unrevoked, not suspended,
    with a package."""
    now = now or utcnow()
    return (
        release.status in FETCHABLE
        and release.revoked_at is None
        and release.suspended_at is None
        and release.package_key is not None
        and (release.access_expires_at is None or _aware(release.access_expires_at) > now)
    )


def visible_to_vendor(release: ReleaseRequest, vendor: str | None, now: datetime | None = None) -> bool:
    """A vendor sees only its own releases while they can be fetched, or while suspended (so it is
    told why it cannot fetch, rather than that the release does not exist)."""
    if vendor is None or release.vendor != vendor:
        return False
    return is_fetchable(release, now) or (release.suspended_at is not None and release.revoked_at is None)


class ReleaseSuspended(ReleaseConflict):
    code = "release_suspended"


def check_not_suspended(release: ReleaseRequest) -> None:
    if release.suspended_at is not None:
        raise ReleaseSuspended(
            f"release {release.id} is suspended: a document in it was refiled to another patient after "
            "approval; the HIM department must rebuild and approve it again"
        )


def suspend_releases_with(s: Session, doc_id: str, mrn: str | None, now: datetime | None = None) -> list[str]:
    """Suspend every approved or fulfilled release of ``mrn`` whose package holds ``doc_id`` (refiled or
    split): no fetch until it is approved again, which rebuilds the package from the corrected record.
    The caller commits; returns the release ids."""
    if mrn is None:
        return []
    now = now or utcnow()
    q = select(ReleaseRequest).where(
        ReleaseRequest.mrn == mrn, ReleaseRequest.status.in_(FETCHABLE), ReleaseRequest.revoked_at.is_(None)
    )
    suspended = []
    for release in s.scalars(q):
        if doc_id in [str(d) for d in release.approved_document_ids or []]:
            release.suspended_at = now
            release.suspended_reason = f"document {doc_id} was refiled after approval"
            release.status = IN_REVIEW  # approval again rebuilds the package
            suspended.append(release.id)
    return suspended


def is_overdue(release: ReleaseRequest, now: datetime | None = None) -> bool:
    """Undecided past its due date (164.524(b)(2))."""
    now = now or utcnow()
    return release.status in UNDECIDED and _aware(release.due_at) < now


def overdue_clause(now: datetime) -> Any:
    """The SQL form of ``is_overdue``, for listing."""
    return ReleaseRequest.status.in_(UNDECIDED) & (ReleaseRequest.due_at < now)


def start_review(release: ReleaseRequest) -> None:
    """HIM takes the request up; only a fresh request can be reviewed."""
    if release.status != REQUESTED:
        raise ReleaseConflict(f"release {release.id} is {release.status}, not requested")
    release.status = IN_REVIEW


@dataclass(frozen=True, slots=True)
class Decider:
    """Who decides a release, as separation of duties needs to know them."""

    actor: str  # token:<id>, or cli:<user> at the console
    user_id: str | None  # the named user behind the token
    token_made_by: str | None = None  # the actor that created the deciding token
    token_made_by_user: str | None = None  # the user behind that actor
    is_token: bool = True  # False: the machine's operator at the console


def check_decider(release: ReleaseRequest, decider: Decider) -> None:
    """Separation of duties, per person: the requester does not decide, with any token of theirs or
    any token they made (for themselves or for someone else); a token of no user cannot tell whose
    decision it is, so it decides nothing."""
    if decider.is_token and decider.user_id is None:
        raise SeparationOfDuties(
            "this token belongs to no user: a release is decided with a token of a named user "
            "(chartvault token create --user)"
        )
    requester_user = release.requested_by_user
    same_person = decider.actor == release.requested_by or (
        requester_user is not None and decider.user_id == requester_user
    )
    made_by_requester = decider.token_made_by == release.requested_by or (
        requester_user is not None and decider.token_made_by_user == requester_user
    )
    if same_person or made_by_requester:
        raise SeparationOfDuties(
            f"release {release.id} was requested by this user (or the token was made by them); "
            "another person must approve or deny it"
        )


def deny(release: ReleaseRequest, decider: Decider, reason: str, now: datetime | None = None) -> None:
    """A denial is a decision too: not by the requester, and with a reason on record."""
    check_decider(release, decider)
    if release.status not in UNDECIDED:
        raise ReleaseConflict(
            f"release {release.id} is {release.status}; only an undecided one can be denied"
        )
    if not reason or not reason.strip():
        raise InvalidRelease("a denial needs a reason")
    release.status = DENIED
    release.decided_by, release.decided_by_user = decider.actor, decider.user_id
    release.decided_at = now or utcnow()
    release.decision_reason = reason.strip()


def extend(release: ReleaseRequest, reason: str, now: datetime | None = None) -> None:
    """The one 30-day extension, with its reason, given while the first 30 days still run."""
    now = now or utcnow()
    if not reason or not reason.strip():
        raise InvalidRelease("an extension needs a reason")
    if release.extended:
        raise ReleaseConflict(f"release {release.id} was already extended; only one extension is allowed")
    if release.status not in UNDECIDED:
        raise ReleaseConflict(
            f"release {release.id} is {release.status}; only an undecided one can be extended"
        )
    if _aware(release.due_at) < now:
        raise ReleaseConflict(
            f"release {release.id} is past its due date; the extension had to come before it"
        )
    release.extended = True
    release.extension_reason = reason.strip()
    release.due_at = _aware(release.due_at) + timedelta(days=EXTENSION_DAYS)


def revoke(release: ReleaseRequest, actor: str, reason: str, now: datetime | None = None) -> None:
    """Stop every further fetch at once (the state is kept for the record)."""
    if release.revoked_at is not None:
        raise ReleaseConflict(f"release {release.id} is already revoked")
    if release.status in (DENIED, CLOSED):
        raise ReleaseConflict(f"release {release.id} is {release.status}; nothing to revoke")
    release.revoked_at = now or utcnow()
    note = f"revoked by {actor}" + (f": {reason.strip()}" if reason and reason.strip() else "")
    release.decision_reason = ((release.decision_reason or "") + "\n" + note).strip()


def close(release: ReleaseRequest, now: datetime | None = None) -> None:
    """End a fulfilled release: no more fetches, the record stays."""
    if release.status != FULFILLED:
        raise ReleaseConflict(f"release {release.id} is {release.status}; only a fulfilled one can be closed")
    release.status = CLOSED
    release.closed_at = now or utcnow()


def release_view(release: ReleaseRequest, now: datetime | None = None) -> ReleaseView:
    """The release as the API and CLI show it (the request's own fields; no document content)."""
    package = None
    if release.package_key:
        package = PackageInfo(
            sha256=release.package_sha256, size=release.package_size, pages=release.package_pages
        )
    return ReleaseView(
        id=release.id,
        mrn=release.mrn,
        requester_type=release.requester_type,
        recipient=release.recipient,
        recipient_address=release.recipient_address,
        purpose=release.purpose,
        document_ids=release.document_ids,
        criteria=release.criteria,
        approved_document_ids=release.approved_document_ids,
        vendor=release.vendor,
        status=release.status,
        revoked=release.revoked_at is not None,
        revoked_at=iso(release.revoked_at),
        received_at=iso(release.received_at),
        due_at=iso(release.due_at),
        overdue=is_overdue(release, now),
        extended=bool(release.extended),
        extension_reason=release.extension_reason,
        requested_by=release.requested_by,
        requested_by_user=release.requested_by_user,
        decided_by=release.decided_by,
        decided_by_user=release.decided_by_user,
        decided_at=iso(release.decided_at),
        access_expires_at=iso(release.access_expires_at),
        package=package,
        fulfilled_at=iso(release.fulfilled_at),
        closed_at=iso(release.closed_at),
        sent_at=iso(release.sent_at),
        suspended=release.suspended_at is not None,
        suspended_reason=release.suspended_reason,
        disclosures=_disclosure_count(release),
    )


def _disclosure_count(release: ReleaseRequest) -> int:
    s = object_session(release)
    if s is None or release.id is None:
        return 0
    count = s.scalar(select(func.count()).select_from(Disclosure).where(Disclosure.release_id == release.id))
    return int(count or 0)
