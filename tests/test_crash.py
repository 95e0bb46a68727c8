"""Fault injection: SIGKILL the ingest at 20 random points, restart, and prove nothing is lost.

Rounds land in staging, OCR, catalog commits, store writes and index commits (random delays
over a batch of scanned and born-digital files). Afterwards every file is archived exactly
once, and ``chartvault check`` finds the catalog, the object store and the index in agreement,
with no orphan objects and no half-written file.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each test here drives a real server, browser or pipeline

CLI = [sys.executable, "-m", "chartvault.cli"]
ROUNDS = 20


def _env(data: Path) -> dict[str, str]:
    return {**os.environ, "CHARTVAULT_DATA_DIR": str(data), "CHARTVAULT_WORKERS": "2"}


def _run_and_kill(args: list[str], data: Path, delay: float) -> bool:
    """Start the command, SIGKILL its whole process group after ``delay`` s; True if it was killed."""
    proc = subprocess.Popen(
        [*CLI, *args],
        env=_env(data),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        proc.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return True


def test_twenty_sigkills_lose_nothing_and_duplicate_nothing(tmp_path: Path, corpus: list[dict]) -> None:
    rng = random.Random(20261123)
    scanned = [e for e in corpus if e["kind"] == "synthetic_scan" and e["page_count"] == 1][:10]
    born = [e for e in corpus if e["format"] == "pdf_text"][:5]
    folders: list[Path] = []
    for i in range(5):  # five scanning sessions, each of two scanned pages and one born-digital PDF
        folder = tmp_path / f"scans-{i}"
        folder.mkdir()
        for e in (scanned[2 * i], scanned[2 * i + 1], born[i]):
            shutil.copy(e["file"], folder / e["file"].name)
        folders.append(folder)
    chosen = scanned + born
    data = tmp_path / "data"

    kills = 0
    for round_no in range(ROUNDS):
        # Every fourth round starts a new session's ingest (killed while staging or in OCR); the others
        # resume whatever is unfinished (killed in OCR, catalog commits, store writes, index commits).
        if round_no % 4 == 0:
            args = ["ingest", str(folders[round_no // 4]), "--json"]
        else:
            args = ["resume", "--json"]
        kills += _run_and_kill(args, data, delay=rng.uniform(0.8, 4.0))
    for folder in folders:  # a session cut off before staging is simply scanned again
        again = subprocess.run(
            [*CLI, "ingest", str(folder), "--json"],
            env=_env(data),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert again.returncode in (0, 3), again.stderr[-2000:]
    resumed = subprocess.run([*CLI, "resume"], env=_env(data), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    print(f"crash test: {kills} of {ROUNDS} rounds killed mid-run")
    assert kills >= 10, "too few rounds were interrupted to mean anything"

    con = sqlite3.connect(data / "catalog.sqlite3")
    try:
        live = con.execute(
            "select sha256, count(*) from documents"
            " where status not in ('disposed', 'superseded') group by sha256"
        ).fetchall()
        unfinished = con.execute(
            "select count(*) from batches where status not in ('complete', 'complete_with_errors')"
        ).fetchone()[0]
        forms = dict(
            con.execute(
                "select rendition_form, count(*) from documents"
                " where status not in ('disposed', 'superseded') group by rendition_form"
            ).fetchall()
        )
    finally:
        con.close()
    import hashlib

    expected = {hashlib.sha256(p.read_bytes()).hexdigest() for f in folders for p in f.iterdir()}
    assert {sha for sha, _ in live} == expected, "a file was lost"
    assert all(n == 1 for _, n in live), f"a file was archived twice: {live}"
    assert unfinished == 0
    # Every scanned page has its searchable rendition (built again after a kill, onto the same object);
    # a born-digital PDF is its own.
    assert forms == {"pdf": len(scanned), "original": len(born)}, forms
    objects = len(expected) + len(scanned)

    check = subprocess.run(
        [*CLI, "check", "--json"], env=_env(data), capture_output=True, text=True, timeout=600
    )
    report = json.loads(check.stdout)
    assert check.returncode == 0, json.dumps(report, indent=1)
    assert report["store"]["orphans"] == [] and report["store"]["objects_checked"] == objects
    assert report["index"]["consistent"]
    # A write cut off mid-way leaves at most a ".tmp-*" file, never a partial object under a final name.
    finals = [
        p for p in (data / "objects" / "sha256").rglob("*") if p.is_file() and not p.name.startswith(".tmp-")
    ]
    assert len(finals) == objects
    for e in chosen:
        found = subprocess.run(
            [*CLI, "search", "--mrn", e["patient"]["mrn"], "--json"],
            env=_env(data),
            capture_output=True,
            text=True,
        )
        assert len(json.loads(found.stdout)["hits"]) == 1, e["file"].name
