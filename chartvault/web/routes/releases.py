"""Release of information: requests from a timeline, the authorization and its checklist, decisions,
and the package a vendor fetches (only its own organisation's approved releases: the service decides)."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from chartvault.archive.models import RELEASE_STATES, REQUESTER_TYPES
from chartvault.classify.types import DOC_TYPES
from chartvault.errors import ChartVaultError, InvalidInput, NotFound, TooLarge, UnsupportedMedia
from chartvault.ingest.sniff import detect_kind
from chartvault.release.authorization import STATEMENTS, element_problems
from chartvault.schemas.releases import ReleaseView
from chartvault.web.context import Page
from chartvault.web.routing import page_router
from chartvault.web.uploads import receive_form_upload

router = page_router()

# The 164.508(c) checklist: (label, the problem codes that mean it is missing).
CHECKLIST: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Description of the information to be disclosed", ("missing_description_of_phi",)),
    ("Who may disclose it", ("missing_disclosing_party",)),
    ("Who may receive it", ("missing_recipient",)),
    ("Purpose of each disclosure", ("missing_purposes",)),
    ("Expiration date or event", ("missing_expiration", "bad_expires_at")),
    ("Signature", ("missing_signer",)),
    ("Date of signature", ("missing_signed_at", "bad_signed_at")),
    ("A representative's authority (when a representative signs)", ("missing_representative_authority",)),
    ("Statement: the right to revoke", ("missing_statement_revoke",)),
    ("Statement: treatment not conditioned on signing", ("missing_statement_conditioning",)),
    ("Statement: information may be redisclosed", ("missing_statement_redisclosure",)),
)
DECISIONS = ("review", "approve", "deny", "extend", "revoke", "close")


@router.get("/ui/releases")
def releases_page(page: Page, status: str = "", overdue: bool = False) -> Response:
    """Release requests (a vendor sees only its own that it may fetch), overdue ones marked."""
    chosen = status if status in RELEASE_STATES else None
    items = page.services.releases.releases(status=chosen, overdue=overdue)
    return page.render(
        "releases.html", items=items, states=RELEASE_STATES, status_filter=chosen, overdue=overdue
    )


@router.get("/ui/releases/new")
def new_release_form(page: Page, patient: str = "") -> Response:
    """The request form; from a patient's timeline, the patient as a sealed reference (``patient``: never
    the MRN in the address) and the documents chosen as ``doc`` parameters."""
    chosen = [d for d in page.request.query_params.getlist("doc") if d][:1000]
    mrn = page.services.links.mrn_of(patient) if patient else ""
    return _new_form(page, {"mrn": mrn}, chosen)


@router.post("/ui/releases")
def create_release(page: Page) -> Response:
    values = {
        name: page.field(name)
        for name in ("mrn", "requester_type", "recipient", "recipient_address", "purpose", "vendor")
    }
    values.update({"from": page.field("from"), "to": page.field("to")})
    chosen = page.fields("doc")
    types = page.fields("types")
    criteria: dict[str, Any] | None = None
    if not chosen:
        criteria = {
            k: v for k, v in {"from": values["from"], "to": values["to"], "types": types}.items() if v
        }
    try:
        if values["requester_type"] not in REQUESTER_TYPES:
            raise InvalidInput("choose who is asking (requester type)")
        release = page.services.releases.create_release(
            mrn=values["mrn"],
            requester_type=values["requester_type"],
            recipient=values["recipient"],
            recipient_address=values["recipient_address"] or None,
            purpose=values["purpose"],
            document_ids=chosen or None,
            criteria=criteria,
            vendor=values["vendor"] or None,
        )
    except InvalidInput as exc:
        return _new_form(page, values, chosen, types, error=exc, status=422)
    return RedirectResponse(f"/ui/releases/{release.id}", status_code=303)


@router.get("/ui/releases/{release_id}")
def release_page(release_id: str, page: Page) -> Response:
    return _release_page(page, page.services.releases.release(release_id))


@router.post("/ui/releases/{release_id}/authorization")
async def attach_authorization(release_id: str, page: Page) -> Response:
    """The signed authorization: its scan (archived for 6 years) and its 164.508(c) elements."""
    services = page.services
    upload = await receive_form_upload(page, 1)
    try:
        staged = upload.files[0][1] if upload.files else None
        mime = _image_mime(staged.path if staged else None, staged.over_limit if staged else False)
        elements = _elements(upload.fields)
        await run_in_threadpool(
            services.releases.attach_authorization,
            release_id,
            staged.path if staged is not None else None,
            elements,
            sha256=staged.sha256 if staged is not None else None,
            mime=mime,
        )
    except (InvalidInput, TooLarge, UnsupportedMedia) as exc:
        release = await run_in_threadpool(services.releases.release, release_id)
        return _release_page(page, release, error=exc, status=422)
    finally:
        upload.discard()
    return RedirectResponse(f"/ui/releases/{release_id}#authorizations", status_code=303)


@router.post("/ui/releases/{release_id}/{decision}")
def decide(release_id: str, decision: str, page: Page) -> Response:
    """Review, approve (builds the package), deny, extend, revoke or close; refusals shown in place."""
    releases = page.services.releases
    reason = page.field("reason")
    try:
        if decision == "review":
            releases.review_release(release_id)
        elif decision == "approve":
            releases.approve_release(release_id, access_days=_days(page.field("access_days")))
        elif decision == "deny":
            releases.deny_release(release_id, reason)
        elif decision == "extend":
            releases.extend_release(release_id, reason)
        elif decision == "revoke":
            releases.revoke_release(release_id, reason)
        elif decision == "close":
            releases.close_release(release_id)
        else:
            raise NotFound(f"no such decision: {decision}")
    except NotFound:
        raise
    except ChartVaultError as exc:
        return _release_page(page, releases.release(release_id), error=exc, status=_status(page, exc))
    return RedirectResponse(f"/ui/releases/{release_id}", status_code=303)


@router.get("/ui/releases/{release_id}/package")
def package(release_id: str, page: Page) -> Response:
    """The stamped package PDF; the disclosure is recorded before the first byte leaves."""
    releases = page.services.releases
    fetch = releases.fetch_package(release_id, "stream")
    return StreamingResponse(
        releases.open_package(fetch),
        media_type="application/pdf",
        headers={
            "Content-Length": str(fetch.ref.size),
            "Content-Disposition": f'attachment; filename="{fetch.filename}"',
            "X-Content-SHA256": fetch.ref.sha256,
        },
    )


@router.get("/ui/patients/{ref}/disclosures")
def disclosures_page(ref: str, page: Page) -> Response:
    """The accounting of disclosures (164.528): six years back, exempt ones marked. ``ref``: a sealed
    patient reference (``services.links``), never the MRN."""
    accounting = page.services.releases.disclosures(page.services.links.mrn_of(ref))
    return page.render("disclosures.html", accounting=accounting, ref=ref)


def _new_form(
    page: Page,
    values: dict[str, str],
    chosen: list[str],
    types: list[str] | None = None,
    *,
    error: ChartVaultError | None = None,
    status: int = 200,
) -> HTMLResponse:
    return page.render(
        "release_new.html",
        status=status,
        values=values,
        chosen=chosen,
        types=types or [],
        requester_types=REQUESTER_TYPES,
        doc_types=DOC_TYPES,
        error=error,
    )


def _release_page(
    page: Page, release: ReleaseView, *, error: ChartVaultError | None = None, status: int = 200
) -> HTMLResponse:
    checklists = [
        _checklist(a.elements, bool(a.revoked_at), a.expires_on) for a in release.authorizations or []
    ]
    return page.render(
        "release.html",
        status=status,
        release=release,
        checklists=checklists,
        error=error,
        statements=STATEMENTS,
        today=date.today().isoformat(),
    )


def _checklist(elements: dict[str, Any], revoked: bool, expires_on: str | None) -> dict[str, Any]:
    """Every 164.508(c) item with whether it is there, plus what else stops a release."""
    codes = {p.code for p in element_problems(elements)}
    items = [(text, not any(code in codes for code in missing)) for text, missing in CHECKLIST]
    expired = bool(expires_on and expires_on < date.today().isoformat())
    return {"items": items, "complete": not codes, "revoked": revoked, "expired": expired}


def _elements(fields: dict[str, str]) -> dict[str, Any]:
    """The authorization's elements from the form (names as the API takes them)."""
    text = {
        name: fields.get(name, "").strip()
        for name in (
            "description_of_phi",
            "disclosing_party",
            "recipient",
            "expires_at",
            "expiration_event",
            "signed_at",
            "signer",
            "representative_authority",
        )
    }
    elements: dict[str, Any] = {k: v for k, v in text.items() if v}
    purposes = [p.strip() for p in fields.get("purposes", "").split(",") if p.strip()]
    if purposes:
        elements["purposes"] = purposes
    for flag in ("signed_by_representative", "covers_psychotherapy_notes", "covers_substance_use"):
        if fields.get(flag):
            elements[flag] = True
    elements["statements"] = {name: bool(fields.get(f"statement_{name}")) for name in STATEMENTS}
    return elements


def _image_mime(path: Any, over_limit: bool) -> str | None:
    if over_limit:
        raise TooLarge("the authorization image is too large")
    if path is None:
        return None
    with path.open("rb") as fp:
        kind = detect_kind(fp.read(1024))
    if kind is None:
        raise UnsupportedMedia("the authorization image must be a PDF, TIFF, PNG or JPEG")
    return kind.mime


def _days(value: str) -> int:
    try:
        return int(value) if value else 30
    except ValueError:
        raise InvalidInput("access days must be a whole number") from None


def _status(page: Page, exc: ChartVaultError) -> int:
    status_of = page.request.app.state.web.status_of
    return int(status_of(exc))
