"""Patient names as labels print them, normalised to 'LAST, FIRST M' so pages of one patient compare equal."""

from __future__ import annotations

import re

__all__ = ["NOT_NAMES", "normalise_name"]

_NAME_TOKEN = re.compile(r"^[A-Za-z][A-Za-z'\u2019\-]*\.?$")
# Surname particles: 'Edward Van Der Berg' -> 'VAN DER BERG, EDWARD'.
# fmt: off
_PARTICLES = frozenset({"VAN", "VON", "DER", "DEN", "DE", "DEL", "DELA", "LA", "LE", "DA", "DI", "DOS", "DU",
                        "ST", "ST.", "MC", "MAC", "AL", "EL", "BIN", "BEN", "TER", "TEN"})
# fmt: on
# A speck beside a word that OCR read as a quote mark ('‘DESMOND'), and the '_' the LSTM adds after a
# letter with a foot ('FARAH B_'); an apostrophe between letters is part of the name (O'NEIL).
_SPECK = re.compile(r"(?<![A-Za-z])[\"'`_\u2018\u201c\u201d]+|[\"'`_\u2018\u201c\u201d]+(?![A-Za-z])")
# 'PRENDERGAST -CASTELLANO': a hyphen OCR set apart from one of its words
_SPACED_HYPHEN = re.compile(r"(?<=[A-Za-z]) -(?=[A-Za-z])|(?<=[A-Za-z])- (?=[A-Za-z])")
# A middle initial 'J' glued to the given name and read as a closing bracket ('ORLA)', 'ALMA}'): its hook
# is the bracket's shape. Only in 'LAST, FIRST' after the comma, and when nothing opens a bracket.
_BRACKET_FOR_J = re.compile(r"(?<=[A-Za-z]{2})[)\]}](?=[ ,]|$)")
_HONORIFICS = {"MR", "MRS", "MS", "MISS", "DR"}
_SUFFIXES = {"JR", "SR", "II", "III", "IV", "JR.", "SR."}
# Template placeholders and titles that follow a name label but are not a name.
NOT_NAMES = frozenset({"SAMPLE", "PATIENT", "NAME", "UNKNOWN", "ABC", "XYZ", "MR", "MRS", "MS", "DR"})


def normalise_name(raw: str) -> str | None:
    """Normalise a printed patient name to 'LAST, FIRST M'; None when it does not look like a name.

    Accepts 'LAST, FIRST M', 'Last, First Middle', 'First M. Last' and 'First Van Der Last'; the middle name
    is reduced to its initial because labels print it either way.
    """
    s = re.sub(r"\s+", " ", _SPECK.sub(" ", raw.replace("\u2019", "'"))).strip(" ,.;:")
    s = _SPACED_HYPHEN.sub("-", s)
    if "," in s and not re.search(r"[(\[{]", s):
        surname, comma, given = s.partition(",")
        s = surname + comma + _BRACKET_FOR_J.sub(" J", given)
    if not s or any(c.isdigit() for c in s):
        return None
    before = s.partition(",")[0]
    if "," in s and re.search(r"[a-z]", before) and re.search(r"\S[ ][A-Z]\.?$", before):
        # 'Eamon R, Kowalczyk': OCR read the initial's period as a comma (mixed case prints 'First M. Last';
        # a surname never ends in a lone capital, 'DE LA O, MARIA' in capitals keeps its comma)
        s = s.replace(",", " ", 1)
    if "," in s:
        last_part, _, rest = s.partition(",")
        last_toks = last_part.split()
        rest_toks = [t for t in rest.replace(",", " ").split()]
        suffix = [t for t in rest_toks if t.upper().rstrip(".") in {x.rstrip(".") for x in _SUFFIXES}]
        rest_toks = [t for t in rest_toks if t not in suffix]
        last_toks += suffix
        if not rest_toks:
            return None
        first, middle = rest_toks[0], rest_toks[1:]
    else:
        toks = s.split()
        while toks and toks[0].upper().rstrip(".") in _HONORIFICS:
            toks = toks[1:]
        if len(toks) < 2:
            return None
        suffix = []
        if toks[-1].upper() in _SUFFIXES:
            suffix = [toks.pop()]
        if len(toks) < 2:
            return None
        first = toks[0]
        i = len(toks) - 1
        while i > 1 and toks[i - 1].upper() in _PARTICLES:
            i -= 1
        last_toks = toks[i:] + suffix
        middle = toks[1:i]
    toks_all = [*last_toks, first, *middle]
    if not last_toks or not all(_NAME_TOKEN.match(t) for t in toks_all):
        return None
    if len(first.rstrip(".")) < 1 or len("".join(last_toks)) < 2 or len(middle) > 2:
        return None
    if {t.upper().rstrip(".") for t in [*last_toks, first]} & NOT_NAMES:
        return None
    last = " ".join(t.upper().rstrip(".") for t in last_toks)
    out = f"{last}, {first.upper().rstrip('.')}"
    if middle:
        out += f" {middle[0][0].upper()}"
    return out
