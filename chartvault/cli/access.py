"""Access: named users, API tokens and the audit log. The CLI acts as the machine's operator."""

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from chartvault.cli._common import emit_json, err, open_services, out

if TYPE_CHECKING:
    from chartvault.schemas.access import AuditReport

token_app = typer.Typer(
    help="API tokens: random, shown once, stored hashed, expiring, revocable.", no_args_is_help=True
)
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
links_app = typer.Typer(
    help="The keys that seal page links (no patient in an address).", no_args_is_help=True
)
user_app = typer.Typer(
    help="Named users: who signs in to the web pages and holds tokens.", no_args_is_help=True
)


def _read_password(from_stdin: bool) -> str:
    """A new password: from standard input (scripts) or typed twice, never shown."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@user_app.command("create")
def user_create(
    username: Annotated[str, typer.Argument(help="Sign-in name (a-z, 0-9, '.', '_', '-').")],
    role: Annotated[str, typer.Option(help="scanner | staff | him_admin | vendor | admin")],
    name: Annotated[str, typer.Option(help="The person's display name.")],
    vendor: Annotated[str | None, typer.Option(help="The organisation of a vendor user.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
    no_password: Annotated[bool, typer.Option("--no-password", help="Tokens only; no web sign-in.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create a user; the password is asked for (twice) unless given on stdin."""
    password = None if no_password else _read_password(password_stdin)
    with open_services() as services:
        user = services.access.create_user(username, name, role, password=password, vendor=vendor)
    if as_json:
        emit_json(user)
    else:
        out.print(f"user {user.username} ({user.role}) created: {user.id}", markup=False)


@user_app.command("reset-password")
def user_reset_password(
    username: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
) -> None:
    """Set a new password for a user."""
    password = _read_password(password_stdin)
    with open_services() as services:
        services.access.reset_password(username, password)
    out.print(f"password of {username} reset", markup=False)


@user_app.command("disable")
def user_disable(username: str) -> None:
    """Disable a user: no more sign-in, and their tokens stop working."""
    with open_services() as services:
        services.access.disable_user(username)
    out.print(f"user {username} disabled", markup=False)


@user_app.command("list")
def user_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every user (never a password)."""
    from rich.table import Table

    with open_services() as services:
        listed = services.access.users()
    if as_json:
        emit_json(listed)
        return
    table = Table("username", "name", "role", "vendor", "password", "disabled")
    for u in listed.users:
        table.add_row(
            u.username,
            u.display_name,
            u.role,
            u.vendor or "",
            "yes" if u.has_password else "no",
            u.disabled_at or "",
        )
    out.print(table)


@token_app.command("create")
def token_create(
    user: Annotated[str, typer.Option("--user", help="Username of the person (or station) it belongs to.")],
    name: Annotated[str, typer.Option(help="What it is for, e.g. 'scan station 3'.")],
    role: Annotated[str | None, typer.Option(help="Must be the user's role (the default).")] = None,
    days: Annotated[int, typer.Option(help="Days until it expires.")] = 90,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create a token for a user. It is printed once: store it now, it cannot be shown again."""
    with open_services() as services:
        made = services.access.create_token(role, name, days=days, username=user)
    if as_json:
        emit_json(made)
        return
    out.print(f"token {made.id} ({made.role}) of user {user} expires {made.expires_at}", markup=False)
    out.print(made.token, markup=False, highlight=False)


@token_app.command("list")
def token_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every token (never the secrets)."""
    from rich.table import Table

    with open_services() as services:
        listed = services.access.tokens()
    if as_json:
        emit_json(listed)
        return
    table = Table("id", "name", "role", "vendor", "user", "expires", "revoked", "last used")
    for t in listed.tokens:
        table.add_row(
            t.id,
            t.name,
            t.role,
            t.vendor or "",
            t.user_id or "(none)",
            t.expires_at or "",
            t.revoked_at or "",
            t.last_used_at or "",
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
    """Check the MAC chain of the whole audit log against its checkpoints; exit 1 and say where it breaks."""
    with open_services() as services:
        report = services.access.verify_audit()
    if as_json:
        emit_json(report)
    elif report.ok:
        out.print(f"audit log intact: {report.entries} entries, last hash {report.last_hash}")
        out.print(_checkpoint_line(report))
    else:
        err.print(f"audit log BROKEN at {_where(report)}: {report.message}")
    if not report.ok:
        raise typer.Exit(1)


def _where(report: "AuditReport") -> str:
    position, entry = report.first_bad_position, report.first_bad_id
    if position is None:
        return "its newest checkpoint"
    return f"entry {entry} (position {position})" if entry is not None else f"position {position}"


def _checkpoint_line(report: "AuditReport") -> str:
    newest = report.newest_checkpoint
    if newest is None:
        return "no checkpoint yet: deleting the newest entries would go unnoticed"
    return (
        f"{report.checkpoints} checkpoints; the newest ({newest.at}) covers {newest.entries} entries, "
        f"{report.since_checkpoint} newer entries are not yet covered"
    )


@audit_app.command("checkpoint")
def audit_checkpoint(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Write the audit log's entry count and head MAC to the object store now (locked)."""
    with open_services() as services:
        cp = services.access.checkpoint_audit()
    if as_json:
        emit_json(cp)
    else:
        out.print(f"checkpoint {cp.object_key}: {cp.entries} entries")


@audit_app.command("rotate-key")
def audit_rotate_key(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Make a new audit key current; old keys stay in the key file to verify old entries."""
    with open_services() as services:
        result = services.access.rotate_audit_key()
    if as_json:
        emit_json(result)
    else:
        out.print(f"audit key rotated: {result.from_key} -> {result.to_key} (old key kept for verification)")


@links_app.command("rotate-key")
def links_rotate_key(
    revoke_old: Annotated[
        bool, typer.Option("--revoke-old", help="Drop the old keys: every link made before stops opening.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Make a new page-link key current (links made before still open until they expire, or not at all
    with --revoke-old, for a key that leaked); running servers take it up without a restart."""
    with open_services() as services:
        result = services.links.rotate_key(revoke_old=revoke_old)
    if as_json:
        emit_json(result)
    else:
        rotated = f"link key rotated: {result.from_key} -> {result.to_key}"
        if result.revoked:
            out.print(
                f"{rotated}; {len(result.revoked)} old key(s) dropped: links made before no longer open"
            )
        else:
            out.print(f"{rotated} (links made before open until they expire)")


def register(app: typer.Typer) -> None:
    app.add_typer(token_app, name="token")
    app.add_typer(audit_app, name="audit")
    app.add_typer(links_app, name="links")
    app.add_typer(user_app, name="user")
