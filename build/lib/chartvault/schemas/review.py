"""The review queue and the corrections people make in it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class FlaggedPage:
    page_no: int
    flags: list[dict[str, Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewItem:
    document_id: str
    batch_id: str
    file_id: str
    first_page: int
    page_count: int
    doc_type: str | None
    doc_type_confidence: float | None
    classification_source: str | None
    patient_linked: bool
    reasons: list[dict[str, Any]]  # codes and ids, never PHI
    flagged_pages: list[FlaggedPage]
    created_at: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewQueue:
    """Documents waiting for a person, oldest first."""

    total: int
    limit: int
    offset: int
    items: list[ReviewItem]


@dataclass(frozen=True, slots=True, kw_only=True)
class ClassificationChange:
    document_id: str
    doc_type: str
    old_type: str | None
    review_status: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewResolution:
    document_id: str
    review_status: str
    patient_linked: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ClassifierInfo:
    version: str
    sklearn_version: str
    n_train: int
    corrections: int
    train_s: float
    path: str
