"""Reading a document: ``show``."""

from pathlib import Path
from typing import Annotated

import typer

from chartvault.cli._common import emit_json, open_services, out


def show(doc_id: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """A document's metadata: type, identifiers, sha256, and its pages with text and confidence."""
    with open_services() as services:
        doc = services.documents.get(doc_id, with_text=True)
    if as_json:
        emit_json(doc)
        return
    conf = doc.doc_type_confidence or 0.0
    out.print(f"[bold]{doc.id}[/bold] {doc.doc_type} ({conf:.2f}) sha256 {doc.sha256}")
    for key in ("mrn", "name", "dob", "date_of_service", "account", "encounter"):
        if (val := getattr(doc.identifiers, key)) is not None:
            out.print(f"  {key}: {val.value} ({val.confidence})", markup=False)
    for p in doc.pages:
        out.rule(f"page {p.page_no} ({p.source}, confidence {p.confidence})")
        out.print(p.text or "", markup=False, highlight=False)


def get(
    doc_id: str,
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Where to write the file.")],
    rendition: Annotated[
        bool, typer.Option("--rendition", help="The searchable PDF rendition instead of the original.")
    ] = False,
) -> None:
    """Download a document's original (or its searchable rendition), sha256-checked; audited."""
    with open_services() as services:
        documents = services.documents
        found = documents.rendition(doc_id) if rendition else documents.original(doc_id)
        partial = out_path.with_name(out_path.name + ".part")
        try:
            with partial.open("wb") as fp:
                for chunk in documents.stream(doc_id, found):
                    fp.write(chunk)
            partial.replace(out_path)  # only bytes that matched their sha256 take the name
        finally:
            partial.unlink(missing_ok=True)
    out.print(f"{found.form} of {doc_id}: {found.size} bytes, sha256 {found.ref.sha256}", markup=False)


def register(app: typer.Typer) -> None:
    app.command()(show)
    app.command()(get)
