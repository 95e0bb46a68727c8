"""The ``chartvault`` command: a thin shell over ``chartvault.service.Vault``.

Scripts rely on the ``--json`` outputs and on exit statuses:
0 all taken; 1 some file refused or failed; 2 usage error; 3 all taken but the
batch needs review (e.g. a page count differs from the manifest); 4 not found.
"""

from __future__ import annotations

import getpass
import html
import json
import logging
import re
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from chartvault.config import Settings
from chartvault.ingest.manifest import Manifest, ManifestError, parse_manifest
from chartvault.search.types import SearchQuery

app = typer.Typer(
    help="ChartVault: scan, OCR, classify, index and archive paper medical records.",
    no_args_is_help=True,
    add_completion=False,
)
out = Console()
err = Console(stderr=True)

EXIT_REFUSED, EXIT_REVIEW, EXIT_NOT_FOUND = 1, 3, 4


def _vault():  # imported late so `chartvault --help` stays fast
    from chartvault.service import Vault

    return Vault(Settings(), actor=f"cli:{getpass.getuser()}")  # the machine's operator


def _emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


@app.callback()
def main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log progress (ids only, no PHI).")
    ] = False,
) -> None:
    _setup_logging(verbose)


def _expand(paths: list[Path]) -> list[Path]:
    """Files named, and every regular file under folders named, in a stable order; content decides type."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(sorted(q for q in p.rglob("*") if q.is_file() and not q.name.startswith(".")))
        else:
            files.append(p)
    return files


def _load_manifest(path: Path | None) -> Manifest | None:
    if path is None:
        return None
    try:
        return parse_manifest(path.read_bytes())
    except (OSError, ManifestError) as exc:
        err.print(f"[red]manifest refused:[/red] {exc}")
        raise typer.Exit(2) from None


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders to take as one batch.")],
    station: Annotated[str | None, typer.Option(help="Scanning station id.")] = None,
    operator: Annotated[str | None, typer.Option(help="Operator id.")] = None,
    manifest: Annotated[
        Path | None, typer.Option(help="Batch manifest (JSON): expected pages, MRN, type hint.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object when done.")] = False,
) -> None:
    """Ingest a batch: stage, OCR, classify, archive and index every page."""
    man = _load_manifest(manifest)
    files = _expand(paths)
    with _vault() as vault:
        batch_id = vault.new_batch("cli", station, operator, man)
        missing: list[dict[str, Any]] = []
        by_file: dict[str, str] = {}
        for f in files:
            try:
                by_file[vault.add_path(batch_id, f, man)] = str(f)
            except OSError as exc:
                missing.append(
                    {
                        "path": str(f),
                        "status": "refused",
                        "reason_code": "unreadable",
                        "reason": f"Could not read the file ({exc.strerror or type(exc).__name__}).",
                        "documents": [],
                    }
                )
        vault.close_intake(batch_id, man)
        _run_with_progress(vault, batch_id, quiet=as_json)
        indexed_here = vault.owns_index_writer()
        if indexed_here:
            vault.index_pending()
        report = vault.batch_report(batch_id)
    results = [
        {
            "path": by_file.get(f["id"], f["name"]),
            "file_id": f["id"],
            "status": f["status"],
            "reason_code": f["reason_code"],
            "reason": f["reason"] if f["status"] in ("quarantined", "failed") else None,
            "pages": f["page_count"],
            "documents": f["documents"],
        }
        for f in report["files"]
    ] + missing
    refused = [r for r in results if r["status"] in ("quarantined", "failed", "refused")]
    summary = {
        "batch_id": batch_id,
        "status": report["status"],
        "needs_review": report["needs_review"],
        "flags": report["flags"],
        "pages": report["pages"],
        "indexed": indexed_here,
        "files": results,
    }
    if as_json:
        _emit_json(summary)
    else:
        _print_ingest(summary, refused)
    if refused:
        raise typer.Exit(EXIT_REFUSED)
    if report["needs_review"]:
        raise typer.Exit(EXIT_REVIEW)


class _PagesPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.2f} pages/s" if task.speed else "- pages/s")


def _run_with_progress(vault: Any, batch_id: str, quiet: bool) -> None:
    if quiet or not err.is_terminal:
        vault.process(batch_id)
        return
    columns = (
        TextColumn("OCR"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("pages"),
        _PagesPerSecond(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("pages", total=None)

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None)

        vault.process(batch_id, tick)


def _print_ingest(summary: dict[str, Any], refused: list[dict[str, Any]]) -> None:
    ok = sum(1 for r in summary["files"] if r["status"] == "archived")
    dup = sum(1 for r in summary["files"] if r["status"] == "duplicate")
    out.print(
        f"batch [bold]{summary['batch_id']}[/bold]: {summary['status']}, {summary['pages']} pages, "
        f"{ok} files archived, {dup} duplicates linked, {len(refused)} refused"
    )
    if not summary["indexed"]:
        out.print(
            "[yellow]indexing is queued for the running ChartVault server (it owns the index writer)[/yellow]"
        )
    for r in refused:
        err.print(f"[red]refused[/red] {r['path']}: {r['reason_code']}: {r['reason']}")
    for flag in summary["flags"]:
        err.print(f"[yellow]needs review[/yellow] {flag.get('code')}: {flag.get('message')}")


@app.command()
def resume(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Finish every batch that a crash or restart interrupted."""
    with _vault() as vault:
        ids = vault.incomplete_batches()
        for batch_id in ids:
            vault.close_intake_if_open(batch_id)  # its uploader is gone: what was staged is the batch
            vault.process(batch_id)
        if vault.owns_index_writer():
            vault.index_pending()
        reports = [vault.batch_report(b) for b in ids]
    if as_json:
        _emit_json({"resumed": [{"batch_id": r["id"], "status": r["status"]} for r in reports]})
    else:
        out.print(f"resumed {len(ids)} batch(es)")


@app.command()
def batch(batch_id: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show a batch: per-file and per-page state, refusals and review flags."""
    from chartvault.service import NotFound

    with _vault() as vault:
        try:
            report = vault.batch_report(batch_id)
        except NotFound as exc:
            err.print(str(exc))
            raise typer.Exit(EXIT_NOT_FOUND) from None
    if as_json:
        _emit_json(report)
        return
    out.print(f"batch {report['id']}: {report['status']} ({report['pages']} pages)")
    table = Table("#", "file", "status", "pages", "reason")
    for f in report["files"]:
        table.add_row(str(f["seq"]), f["id"], f["status"], str(f["page_count"] or ""), f["reason"] or "")
    out.print(table)


@app.command()
def show(doc_id: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """A document's metadata: type, identifiers, sha256, and its pages with text and confidence."""
    from chartvault.service import NotFound

    with _vault() as vault:
        try:
            doc = vault.document(doc_id, with_text=True)
        except NotFound as exc:
            err.print(str(exc))
            raise typer.Exit(EXIT_NOT_FOUND) from None
    if as_json:
        _emit_json(doc)
        return
    conf = doc["doc_type_confidence"] or 0.0
    out.print(f"[bold]{doc['id']}[/bold] {doc['doc_type']} ({conf:.2f}) sha256 {doc['sha256']}")
    for key, val in doc["identifiers"].items():
        if val:
            out.print(f"  {key}: {val['value']} ({val['confidence']})")
    for p in doc["pages"]:
        out.rule(f"page {p['page_no']} ({p['source']}, confidence {p['confidence']})")
        out.print(p["text"], markup=False, highlight=False)


def _parse_date(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        err.print(f"{name}: expected a date as YYYY-MM-DD")
        raise typer.Exit(2) from None


@app.command()
def search(
    query: Annotated[str | None, typer.Argument(help='Words, "phrases", AND/OR/NOT, prefix*.')] = None,
    mrn: Annotated[str | None, typer.Option(help="Only this MRN.")] = None,
    doc_type: Annotated[str | None, typer.Option("--type", help="Only this document type.")] = None,
    date_from: Annotated[
        str | None, typer.Option("--from", help="Date of service from (YYYY-MM-DD).")
    ] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="Date of service to (YYYY-MM-DD).")] = None,
    batch_id: Annotated[str | None, typer.Option("--batch", help="Only this batch.")] = None,
    name: Annotated[str | None, typer.Option(help="Every word in the patient name.")] = None,
    icd: Annotated[str | None, typer.Option(help="ICD-10 code (E11.9) or category (E11*).")] = None,
    encounter: Annotated[str | None, typer.Option(help="Only this encounter.")] = None,
    sort: Annotated[str, typer.Option(help="relevance | date_desc | date_asc")] = "relevance",
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Search the archive; the query may be left out when a filter is given."""
    q = SearchQuery(
        text=query,
        mrn=mrn,
        doc_type=doc_type,
        date_from=_parse_date(date_from, "--from"),
        date_to=_parse_date(date_to, "--to"),
        batch_id=batch_id,
        name=name,
        icd=icd,
        encounter=encounter,
        sort=sort,
        limit=limit,
        offset=offset,
    )
    if sort not in ("relevance", "date_desc", "date_asc"):
        err.print("--sort: expected relevance, date_desc or date_asc")
        raise typer.Exit(2)
    if not (query or mrn or doc_type or date_from or date_to or batch_id or name or icd or encounter):
        err.print("give a query or at least one filter (--mrn, --type, --from/--to, --batch, --name, --icd)")
        raise typer.Exit(2)
    with _vault() as vault:
        result = _index_call(lambda: vault.search(q))
    if as_json:
        _emit_json(result)
        return
    out.print(f"{result['total']} document(s)")
    if result.get("suggestion"):
        out.print(f"nothing matched exactly; showing results for: {result['suggestion']}", markup=False)
    for h in result["hits"]:
        out.print(
            f"[bold]{h['document_id']}[/bold] {h['doc_type']} MRN {h['mrn']} DOS {h['date_of_service']} "
            f"pages {h['pages']}"
        )
        for sn in h["snippets"][:2]:
            out.print(Text(f"   p{sn['page_no']}: ") + _snippet_text(sn["html"]))


def _snippet_text(snippet_html: str) -> Text:
    """Render a <mark>-highlighted, HTML-escaped snippet for the terminal."""
    text = Text()
    for i, part in enumerate(re.split(r"</?mark>", snippet_html)):
        text.append(html.unescape(part), style="reverse" if i % 2 else "")
    return text


EXIT_INCONSISTENT, EXIT_INDEX_UNAVAILABLE = 1, 5


def _index_call(call: Any) -> Any:
    """Run a search-side call; "no usable index" becomes a message and exit status 5, not a trace."""
    from chartvault.search.types import IndexUnavailable

    try:
        return call()
    except IndexUnavailable as exc:
        err.print(f"{exc}; try again shortly (or run `chartvault reindex` if no server is running)")
        raise typer.Exit(EXIT_INDEX_UNAVAILABLE) from None


@app.command()
def reindex(
    fresh: Annotated[
        bool, typer.Option(help="Start over instead of resuming an interrupted rebuild.")
    ] = False,
) -> None:
    """Rebuild the search index from the catalog into a new generation, then swap it in.

    Streams the catalog in chunks (bounded memory) and resumes where an interrupted run stopped.
    Searches keep answering from the previous generation until the swap.
    """
    with _vault() as vault:
        try:
            n = vault.reindex(fresh=fresh)
        except RuntimeError as exc:  # another process (a running server) owns the index writer
            err.print(str(exc))
            raise typer.Exit(1) from None
    out.print(f"reindexed {n} document(s)")


@app.command("index-check")
def index_check(
    repair: Annotated[bool, typer.Option(help="Queue (and, without a server, apply) the fixes.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Compare the catalog with the search index: missing, extra and stale documents (ids only).

    Exit status 0 only when they agree (after a repair, when the repair made them agree).
    """
    with _vault() as vault:
        report = vault.reconcile_index(repair=repair)
    if as_json:
        _emit_json(report)
    else:
        out.print(
            f"index {report['index_state']}: catalog {report['catalog_documents']} document(s), "
            f"index {report['index_documents']}; missing {len(report['missing'])}, "
            f"extra {len(report['extra'])}, stale {len(report['stale'])}, queued {report['pending']}"
        )
        for key in ("missing", "extra", "stale"):
            for doc_id in report[key][:20]:
                out.print(f"  {key} {doc_id}")
        out.print("consistent" if report["consistent"] else "NOT consistent")
    if not report["consistent"]:
        raise typer.Exit(EXIT_INCONSISTENT)


@app.command()
def timeline(mrn: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """A patient's documents in date-of-service order, grouped by encounter."""
    with _vault() as vault:
        result = _index_call(lambda: vault.timeline(mrn))
    if as_json:
        _emit_json(result)
        return
    out.print(f"MRN {result['mrn']}: {result['total']} document(s)")
    for group in result["encounters"]:
        out.print(f"[bold]encounter {group['encounter'] or '(none)'}[/bold]", markup=True)
        for d in group["documents"]:
            out.print(f"  {d['date_of_service'] or '(undated)'}  {d['doc_type']}  {d['document_id']}")


@app.command()
def similar(
    doc_id: str,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 10,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Documents whose content resembles this one's ("more like this")."""
    from chartvault.service import NotFound

    with _vault() as vault:
        try:
            result = _index_call(lambda: vault.more_like_this(doc_id, limit))
        except NotFound as exc:
            err.print(str(exc))
            raise typer.Exit(EXIT_NOT_FOUND) from None
    if as_json:
        _emit_json(result)
        return
    for h in result["hits"]:
        out.print(
            f"{h['document_id']} {h['doc_type']} MRN {h['mrn']} DOS {h['date_of_service']} ({h['score']})"
        )


@app.command()
def watch(
    folder: Annotated[Path, typer.Argument(help="The hot folder scanners write into.")],
    station: Annotated[str | None, typer.Option(help="Station id recorded on the batches.")] = None,
    once: Annotated[bool, typer.Option(help="Take what is ready now, then exit.")] = False,
) -> None:
    """Watch a hot folder: take each file once it stops growing, file it under done/ or failed/."""
    from chartvault.ingest.hotfolder import HotFolder

    with _vault() as vault:
        hot = HotFolder(vault, folder, station=station)
        if once:
            hot.poll(final=True)
        else:
            err.print(f"watching (every {vault.settings.watch_interval_s}s); Ctrl-C to stop")
            hot.run_forever()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default CHARTVAULT_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default CHARTVAULT_PORT).")] = None,
) -> None:
    """Run the HTTP API (OpenAPI at /docs)."""
    import uvicorn

    from chartvault.api.app import create_app

    settings = Settings()
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        log_level="info",
        access_log=False,
    )


# Records management (retention, holds, disposition) lives in its own module.
from chartvault import cli_records  # noqa: E402 - needs the helpers above

cli_records.register(app)

from chartvault import cli_access  # noqa: E402

cli_access.register(app)


# -- classification, review queue and cover sheets ---------------------------------------------------

classifier_app = typer.Typer(help="The document-type classifier.", no_args_is_help=True)
app.add_typer(classifier_app, name="classifier")


@classifier_app.command("train")
def classifier_train(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Retrain the type model on the labelled texts, the packaged samples and the staff corrections."""
    with _vault() as vault:
        info = vault.train_classifier()
    if as_json:
        _emit_json(info)
        return
    out.print(
        f"model {info['version']}: {info['n_train']} texts ({info['corrections']} staff corrections), "
        f"trained in {info['train_s']} s -> {info['path']}",
        markup=False,
    )


@app.command()
def review(
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Documents waiting in the review queue, with the reasons (ids and codes only)."""
    with _vault() as vault:
        queue = vault.review_queue(limit, offset)
    if as_json:
        _emit_json(queue)
        return
    out.print(f"{queue['total']} document(s) waiting for review")
    table = Table("document", "type", "conf", "source", "reasons")
    for item in queue["items"]:
        conf = item["doc_type_confidence"]
        table.add_row(
            item["document_id"],
            item["doc_type"] or "",
            f"{conf:.2f}" if conf is not None else "",
            item["classification_source"] or "",
            ", ".join(r.get("code", "") for r in item["reasons"]),
        )
    out.print(table)


@app.command()
def classify(
    doc_id: str,
    doc_type: Annotated[str, typer.Option("--type", help="The document type staff assign.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Correct a document's type (recorded for the next `classifier train`)."""
    from chartvault.service import InvalidInput, NotFound

    with _vault() as vault:
        try:
            result = vault.correct_classification(doc_id, doc_type)
        except NotFound as exc:
            err.print(str(exc))
            raise typer.Exit(EXIT_NOT_FOUND) from None
        except InvalidInput as exc:
            err.print(str(exc))
            raise typer.Exit(2) from None
    if as_json:
        _emit_json(result)
    else:
        out.print(f"{doc_id}: {result['old_type']} -> {result['doc_type']} ({result['review_status']})")


@app.command()
def coversheet(
    mrn: Annotated[str, typer.Option(help="The patient's MRN (kept as printed: leading zeros matter).")],
    doc_type: Annotated[str, typer.Option("--type", help="Document type of the pages behind the sheet.")],
    dob: Annotated[str | None, typer.Option(help="Date of birth, YYYY-MM-DD (a second identifier).")] = None,
    out_path: Annotated[Path | None, typer.Option("--out", help="PDF file to write (else stdout).")] = None,
) -> None:
    """Print a scanning cover sheet (PDF with a QR code and a Code 128): a batch is split at each one."""
    from chartvault.classify.coversheet import CoverSheetError, encode_payload, parse_payload, render_pdf

    try:
        sheet = parse_payload(encode_payload(mrn, doc_type, _parse_date(dob, "--dob")))
    except CoverSheetError as exc:
        err.print(str(exc))
        raise typer.Exit(2) from None
    pdf = render_pdf(sheet)
    if out_path is None:
        sys.stdout.buffer.write(pdf)
        sys.stdout.flush()
    else:
        out_path.write_bytes(pdf)
        err.print(f"cover sheet written to {out_path}", markup=False)


from chartvault import cli_release  # noqa: E402 - release of information (issue 6)

cli_release.register(app)

from chartvault import cli_worker  # noqa: E402 - OCR workers of a multi-machine deployment (issue 7)

cli_worker.register(app)


if __name__ == "__main__":
    app()
