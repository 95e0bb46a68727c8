"""Scanning operators: upload a batch, watch its pages go through the states, print cover sheets."""

from __future__ import annotations

from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from chartvault.classify.coversheet import encode_payload, parse_payload, render_pdf
from chartvault.classify.types import DOC_TYPES
from chartvault.errors import InvalidInput
from chartvault.ingest.manifest import parse_manifest
from chartvault.services.intake import Incoming
from chartvault.web.context import Page
from chartvault.web.forms import Offset
from chartvault.web.routing import page_router
from chartvault.web.uploads import receive_form_upload

router = page_router()

PAGE_STATES = ("received", "ocr", "classified", "archived", "indexed")


@router.get("/ui/batches")
def batches_page(page: Page, offset: Offset = 0) -> Response:
    """Recent batches (a scanning operator sees only their own) and the upload form."""
    listing = page.services.intake.batches(50, offset)
    return page.render("batches.html", listing=listing)


@router.post("/ui/batches")
async def upload_batch(page: Page) -> Response:
    """Every file streamed to staging, the batch handed to the background worker, then its page."""
    services = page.services
    upload = await receive_form_upload(page, services.settings.max_upload_files)
    try:
        if not upload.files:
            raise InvalidInput("choose at least one file to upload")
        manifest_text = upload.fields.get("manifest", "").strip()
        manifest = parse_manifest(manifest_text, services.settings.mrn_pattern) if manifest_text else None
    except InvalidInput:
        upload.discard()
        raise
    received = await run_in_threadpool(
        services.intake.receive,
        [Incoming(name, staged=staged) for name, staged in upload.files],
        source="web",
        station=upload.fields.get("station", "").strip() or None,
        operator=page.session.username if page.session else None,
        manifest=manifest,
    )
    page.request.app.state.background.submit(received.batch_id)
    return RedirectResponse(f"/ui/batches/{received.batch_id}", status_code=303)


@router.get("/ui/batches/{batch_id}")
def batch_page(batch_id: str, page: Page) -> Response:
    report = page.services.intake.batch(batch_id)
    return page.render("batch.html", report=report, page_states=PAGE_STATES)


@router.get("/ui/batches/{batch_id}/progress")
def batch_progress(batch_id: str, page: Page) -> Response:
    """The live part of the batch page alone (htmx replaces it every few seconds until done)."""
    report = page.services.intake.batch(batch_id)
    return page.render("_batch_progress.html", report=report, page_states=PAGE_STATES)


@router.get("/ui/coversheet")
def coversheet_form(page: Page) -> Response:
    return page.render("coversheet.html", doc_types=DOC_TYPES, values={}, error=None)


@router.post("/ui/coversheet")
def coversheet(page: Page) -> Response:
    """A cover sheet PDF (QR + Code 128): the scanned pages behind it become one document."""
    values = {name: page.field(name) for name in ("mrn", "type", "dob")}
    try:
        check = page.services.settings.mrn_check_digit
        sheet = parse_payload(
            encode_payload(values["mrn"], values["type"], values["dob"] or None, check_digit=check)
        )
    except InvalidInput as exc:
        return page.render("coversheet.html", status=422, doc_types=DOC_TYPES, values=values, error=str(exc))
    page.services.audit("coversheet.print", detail={"doc_type": sheet.doc_type})
    return Response(
        render_pdf(sheet),
        media_type="application/pdf",
        headers={"Content-Disposition": 'attachment; filename="cover-sheet.pdf"'},
    )
