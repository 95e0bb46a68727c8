"""Long operations run in the background of a server process (``chartvault.services.jobs``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class JobInfo:
    """A job as the catalog keeps it: counts and ids only, never a value of a record."""

    id: str
    kind: str  # classifier_train | registration_import | archive_check
    state: str  # queued | running | done | failed | cancelled
    started_by: str | None  # the user's id (None: started from the console)
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    result: dict[str, Any] | None  # counts so far while it runs, the outcome once done
    error: str | None  # the exception's type and a fixed message (our own refusals: their message)
    # When an operator asked it to stop (POST /jobs/{id}/cancel): it stops at its next chunk or step.
    cancel_requested_at: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class JobList:
    """Recent jobs of the kinds the caller may see, newest first."""

    limit: int
    items: list[JobInfo]
