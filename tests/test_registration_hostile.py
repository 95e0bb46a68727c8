"""A registration list sent to hurt or to fool: it is refused whole, or row by row, and says so.

The import is the patient index's one bulk write (the API, the page's background job, the CLI), open to
HIM administrators. A malformed file must not be half read with the rest silently dropped, one enormous
line must not be held in memory, and a name must not carry characters that hide or reorder what a
person reads, nor outgrow the catalog's column. Every name, number and date is invented.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from sqlalchemy import select

from chartvault.archive.models import Patient
from chartvault.archive.registration import MAX_LINE_CHARS
from chartvault.errors import InvalidInput
from chartvault.services import Services

HEADER = "mrn,last_name,first_name,dob\n"
AFTER = "".join(f"70000{i:02d},After,Row,1960-01-0{1 + i % 9}\n" for i in range(10))


def _mrns(vault: Services) -> set[str]:
    with vault.parts.sessions() as s:
        return set(s.scalars(select(Patient.mrn)))


@pytest.mark.parametrize(
    "bad_row",
    [
        pytest.param("7100002,Long," + "B" * 200_000 + ",1960-01-01\n", id="field past the csv limit"),
        pytest.param('7100002,"Open,Quote,1960-01-01\n', id="a quote left open"),
        pytest.param('7100002,Quint,Ada,"1960-01-01\n', id="a quote left open in the last column"),
    ],
)
def test_a_malformed_row_refuses_the_file_instead_of_dropping_every_row_after_it(
    vault: Services, bad_row: str
) -> None:
    """Before: the csv reader stopped (or swallowed the rest into one field) and the answer counted one
    refused row, the ten rows after it neither imported nor refused."""
    data = (HEADER + "7100001,Good,Anna,1950-01-01\n" + bad_row + AFTER).encode()
    with pytest.raises(InvalidInput) as refused:
        vault.patients.import_registration(data)
    assert "line 3" in str(refused.value) and "nothing was imported" in str(refused.value)
    assert "Open" not in str(refused.value) and "BBBB" not in str(refused.value)
    assert _mrns(vault) == set()  # refused whole: the good row before it is not written either


def test_an_enormous_line_is_refused_without_being_held_in_memory(vault: Services, tmp_path: Path) -> None:
    """Before: csv read the line whole: 20 MB of text with one character outside Latin-1 took 80 MB as a
    str, and more to split it (a 1 GiB list, the limit, some 5 GB of a server's memory)."""
    path = tmp_path / "one-line.csv"
    with path.open("wb") as out:
        out.write(HEADER.encode() + b"7200001,Good,Anna,1950-01-01\n7200002,")
        for _ in range(20):
            out.write(b"a" * 1_000_000)
        out.write("\U0001f600,Row,1960-01-01\n".encode() + AFTER.encode())
    tracemalloc.start()
    try:
        with pytest.raises(InvalidInput, match=rf"line 3 is longer than {MAX_LINE_CHARS:,} characters"):
            vault.patients.import_registration(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8_000_000, f"peak {peak:,} bytes"
    assert _mrns(vault) == set()


BAD_NAMES = {
    "nul": ("Quint\x00", "Ada", "name_characters"),
    "direction override": ("\u202eTniuq", "Ada", "name_characters"),
    "zero width": ("Quint", "A\u200bda", "name_characters"),
    "file separator": ("Quint", "A\x1cda", "name_characters"),
    "300-letter surname": ("Q" * 300, "Ada", "name_too_long"),
    "300-letter first name": ("Quint", "A" * 300, "name_too_long"),
}


def test_names_that_hide_text_or_outgrow_the_column_are_refused_by_line(vault: Services) -> None:
    """Before: every one was imported (the catalog's name column is 256 characters: PostgreSQL refuses a
    longer value, and a NUL, failing the whole import on one row; SQLite kept them)."""
    rows = [
        f"73000{i:02d},{last},{first},1950-01-01\n" for i, (last, first, _) in enumerate(BAD_NAMES.values())
    ]
    data = (HEADER + "".join(rows) + "7309999,Good,Anna,1950-01-01\n").encode()
    result = vault.patients.import_registration(data)
    assert (result.imported, result.refused) == (1, len(BAD_NAMES))
    assert [(e.line, e.code) for e in result.errors] == [
        (line, code) for line, (_, _, code) in enumerate(BAD_NAMES.values(), start=2)
    ]
    for error in result.errors:
        assert "Quint" not in error.message and "Ada" not in error.message and "QQQ" not in error.message
    assert _mrns(vault) == {"7309999"}


def test_an_ordinary_list_is_still_taken_whole(vault: Services) -> None:
    data = (HEADER + "7400001,O'Neil-Smith,Mary Anne,1950-01-01\n7400002,Núñez,José,03/04/1961\n").encode()
    result = vault.patients.import_registration(b"\xef\xbb\xbf" + data.replace(b"\n", b"\r\n"))
    assert (result.imported, result.refused) == (2, 0)


def test_a_row_whose_mrn_is_not_of_this_facility_is_refused_by_line(tmp_path: Path) -> None:
    """Before: a row was checked for the characters an MRN may hold and its check digit, but not against
    the facility's MRN pattern (CHARTVAULT_MRN_PATTERN) that manifests and labels are held to, so a list
    of another site's numbers (or a shifted column) opened patients no document could ever match."""
    from chartvault.config import Settings

    settings = Settings(data_dir=tmp_path / "data", mrn_pattern=r"M\d{7}", _env_file=None)
    data = (
        HEADER
        + "M7500001,Good,Anna,1950-01-01\n"
        + "7500002,Quint,Ada,1950-01-01\n"  # line 3: no M
        + "M75000030,Quint,Ada,1950-01-01\n"  # line 4: a digit too many
        + "m7500004,Quint,Ada,1950-01-01\n"  # line 5: the pattern's case
        + "M75-0005,Quint,Ada,1950-01-01\n"  # line 6: characters an MRN may hold, not this site's
        + "M7500006,Good,Bea,1950-01-01\n"
    ).encode()
    with Services(settings) as vault:
        result = vault.patients.import_registration(data)
        assert (result.imported, result.refused) == (2, 4)
        assert [(e.line, e.code) for e in result.errors] == [(n, "mrn_pattern") for n in (3, 4, 5, 6)]
        assert all("750000" not in e.message and "CHARTVAULT_MRN_PATTERN" in e.message for e in result.errors)
        assert _mrns(vault) == {"M7500001", "M7500006"}
