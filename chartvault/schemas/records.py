"""Records management as listed: past disposition runs (their certificates are read one at a time)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class DispositionRun:
    """One executed disposition: who ran and approved it, how many documents went, whether its
    certificate of destruction is archived (a run cut off before the end has none)."""

    id: str
    executed_at: str | None
    executed_by: str  # an actor id (user:<id>, cli:<login>)
    approved_by: str | None  # the department manager, as typed
    status: str  # running | complete | partial
    document_count: int
    has_certificate: bool
