"""Disclosures and the accounting of disclosures (45 CFR 164.528).

Every release event is recorded, exempt ones included, before the first byte
leaves: date, the final recipient (not the vendor fulfilling it) and address, a
brief description (types, dates of service, page count: never names), purpose,
who disclosed it and how. The accounting is a query over the last six years.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from chartvault.archive.models import Disclosure, DisclosureAccess, Document, ReleaseRequest
from chartvault.archive.retention import add_years
from chartvault.schemas.releases import DisclosureView

ACCOUNTING_YEARS = 6
METHODS = ("stream", "presigned_url", "sent")  # "sent": staff recorded it left by other means
# 164.528(a)(1): disclosures exempt from the accounting, by requester type (still recorded, flagged).
EXEMPTION_BY_REQUESTER = {
    "patient": "to_individual",  # (a)(1)(ii)
    "third_party_authorized": "authorization",  # (a)(1)(iv)
}


def describe(documents: Sequence[Document], pages: int) -> str:
    """A brief description of what was disclosed: types, dates of service, pages (no identifiers)."""
    types = sorted({d.doc_type or "unclassified" for d in documents})
    dates = sorted(d.date_of_service for d in documents if d.date_of_service)
    parts = [f"{len(documents)} document(s): {', '.join(types)}"]
    if dates:
        span = dates[0].isoformat() if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}"
        parts.append(f"dates of service {span}")
    parts.append(f"{pages} page(s)")
    return "; ".join(parts)


def record_disclosure(
    s: Session,
    release: ReleaseRequest,
    documents: Sequence[Document],
    *,
    disclosed_by: str,
    method: str,
    now: datetime | None = None,
) -> Disclosure:
    """Write the disclosure row (the caller commits it before any byte is sent)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}")
    basis = EXEMPTION_BY_REQUESTER.get(release.requester_type)
    row = Disclosure(
        release_id=release.id,
        mrn=release.mrn,
        disclosed_at=now or datetime.now(UTC),
        recipient=release.recipient,
        recipient_address=release.recipient_address,
        description=describe(documents, release.package_pages or sum(d.page_count for d in documents)),
        purpose=release.purpose,
        disclosed_by=disclosed_by,
        vendor=release.vendor,
        method=method,
        document_ids=[d.id for d in documents],
        accountable=basis is None,
        exemption_basis=basis,
    )
    s.add(row)
    s.flush()
    return row


def disclosure_of(s: Session, release: ReleaseRequest) -> Disclosure | None:
    """The disclosure of a release's current package (it leaves once; later fetches are accesses of
    it). A package rebuilt by a later approval is a new disclosure when it first leaves."""
    q = select(Disclosure).where(
        Disclosure.release_id == release.id, Disclosure.corrects_disclosure_id.is_(None)
    )
    if release.decided_at is not None:
        q = q.where(Disclosure.disclosed_at >= release.decided_at)
    return s.scalars(q.order_by(Disclosure.disclosed_at)).first()


def record_access(
    s: Session, disclosure: Disclosure, *, accessed_by: str, method: str, now: datetime | None = None
) -> DisclosureAccess:
    """One fetch of an already disclosed package (the caller commits before any byte is sent)."""
    row = DisclosureAccess(
        disclosure_id=disclosure.id,
        accessed_at=now or datetime.now(UTC),
        accessed_by=accessed_by,
        method=method,
    )
    s.add(row)
    s.flush()
    return row


def rerecord_misfiled(s: Session, doc_id: str, from_mrn: str | None, to_mrn: str) -> list[Disclosure]:
    """A document refiled from ``from_mrn`` to ``to_mrn`` after it was disclosed: the disclosure is
    recorded again against ``to_mrn`` (the patient whose record actually left, so their accounting shows
    it), and both rows are flagged for a privacy review (a possible breach). The caller commits."""
    if from_mrn is None or from_mrn == to_mrn:
        return []
    made = []
    for original in s.scalars(select(Disclosure).where(Disclosure.mrn == from_mrn)):
        if doc_id not in [str(d) for d in original.document_ids or []]:
            continue
        original.privacy_review, original.review_reason = True, "misfiled_document"
        row = Disclosure(
            release_id=original.release_id,
            mrn=to_mrn,
            disclosed_at=original.disclosed_at,
            recipient=original.recipient,
            recipient_address=original.recipient_address,
            description=f"document {doc_id}, disclosed under another patient's release (misfiled)",
            purpose=original.purpose,
            disclosed_by=original.disclosed_by,
            vendor=original.vendor,
            method=original.method,
            document_ids=[doc_id],
            accountable=True,  # not to this patient, and under no authorization of theirs
            exemption_basis=None,
            privacy_review=True,
            review_reason="misfiled_document",
            corrects_disclosure_id=original.id,
        )
        s.add(row)
        made.append(row)
    s.flush()
    return made


def accounting(
    s: Session, mrn: str, now: datetime | None = None, accountable_only: bool = False
) -> list[Disclosure]:
    """The patient's disclosures in the six years before ``now``, oldest first."""
    now = now or datetime.now(UTC)
    since = datetime.combine(add_years(now.date(), -ACCOUNTING_YEARS), now.timetz())
    q = select(Disclosure).where(Disclosure.mrn == mrn, Disclosure.disclosed_at >= since)
    if accountable_only:
        q = q.where(Disclosure.accountable.is_(True))
    return list(s.scalars(q.order_by(Disclosure.disclosed_at, Disclosure.id)))


def access_counts(s: Session, disclosure_ids: Sequence[str]) -> dict[str, int]:
    q = (
        select(DisclosureAccess.disclosure_id, func.count())
        .where(DisclosureAccess.disclosure_id.in_(list(disclosure_ids)))
        .group_by(DisclosureAccess.disclosure_id)
    )
    return {str(k): int(n) for k, n in s.execute(q)}


def disclosure_view(d: Disclosure, accesses: int = 0) -> DisclosureView:
    """One accounting line (164.528(b)(2)) plus how and by whom it went."""
    when = d.disclosed_at if d.disclosed_at.tzinfo else d.disclosed_at.replace(tzinfo=UTC)
    return DisclosureView(
        id=d.id,
        release_id=d.release_id,
        date=when.isoformat(),
        recipient=d.recipient,
        recipient_address=d.recipient_address,
        description=d.description,
        purpose=d.purpose,
        disclosed_by=d.disclosed_by,
        vendor=d.vendor,
        method=d.method,
        document_ids=d.document_ids,
        accountable=bool(d.accountable),
        exemption_basis=d.exemption_basis,
        accesses=accesses,
        privacy_review=bool(d.privacy_review),
        review_reason=d.review_reason,
        corrects_disclosure_id=d.corrects_disclosure_id,
    )
