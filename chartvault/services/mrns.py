"""An MRN a person types (a reviewer's, the target of a refile), checked the same way wherever it is typed."""

from __future__ import annotations

from chartvault.classify.checkdigit import CheckDigit, passes
from chartvault.errors import InvalidInput

MAX_MRN_LENGTH = 64


def typed_mrn(mrn: str, scheme: CheckDigit) -> str:
    """``mrn`` without surrounding spaces, once it passes the facility's check digit (``scheme``).

    ``InvalidInput`` otherwise, coded ``mrn_check_digit_failed`` for the check digit: a digit is mistyped,
    and the caller changes nothing. The message names the check, never the value (it reaches logs)."""
    mrn = mrn.strip()
    if not mrn or len(mrn) > MAX_MRN_LENGTH:
        raise InvalidInput(f"mrn must be 1-{MAX_MRN_LENGTH} characters")
    if not passes(mrn, scheme):
        raise InvalidInput(
            f"the MRN fails the facility's check digit ({scheme}): a digit is mistyped; nothing was changed",
            code="mrn_check_digit_failed",
        )
    return mrn
