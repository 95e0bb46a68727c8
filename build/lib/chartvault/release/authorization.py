"""Validity of a HIPAA authorization (45 CFR 164.508(c)), checked before any release.

The authorization is kept as structured elements beside its scanned image. The
check returns every problem found (a code and a message naming element names,
never their values), so HIM sees all that is wrong at once. An empty list means
the authorization may support the release.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

# Document types that need an authorization naming them (164.508(a)(2); 42 CFR Part 2), keyed on
# Document.doc_type, with the ReleaseAuthorization flag that names them. The classifier may not
# produce these types yet; a document staff classify as one is still covered.
SENSITIVE: dict[str, str] = {
    "psychotherapy_note": "covers_psychotherapy_notes",
    "substance_use_record": "covers_substance_use",
}

CORE_TEXT_ELEMENTS = ("description_of_phi", "disclosing_party", "recipient")
STATEMENTS = ("revoke", "conditioning", "redisclosure")
AUTHORIZATION_RETENTION_YEARS = 6  # 164.530(j)


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason an authorization cannot support a release (no PHI in code or message)."""

    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        """The JSON form the API returns."""
        return {"code": self.code, "message": self.message}


def _present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, list | tuple | set | dict):
        return bool(value) and all(
            _present(v) for v in (value.values() if isinstance(value, dict) else value)
        )
    return True


def parse_when(value: Any) -> datetime | None:
    """An element date (ISO text, date or datetime) as an aware UTC datetime; None if absent or bad."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, 23, 59, 59, tzinfo=UTC)
    if isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10:
                d = date.fromisoformat(text)
                return datetime(d.year, d.month, d.day, 23, 59, 59, tzinfo=UTC)  # valid through that day
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def element_problems(elements: Mapping[str, Any]) -> list[Problem]:
    """Problems in the elements themselves: missing core elements (c)(1) and statements (c)(2)."""
    problems: list[Problem] = []
    for name in CORE_TEXT_ELEMENTS:
        if not _present(elements.get(name)):
            problems.append(Problem(f"missing_{name}", f"core element {name} is missing (164.508(c)(1))"))
    purposes = elements.get("purposes")
    if isinstance(purposes, str):
        purposes = [purposes]
    if not _present(purposes):
        problems.append(Problem("missing_purposes", "core element purposes is missing (164.508(c)(1)(iv))"))
    expires_raw = elements.get("expires_at")
    if _present(expires_raw):
        if parse_when(expires_raw) is None:
            problems.append(Problem("bad_expires_at", "expires_at is not a date (YYYY-MM-DD)"))
    elif not _present(elements.get("expiration_event")):
        problems.append(
            Problem("missing_expiration", "an expiration date or event is missing (164.508(c)(1)(v))")
        )
    signed_raw = elements.get("signed_at")
    if not _present(signed_raw):
        problems.append(Problem("missing_signed_at", "the signature date is missing (164.508(c)(1)(vi))"))
    elif parse_when(signed_raw) is None:
        problems.append(Problem("bad_signed_at", "signed_at is not a date (YYYY-MM-DD)"))
    if not _present(elements.get("signer")):
        problems.append(Problem("missing_signer", "the signature is missing (164.508(c)(1)(vi))"))
    if elements.get("signed_by_representative") and not _present(elements.get("representative_authority")):
        problems.append(
            Problem(
                "missing_representative_authority",
                "a representative signed without a description of their authority (164.508(c)(1)(vi))",
            )
        )
    statements = elements.get("statements")
    statements = statements if isinstance(statements, Mapping) else {}
    for name in STATEMENTS:
        if statements.get(name) is not True:
            problems.append(
                Problem(
                    f"missing_statement_{name}", f"the required {name} statement is missing (164.508(c)(2))"
                )
            )
    return problems


def validate(
    elements: Mapping[str, Any],
    *,
    revoked_at: datetime | None,
    covers: Mapping[str, bool],
    document_types: Iterable[str | None],
    now: datetime | None = None,
) -> list[Problem]:
    """Every reason the authorization is defective (164.508(b)(2)) for documents of these types.

    ``covers`` holds the authorization's flags (``covers_psychotherapy_notes``,
    ``covers_substance_use``); a sensitive document type needs its flag set.
    """
    now = now or datetime.now(UTC)
    problems = element_problems(elements)
    expires = parse_when(elements.get("expires_at"))
    if expires is not None and expires < now:
        problems.append(Problem("expired", "the authorization has expired"))
    signed = parse_when(elements.get("signed_at"))
    if signed is not None and signed.date() > now.date():
        problems.append(Problem("signed_in_future", "the signature date is in the future"))
    if revoked_at is not None:
        problems.append(Problem("revoked", "the authorization has been revoked"))
    problems.extend(sensitive_problems(covers, document_types))
    return problems


def sensitive_problems(covers: Mapping[str, bool], document_types: Iterable[str | None]) -> list[Problem]:
    """Sensitive types among the documents that the authorization does not name."""
    problems = []
    for doc_type in sorted({t for t in document_types if t in SENSITIVE}):
        if not covers.get(SENSITIVE[doc_type]):
            problems.append(
                Problem(
                    f"uncovered_{doc_type}",
                    f"documents of type {doc_type} need an authorization that names them",
                )
            )
    return problems


def expiry(elements: Mapping[str, Any]) -> datetime | None:
    """When the authorization stops (None when it ends on an event instead of a date)."""
    return parse_when(elements.get("expires_at"))
