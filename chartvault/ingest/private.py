"""Everything ChartVault writes is its owner's alone, and nothing it no longer needs stays behind.

The data folder holds PHI in every corner (catalog, originals, quarantined files, staged uploads, OCR
page images, the index, keys), so each ChartVault process sets its umask to 077 before it writes (new
files 0600, folders 0700, whatever library creates them) and makes the data folder itself 0700 (which
also closes files that an older version left readable: nobody else can traverse the folder).

OCR writes page images to ``<data_dir>/tmp/ocr-<pid>-<host>-...``; a process killed mid-page leaves
them. ``temp_leftovers`` finds what no live process owns (its pid is gone on this host, or it is older
than any page may take) for ``resume`` to remove and ``check`` to report.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

PRIVATE_UMASK = 0o077
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_OCR_DIR = re.compile(r"ocr-(\d+)-([0-9a-f]{8})-")


def make_private(data_dir: Path) -> None:
    """Owner-only from now on in this process, and the data folder itself 0700."""
    os.umask(PRIVATE_UMASK)
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)  # mkdir's mode is narrowed by the umask, never widened: set it


def ocr_workdir_prefix() -> str:
    """The prefix of this process's OCR scratch folders: it names the process that owns them."""
    return f"ocr-{os.getpid()}-{_HOST}-"


@dataclass(frozen=True, slots=True)
class TempLeftover:
    name: str  # the entry's name under <data_dir>/tmp (ids and pids only, never a document name)
    bytes: int
    why: str  # owner_gone | stale


def temp_leftovers(tmp_root: Path, stale_after_s: float, now: float | None = None) -> list[TempLeftover]:
    """Entries of ``tmp_root`` that no live process is using."""
    if not tmp_root.is_dir():
        return []
    now = now if now is not None else time.time()
    found = []
    for entry in sorted(tmp_root.iterdir()):
        why = _abandoned(entry, stale_after_s, now)
        if why is not None:
            found.append(TempLeftover(entry.name, _size(entry), why))
    return found


def remove_leftovers(tmp_root: Path, stale_after_s: float) -> list[TempLeftover]:
    """Remove what ``temp_leftovers`` finds; what was removed."""
    removed = []
    for leftover in temp_leftovers(tmp_root, stale_after_s):
        path = tmp_root / leftover.name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(leftover)
    return removed


def _abandoned(entry: Path, stale_after_s: float, now: float) -> str | None:
    match = _OCR_DIR.match(entry.name)
    if match is not None and match.group(2) == _HOST and not _alive(int(match.group(1))):
        return "owner_gone"
    try:
        age = now - entry.stat().st_mtime
    except FileNotFoundError:
        return None
    return "stale" if age > stale_after_s else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
