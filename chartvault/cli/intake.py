"""Taking batches in: ``ingest``, ``resume``, ``batch``, ``watch``."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from chartvault.cli._common import (
    EXIT_REFUSED,
    EXIT_REVIEW,
    EXIT_USAGE,
    emit_json,
    err,
    fail,
    open_services,
    out,
)

if TYPE_CHECKING:
    from chartvault.ingest.manifest import Manifest
    from chartvault.schemas.batches import IngestSummary
    from chartvault.services.intake import IntakeService


def _expand(paths: list[Path]) -> list[Path]:
    """Files named, and every regular file under folders named, in a stable order; content decides type."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(sorted(q for q in p.rglob("*") if q.is_file() and not q.name.startswith(".")))
        else:
            files.append(p)
    return files


def _load_manifest(path: Path | None) -> "Manifest | None":
    if path is None:
        return None
    from chartvault.config import Settings
    from chartvault.ingest.manifest import ManifestError, parse_manifest

    try:
        return parse_manifest(path.read_bytes(), Settings().mrn_pattern)
    except (OSError, ManifestError) as exc:
        raise fail(f"manifest refused: {exc}", EXIT_USAGE) from None


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders to take as one batch.")],
    station: Annotated[str | None, typer.Option(help="Scanning station id.")] = None,
    operator: Annotated[str | None, typer.Option(help="Operator id.")] = None,
    manifest: Annotated[
        Path | None, typer.Option(help="Batch manifest (JSON): expected pages, MRN, type hint.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object when done.")] = False,
) -> None:
    """Ingest a batch: stage, OCR, classify, archive and index every page.

    Exit 1 when a file was refused (each listed with its reason), 3 when every file was taken but the
    batch needs review (e.g. a page count differs from the manifest).
    """
    man = _load_manifest(manifest)
    files = _expand(paths)
    with open_services() as services:
        summary = _with_progress(
            services.intake, files, quiet=as_json, station=station, operator=operator, manifest=man
        )
    if as_json:
        emit_json(summary)
    else:
        _print_ingest(summary)
    if summary.refused:
        raise typer.Exit(EXIT_REFUSED)
    if summary.needs_review:
        raise typer.Exit(EXIT_REVIEW)


def _with_progress(
    intake: "IntakeService", files: list[Path], quiet: bool, **batch: "str | Manifest | None"
) -> "IngestSummary":
    if quiet or not err.is_terminal:
        return intake.ingest(files, source="cli", **batch)  # type: ignore[arg-type]
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class PagesPerSecond(ProgressColumn):
        def render(self, task: Task) -> Text:
            return Text(f"{task.speed:.2f} pages/s" if task.speed else "- pages/s")

    columns = (
        TextColumn("OCR"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("pages"),
        PagesPerSecond(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("pages", total=None)

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None)

        return intake.ingest(files, source="cli", progress=tick, **batch)  # type: ignore[arg-type]


def _print_ingest(summary: "IngestSummary") -> None:
    ok = sum(1 for r in summary.files if r.status == "archived")
    dup = sum(1 for r in summary.files if r.status == "duplicate")
    out.print(
        f"batch [bold]{summary.batch_id}[/bold]: {summary.status}, {summary.pages} pages, "
        f"{ok} files archived, {dup} duplicates linked, {len(summary.refused)} refused"
    )
    if not summary.indexed:
        out.print(
            "[yellow]indexing is queued for the running ChartVault server (it owns the index writer)[/yellow]"
        )
    for r in summary.refused:
        err.print(f"[red]refused[/red] {r.path}: {r.reason_code}: {r.reason}")
    for flag in summary.flags:
        err.print(f"[yellow]needs review[/yellow] {flag.get('code')}: {flag.get('message')}")


def resume(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Finish every batch that a crash or restart interrupted."""
    with open_services() as services:
        ids = services.intake.resume()
        reports = [services.intake.batch(b) for b in ids]
    if as_json:
        emit_json({"resumed": [{"batch_id": r.id, "status": r.status} for r in reports]})
    else:
        out.print(f"resumed {len(ids)} batch(es)")


def batch(batch_id: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show a batch: per-file and per-page state, refusals and review flags."""
    from rich.table import Table

    with open_services() as services:
        report = services.intake.batch(batch_id)
    if as_json:
        emit_json(report)
        return
    out.print(f"batch {report.id}: {report.status} ({report.pages} pages)")
    table = Table("#", "file", "status", "pages", "reason")
    for f in report.files:
        table.add_row(str(f.seq), f.id, f.status, str(f.page_count or ""), f.reason or "")
    out.print(table)


def watch(
    folder: Annotated[Path, typer.Argument(help="The hot folder scanners write into.")],
    station: Annotated[str | None, typer.Option(help="Station id recorded on the batches.")] = None,
    once: Annotated[bool, typer.Option(help="Take what is ready now, then exit.")] = False,
) -> None:
    """Watch a hot folder: take each file once it stops growing, file it under done/ or failed/."""
    from chartvault.ingest.hotfolder import HotFolder

    with open_services() as services:
        settings = services.settings
        hot = HotFolder(
            services.intake,
            services.parts.sessions,
            folder,
            station=station,
            interval_s=settings.watch_interval_s,
            settle_s=settings.watch_settle_s,
        )
        if once:
            hot.poll(final=True)
        else:
            err.print(f"watching (every {settings.watch_interval_s}s); Ctrl-C to stop")
            hot.run_forever()


quarantine_app = typer.Typer(help="Refused files kept aside with their reasons.", no_args_is_help=True)


@quarantine_app.command("purge")
def quarantine_purge(
    days: Annotated[
        int | None,
        typer.Option(min=1, help="Older than this many days (default CHARTVAULT_QUARANTINE_RETENTION_DAYS)."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be deleted.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Delete quarantined files refused more than N days ago (the catalog keeps why they were refused)."""
    with open_services() as services:
        result = services.intake.purge_quarantine(days, dry_run=dry_run)
    if as_json:
        emit_json(result)
    else:
        verb = "would delete" if dry_run else "deleted"
        out.print(f"{verb} {len(result.files)} quarantined file(s), {result.bytes:,} bytes")


def register(app: typer.Typer) -> None:
    app.add_typer(quarantine_app, name="quarantine")
    app.command()(ingest)
    app.command()(resume)
    app.command()(batch)
    app.command()(watch)
