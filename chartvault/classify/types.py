"""Classification results: plain data, no I/O."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

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
    """One identifier value with a confidence in [0, 1].

    ``read_as`` is what the pages printed when the value is not what they read but a repair of it, and
    ``source`` says which repair (``schemas.documents.MRN_SOURCE_*``): an MRN read back by the facility's
    check digit (``checkdigit.settled_mrn``) or one the re-read renderings voted for (``reread.voted``).
    A person must see both.
    """

    value: str
    confidence: float
    read_as: str | None = None
    source: str | None = None


@dataclass(slots=True)
class Identifiers:
    """Patient identifiers found on a page or merged over a document.

    Dates are ISO ``YYYY-MM-DD`` strings; the MRN is a string (leading zeros kept).
    """

    mrn: Extracted | None = None
    name: Extracted | None = None  # as printed, normalised to "LAST, FIRST M"
    dob: Extracted | None = None
    sex: Extracted | None = None  # "M" or "F"
    date_of_service: Extracted | None = None
    account: Extracted | None = None
    encounter: Extracted | None = None
    # ICD-10-CM codes printed in a diagnosis context (Dx:, Diagnosis:, ICD-10:, Impression:), in page order.
    icd_codes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored per page in the catalog)."""
        out: dict[str, Any] = {k: (_extracted_dict(v) if v else None) for k, v in self.as_items()}
        out["icd_codes"] = list(self.icd_codes)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Identifiers:
        """Inverse of ``to_dict``; unknown keys are ignored so older catalog rows still load."""
        fields = {k: Extracted(**v) for k, v in data.items() if k in _EXTRACTED_FIELDS and v}
        return cls(**fields, icd_codes=[str(c) for c in data.get("icd_codes") or []])

    def as_items(self) -> list[tuple[str, Extracted | None]]:
        """The single-valued identifier fields, in a fixed order."""
        return [
            ("mrn", self.mrn),
            ("name", self.name),
            ("dob", self.dob),
            ("sex", self.sex),
            ("date_of_service", self.date_of_service),
            ("account", self.account),
            ("encounter", self.encounter),
        ]


def _extracted_dict(value: Extracted) -> dict[str, Any]:
    """``read_as`` and ``source`` only when set: values read as printed are stored as before they existed."""
    return {k: v for k, v in asdict(value).items() if v is not None or k not in ("read_as", "source")}


_EXTRACTED_FIELDS = frozenset({"mrn", "name", "dob", "sex", "date_of_service", "account", "encounter"})

# Where a document type came from (documents.classification_source).
SOURCE_MODEL, SOURCE_RULES, SOURCE_COVER_SHEET, SOURCE_HINT, SOURCE_STAFF = (
    "model",
    "rules",
    "cover_sheet",
    "hint",
    "staff",
)


@dataclass(frozen=True, slots=True)
class DocTypePrediction:
    doc_type: str
    confidence: float  # [0, 1]
    scores: dict[str, float] = field(default_factory=dict)
    source: str = SOURCE_RULES  # model (rules blended with the trained model) | rules | hint
