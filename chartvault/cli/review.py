"""The review queue, type corrections, the classifier, and scanning cover sheets."""

import sys
from pathlib import Path
from typing import Annotated

import typer

from chartvault.cli._common import (
    EXIT_REVIEW,
    EXIT_USAGE,
    emit_json,
    err,
    fail,
    open_services,
    out,
    parse_date,
)

classifier_app = typer.Typer(help="The document-type classifier.", no_args_is_help=True)


@classifier_app.command("train")
def classifier_train(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Retrain the type model on the labelled texts, the packaged samples and the staff corrections."""
    from chartvault.schemas.common import to_jsonable

    with open_services() as services:
        info = services.review.train_classifier()
        path = services.review.model_file()  # the operator's, at the console: pages and the API name no file
    if as_json:
        emit_json({**to_jsonable(info), "path": str(path)})
        return
    out.print(
        f"model {info.version}: {info.n_train} texts ({info.corrections} staff corrections), "
        f"trained in {info.train_s} s -> {path}",
        markup=False,
    )


def review(
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Documents waiting in the review queue, with the reasons (ids and codes only)."""
    from rich.table import Table

    with open_services() as services:
        queue = services.review.queue(limit, offset)
    if as_json:
        emit_json(queue)
        return
    out.print(f"{queue.total} document(s) waiting for review")
    table = Table("document", "type", "conf", "source", "reasons")
    for item in queue.items:
        conf = item.doc_type_confidence
        table.add_row(
            item.document_id,
            item.doc_type or "",
            f"{conf:.2f}" if conf is not None else "",
            item.classification_source or "",
            ", ".join(r.get("code", "") for r in item.reasons),
        )
    out.print(table)


def resolve(
    doc_id: str,
    mrn: Annotated[str | None, typer.Option(help="The MRN on the page, if misread or not read.")] = None,
    dob: Annotated[str | None, typer.Option(help="The date of birth on the page, YYYY-MM-DD.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Confirm whose document a held one is, after comparing two identifiers on the page.

    Linked only when two identifiers agree with a patient of the index; otherwise it stays held with
    the patient reason, and the exit status is 3.
    """
    born = parse_date(dob, "--dob")
    with open_services() as services:
        result = services.review.resolve(doc_id, mrn, born)
    if as_json:
        emit_json(result)
    else:
        linked = "linked to a patient" if result.patient_linked else "linked to no patient"
        out.print(f"{doc_id}: {result.review_status}, {linked}")
    if result.review_status == "pending":
        raise typer.Exit(EXIT_REVIEW)


def classify(
    doc_id: str,
    doc_type: Annotated[str, typer.Option("--type", help="The document type staff assign.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Correct a document's type (recorded for the next `classifier train`)."""
    with open_services() as services:
        result = services.review.correct_type(doc_id, doc_type)
    if as_json:
        emit_json(result)
    else:
        out.print(f"{doc_id}: {result.old_type} -> {result.doc_type} ({result.review_status})")


def coversheet(
    mrn: Annotated[str, typer.Option(help="The patient's MRN (kept as printed: leading zeros matter).")],
    doc_type: Annotated[str, typer.Option("--type", help="Document type of the pages behind the sheet.")],
    dob: Annotated[str | None, typer.Option(help="Date of birth, YYYY-MM-DD (a second identifier).")] = None,
    out_path: Annotated[Path | None, typer.Option("--out", help="PDF file to write (else stdout).")] = None,
) -> None:
    """Print a scanning cover sheet (PDF with a QR code and a Code 128): a batch is split at each one."""
    from chartvault.classify.coversheet import CoverSheetError, encode_payload, parse_payload, render_pdf
    from chartvault.config import Settings

    check = Settings().mrn_check_digit
    try:
        sheet = parse_payload(encode_payload(mrn, doc_type, parse_date(dob, "--dob"), check_digit=check))
    except CoverSheetError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    pdf = render_pdf(sheet)
    if out_path is None:
        sys.stdout.buffer.write(pdf)
        sys.stdout.flush()
    else:
        out_path.write_bytes(pdf)
        err.print(f"cover sheet written to {out_path}", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(classifier_app, name="classifier")
    app.command()(review)
    app.command()(classify)
    app.command()(resolve)
    app.command()(coversheet)
