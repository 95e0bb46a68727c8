"""HIM administrators: a patient's date of birth corrected from a page, as ``chartvault retention
correct-dob`` does it. The DOB decides retention (a minor's records are kept longer), so the page first
shows what the new date would change, document by document, and corrects only once that is confirmed.

The patient is named by a sealed reference (``{ref}``, ``chartvault.services.links``), never by the MRN: a
page address is kept by browser history and proxy logs."""

from __future__ import annotations

import re
from datetime import date
from typing import Any
from urllib.parse import urlencode

from fastapi.responses import RedirectResponse, Response

from chartvault.errors import InvalidInput
from chartvault.schemas.patients import DobCorrection
from chartvault.web.context import Page
from chartvault.web.forms import day
from chartvault.web.routing import page_router

router = page_router()

DOC_ID = re.compile(r"[0-9a-f]{32}")  # the review item a correction was started from, to go back to


@router.get("/ui/patients/{ref}/dob")
def dob_form(ref: str, page: Page, back: str = "", done: int | None = None) -> Response:
    """The DOB on record, the retention of the patient's documents now, and the form to correct it."""
    now = page.services.records.dob_correction(page.services.links.mrn_of(ref))
    return _page(page, 200, now, ref=ref, back=_item(back), done=done)


@router.post("/ui/patients/{ref}/dob")
def correct_dob(ref: str, page: Page) -> Response:
    """Asked with a date: what it would change (nothing is saved). Confirmed: the correction, audited by
    the service, then back to the form with how many documents' retention changed (a count, no date)."""
    records = page.services.records
    mrn = page.services.links.mrn_of(ref)
    value, back = page.field("dob"), _item(page.field("back"))
    try:
        dob = _date(value)
        if page.field("confirmed"):
            changed = records.correct_dob(mrn, dob).documents_changed
            query = urlencode({"done": len(changed), **({"back": back} if back else {})})
            return RedirectResponse(f"/ui/patients/{ref}/dob?{query}", status_code=303)
        preview = records.dob_correction(mrn, dob)
        if preview.new_dob == preview.dob:
            raise InvalidInput("that is the date of birth on record already")
    except InvalidInput as exc:  # the form again, the date as typed and what is wrong with it
        now = records.dob_correction(mrn)
        return _page(page, 422, now, ref=ref, value=value, error=str(exc), back=back)
    return _page(page, 200, preview, ref=ref, preview=preview, value=value, back=back)


def _page(page: Page, status: int, now: DobCorrection, **values: Any) -> Response:
    """The form, or with ``preview`` the confirmation, over the DOB on record and the retention now."""
    values = {"preview": None, "value": "", "error": None, "back": "", "done": None, **values}
    return page.render("patient_dob.html", status=status, now=now, today=date.today().isoformat(), **values)


def _date(text: str) -> date:
    found = day(text, "the date of birth")
    if found is None:
        raise InvalidInput("enter the corrected date of birth")
    return found


def _item(doc_id: str) -> str:
    return doc_id if DOC_ID.fullmatch(doc_id) else ""
