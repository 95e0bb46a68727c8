"""HIM administrators: the review queue with the page in view; type corrections, patient
confirmation with two identifiers, misfile corrections."""

from __future__ import annotations

from fastapi.responses import RedirectResponse, Response

from chartvault.classify.types import DOC_TYPES
from chartvault.errors import InvalidInput
from chartvault.web.context import Page
from chartvault.web.forms import Offset, PageNoQuery, day
from chartvault.web.routing import page_router

router = page_router()

# Held because whose document it is is in doubt (``chartvault.archive.patients.PATIENT_REASONS``): the
# patient's DOB on record may be what is wrong, so the page offers its correction.
PATIENT_REASONS = frozenset({"no_patient_identified", "patient_conflict"})


@router.get("/ui/review")
def review_queue(page: Page, offset: Offset = 0) -> Response:
    """Documents held for a person, oldest first, with their reasons (codes, never values)."""
    queue = page.services.review.queue(50, offset)
    return page.render("review.html", queue=queue, done=page.request.query_params.get("done"))


@router.get("/ui/review/{doc_id}")
def review_item(doc_id: str, page: Page, page_no: PageNoQuery = None) -> Response:
    """One held document: the page in view beside what was read from it, and the decisions."""
    services = page.services
    document = services.documents.get(doc_id)
    flagged = [p.page_no for p in document.pages if p.flags]
    view = services.pages.view(doc_id, page_no or (flagged[0] if flagged else None))
    return page.render(
        "review_item.html",
        doc=document,
        view=view,
        flagged=flagged,
        doc_types=DOC_TYPES,
        done=page.request.query_params.get("done"),
        patient_held=any(r.get("code") in PATIENT_REASONS for r in document.review_reasons),
    )


@router.post("/ui/documents/{doc_id}/classification")
def correct_type(doc_id: str, page: Page) -> Response:
    """A person sets the type: recorded for training; the type's review reason is resolved."""
    change = page.services.review.correct_type(doc_id, page.field("doc_type"))
    if change.review_status == "pending":
        return RedirectResponse(f"/ui/review/{doc_id}?done=type", status_code=303)
    return RedirectResponse("/ui/review?done=type", status_code=303)


@router.post("/ui/documents/{doc_id}/review/resolve")
def resolve(doc_id: str, page: Page) -> Response:
    """Whose document it is, confirmed by a person who compared two identifiers on the page."""
    if not page.field("two_identifiers"):
        raise InvalidInput("confirm that two identifiers on the page (MRN and name or date of birth) match")
    dob = day(page.field("dob"), "date of birth")
    result = page.services.review.resolve(doc_id, page.field("mrn") or None, dob)
    if result.review_status == "pending":  # no patient agrees with what was given: still held
        return RedirectResponse(f"/ui/review/{doc_id}?done=unlinked", status_code=303)
    return RedirectResponse("/ui/review?done=resolved", status_code=303)


@router.post("/ui/documents/{doc_id}/misfile")
def misfile(doc_id: str, page: Page) -> Response:
    """Refile a whole document under another MRN, or split some pages out (break-glass)."""
    pages_text = page.field("pages")
    try:
        pages = [int(p) for p in pages_text.replace(" ", "").split(",") if p] if pages_text else None
    except ValueError:
        raise InvalidInput("pages must be page numbers separated by commas") from None
    page.services.records.correct_misfile(
        doc_id,
        page.field("to_mrn"),
        page.field("reason"),
        pages=pages,
        break_glass=bool(page.field("break_glass")),
    )
    return RedirectResponse("/ui/review?done=misfile", status_code=303)
