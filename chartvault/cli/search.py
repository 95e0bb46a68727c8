"""Finding documents: ``search``, ``timeline``, ``similar``, and the index's upkeep."""

import html
import re
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.text import Text

    from chartvault.schemas.search import SearchAnswer

from chartvault.cli._common import EXIT_REFUSED, EXIT_USAGE, emit_json, fail, open_services, out, parse_date


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
    from chartvault.search.types import SearchQuery

    if sort not in ("relevance", "date_desc", "date_asc"):
        raise fail("--sort: expected relevance, date_desc or date_asc", EXIT_USAGE)
    if not (query or mrn or doc_type or date_from or date_to or batch_id or name or icd or encounter):
        raise fail(
            "give a query or at least one filter (--mrn, --type, --from/--to, --batch, --name, --icd)",
            EXIT_USAGE,
        )
    q = SearchQuery(
        text=query,
        mrn=mrn,
        doc_type=doc_type,
        date_from=parse_date(date_from, "--from"),
        date_to=parse_date(date_to, "--to"),
        batch_id=batch_id,
        name=name,
        icd=icd,
        encounter=encounter,
        sort=sort,
        limit=limit,
        offset=offset,
    )
    with open_services() as services:
        result = services.search.search(q)
    if as_json:
        emit_json(result)
    else:
        _print_results(result)


def _print_results(result: "SearchAnswer") -> None:
    """One line per document, its first two snippets under it, matches highlighted."""
    from rich.text import Text

    out.print(f"{result.total} document(s)")
    if result.suggestion:
        out.print(f"nothing matched exactly; showing results for: {result.suggestion}", markup=False)
    for h in result.hits:
        out.print(
            f"[bold]{h.document_id}[/bold] {h.doc_type} MRN {h.mrn} DOS {h.date_of_service} pages {h.pages}"
        )
        for sn in h.snippets[:2]:
            out.print(Text(f"   p{sn.page_no}: ") + snippet_text(sn.html))


def snippet_text(snippet_html: str) -> "Text":
    """Render a <mark>-highlighted, HTML-escaped snippet for the terminal."""
    from rich.text import Text

    text = Text()
    for i, part in enumerate(re.split(r"</?mark>", snippet_html)):
        text.append(html.unescape(part), style="reverse" if i % 2 else "")
    return text


def timeline(mrn: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """A patient's documents in date-of-service order, grouped by encounter."""
    with open_services() as services:
        result = services.search.timeline(mrn)
    if as_json:
        emit_json(result)
        return
    out.print(f"MRN {result.mrn}: {result.total} document(s)", markup=False)
    for group in result.encounters:
        out.print(f"[bold]encounter {group.encounter or '(none)'}[/bold]")
        for doc in group.documents:
            out.print(f"  {doc.date_of_service or '(undated)'}  {doc.doc_type}  {doc.document_id}")


def similar(
    doc_id: str,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 10,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Documents whose content resembles this one's ("more like this")."""
    with open_services() as services:
        result = services.search.similar(doc_id, limit)
    if as_json:
        emit_json(result)
        return
    for h in result.hits:
        out.print(f"{h.document_id} {h.doc_type} MRN {h.mrn} DOS {h.date_of_service} ({h.score})")


def reindex(
    fresh: Annotated[
        bool, typer.Option(help="Start over instead of resuming an interrupted rebuild.")
    ] = False,
) -> None:
    """Rebuild the search index from the catalog into a new generation, then swap it in.

    Streams the catalog in chunks (bounded memory) and resumes where an interrupted run stopped.
    Searches keep answering from the previous generation until the swap.
    """
    with open_services() as services:
        n = services.search.reindex(fresh=fresh)
    out.print(f"reindexed {n} document(s)")


def index_check(
    repair: Annotated[bool, typer.Option(help="Queue (and, without a server, apply) the fixes.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Compare the catalog with the search index: missing, extra and stale documents (ids only).

    Exit status 0 only when they agree (after a repair, when the repair made them agree).
    """
    with open_services() as services:
        report = services.search.reconcile(repair=repair)
    if as_json:
        emit_json(report)
    else:
        out.print(
            f"index {report.index_state}: catalog {report.catalog_documents} document(s), "
            f"index {report.index_documents}; missing {len(report.missing)}, "
            f"extra {len(report.extra)}, stale {len(report.stale)}, queued {report.pending}"
        )
        for key in ("missing", "extra", "stale"):
            for doc_id in getattr(report, key)[:20]:
                out.print(f"  {key} {doc_id}")
        out.print("consistent" if report.consistent else "NOT consistent")
    if not report.consistent:
        raise typer.Exit(EXIT_REFUSED)


def register(app: typer.Typer) -> None:
    app.command()(search)
    app.command()(timeline)
    app.command()(similar)
    app.command()(reindex)
    app.command("index-check")(index_check)
