"""Records management: retention, legal holds, disposition, misfile corrections, the archive check."""

from datetime import date
from typing import Annotated, Any

import typer

from chartvault.cli._common import EXIT_REFUSED, EXIT_USAGE, emit_json, fail, open_services, out, parse_date
from chartvault.schemas.patients import DobCorrection

hold_app = typer.Typer(help="Legal holds: nothing held is ever disposed of.", no_args_is_help=True)
retention_app = typer.Typer(help="Retention of archived documents.", no_args_is_help=True)


# -- retention -----------------------------------------------------------------------------------


@retention_app.command("show")
def retention_show(doc_id: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """A document's retain-until, the rule that won, every rule considered, and the store's lock."""

    with open_services() as services:
        info = services.records.retention(doc_id)
    if as_json:
        emit_json(info)
        return
    until = "permanent" if info["permanent"] else info["retain_until"]
    out.print(f"[bold]{doc_id}[/bold] retain until {until} (rule {info['rule']})")
    for rule, when in info["considered"]:
        out.print(f"  considered {rule}: {when or 'permanent'}")
    if info["store"]:
        st = info["store"]
        out.print(f"  store lock: {st['mode']} until {st['retain_until']}, legal hold {st['legal_hold']}")
    if info["holds"]:
        out.print(f"  on hold: {', '.join(info['holds'])}")


@retention_app.command("correct-dob")
def retention_correct_dob(
    mrn: str,
    dob: Annotated[str, typer.Argument(help="Corrected date of birth, YYYY-MM-DD.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show each document's retention from and to; change nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Record a corrected DOB and recompute retention of the patient's documents (store locks only extend).

    With --dry-run, what it would change, document by document, as the web page previews it.
    """

    when = parse_date(dob, "dob")
    assert when is not None
    with open_services() as services:
        if dry_run:
            _print_dob_preview(services.records.dob_correction(mrn, when), as_json)
            return
        done = services.records.correct_dob(mrn, when)
    if as_json:
        emit_json(done)
    else:
        out.print(f"retention recomputed; {len(done.documents_changed)} document(s) changed")


def _print_dob_preview(preview: DobCorrection, as_json: bool) -> None:
    if as_json:
        emit_json(preview)
        return
    out.print(f"DOB {preview.dob or 'none'} -> {preview.new_dob}: {preview.changed} document(s) would change")
    for d in preview.documents:
        moves = f"{d.retain_until} ({d.rule}) -> {d.new_retain_until} ({d.new_rule})"
        out.print(f"  {d.document_id} {moves}{'' if d.changed else ' unchanged'}", markup=False)


# -- holds ---------------------------------------------------------------------------------------


@hold_app.command("place")
def hold_place(
    matter: Annotated[str, typer.Option(help="The matter (case or investigation) the hold is for.")],
    reason: Annotated[str, typer.Option(help="Why (no patient names).")],
    mrn: Annotated[str | None, typer.Option(help="Hold every document of this patient.")] = None,
    encounter: Annotated[str | None, typer.Option(help="Hold every document of this encounter.")] = None,
    document: Annotated[list[str] | None, typer.Option("--document", "-d", help="A document id.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Place a legal hold on a patient, an encounter or documents (the store's hold flag is set too)."""

    scopes = [("patient", mrn), ("encounter", encounter), ("documents", document)]
    given = [(k, v) for k, v in scopes if v]
    if len(given) != 1:
        raise fail("give exactly one of --mrn, --encounter or --document", EXIT_USAGE)
    scope, value = given[0]
    with open_services() as services:
        hold = services.records.place_hold(
            matter,
            scope,
            reason,
            value=value if isinstance(value, str) else None,
            document_ids=value if isinstance(value, list) else (),
        )
    _print_hold(hold, as_json)


@hold_app.command("release")
def hold_release(
    hold_id: str,
    reason: Annotated[str, typer.Option(help="Why the hold ends.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Release a hold; a version's store flag is lifted only if no other hold covers it."""

    with open_services() as services:
        hold = services.records.release_hold(hold_id, reason)
    _print_hold(hold, as_json)


@hold_app.command("list")
def hold_list(
    all_holds: Annotated[bool, typer.Option("--all", help="Include released holds.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Active holds (or all, with --all)."""
    from rich.table import Table

    with open_services() as services:
        holds = services.records.holds(active_only=not all_holds)
    if as_json:
        emit_json(holds)
        return
    table = Table("hold", "status", "matter", "scope", "documents", "placed by", "placed at")
    for h in holds:
        table.add_row(
            h["id"],
            h["status"],
            h["matter"],
            h["scope"],
            str(len(h["documents"])),
            h["placed_by"],
            h["placed_at"],
        )
    out.print(table)


def _print_hold(hold: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(hold)
    else:
        out.print(f"hold {hold['id']} {hold['status']}: {len(hold['documents'])} document(s)")


# -- disposition ---------------------------------------------------------------------------------


def disposition(
    execute: Annotated[bool, typer.Option("--execute", help="Destroy what the dry run lists.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list (the default).")] = False,
    as_of: Annotated[str | None, typer.Option(help="Judge eligibility as of this date (YYYY-MM-DD).")] = None,
    approved_by: Annotated[str | None, typer.Option(help="Department manager who approved.")] = None,
    witness: Annotated[str | None, typer.Option(help="Witness named on the certificate.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List (--dry-run) or destroy (--execute) documents past retention and not on hold.

    --execute deletes every object version, the OCR text and the index entries,
    keeps a tombstone row, and archives a certificate of destruction. Exit 1 when
    anything eligible was refused by the catalog or the store.
    """
    if execute and dry_run:
        raise fail("--dry-run and --execute are exclusive", EXIT_USAGE)
    when: date | None = parse_date(as_of, "as-of")
    with open_services() as services:
        planned = services.records.disposition_plan(when)
        if not execute:
            _print_plan(planned.as_dict(), as_json)
            return
        if execute and not approved_by:
            raise fail("--execute needs --approved-by (the department manager who approved it)", EXIT_USAGE)
        result = services.records.dispose(
            [c.document_id for c in planned.eligible], approved_by, witness, when
        )
    summary = {
        "disposition_id": result.disposition_id,
        "destroyed": result.destroyed,
        "refused": result.refused,
        "held": [c.document_id for c in planned.held],
        "certificate": {
            "key": result.certificate_ref.key if result.certificate_ref else None,
            "version": result.certificate_ref.version_id if result.certificate_ref else None,
            "sha256": result.certificate_ref.sha256 if result.certificate_ref else None,
        },
    }
    if as_json:
        emit_json(summary)
    else:
        out.print(
            f"disposition {result.disposition_id}: destroyed {len(result.destroyed)}, "
            f"refused {len(result.refused)}, held {len(planned.held)}"
        )
        for r in result.refused:
            out.print(f"  refused {r['document_id']} by the {r['by']}: {r['reason']}")
        sha = result.certificate_ref.sha256 if result.certificate_ref else None
        out.print(f"certificate of destruction archived: sha256 {sha}")
    if result.refused:
        raise typer.Exit(EXIT_REFUSED)


def _print_plan(planned: dict[str, Any], as_json: bool) -> None:
    from rich.table import Table

    if as_json:
        emit_json(planned)
        return
    out.print(f"as of {planned['as_of']}: {len(planned['eligible'])} eligible, {len(planned['held'])} held")
    table = Table("document", "type", "date of service", "retain until", "rule", "hold")
    for c in planned["eligible"] + planned["held"]:
        table.add_row(
            c["document_id"],
            c["doc_type"] or "",
            c["date_of_service"] or "",
            c["retain_until"],
            c["rule_id"],
            ", ".join(c["hold_ids"]) or "-",
        )
    out.print(table)
    if planned["not_computed"]:
        out.print(
            f"{planned['not_computed']} live document(s) have no computed retention and are never eligible"
        )


def certificate(disposition_id: str) -> None:
    """Print a certificate of destruction as archived (JSON, verified by sha256)."""

    with open_services() as services:
        cert = services.records.certificate(disposition_id)
    emit_json(cert)


def misfile(
    doc_id: str,
    to_mrn: Annotated[str, typer.Option(help="MRN of the patient the pages belong to.")],
    reason: Annotated[str, typer.Option(help="Why (no patient names).")],
    pages: Annotated[
        str | None, typer.Option(help="Pages to move, e.g. 2,3 (default: the whole document).")
    ] = None,
    break_glass: Annotated[
        bool, typer.Option("--break-glass", help="Allow deleting the locked mixed original (GOVERNANCE).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Correct a misfile: refile a document, or split pages out to the right patient.

    Splitting deletes the locked original before its retention ends, so it needs
    --break-glass and is audited; under COMPLIANCE it is refused (exit 1).
    """

    try:
        page_list = [int(p) for p in pages.split(",")] if pages else None
    except ValueError:
        raise fail("--pages: expected page numbers like 2,3", EXIT_USAGE) from None
    with open_services() as services:
        result = services.records.correct_misfile(doc_id, to_mrn, reason, page_list, break_glass)
    summary = {
        "document_id": result.document_id,
        "mode": result.mode,
        "new_documents": result.new_documents,
        "versions_deleted": result.versions_deleted,
    }
    if as_json:
        emit_json(summary)
    else:
        out.print(f"{result.mode}: {doc_id} -> {', '.join(result.new_documents) or 'refiled in place'}")


def check(
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Reindex what differs; resume unfinished batches; remove temp leftovers; link or hold "
            "documents with neither a patient nor a pending review.",
        ),
    ] = False,
    no_fixity: Annotated[
        bool, typer.Option("--no-fixity", help="Check presence only, not every sha256.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Verify the whole archive: every object present with the right sha256, nothing orphaned,
    index and catalog in agreement, no batch left half done, every rendition built, every archived
    document linked to a patient or pending review. Exit 0 only when all is consistent."""
    with open_services() as services:
        result = services.records.check(repair=repair, fixity=not no_fixity)
    if as_json:
        emit_json(result)
    else:
        st, ix = result["store"], result["index"]
        out.print(
            f"store: {st['objects_checked']} objects, {st['bytes_checked']:,} bytes verified; "
            f"missing {len(st['missing'])}, corrupt {len(st['corrupt'])}, orphans {len(st['orphans'])}"
        )
        out.print(
            f"index: {ix['index_state']}, catalog {ix['catalog_documents']} / index {ix['index_documents']}; "
            f"missing {len(ix['missing'])}, extra {len(ix['extra'])}, stale {len(ix['stale'])}"
        )
        out.print(f"unfinished batches: {len(result['unfinished_batches'])}")
        out.print(f"documents without their searchable PDF: {len(result['renditions_missing'])}")
        out.print(
            f"unlinked_outside_review: {result['unlinked_outside_review']} "
            f"(no patient, no pending review); settled {result['unlinked_settled']}"
        )
        left = result["temp_leftovers"]
        out.print(
            f"temp leftovers (scratch files of a killed process): {len(left)}, "
            f"{sum(x['bytes'] for x in left):,} bytes; removed {len(result['temp_removed'])}"
        )
        for owner in st["missing"] + st["corrupt"]:
            out.print(f"  problem: {owner}")
        out.print("[green]consistent[/green]" if result["consistent"] else "[red]NOT consistent[/red]")
    if not result["consistent"]:
        raise typer.Exit(EXIT_REFUSED)


def register(app: typer.Typer) -> None:
    app.command("check")(check)
    app.command("misfile")(misfile)
    app.add_typer(hold_app, name="hold")
    app.add_typer(retention_app, name="retention")
    app.command("disposition")(disposition)
    app.command("certificate")(certificate)
