"""A value read for one identifier field, and the choice among several: the vocabulary keyed and keyless
readers share."""

from __future__ import annotations

from dataclasses import dataclass

from chartvault.classify.types import Extracted

__all__ = ["BODY_DISCOUNT", "Cand", "best"]

# A value read in the report body rather than a label band is weaker evidence of whose page it is.
BODY_DISCOUNT = 0.85


@dataclass(slots=True)
class Cand:
    """One candidate value: how sure the reading is, where it was, and how strong its kind of evidence."""

    value: str
    conf: float
    line: int
    priority: int  # a stronger kind of evidence (a key printed beside the value) wins before confidence
    header: bool  # printed in a label band (top or bottom of the page)
    fails_check: bool = False  # an MRN failing the facility's check digit (``checkdigit.checked``)


def best(cands: list[Cand]) -> Extracted | None:
    """Pick the strongest candidate: evidence kind, then label band, a passing check digit, confidence and
    earliest line.

    Confidence drops when other candidates of the same standing disagree, so a page that prints two MRNs
    is not trusted with either (one failing the check digit counts too: it may be a misread of either).
    """
    if not cands:
        return None
    top = max(cands, key=lambda c: (c.priority, c.header, not c.fails_check, c.conf, -c.line))
    conf = top.conf if top.header else top.conf * BODY_DISCOUNT
    rivals = [
        c for c in cands if c.value != top.value and c.header == top.header and c.priority == top.priority
    ]
    if rivals:
        agree = sum(c.conf for c in cands if c.value == top.value and c.priority == top.priority)
        conf *= agree / (agree + sum(c.conf for c in rivals))
    return Extracted(top.value, round(max(0.0, min(1.0, conf)), 3))
