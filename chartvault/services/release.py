"""Release of information: requests, authorizations, approval, packages, disclosures.

Every action is audited with ids only. A vendor caller only ever sees its own fetchable releases;
anything else is "not found" to it, so a vendor cannot learn which other releases exist.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from chartvault.archive.db import transaction
from chartvault.archive.lifecycle import document_ref
from chartvault.archive.models import Document, ReleaseAuthorization, ReleaseRequest
from chartvault.archive.objectstore import ObjectRef, ObjectStore
from chartvault.archive.renditions import RENDITION_MIME, rendition_ref
from chartvault.archive.retention import add_years
from chartvault.config import Settings
from chartvault.errors import ChartVaultError, NotFound
from chartvault.ingest.renditions import render_document
from chartvault.release import requests as rq
from chartvault.release.authorization import (
    AUTHORIZATION_RETENTION_YEARS,
    SENSITIVE,
    Problem,
    element_problems,
    expiry,
    parse_when,
    validate,
)
from chartvault.release.disclosures import (
    access_counts,
    accounting,
    disclosure_of,
    disclosure_view,
    record_access,
    record_disclosure,
)
from chartvault.release.package import BuiltPackage, PackageError, PackageSource, build_package
from chartvault.schemas.common import iso, to_fields
from chartvault.schemas.releases import (
    AuthorizationAttached,
    AuthorizationView,
    DisclosureAccounting,
    ReleaseView,
)
from chartvault.services.caller import AuditTrail, Caller

PACKAGE_RETENTION_YEARS = 6  # 164.530(j): the package is the record of what was disclosed
PRESIGN_TTL = timedelta(minutes=5)  # well under the store's 15-minute cap
AUTHORIZATION_MIMES = ("application/pdf", "image/tiff", "image/png", "image/jpeg")


@dataclass(frozen=True, slots=True)
class PackageFetch:
    """What the API needs to send a package whose disclosure is already recorded."""

    release_id: str
    disclosure_id: str | None  # None for a staff preview (not a disclosure)
    ref: ObjectRef
    filename: str


def _retain_until(years: int) -> datetime:
    now = datetime.now(UTC)
    return datetime.combine(add_years(now.date(), years) + timedelta(days=1), time.min, tzinfo=UTC)


class ReleaseService:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        store: ObjectStore,
        audit: AuditTrail,
        caller: Caller,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.store = store
        self.audit = audit
        self.caller = caller

    @property
    def actor(self) -> str:
        return self.caller.actor

    @property
    def decider(self) -> rq.Decider:
        c = self.caller
        return rq.Decider(c.actor, c.user_id, c.token_made_by, c.token_made_by_user, c.role is not None)

    # -- helpers --------------------------------------------------------------------------------

    def _release_not_found(self, release_id: str) -> NotFound:
        return NotFound(f"release {release_id} not found")

    def _vendor(self) -> str | None:
        """The caller's organisation when the caller is a vendor (None for staff and the CLI)."""
        return (self.caller.vendor or "") if self.caller.is_vendor else None

    def _load(self, s: Session, release_id: str, *, for_update: bool = False) -> ReleaseRequest:
        """The release, expiry applied; vendors get "not found" for anything not theirs to fetch."""
        q = select(ReleaseRequest).where(ReleaseRequest.id == release_id)
        if for_update and s.bind is not None and s.bind.dialect.name == "postgresql":
            q = q.with_for_update()
        release = s.scalars(q).first()
        if release is None:
            raise self._release_not_found(release_id)
        rq.refresh_expiry(release)
        vendor = self._vendor()
        if vendor is not None and not rq.visible_to_vendor(release, vendor):
            raise self._release_not_found(release_id)
        return release

    def _refused(self, action: str, release_id: str | None, exc: ChartVaultError) -> None:
        detail: dict[str, Any] = {"reason": exc.code}
        if isinstance(exc, rq.ApprovalRefused):
            detail["problems"] = [p["code"] for p in exc.problems]
        self.audit(action, "release", release_id, outcome="refused", detail=detail)

    # -- requests -------------------------------------------------------------------------------

    def create_release(
        self,
        *,
        mrn: str,
        requester_type: str,
        recipient: str,
        purpose: str,
        recipient_address: str | None = None,
        document_ids: Sequence[str] | None = None,
        criteria: Mapping[str, Any] | None = None,
        vendor: str | None = None,
        received_at: datetime | None = None,
    ) -> ReleaseView:
        """Log a request for release; it is due 30 days after receipt (164.524(b)(2))."""
        try:
            with transaction(self.sessions) as s:
                row = rq.create_request(
                    s,
                    mrn=mrn,
                    requester_type=requester_type,
                    recipient=recipient,
                    purpose=purpose,
                    requested_by=self.actor,
                    requested_by_user=self.caller.user_id,
                    recipient_address=recipient_address,
                    document_ids=document_ids,
                    criteria=criteria,
                    vendor=vendor,
                    received_at=received_at,
                )
                result = rq.release_view(row)
        except ChartVaultError as exc:
            self._refused("release.request", None, exc)
            raise
        detail = {"requester_type": requester_type, "documents": len(document_ids or []), "vendor": vendor}
        self.audit("release.request", "release", result.id, detail=detail)
        return result

    def _as_seen(self, view: ReleaseView) -> ReleaseView:
        """The release as the caller may see it: a vendor gets what sending the package needs (the
        recipient, the purpose, the package and its dates), not which documents of the chart went in,
        who at the hospital asked and decided, or the HIM's reason for an extension (minimum necessary)."""
        if self._vendor() is None:
            return view
        return replace(
            view,
            document_ids=None,
            approved_document_ids=None,
            criteria=None,
            extension_reason=None,
            requested_by=None,
            requested_by_user=None,
            decided_by=None,
            decided_by_user=None,
        )

    def releases(self, status: str | None = None, overdue: bool = False) -> list[ReleaseView]:
        """Releases, newest first; a vendor sees only its own that it may fetch now."""
        now = rq.utcnow()
        vendor = self._vendor()
        with transaction(self.sessions) as s:
            q = select(ReleaseRequest)
            if vendor is not None:
                q = q.where(
                    ReleaseRequest.vendor == vendor,
                    ReleaseRequest.status.in_(rq.FETCHABLE) | ReleaseRequest.suspended_at.is_not(None),
                    ReleaseRequest.revoked_at.is_(None),
                )
            if overdue:
                q = q.where(rq.overdue_clause(now))
            rows = list(s.scalars(q.order_by(ReleaseRequest.received_at.desc(), ReleaseRequest.id)))
            for r in rows:
                rq.refresh_expiry(r, now)
            if vendor is not None:
                rows = [r for r in rows if rq.visible_to_vendor(r, vendor, now)]
            if status is not None:
                rows = [r for r in rows if r.status == status]
            result = [self._as_seen(rq.release_view(r, now)) for r in rows]
        self.audit("release.list", outcome="ok", detail={"count": len(result), "overdue": overdue})
        return result

    def overdue_releases(self) -> list[ReleaseView]:
        """Undecided requests past their due date."""
        return self.releases(overdue=True)

    def release(self, release_id: str) -> ReleaseView:
        """One release (authorizations included for staff); vendors only see their fetchable ones."""
        with transaction(self.sessions) as s:
            row = self._load(s, release_id)
            result = self._as_seen(rq.release_view(row))
            auths = s.scalars(
                select(ReleaseAuthorization)
                .where(ReleaseAuthorization.release_id == release_id)
                .order_by(ReleaseAuthorization.created_at)
            ).all()
            if self._vendor() is None:
                result = replace(result, authorizations=[_authorization_view(a) for a in auths])
        self.audit("release.read", "release", release_id)
        return result

    def attach_authorization(
        self,
        release_id: str,
        image: Path | None,
        elements: Mapping[str, Any],
        *,
        sha256: str | None = None,
        mime: str | None = None,
    ) -> AuthorizationAttached:
        """Store the signed authorization: its scan in the archive (kept 6 years) and its elements."""
        if not isinstance(elements, Mapping):
            raise rq.InvalidRelease("elements must be a JSON object")
        if mime is not None and mime not in AUTHORIZATION_MIMES:
            raise rq.InvalidRelease("the authorization image must be a PDF, TIFF, PNG or JPEG")
        with self.sessions() as s:
            release = self._load(s, release_id)
            if release.status not in rq.UNDECIDED:
                raise rq.ReleaseConflict(
                    f"release {release_id} is {release.status}; authorizations come first"
                )
        ref: ObjectRef | None = None
        if image is not None:
            digest = sha256 or _sha256(image)
            ref = self.store.put_file(
                str(image),
                digest,
                mime or "application/octet-stream",
                retain_until=_retain_until(AUTHORIZATION_RETENTION_YEARS),
                tags={"kind": "roi_authorization", "release": release_id},
            )
        stored = dict(elements)
        revoked = parse_when(stored.pop("revoked_at", None))
        expires = expiry(stored)
        with transaction(self.sessions) as s:
            row = ReleaseAuthorization(
                release_id=release_id,
                image_key=ref.key if ref else None,
                image_version=ref.version_id if ref else None,
                image_sha256=ref.sha256 if ref else None,
                image_size=ref.size if ref else None,
                image_mime=mime if ref else None,
                elements=stored,
                expires_on=expires.date() if expires else None,
                covers_psychotherapy_notes=bool(stored.get("covers_psychotherapy_notes")),
                covers_substance_use=bool(stored.get("covers_substance_use")),
                revoked_at=revoked,
            )
            s.add(row)
            s.flush()
            view = _authorization_view(row)
        problems = [p.as_dict() for p in element_problems(stored)]
        result = AuthorizationAttached(**to_fields(view), problems=problems)
        detail = {"authorization": result.id, "image": ref is not None, "problems": len(problems)}
        self.audit("release.authorization", "release", release_id, detail=detail)
        return result

    def revoke_authorization(self, release_id: str) -> ReleaseView:
        """Record the individual's written revocation; the release is revoked with it."""
        with transaction(self.sessions) as s:
            release = self._load(s, release_id)
            now = rq.utcnow()
            auths = s.scalars(
                select(ReleaseAuthorization).where(
                    ReleaseAuthorization.release_id == release_id, ReleaseAuthorization.revoked_at.is_(None)
                )
            ).all()
            if not auths:
                raise rq.ReleaseConflict(f"release {release_id} has no unrevoked authorization")
            for a in auths:
                a.revoked_at = now
            if release.revoked_at is None and release.status not in (rq.DENIED, rq.CLOSED):
                rq.revoke(release, self.actor, "authorization revoked", now)
            result = rq.release_view(release, now)
        self.audit("release.revoke", "release", release_id, detail={"authorizations": len(auths)})
        return result

    # -- decisions ------------------------------------------------------------------------------

    def review_release(self, release_id: str) -> ReleaseView:
        """Take a request into HIM review."""
        return self._transition(release_id, "release.review", rq.start_review)

    def deny_release(self, release_id: str, reason: str) -> ReleaseView:
        """Deny with a reason (not by the requester)."""
        return self._transition(release_id, "release.deny", lambda r: rq.deny(r, self.decider, reason))

    def extend_release(self, release_id: str, reason: str) -> ReleaseView:
        """The one 30-day extension (reason recorded; a second is refused)."""
        return self._transition(release_id, "release.extend", lambda r: rq.extend(r, reason))

    def revoke_release(self, release_id: str, reason: str = "") -> ReleaseView:
        """Stop vendor access at once; the package and disclosures stay on record."""
        return self._transition(release_id, "release.revoke", lambda r: rq.revoke(r, self.actor, reason))

    def close_release(self, release_id: str) -> ReleaseView:
        """Close a fulfilled release: later fetches are refused."""
        return self._transition(release_id, "release.close", rq.close)

    def _transition(
        self, release_id: str, action: str, change: Callable[[ReleaseRequest], None]
    ) -> ReleaseView:
        try:
            with transaction(self.sessions, immediate=True) as s:
                release = self._load(s, release_id, for_update=True)
                change(release)
                result = rq.release_view(release)
        except ChartVaultError as exc:
            self._refused(action, release_id, exc)
            raise
        self.audit(action, "release", release_id, detail={"status": result.status})
        return result

    def approve_release(self, release_id: str, access_days: int = rq.DEFAULT_ACCESS_DAYS) -> ReleaseView:
        """Approve after every check passes: resolve the documents, validate the authorization,
        build the stamped package and archive it (6 years), then open vendor access."""
        if not 1 <= access_days <= rq.MAX_ACCESS_DAYS:
            raise rq.InvalidRelease(f"access_days must be 1-{rq.MAX_ACCESS_DAYS}")
        try:
            with self.sessions() as s:
                release = self._load(s, release_id)
                rq.check_decider(release, self.decider)
                if release.status != rq.IN_REVIEW:
                    raise rq.ReleaseConflict(f"release {release_id} is {release.status}, not in_review")
                if release.revoked_at is not None:
                    raise rq.ReleaseConflict(f"release {release_id} is revoked")
                documents = rq.resolve_documents(s, release)
                problems = self._approval_problems(s, release, [d.doc_type for d in documents])
                if not documents:
                    problems.insert(0, Problem("no_documents", "no live documents match the request"))
                if problems:
                    raise rq.ApprovalRefused(
                        f"release {release_id} cannot be approved", [p.as_dict() for p in problems]
                    )
                auth_expires = self._authorization_expiry(s, release_id)
                doc_ids = [d.id for d in documents]
                sources = [self._package_source(s, d) for d in documents]
            built = self._build_and_store(release_id, sources)
        except ChartVaultError as exc:
            self._refused("release.approve", release_id, exc)
            raise
        now = rq.utcnow()
        access_until = now + timedelta(days=access_days)
        if auth_expires is not None:
            access_until = min(access_until, auth_expires)
        with transaction(self.sessions, immediate=True) as s:
            release = self._load(s, release_id, for_update=True)
            if (
                release.status != rq.IN_REVIEW or release.revoked_at is not None
            ):  # raced with another decision
                raced = rq.ReleaseConflict(f"release {release_id} changed while it was being approved")
                self._refused("release.approve", release_id, raced)
                raise raced
            ref, size, pages = built
            release.status = rq.APPROVED
            release.suspended_at, release.suspended_reason = None, None  # rebuilt from the corrected record
            release.approved_document_ids = doc_ids
            release.decided_by, release.decided_by_user = self.actor, self.caller.user_id
            release.decided_at = now
            release.access_expires_at = access_until
            release.package_key, release.package_version = ref.key, ref.version_id
            release.package_sha256, release.package_size, release.package_pages = ref.sha256, size, pages
            result = rq.release_view(release, now)
        detail = {"documents": len(doc_ids), "pages": pages, "package_sha256": ref.sha256}
        self.audit("release.approve", "release", release_id, detail=detail)
        return result

    def _approval_problems(
        self, s: Session, release: ReleaseRequest, doc_types: list[str | None]
    ) -> list[Problem]:
        auths = s.scalars(
            select(ReleaseAuthorization)
            .where(ReleaseAuthorization.release_id == release.id)
            .order_by(ReleaseAuthorization.created_at.desc())
        ).all()
        needs_auth = release.requester_type in rq.AUTHORIZATION_REQUIRED or any(
            t in SENSITIVE for t in doc_types
        )
        if not auths:
            if needs_auth:
                return [Problem("missing_authorization", "this release needs a signed authorization")]
            return []
        auth = auths[0]  # the latest one received governs
        covers = {
            "covers_psychotherapy_notes": bool(auth.covers_psychotherapy_notes),
            "covers_substance_use": bool(auth.covers_substance_use),
        }
        return validate(
            auth.elements or {}, revoked_at=auth.revoked_at, covers=covers, document_types=doc_types
        )

    def _authorization_expiry(self, s: Session, release_id: str) -> datetime | None:
        auth = s.scalars(
            select(ReleaseAuthorization)
            .where(ReleaseAuthorization.release_id == release_id)
            .order_by(ReleaseAuthorization.created_at.desc())
        ).first()
        return expiry(auth.elements or {}) if auth is not None else None

    def _package_source(self, s: Session, doc: Document) -> tuple[str, ObjectRef, str, int, int]:
        """What goes into the package for ``doc``: its searchable rendition (built now if missing), so
        the recipient can search and select the text of every scanned page; the original only when a
        rendition cannot be built (logged), or when it is its own rendition (born-digital)."""
        if doc.rendition_form is None:
            render_document(s, self.store, self.settings.data_dir, doc, None)
        ref = rendition_ref(doc)
        if ref is not None:
            return doc.id, ref, RENDITION_MIME, 1, doc.page_count
        return doc.id, document_ref(doc), doc.mime, doc.first_page, doc.page_count

    def _build_and_store(
        self, release_id: str, sources: list[tuple[str, ObjectRef, str, int, int]]
    ) -> tuple[ObjectRef, int, int]:
        work = self.settings.data_dir / "tmp" / f"release-{release_id}-{uuid.uuid4().hex}"
        work.mkdir(parents=True)
        try:
            inputs = []
            for i, (doc_id, ref, mime, first, count) in enumerate(sources):
                path = work / f"{i:04d}"
                with path.open("wb") as fp:
                    self.store.read_into(ref, fp)
                inputs.append(PackageSource(doc_id, path, mime, first, count))
            try:
                built: BuiltPackage = build_package(release_id, inputs, work / "package.pdf")
            except PackageError as exc:
                raise rq.ReleaseConflict(str(exc)) from None
            ref = self.store.put_file(
                str(built.path),
                built.sha256,
                "application/pdf",
                retain_until=_retain_until(PACKAGE_RETENTION_YEARS),
                tags={"kind": "roi_package", "release": release_id},
            )
            return ref, built.size, built.pages
        finally:
            for p in sorted(work.glob("*"), reverse=True):
                p.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                work.rmdir()

    # -- fetch and disclosures ------------------------------------------------------------------

    def fetch_package(self, release_id: str, method: str = "stream") -> PackageFetch:
        """What to send, with its disclosure recorded and committed first; nothing leaves before this.

        A vendor's fetch is the release leaving to its recipient: the first is the disclosure, each
        later one an access of that same disclosure. Staff fetching it see a preview: an audited read
        (with the document ids), not a disclosure, and the release stays as it was.
        """
        if method == "presigned_url" and not hasattr(self.store, "presigned_get"):
            exc = rq.ReleaseConflict("presigned URLs need the S3 object store")
            self._refused("release.fetch", release_id, exc)
            raise exc
        vendor = self._vendor() is not None
        fetch: PackageFetch | None = None
        new, ids = False, []
        try:
            with transaction(self.sessions, immediate=True) as s:
                release = self._load(s, release_id, for_update=True)
                rq.check_not_suspended(release)
                status = release.status
                if rq.is_fetchable(release):
                    ids = [str(d) for d in release.approved_document_ids or []]
                    disclosure_id, new = self._disclose(s, release, method) if vendor else (None, False)
                    fetch = PackageFetch(
                        release.id, disclosure_id, _package_ref(release), f"release-{release.id}.pdf"
                    )
        except ChartVaultError as exc:
            self._refused("release.fetch", release_id, exc)
            raise
        if fetch is None:  # an expiry noticed on the way is kept (the transaction committed)
            if vendor:
                raise self._release_not_found(release_id)
            unavailable = rq.ReleaseConflict(f"release {release_id} is not available ({status})")
            self._refused("release.fetch", release_id, unavailable)
            raise unavailable
        if new:
            self.audit("disclosure.record", "release", release_id, detail={"disclosure": fetch.disclosure_id})
        detail = {"disclosure": fetch.disclosure_id, "method": method, "documents": ids}
        self.audit("release.fetch" if vendor else "release.preview", "release", release_id, detail=detail)
        return fetch

    def _disclose(self, s: Session, release: ReleaseRequest, method: str) -> tuple[str, bool]:
        """The release's disclosure (made now if this is the first time it leaves) and this access;
        whether it is new (the caller audits ``disclosure.record`` once its transaction committed)."""
        disclosure = disclosure_of(s, release)
        new = disclosure is None
        if disclosure is None:
            ids = [str(d) for d in release.approved_document_ids or []]
            docs = {d.id: d for d in s.scalars(select(Document).where(Document.id.in_(ids)))}
            disclosure = record_disclosure(
                s, release, [docs[i] for i in ids if i in docs], disclosed_by=self.actor, method=method
            )
        record_access(s, disclosure, accessed_by=self.actor, method=method)
        if release.status == rq.APPROVED:
            release.status = rq.FULFILLED
            release.fulfilled_at = disclosure.disclosed_at
        return disclosure.id, new

    def mark_sent(self, release_id: str) -> ReleaseView:
        """Staff record that the package left to its recipient by other means (mail, portal): that is
        the disclosure (once per release; a later vendor fetch is an access of it)."""
        try:
            with transaction(self.sessions, immediate=True) as s:
                release = self._load(s, release_id, for_update=True)
                rq.check_not_suspended(release)
                if not rq.is_fetchable(release):
                    raise rq.ReleaseConflict(
                        f"release {release_id} is {release.status}; only an approved one is sent"
                    )
                disclosure_id, new = self._disclose(s, release, "sent")
                release.sent_at = release.sent_at or rq.utcnow()
                result = rq.release_view(release)
        except ChartVaultError as exc:
            self._refused("release.sent", release_id, exc)
            raise
        if new:
            self.audit("disclosure.record", "release", release_id, detail={"disclosure": disclosure_id})
        detail = {"disclosure": disclosure_id, "documents": result.approved_document_ids}
        self.audit("release.sent", "release", release_id, detail=detail)
        return result

    def open_package(self, fetch: PackageFetch) -> Iterator[bytes]:
        """The package's bytes, checked against its sha256 (its disclosure is already recorded)."""
        return self.store.open(fetch.ref)

    def presigned_package_url(self, fetch: PackageFetch) -> str:
        """A short-lived URL minted now, after the disclosure was recorded."""
        url = self.store.presigned_get(  # type: ignore[attr-defined]  # S3 only (checked at fetch)
            fetch.ref, expires=PRESIGN_TTL, filename=fetch.filename
        )
        return str(url)

    def disclosures(self, mrn: str, accountable_only: bool = False) -> DisclosureAccounting:
        """The accounting of disclosures (164.528): the last six years for this MRN."""
        with self.sessions() as s:
            found = accounting(s, mrn, accountable_only=accountable_only)
            counts = access_counts(s, [d.id for d in found])
            rows = [disclosure_view(d, counts.get(d.id, 0)) for d in found]
        self.audit(
            "disclosure.accounting", "patient", self.audit.patient_ref(mrn), detail={"count": len(rows)}
        )
        return DisclosureAccounting(mrn=mrn, years=6, disclosures=rows)


def _package_ref(release: ReleaseRequest) -> ObjectRef:
    return ObjectRef(
        release.package_key or "",
        release.package_sha256 or "",
        release.package_size or 0,
        release.package_version,
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fp:
        for chunk in iter(lambda: fp.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _authorization_view(a: ReleaseAuthorization) -> AuthorizationView:
    return AuthorizationView(
        id=a.id,
        release_id=a.release_id,
        image_sha256=a.image_sha256,
        image_mime=a.image_mime,
        elements=dict(a.elements or {}),
        expires_on=a.expires_on.isoformat() if a.expires_on else None,
        covers_psychotherapy_notes=bool(a.covers_psychotherapy_notes),
        covers_substance_use=bool(a.covers_substance_use),
        revoked_at=iso(a.revoked_at),
        created_at=iso(a.created_at),
    )
