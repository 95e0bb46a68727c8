"""An MRN a person types (a reviewer's, the target of a refile), checked the same way wherever it is typed."""

from __future__ import annotations

import re

from chartvault.classify.checkdigit import CheckDigit, passes
from chartvault.errors import InvalidInput

MAX_MRN_LENGTH = 64
# What the API's bodies allow: a direction override, control or zero-width character, or a space, would
# otherwise become an MRN shown and searched as such (and could open a patient under it).
TYPED_MRN = re.compile(rf"[A-Za-z0-9\-]{{1,{MAX_MRN_LENGTH}}}")


def typed_mrn(mrn: str, scheme: CheckDigit) -> str:
    """``mrn`` without surrounding spaces, once it passes the facility's check digit (``scheme``).

    ``InvalidInput`` otherwise, coded ``mrn_check_digit_failed`` for the check digit: a digit is mistyped,
    and the caller changes nothing. The message names the check, never the value (it reaches logs)."""
    mrn = mrn.strip()
    if not TYPED_MRN.fullmatch(mrn):
        raise InvalidInput(f"mrn must be 1-{MAX_MRN_LENGTH} letters, digits or '-'")
    if not passes(mrn, scheme):
        raise InvalidInput(
            f"the MRN fails the facility's check digit ({scheme}): a digit is mistyped; nothing was changed",
            code="mrn_check_digit_failed",
        )
    return mrn
