"""HIM administrators: legal holds and the patient index (the registration list loaded from a page, as
``chartvault patients import`` loads it). Disposition has its own pages (``routes.disposition``)."""

from __future__ import annotations

from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from chartvault.errors import InvalidInput, TooLarge
from chartvault.services.patients import MAX_REGISTRATION_BYTES
from chartvault.web.context import Page
from chartvault.web.routing import page_router
from chartvault.web.uploads import receive_form_upload

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


@router.get("/ui/patient-index")
def patient_index_page(page: Page) -> Response:
    """What the index holds, what waits on it, and the form that loads the registration list."""
    return page.render("patient_index.html", summary=page.services.patients.summary(), result=None)


@router.post("/ui/patient-index")
async def import_registration_page(page: Page) -> Response:
    """The registration export, staged to disk, loaded; the page answers with what the import did (counts
    and refused lines by number, never a value of a row) beside the index as it now is."""
    upload = await receive_form_upload(page, max_files=1, max_file_bytes=MAX_REGISTRATION_BYTES)
    result, error, status = None, None, 200
    try:
        staged = upload.files[0][1] if upload.files else None
        if staged is not None and (staged.over_limit or staged.size > MAX_REGISTRATION_BYTES):
            raise TooLarge(f"a registration list is at most {MAX_REGISTRATION_BYTES:,} bytes")
        if staged is None or staged.path is None:
            raise InvalidInput("choose the registration list (a CSV file) to load")
        result = await run_in_threadpool(page.services.patients.import_registration, staged.path)
    except (InvalidInput, TooLarge) as exc:
        error, status = str(exc), 413 if isinstance(exc, TooLarge) else 422
    finally:
        upload.discard()
    summary = await run_in_threadpool(page.services.patients.summary)  # catalog reads off the event loop
    return page.render("patient_index.html", status=status, summary=summary, result=result, error=error)
