"""Reading a document: ``show``."""

from __future__ import annotations

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


def register(app: typer.Typer) -> None:
    app.command()(show)
