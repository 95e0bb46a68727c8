"""What the engineer on call is answered: readiness, part by part."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Part = Literal["catalog", "object_store", "index", "broker"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PartCheck:
    """One part's answer: ``error`` is the failure's type (e.g. ``ObjectStoreError``), never its text."""

    part: Part
    ok: bool
    seconds: float
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Readiness:
    """``ready`` when every part answered in time; the API answers 503 otherwise."""

    status: Literal["ready", "unavailable"]
    checks: list[PartCheck]

    @property
    def ready(self) -> bool:
        return self.status == "ready"


@dataclass(frozen=True, slots=True)
class BackupRecord:
    """One backup as its audit entry recorded it: when, which snapshot, whole or not, how much."""

    at: str  # ISO 8601, UTC
    stamp: str
    complete: bool
    objects: int
    copied_objects: int
