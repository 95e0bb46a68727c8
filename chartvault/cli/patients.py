"""The patient index: loading the hospital's registration list, and what the index holds."""

from pathlib import Path
from typing import Annotated

import typer

from chartvault.cli._common import EXIT_REFUSED, emit_json, err, open_services, out

patients_app = typer.Typer(help="The patient index (documents are linked against it).", no_args_is_help=True)


@patients_app.command("import")
def import_csv(
    file: Annotated[Path, typer.Argument(help="CSV export: mrn,last_name,first_name,dob[,middle_name,sex].")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Load the registration list into the patient index (safe to repeat; audited).

    Each bad row is refused with its line number and what is wrong (never its values); the others
    are taken: the first 1,000 refused lines are listed, all are counted. It runs as a registration-import
    job (``chartvault jobs list``), one at a time. Exit 1 when some row was refused, an operator cancelled it
    or another import is running; 2 when the file itself cannot be read.
    """
    with open_services() as services:
        result = services.patients.import_registration(file)
    if as_json:
        emit_json(result)
    else:
        for e in result.errors:
            err.print(e.message, markup=False, highlight=False)
        if result.errors_note:
            err.print(result.errors_note, markup=False, highlight=False)
        out.print(
            f"imported {result.imported}, updated {result.updated}, unchanged {result.unchanged}, "
            f"refused {result.refused}; held documents now linked: {result.documents_linked}",
            markup=False,
        )
        if result.cancelled:
            err.print(
                "cancelled by an operator at a commit: the rows counted above are in the index, the rest "
                "of the file was not read (import it again to finish)",
                markup=False,
                highlight=False,
            )
    if result.refused or result.cancelled:
        raise typer.Exit(EXIT_REFUSED)


@patients_app.command("index")
def index(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """What the index holds and how many documents wait on it (counts only, as the web page shows).

    Exit 1 when some document has neither a patient nor a review (``chartvault check --repair`` settles it).
    """
    with open_services() as services:
        summary = services.patients.summary()
    if as_json:
        emit_json(summary)
    else:
        out.print(
            f"patients: {summary.registered} from the registration list, {summary.from_documents} from "
            f"documents; documents in review: {summary.held_no_patient} no patient identified, "
            f"{summary.held_conflict} patient conflict; with neither: {summary.unlinked_outside_review}",
            markup=False,
        )
    if summary.unlinked_outside_review:
        raise typer.Exit(EXIT_REFUSED)


def register(app: typer.Typer) -> None:
    app.add_typer(patients_app, name="patients")
