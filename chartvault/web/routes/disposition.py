"""Disposition (HIM administrators): what is past retention as of a day and what a hold keeps, the form
that destroys it, each run's certificate of destruction, and the runs before.

Destroying is guarded three ways: the form carries the fingerprint of the eligible list the person was
shown (the POST plans again and refuses if the list changed), the person types how many documents go,
and the service checks every document's retention and holds again (the store refuses a locked or held
version too). A run is as of today or an earlier day only; a later day is a preview.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import Query
from fastapi.responses import RedirectResponse, Response

from chartvault.errors import Conflict, InvalidInput
from chartvault.services.records import Plan
from chartvault.web.context import Page
from chartvault.web.forms import day, fingerprint
from chartvault.web.routing import page_router

router = page_router()

AsOfParam = Annotated[str, Query(max_length=32)]
FORM_FIELDS = ("approved_by", "witness", "reason", "confirm")


@router.get("/ui/disposition")
def disposition_page(page: Page, as_of: AsOfParam = "") -> Response:
    """The plan as of a day (eligible, held), the form that carries it out, and the past runs."""
    return _plan_page(page, day(as_of, "As of"))


@router.post("/ui/disposition")
def execute_disposition(page: Page) -> Response:
    """Destroy what the plan the person saw lists as eligible, once they typed how many, then show the
    certificate. Anything amiss answers the plan again saying what to correct; nothing is destroyed."""
    as_of = day(page.field("as_of"), "As of") or _today()
    form = {name: page.field(name) for name in FORM_FIELDS}
    plan = page.services.records.disposition_plan(as_of)
    eligible = [c.document_id for c in plan.eligible]
    try:
        _check_request(as_of, eligible, page.field("plan"), form)
    except (InvalidInput, Conflict) as exc:
        return _plan_page(page, as_of, plan=plan, form=form, error=exc)
    result = page.services.records.dispose(
        eligible, form["approved_by"], form["witness"] or None, as_of, reason=form["reason"]
    )
    return RedirectResponse(f"/ui/disposition/{result.disposition_id}", status_code=303)


@router.get("/ui/disposition/{disposition_id}")
def certificate_page(disposition_id: str, page: Page) -> Response:
    """A run's certificate of destruction, read back from the archive (sha256 checked; the read audited)."""
    certificate = page.services.records.certificate(disposition_id)
    return page.render("certificate.html", cert=certificate, disposition_id=disposition_id)


@router.get("/ui/disposition/{disposition_id}/certificate")
def certificate_download(disposition_id: str, page: Page) -> Response:
    """The certificate as the JSON file that is archived: the same bytes, so the catalog's sha256 holds."""
    certificate = page.services.records.certificate(disposition_id)
    name = f"certificate-of-destruction-{disposition_id}.json"
    return Response(
        json.dumps(certificate, indent=2, sort_keys=True),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _check_request(as_of: date, eligible: list[str], shown: str, form: dict[str, str]) -> None:
    """Refuse (InvalidInput, or Conflict when the list moved) unless this form may destroy ``eligible``."""
    if as_of > _today():
        raise InvalidInput("a disposition runs as of today or an earlier day; a later day is a preview")
    if shown != fingerprint(eligible):
        raise Conflict("what is eligible has changed since the page was shown: look at the list again")
    if not eligible:
        raise InvalidInput("nothing is eligible for destruction")
    if not form["approved_by"]:
        raise InvalidInput("name the department manager who approved the destruction")
    if not form["reason"]:
        raise InvalidInput("give the reason: the schedule or decision this run carries out")
    if form["confirm"] != str(len(eligible)):
        raise InvalidInput(f"type {len(eligible)}, the number of documents to be destroyed, to confirm")


def _plan_page(
    page: Page,
    as_of: date | None,
    *,
    plan: Plan | None = None,
    form: dict[str, str] | None = None,
    error: InvalidInput | Conflict | None = None,
) -> Response:
    if plan is None:
        plan = page.services.records.disposition_plan(as_of)
    return page.render(
        "disposition.html",
        status=200 if error is None else 409 if isinstance(error, Conflict) else 422,
        plan=plan,
        as_of=as_of.isoformat() if as_of else "",
        fingerprint=fingerprint(c.document_id for c in plan.eligible),
        may_run=date.fromisoformat(plan.as_of) <= _today(),
        form=form or {},
        error=str(error) if error else None,
        runs=page.services.records.dispositions(),
    )


def _today() -> date:
    return datetime.now(UTC).date()
