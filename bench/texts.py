"""The labelled report texts (``dev_texts.csv``), grouped by sample family, and printed as a report body.

Why families: MTSamples holds series of near-identical notes ('Gen Med Consult - 2', 'Gen Med Consult - 35')
and the same note filed under several specialties (shared ``note_ids``). A text-level split puts siblings
on both sides and measures memory, not generalisation; every split here keeps a family on one side.
"""

from __future__ import annotations

import csv
import re
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import corpus_dir

LABEL_MAP = {"letter": "correspondence"}  # corpus label -> ours
_SERIES_NUMBER = re.compile(r"\s*-\s*\d+\s*$")


@dataclass(frozen=True, slots=True)
class DevText:
    """One labelled report text of ``dev_texts.csv`` with the family it belongs to."""

    text_key: str
    doc_type: str  # our vocabulary ('letter' -> 'correspondence')
    note_ids: tuple[str, ...]
    sample_name: str
    transcription: str
    family: int  # index of its family; equal for siblings that share a series name or a note id


def read_dev_texts(path: Path | None = None) -> list[DevText]:
    """Every row of ``dev_texts.csv`` (corpus folder by default), in file order, with its family."""
    path = path or corpus_dir() / "dev_texts.csv"
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    families = _families([_family_keys(r["sample_names"], r["note_ids"].split()) for r in rows])
    return [
        DevText(
            text_key=r["text_key"],
            doc_type=LABEL_MAP.get(r["doc_type"], r["doc_type"]),
            note_ids=tuple(r["note_ids"].split()),
            sample_name=r["sample_names"],
            transcription=r["transcription"],
            family=fam,
        )
        for r, fam in zip(rows, families, strict=True)
    ]


def _family_keys(sample_name: str, note_ids: Sequence[str]) -> list[str]:
    """'Gen Med Consult - 35' and 'Gen Med Consult' are one series; a shared note id is one note."""
    series = _SERIES_NUMBER.sub("", sample_name).strip().lower()
    return [f"series:{series}", *(f"note:{n}" for n in note_ids)]


def _families(keys_per_row: list[list[str]]) -> list[int]:
    """Connected components of rows that share any key (union-find), numbered in first-seen order."""
    parent = list(range(len(keys_per_row)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i, keys in enumerate(keys_per_row):
        for key in keys:
            if key in owner:
                parent[find(i)] = find(owner[key])
            else:
                owner[key] = i
    numbers: dict[int, int] = {}
    return [numbers.setdefault(find(i), len(numbers)) for i in range(len(keys_per_row))]


def family_folds(texts: Sequence[DevText], folds: int, seed: int = 0) -> list[int]:
    """Fold number per text: families never straddle folds, each type spread over the folds."""
    from sklearn.model_selection import StratifiedGroupKFold

    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    out = [0] * len(texts)
    labels = [t.doc_type for t in texts]
    groups = [t.family for t in texts]
    for k, (_, test) in enumerate(splitter.split(texts, labels, groups)):
        for i in test:
            out[i] = k
    return out


# --------------------------------------------------------------------------------------- report body

# MTSamples flattened every line break into ','. Such a comma ends a sentence or a heading ('.,' ':,'),
# stands after spaces (' ,') or touches the next word (',This'); a comma of prose ('Month DD, YYYY') does
# none of these.
_PARAGRAPH_BREAK = re.compile(r"(?:(?<=[.:;!?)\"'])|(?<=\s)),\s*|,(?=\S)")
_HEADING_ONLY = re.compile(r"^[A-Z][A-Z0-9 /&'\-()#,]{1,60}:$")
_SPACES = re.compile(r"\s+")


def report_paragraphs(transcription: str) -> list[str]:
    """The printed paragraphs of a report: 'HEADING: text' joined on one line, as a transcriptionist types it.

    A heading alone on its paragraph ('HISTORY OF PRESENT ILLNESS:') takes the following paragraph as its
    content; numbered items stay paragraphs of their own.
    """
    raw = [_SPACES.sub(" ", p).strip() for p in _PARAGRAPH_BREAK.split(transcription)]
    out: list[str] = []
    pending = ""
    for para in raw:
        if not para or para == ",":
            continue
        para = para.strip(" ,")
        if pending:
            para, pending = f"{pending} {para}", ""
        if _HEADING_ONLY.match(para):
            pending = para
            continue
        out.append(para)
    if pending:
        out.append(pending)
    return out


def wrap_paragraphs(paragraphs: Sequence[str], fits: Callable[[str], bool]) -> list[str]:
    """Lines of at most the printable width (``fits`` says whether a line fits), paragraphs kept apart."""
    lines: list[str] = []
    for para in paragraphs:
        width = 200
        while width > 20:
            wrapped = textwrap.wrap(para, width=width, break_long_words=True, break_on_hyphens=False)
            if all(fits(w) for w in wrapped):
                break
            width -= 4
        lines.extend(wrapped or [""])
    return lines
