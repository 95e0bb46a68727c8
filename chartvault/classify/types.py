"""Classification results: plain data, no I/O."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

DOC_TYPES: tuple[str, ...] = (
    "history_and_physical",
    "progress_note",
    "consult_note",
    "discharge_summary",
    "operative_report",
    "radiology_report",
    "ed_note",
    "lab_report",
    "pathology_report",
    "consent",
    "advance_directive",
    "correspondence",
    "billing",
    "roi_authorization",
    "legal",
    "other",
)


@dataclass(frozen=True, slots=True)
class Extracted:
    """One identifier value with a confidence in [0, 1]."""

    value: str
    confidence: float


@dataclass(slots=True)
class Identifiers:
    """Patient identifiers found on a page or merged over a document.

    Dates are ISO ``YYYY-MM-DD`` strings; the MRN is a string (leading zeros kept).
    """

    mrn: Extracted | None = None
    name: Extracted | None = None  # as printed, normalised to "LAST, FIRST M"
    dob: Extracted | None = None
    date_of_service: Extracted | None = None
    account: Extracted | None = None
    encounter: Extracted | None = None

    def to_dict(self) -> dict:
        return {k: (asdict(v) if v else None) for k, v in self.as_items()}

    def as_items(self) -> list[tuple[str, Extracted | None]]:
        return [
            ("mrn", self.mrn),
            ("name", self.name),
            ("dob", self.dob),
            ("date_of_service", self.date_of_service),
            ("account", self.account),
            ("encounter", self.encounter),
        ]


@dataclass(frozen=True, slots=True)
class DocTypePrediction:
    doc_type: str
    confidence: float  # [0, 1]
    scores: dict[str, float] = field(default_factory=dict)
