"""The refusals ChartVault answers with, in one place.

Every layer raises one of these (or a subclass that names a more precise ``code``); the API maps
the class to an HTTP status once (``chartvault.api.errors``) and the CLI to an exit status once
(``chartvault.cli._common``). Messages carry ids and field names, never patient data, because
they reach logs, terminals and HTTP clients.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = [
    "ChartVaultError",
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "MalformedRequest",
    "NotFound",
    "TooLarge",
    "Unavailable",
    "UnsupportedMedia",
]


class ChartVaultError(Exception):
    """A request ChartVault refuses; ``code`` is stable and machine-readable, the message is for people."""

    code = "error"

    def __init__(
        self, message: str, *, code: str | None = None, problems: Sequence[Mapping[str, str]] = ()
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.problems = [dict(p) for p in problems]  # each reason as {"code", "message"}, when several

    @property
    def message(self) -> str:
        return str(self)


class NotFound(ChartVaultError):
    """No such batch, document, page, release, token or hold (or not one the caller may see)."""

    code = "not_found"


class InvalidInput(ChartVaultError):
    """Malformed or impossible input: a field out of range, an unknown type, a bad manifest."""

    code = "invalid_request"


class MalformedRequest(InvalidInput):
    """A request body that cannot be parsed at all (e.g. a broken multipart stream)."""

    code = "malformed_request"


class Conflict(ChartVaultError):
    """The thing exists but its state does not allow the action (a decided release, a held document)."""

    code = "conflict"


class Forbidden(ChartVaultError):
    """The caller is known but may not do this (e.g. decide a release they requested)."""

    code = "forbidden"


class TooLarge(ChartVaultError):
    """A request or file over a configured limit."""

    code = "too_large"


class UnsupportedMedia(ChartVaultError):
    """A body or file of a type ChartVault does not take."""

    code = "unsupported_media_type"


class Unavailable(ChartVaultError):
    """A part is not ready (e.g. the search index is being rebuilt); try again after ``retry_after_s``."""

    code = "unavailable"

    def __init__(self, message: str, *, code: str | None = None, retry_after_s: int = 5) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s
