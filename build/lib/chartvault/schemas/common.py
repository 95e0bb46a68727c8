"""Shapes shared by every feature: errors, health, and turning answers into JSON."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from typing import Any


def iso(value: datetime | None) -> str | None:
    """A timestamp as ISO 8601 (naive values from SQLite are UTC)."""
    if value is None:
        return None
    return value.isoformat() if value.tzinfo else value.isoformat() + "+00:00"


def d(value: date | None) -> str | None:
    """A calendar date as YYYY-MM-DD."""
    return value.isoformat() if value is not None else None


def to_fields(view: Any) -> dict[str, Any]:
    """A dataclass's fields, one level deep (to build a richer answer from a plainer one)."""
    return {f.name: getattr(view, f.name) for f in dataclasses.fields(view)}


def to_jsonable(answer: Any) -> Any:
    """An answer (dataclass, list, dict, scalar) as plain JSON-ready values, as the API sends it."""
    if dataclasses.is_dataclass(answer) and not isinstance(answer, type):
        return {f.name: to_jsonable(getattr(answer, f.name)) for f in dataclasses.fields(answer)}
    if isinstance(answer, dict):
        return {str(k): to_jsonable(v) for k, v in answer.items()}
    if isinstance(answer, list | tuple):
        return [to_jsonable(v) for v in answer]
    if isinstance(answer, datetime):
        return iso(answer)
    if isinstance(answer, date):
        return answer.isoformat()
    return answer


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """One reason a request was refused (e.g. a missing authorization element)."""

    code: str
    message: str


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ErrorDetail:
    code: str
    message: str
    problems: list[dict[str, Any]] | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ErrorBody:
    """Every error answer: ``{"error": {"code", "message"[, "problems"]}}`` (ids only, never PHI)."""

    error: ErrorDetail


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Health:
    status: str
    version: str
    index_queue: int
