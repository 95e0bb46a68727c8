"""HIM administrators: legal holds and the disposition dry run (nothing is destroyed from a page)."""

from __future__ import annotations

from datetime import date

from fastapi.responses import RedirectResponse, Response

from chartvault.errors import InvalidInput
from chartvault.web.context import Page
from chartvault.web.routing import page_router

router = page_router()

SCOPES = {"patient": "A patient (MRN)", "encounter": "An encounter", "documents": "Listed documents"}


@router.get("/ui/holds")
def holds_page(page: Page, all: bool = False) -> Response:
    holds = page.services.records.holds(active_only=not all)
    return page.render("holds.html", holds=holds, scopes=SCOPES, show_all=all)


@router.post("/ui/holds")
def place_hold(page: Page) -> Response:
    """A hold on a patient, an encounter or documents: nothing under it is disposed of."""
    scope = page.field("scope")
    value = page.field("value")
    if scope not in SCOPES:
        raise InvalidInput("choose what the hold covers")
    ids = [d for d in value.replace(",", " ").split() if d] if scope == "documents" else []
    page.services.records.place_hold(
        page.field("matter"),
        scope,
        page.field("reason"),
        value=value if scope != "documents" else None,
        document_ids=ids,
    )
    return RedirectResponse("/ui/holds", status_code=303)


@router.post("/ui/holds/{hold_id}/release")
def release_hold(hold_id: str, page: Page) -> Response:
    page.services.records.release_hold(hold_id, page.field("reason"))
    return RedirectResponse("/ui/holds", status_code=303)


@router.get("/ui/disposition")
def disposition_page(page: Page, as_of: str = "") -> Response:
    """What is past retention and what is held, as of a date: the dry run only."""
    try:
        when = date.fromisoformat(as_of) if as_of else None
    except ValueError:
        raise InvalidInput("as of must be a date (YYYY-MM-DD)") from None
    plan = page.services.records.disposition_plan(when)
    return page.render("disposition.html", plan=plan, as_of=as_of)
