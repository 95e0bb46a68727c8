"""Background jobs of the server processes (retraining, registration import, archive check): the recent
ones, cancelling one, and removing old ones."""

from typing import Annotated

import typer

from chartvault.cli._common import emit_json, open_services, out

jobs_app = typer.Typer(
    help="Background jobs (retraining, registration import, archive check).", no_args_is_help=True
)


@jobs_app.command("list")
def list_jobs(
    kind: Annotated[
        str | None, typer.Option(help="classifier_train, registration_import or archive_check.")
    ] = None,
    state: Annotated[str | None, typer.Option(help="queued, running, done, failed or cancelled.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The latest jobs, newest first: kind, state, when, how far (counts only, never a value)."""
    from rich.table import Table

    from chartvault.services.jobs import job_summary

    with open_services() as services:
        jobs = services.jobs.recent(kind, state, limit)
    if as_json:
        emit_json(jobs)
        return
    table = Table("id", "kind", "state", "created", "finished", "so far / result")
    for job in jobs:
        state_shown = (
            f"{job.state} (cancel asked)"
            if job.cancel_requested_at and job.state in ("queued", "running")
            else job.state
        )
        table.add_row(
            job.id, job.kind, state_shown, job.created_at or "", job.finished_at or "", job_summary(job)
        )
    out.print(table)


@jobs_app.command("cancel")
def cancel(job_id: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Ask a queued or running job to stop at its next chunk or step (exit 1 once it ended)."""
    with open_services() as services:
        job = services.jobs.cancel(job_id)
    if as_json:
        emit_json(job)
    else:
        out.print(f"cancel asked: job {job.id} ({job.kind}) stops at its next chunk or step", markup=False)


@jobs_app.command("prune")
def prune(
    older_than: Annotated[int, typer.Option("--older-than", min=0, help="Days since the job ended.")] = 30,
) -> None:
    """Remove the jobs that ended (done, failed, cancelled) more than N days ago; never an active one."""
    with open_services() as services:
        removed = services.jobs.prune(older_than)
    out.print(f"removed {removed} job(s) that ended more than {older_than} day(s) ago", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")
