"""Administrators: named users (who signs in), API tokens (what machines call with), the audit log (its
entries, filtered and paged, read-only; the chain check as ``chartvault audit verify``), the archive
check (as ``chartvault check``, without repairs: those stay with the CLI; the full one a background job)
and the background jobs of every kind (as ``GET /jobs``), each active one with a button that cancels it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Query
from fastapi.responses import RedirectResponse, Response

from chartvault.archive.models import JOB_ARCHIVE_CHECK, JOB_KINDS, JOB_STATES, ROLES
from chartvault.errors import InvalidInput, NotFound
from chartvault.schemas.access import AuditReport
from chartvault.schemas.jobs import JobInfo
from chartvault.services.jobs import job_summary
from chartvault.services.records import check_summary
from chartvault.web.context import Page
from chartvault.web.forms import ChainPosition, day
from chartvault.web.routing import page_router

router = page_router()

AUDIT_PAGE = 50  # entries a page
Filter = Annotated[str, Query(max_length=128)]
FromParam = Annotated[str, Query(alias="from", max_length=32)]
ToParam = Annotated[str, Query(alias="to", max_length=32)]


@router.get("/ui/admin/users")
def users_page(page: Page) -> Response:
    return page.render("users.html", users=page.services.access.users().users, roles=ROLES)


@router.post("/ui/admin/users")
def create_user(page: Page) -> Response:
    page.services.access.create_user(
        page.field("username"),
        page.field("display_name"),
        page.field("role"),
        password=page.form.get("password") if page.form else None,  # type: ignore[arg-type]
        vendor=page.field("vendor") or None,
    )
    return RedirectResponse("/ui/admin/users", status_code=303)


@router.post("/ui/admin/users/{username}/{action}")
def user_action(username: str, action: str, page: Page) -> Response:
    """Reset a password or disable a user; either signs the user out everywhere."""
    access = page.services.access
    if action == "reset-password":
        password = page.form.get("password") if page.form else None
        if not isinstance(password, str):
            raise InvalidInput("a new password is needed")
        access.reset_password(username, password)  # ends the user's sessions
    elif action == "disable":
        access.disable_user(username)  # ends the user's sessions
    else:
        raise NotFound(f"no such action: {action}")
    return RedirectResponse("/ui/admin/users", status_code=303)


@router.get("/ui/admin/tokens")
def tokens_page(page: Page) -> Response:
    return page.render("tokens.html", tokens=page.services.access.tokens().tokens, roles=ROLES, made=None)


@router.post("/ui/admin/tokens")
def create_token(page: Page) -> Response:
    """A new token, shown on this page once (it is stored only as a hash)."""
    try:
        days = int(page.field("days") or 90)
    except ValueError:
        raise InvalidInput("days must be a whole number") from None
    made = page.services.access.create_token(
        page.field("role"), page.field("name"), vendor=page.field("vendor") or None, days=days
    )
    tokens = page.services.access.tokens().tokens
    return page.render("tokens.html", status=201, tokens=tokens, roles=ROLES, made=made)


@router.post("/ui/admin/tokens/{token_id}/revoke")
def revoke_token(token_id: str, page: Page) -> Response:
    page.services.access.revoke_token(token_id)
    return RedirectResponse("/ui/admin/tokens", status_code=303)


@router.get("/ui/admin/audit")
def audit_page(
    page: Page,
    actor: Filter = "",
    action: Filter = "",
    document: Filter = "",
    date_from: FromParam = "",
    date_to: ToParam = "",
    before: ChainPosition = None,
    after: ChainPosition = None,
) -> Response:
    """The entries, newest first, filtered and paged by chain position; the chain check is a POST (it
    writes an audit entry of its own)."""
    filters = {"actor": actor, "action": action, "document": document, "from": date_from, "to": date_to}
    return _audit_page(page, filters, before, after)


@router.post("/ui/admin/audit")
def verify_audit(page: Page) -> Response:
    """Walk the audit chain against every checkpoint now and show where it first breaks, if it does."""
    report = page.services.access.verify_audit()
    return _audit_page(page, {}, None, None, report=report, status=200 if report.ok else 409)


def _audit_page(
    page: Page,
    filters: dict[str, str],
    before: int | None,
    after: int | None,
    report: AuditReport | None = None,
    status: int = 200,
) -> Response:
    chosen = {k: v.strip() for k, v in filters.items() if v and v.strip()}
    found = page.services.access.audit_entries(
        actor=chosen.get("actor"),
        action=chosen.get("action"),
        target=chosen.get("document"),
        date_from=day(chosen.get("from", ""), "From"),
        date_to=day(chosen.get("to", ""), "To"),
        before=before,
        after=after,
        limit=AUDIT_PAGE,
    )
    return page.render(
        "audit.html",
        status=status,
        report=report,
        found=found,
        filters=chosen,
        paged=before is not None or after is not None,
        newer_url=_audit_url(chosen, after=found.newer) if found.newer else None,
        older_url=_audit_url(chosen, before=found.older) if found.older else None,
        newest_url=_audit_url(chosen),
        page_size=AUDIT_PAGE,
    )


def _audit_url(filters: dict[str, str], **cursor: int | None) -> str:
    query = {**filters, **{k: str(v) for k, v in cursor.items() if v is not None}}
    return "/ui/admin/audit" + (f"?{urlencode(query)}" if query else "")


@router.get("/ui/admin/check")
def check_page(page: Page) -> Response:
    """What the archive check looks at, and the latest backups; running it is a POST (it writes an audit
    entry)."""
    return _check_page(page, 200, result=None, job=None)


@router.post("/ui/admin/check")
def run_check(page: Page) -> Response:
    """``chartvault check`` without repairs. The quick one (is every object there) answers here; the full
    one (every object read back against its sha256, as long as reading the whole archive) is a background
    job whose page follows it."""
    records = page.services.records
    if page.field("fixity") == "full":
        job = records.start_check()
        return RedirectResponse(f"/ui/admin/check/jobs/{job.id}", status_code=303)
    result = check_summary(records.check(repair=False, fixity=False), fixity=False)
    return _check_page(page, 200 if result["consistent"] else 409, result=result, job=None)


@router.get("/ui/admin/check/jobs/{job_id}")
def check_job_page(job_id: str, page: Page) -> Response:
    """A full check followed (htmx, or a reload without JavaScript) to its findings."""
    return _check_page(page, 200, result=None, job=_check_job(page, job_id))


@router.get("/ui/admin/check/jobs/{job_id}/progress")
def check_job_progress(job_id: str, page: Page) -> Response:
    """The live part of the job's page alone (htmx replaces it every 2 s while the check runs)."""
    return page.render("_check_status.html", result=None, job=_check_job(page, job_id))


def _check_page(page: Page, status: int, **values: Any) -> Response:
    """The check page, with the backups the archive recorded (``chartvault backup create``) beside it:
    whoever checks the archive also sees whether it could be brought back."""
    backups = page.services.backups.recent()
    stale = not backups or _age_days(backups[0].at) > BACKUP_STALE_DAYS
    return page.render("check.html", status=status, backups=backups, backups_stale=stale, **values)


def _age_days(iso: str) -> float:
    return (datetime.now(UTC) - datetime.fromisoformat(iso)).total_seconds() / 86400


def _check_job(page: Page, job_id: str) -> JobInfo:
    """The job, if it is of the kind this page follows (another kind's id is not found here)."""
    return page.services.jobs.get(job_id, kind=JOB_ARCHIVE_CHECK)


BACKUP_STALE_DAYS = 2  # nightly backups: flagged when the newest is older than this
JOBS_SHOWN = 100  # the latest jobs the jobs page lists


@router.get("/ui/admin/jobs")
def jobs_page(page: Page, kind: Filter = "", state: Filter = "") -> Response:
    """The latest background jobs of every kind, newest first, how far each got; a cancel button for each
    one still queued or running (a form with the session's CSRF token, as every other)."""
    chosen = {"kind": kind, "state": state}
    jobs = page.services.jobs.recent(kind or None, state or None, JOBS_SHOWN)
    names = {u.id: u.username for u in page.services.access.users().users}
    return page.render(
        "jobs.html",
        rows=[(job, job_summary(job), names.get(job.started_by or "", job.started_by)) for job in jobs],
        kinds=JOB_KINDS,
        states=JOB_STATES,
        chosen=chosen,
        done=page.request.query_params.get("done"),
    )


@router.post("/ui/admin/jobs/{job_id}/cancel")
def cancel_job(job_id: str, page: Page) -> Response:
    """Ask the job to stop at its next chunk or step (as ``POST /jobs/{id}/cancel``; 409 once it ended)."""
    page.services.jobs.cancel(job_id)
    return RedirectResponse("/ui/admin/jobs?done=cancel", status_code=303)
