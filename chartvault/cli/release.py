"""Release of information: the release worklist and the accounting of disclosures."""

from typing import Annotated

import typer

from chartvault.cli._common import emit_json, open_services, out

release_app = typer.Typer(help="Release of information (ROI) requests.", no_args_is_help=True)


@release_app.command("list")
def release_list(
    overdue: Annotated[bool, typer.Option("--overdue", help="Only undecided requests past due.")] = False,
    status: Annotated[str | None, typer.Option(help="Only releases in this state.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Release requests, newest first, with their due dates (30 days, one 30-day extension)."""
    from rich.table import Table

    with open_services() as services:
        items = services.releases.releases(status=status, overdue=overdue)
    if as_json:
        emit_json({"items": items})
        return
    table = Table("release", "status", "requester", "received", "due", "overdue", "vendor")
    for r in items:
        table.add_row(
            r.id,
            r.status + (" (revoked)" if r.revoked else ""),
            r.requester_type,
            (r.received_at or "")[:10],
            (r.due_at or "")[:10] + (" ext" if r.extended else ""),
            "yes" if r.overdue else "",
            r.vendor or "",
        )
    out.print(table)
    out.print(f"{len(items)} release(s)")


@release_app.command("sent")
def release_sent(release_id: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Record that an approved package left to its recipient by other means: that is its disclosure."""
    with open_services() as services:
        result = services.releases.mark_sent(release_id)
    if as_json:
        emit_json(result)
    else:
        out.print(f"release {result.id} recorded as sent ({result.status})", markup=False)


def disclosures(mrn: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The accounting of disclosures for a patient (164.528): the last six years."""
    from rich.table import Table

    with open_services() as services:
        result = services.releases.disclosures(mrn)
    if as_json:
        emit_json(result)
        return
    table = Table("date", "recipient", "address", "description", "purpose", "accountable")
    for d in result.disclosures:
        table.add_row(
            d.date[:10],
            d.recipient,
            d.recipient_address or "",
            d.description,
            d.purpose,
            "yes" if d.accountable else f"no ({d.exemption_basis})",
        )
    out.print(table)
    out.print(f"{len(result.disclosures)} disclosure(s) in the last {result.years} years")


def register(app: typer.Typer) -> None:
    app.add_typer(release_app, name="release")
    app.command("disclosures")(disclosures)
