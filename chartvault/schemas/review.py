"""The review queue and the corrections people make in it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chartvault.schemas.jobs import JobInfo


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


@dataclass(frozen=True, slots=True, kw_only=True)
class ClassifierStatus:
    """The document-type model as saved for this catalog, and the type corrections since it was trained."""

    version: str | None  # None: no model saved yet (the first batch trains one)
    sklearn_version: str | None
    n_train: int | None  # texts it was trained on
    corrections_learned: int | None  # of those, staff corrections (None: the labelled texts are missing)
    trained_at: str | None  # when the saved model was written (where it lies is the console's: no path)
    corrections_recorded: int  # type corrections made in review, all told
    corrections_waiting: int  # made since the saved model was trained


@dataclass(frozen=True, slots=True, kw_only=True)
class ClassifierTraining:
    """A training started from a page or the API, run as a job in the background of a server process."""

    state: str  # queued | running | done | failed | cancelled
    started_at: str
    started_by: str | None  # the user's id
    finished_at: str | None
    result: ClassifierInfo | None
    error: str | None
    # While it runs, and once cancelled: the stage it is in (or was about to begin), of "stages".
    progress: dict[str, Any] | None = None
    cancel_requested_at: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ClassifierOverview:
    """The model in use and the last training job (``GET /classifier``)."""

    model: ClassifierStatus
    training: JobInfo | None  # None: never retrained from a page or the API
