"""Access: API tokens and the audit log. The CLI acts as the machine's operator."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from chartvault.cli._common import emit_json, err, open_services, out

token_app = typer.Typer(
    help="API tokens: random, shown once, stored hashed, expiring, revocable.", no_args_is_help=True
)
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)


@token_app.command("create")
def token_create(
    role: Annotated[str, typer.Option(help="scanner | staff | him_admin | vendor | admin")],
    name: Annotated[str, typer.Option(help="Who or what holds it, e.g. 'scan station 3'.")],
    vendor: Annotated[str | None, typer.Option(help="The organisation of a vendor token.")] = None,
    days: Annotated[int, typer.Option(help="Days until it expires.")] = 90,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create a token. It is printed once: store it now, it cannot be shown again."""
    with open_services() as services:
        made = services.access.create_token(role, name, vendor, days)
    if as_json:
        emit_json(made)
        return
    out.print(f"token {made.id} ({made.role}) expires {made.expires_at}")
    out.print(made.token, markup=False, highlight=False)


@token_app.command("list")
def token_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every token (never the secrets)."""
    with open_services() as services:
        listed = services.access.tokens()
    if as_json:
        emit_json(listed)
        return
    table = Table("id", "name", "role", "vendor", "expires", "revoked", "last used")
    for t in listed.tokens:
        table.add_row(
            t.id, t.name, t.role, t.vendor or "", t.expires_at or "", t.revoked_at or "", t.last_used_at or ""
        )
    out.print(table)


@token_app.command("revoke")
def token_revoke(token_id: str) -> None:
    """Revoke a token; it stops working at once."""
    with open_services() as services:
        services.access.revoke_token(token_id)
    out.print(f"token {token_id} revoked")


@audit_app.command("verify")
def audit_verify(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Check the chain of the whole audit log; exit 1 and say where it breaks."""
    with open_services() as services:
        report = services.access.verify_audit()
    if as_json:
        emit_json(report)
    elif report.ok:
        out.print(f"audit log intact: {report.entries} entries, last hash {report.last_hash}")
    else:
        err.print(f"audit log BROKEN at entry {report.first_bad_id}: {report.problem}")
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(token_app, name="token")
    app.add_typer(audit_app, name="audit")
