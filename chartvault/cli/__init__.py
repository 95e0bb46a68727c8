"""The ``chartvault`` command: one module per feature over the services (see ``_common``)."""

import logging
from typing import Annotated

import typer

from chartvault.cli import (
    access,
    backups,
    documents,
    intake,
    jobs,
    patients,
    records,
    release,
    reports,
    review,
    search,
    serve,
)

app = typer.Typer(
    help="ChartVault: scan, OCR, classify, index and archive paper medical records.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # plain help: rendering it with rich would double the command's start time
)


@app.callback()
def main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log progress (ids only, no PHI).")
    ] = False,
) -> None:
    from chartvault.config import Settings
    from chartvault.telemetry.logs import configure_logging

    # CHARTVAULT_LOG_FORMAT=json: one JSON object per line, ids and codes only (chartvault.telemetry.logs)
    configure_logging(Settings().log_format, logging.INFO if verbose else logging.WARNING)


for feature in (
    intake,
    documents,
    search,
    review,
    patients,
    records,
    release,
    reports,
    access,
    jobs,
    backups,
    serve,
):
    feature.register(app)

__all__ = ["app"]
