"""``chartvault backup``: snapshots of the embedded archive into a backup folder, and the restore."""

from pathlib import Path
from typing import Annotated, Any

import typer

from chartvault.cli._common import EXIT_REFUSED, emit_json, err, open_services, out, refusals

backup_app = typer.Typer(
    help="Backups of the embedded archive (SQLite catalog, objects, keys) and their restore.",
    no_args_is_help=True,
)

DEST = Annotated[Path, typer.Argument(help="The backup folder (snapshots share its objects).")]


@backup_app.command("create")
def backup_create(
    dest: DEST,
    keep: Annotated[
        int | None, typer.Option(min=1, help="Then keep only the newest N snapshots (and their objects).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A consistent snapshot of the catalog and every object it names, each verified by its sha256; only
    objects the folder lacks are copied. Exit 1 when an object is missing or corrupt in the archive (the
    snapshot is kept, its manifest lists them by owner id). The folder holds the audit key: keep it apart."""
    with open_services() as services:
        summary = services.backups.create(dest, keep)
    if as_json:
        emit_json(summary)
    else:
        out.print(
            f"snapshot {summary['stamp']}: {summary['objects']} objects, {summary['bytes']:,} bytes "
            f"({summary['copied_objects']} copied now, {summary['copied_bytes']:,} bytes); "
            f"{summary['checkpoints']} audit checkpoints; audit entries {summary['audit_entries']}"
        )
        _print_problems(summary)
        if summary.get("pruned_snapshots") is not None:
            out.print(
                f"pruned {len(summary['pruned_snapshots'])} snapshots, {summary['pruned_objects']} objects"
            )
    if not summary["complete"]:
        raise typer.Exit(EXIT_REFUSED)


@backup_app.command("list")
def backup_list(dest: DEST, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The snapshots of a backup folder, oldest first."""
    from chartvault.services.backups import BackupService

    with refusals():
        found = BackupService.list(dest)
    if as_json:
        emit_json(found)
        return
    for snap in found:
        state = "complete" if snap["complete"] else "INCOMPLETE"
        out.print(
            f"{snap['stamp']}  {state}  {snap['objects']} objects  {snap['bytes']:,} bytes  {snap['schema']}"
        )


@backup_app.command("restore")
def backup_restore(
    dest: DEST,
    snapshot: Annotated[str | None, typer.Option(help="The snapshot's stamp (default: the newest).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Restore a snapshot into the configured data folder (CHARTVAULT_DATA_DIR), which must be empty:
    every object checked against its sha256, retention and holds put back, then the search index rebuilt
    and the whole archive checked. Exit 0 only when the restored archive is consistent and its audit
    log verifies."""
    from chartvault.config import Settings
    from chartvault.services.backups import restore

    with refusals():
        done = restore(Settings(), dest, snapshot)
    with open_services() as services:
        services.backups.restored(done)
        check = services.records.check(repair=True, fixity=False)
        audit = services.access.verify_audit()
    if as_json:
        emit_json(
            {
                "stamp": done.stamp,
                "objects": done.objects,
                "bytes": done.bytes,
                "check": check,
                "audit": audit,
            }
        )
    else:
        out.print(f"restored snapshot {done.stamp}: {done.objects} objects, {done.bytes:,} bytes")
        state = "consistent" if check["consistent"] else "NOT consistent"
        out.print(f"check: {state}; index {check['index']['index_documents']} documents")
        out.print(f"audit log: {'verifies' if audit.ok else 'BROKEN'} ({audit.entries} entries)")
    if not (check["consistent"] and audit.ok):
        raise typer.Exit(EXIT_REFUSED)


def _print_problems(summary: dict[str, Any]) -> None:
    for kind in ("missing", "corrupt"):
        for owner in summary[kind]:
            err.print(f"{kind}: {owner}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(backup_app, name="backup")
