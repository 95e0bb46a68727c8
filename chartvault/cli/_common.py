"""What every command shares: opening the services, printing answers, refusals as exit statuses.

Scripts rely on the ``--json`` outputs (the API's answer models, field for field) and on the exit
statuses: 0 done; 1 refused or inconsistent; 2 usage error or invalid input; 3 all taken but the batch
needs review; 4 not found; 5 the search index is being rebuilt. Commands import what they need inside
their bodies, so ``--help`` and the light commands never load the pipeline, the store or the index.
"""

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from chartvault.errors import ChartVaultError
    from chartvault.services import Services


class _LazyConsole:
    """A rich Console made at its first use: ``chartvault --help`` never loads rich."""

    def __init__(self, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self._stderr)
        return getattr(self._console, name)


out: "Console" = _LazyConsole(stderr=False)  # type: ignore[assignment]
err: "Console" = _LazyConsole(stderr=True)  # type: ignore[assignment]

EXIT_REFUSED, EXIT_USAGE, EXIT_REVIEW, EXIT_NOT_FOUND, EXIT_UNAVAILABLE = 1, 2, 3, 4, 5


def exit_status(exc: "ChartVaultError") -> int:
    """The one place a refusal becomes an exit status."""
    from chartvault.errors import InvalidInput, NotFound, Unavailable

    if isinstance(exc, NotFound):
        return EXIT_NOT_FOUND
    if isinstance(exc, InvalidInput):
        return EXIT_USAGE
    if isinstance(exc, Unavailable):
        return EXIT_UNAVAILABLE
    return EXIT_REFUSED


@contextmanager
def refusals() -> Iterator[None]:
    """Turn a refusal into its message on stderr and its exit status (never a traceback)."""
    from chartvault.errors import ChartVaultError, Unavailable

    try:
        yield
    except ChartVaultError as exc:
        hint = (
            "; try again shortly (or run `chartvault reindex` if no server runs)"
            if isinstance(exc, Unavailable)
            else ""
        )
        err.print(f"{exc}{hint}", markup=False, highlight=False)
        raise typer.Exit(exit_status(exc)) from None


@contextmanager
def open_services() -> Iterator["Services"]:
    """The services acting as this machine's operator; parts open on first use, close at the end."""
    from chartvault.config import Settings
    from chartvault.services import Caller, Services

    with refusals(), Services(Settings(), Caller.operator()) as services:
        yield services


def emit_json(answer: Any) -> None:
    """An answer as the API would send it."""
    from chartvault.schemas.common import to_jsonable

    sys.stdout.write(json.dumps(to_jsonable(answer), indent=2, default=str) + "\n")


def fail(message: str, status: int = EXIT_REFUSED) -> typer.Exit:
    err.print(message, markup=False, highlight=False)
    return typer.Exit(status)


def parse_date(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise fail(f"{name}: expected a date as YYYY-MM-DD", EXIT_USAGE) from None
