"""The quarantine: refused files kept aside with their reasons (HIM administrators read it), and their
purge by administrators, one file or all refused more than N days ago, as ``chartvault quarantine purge``.

Files are shown by ids, sha256, size and reason, never by the name they came with (a scan's file name is
often the patient's). A purge is two steps, as the CLI's ``--dry-run`` then the run: the page first lists
what would go, and the purge by age acts only when the list is unchanged and its count was typed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from fastapi.responses import RedirectResponse, Response

from chartvault.errors import Conflict, InvalidInput
from chartvault.policy import allowed
from chartvault.schemas.batches import QuarantinePurge
from chartvault.web.context import Page
from chartvault.web.forms import Offset, fingerprint, whole
from chartvault.web.routing import page_router

router = page_router()

PAGE_SIZE = 100
FileParam = Annotated[str, Query(max_length=64)]


@router.get("/ui/quarantine")
def quarantine_page(
    page: Page,
    offset: Offset = 0,
    days: Annotated[int | None, Query(ge=1, le=36500)] = None,
    file: FileParam = "",
    purged: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    """The quarantined files, a page at a time; with ``days``, what a purge by age would delete, with
    ``file`` one file's purge to confirm (both for administrators); ``purged`` says what just went."""
    may_purge = allowed("POST", "/ui/quarantine/purge", page.role)
    preview = page.services.intake.purge_quarantine(days, dry_run=True) if days and may_purge else None
    return _page(page, offset, preview=preview, file=file if may_purge else "", purged=purged)


@router.post("/ui/quarantine/purge")
def purge(page: Page) -> Response:
    """Delete the kept bytes of one file, or of every file refused more than N days ago once the person
    typed how many that is (the list must be the one they were shown); the catalog keeps each reason."""
    intake = page.services.intake
    if page.field("file"):
        done = intake.purge_quarantined_file(page.field("file"))
        return RedirectResponse(f"/ui/quarantine?purged={len(done.files)}", status_code=303)
    days = whole(page.field("days"), "Days")
    if days is None or days < 1:
        raise InvalidInput("give the age in days (1 or more) of the files to purge")
    preview = intake.purge_quarantine(days, dry_run=True)
    try:
        _check_purge(preview, page.field("files"), page.field("confirm"))
    except (InvalidInput, Conflict) as exc:
        return _page(page, 0, preview=preview, error=exc)
    done = intake.purge_quarantine(days)
    return RedirectResponse(f"/ui/quarantine?purged={len(done.files)}", status_code=303)


def _check_purge(preview: QuarantinePurge, shown: str, confirm: str) -> None:
    if shown != fingerprint(preview.files):
        raise Conflict("which files are that old has changed since the list was shown: look at it again")
    if not preview.files:
        raise InvalidInput("no quarantined file with its bytes kept is that old")
    if confirm != str(len(preview.files)):
        raise InvalidInput(f"type {len(preview.files)}, the number of files to be purged, to confirm")


def _page(
    page: Page,
    offset: int,
    *,
    preview: QuarantinePurge | None = None,
    file: str = "",
    purged: int | None = None,
    error: InvalidInput | Conflict | None = None,
) -> Response:
    listed = page.services.intake.quarantine(limit=PAGE_SIZE, offset=offset)
    chosen = next((f for f in listed.files if f.file_id == file and f.kept), None) if file else None
    return page.render(
        "quarantine.html",
        status=200 if error is None else 409 if isinstance(error, Conflict) else 422,
        listed=listed,
        preview=preview,
        preview_fingerprint=fingerprint(preview.files) if preview else "",
        chosen=chosen,
        asked_file=file,
        purged=purged,
        error=str(error) if error else None,
        default_days=page.services.settings.quarantine_retention_days,
        page_size=PAGE_SIZE,
    )
