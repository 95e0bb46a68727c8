"""A hot folder for scanners that scan to a share.

A file is taken once it has stopped growing (same size and mtime on two scans
and untouched for ``watch_settle_s``). Taking it is an atomic rename into
``.processing/`` under a unique name, recorded in the catalog; after its batch
is processed it is moved to ``done/`` or to ``failed/`` with a ``.reason.txt``
beside it. On restart, files found in ``.processing/`` are matched to their
catalog rows and finished, never taken twice.
"""

from __future__ import annotations

import logging
import os
import stat
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from chartvault.archive.models import (
    FILE_DONE_STATES,
    FILE_FAILED,
    FILE_QUARANTINED,
    BatchFile,
    HotFolderEntry,
)
from chartvault.schemas.batches import IngestSummary

log = logging.getLogger("chartvault.hotfolder")

SKIP_DIRS = {".processing", "done", "failed"}


@dataclass(slots=True)
class _Seen:
    size: int
    mtime: float


class Intake(Protocol):
    """The intake flow the hot folder feeds (``chartvault.services.intake.IntakeService``)."""

    def ingest(self, paths: Sequence[Path], *, source: str, station: str | None = None) -> IngestSummary: ...

    def resume(self, batch_ids: Sequence[str] | None = None) -> list[str]: ...


class HotFolder:
    def __init__(
        self,
        intake: Intake,
        sessions: sessionmaker[Session],
        folder: Path,
        *,
        station: str | None = None,
        interval_s: float = 2.0,
        settle_s: float = 5.0,
    ) -> None:
        self.intake = intake
        self.sessions = sessions
        self.folder = folder.resolve()
        self.station = station
        self.interval_s = interval_s
        self.settle_s = settle_s
        self.processing = self.folder / ".processing"
        self.done = self.folder / "done"
        self.failed = self.folder / "failed"
        for d in (self.processing, self.done, self.failed):
            d.mkdir(parents=True, exist_ok=True)
        self._seen: dict[str, _Seen] = {}
        self._recovered = False

    def run_forever(self) -> None:
        try:
            while True:
                self.poll()
                time.sleep(self.interval_s)
        except KeyboardInterrupt:
            log.info("hot folder stopped")

    def poll(self, final: bool = False) -> str | None:
        """One scan: finish anything interrupted, then take the files that are ready as one batch.

        With ``final`` a file needs only to be older than the settle time (for
        one-shot runs). Returns the id of the batch made, if any.
        """
        if not self._recovered:
            self._recover()
            self._recovered = True
        ready = self._ready_files(final)
        if not ready:
            return None
        claimed = [self._claim(p) for p in ready]
        return self._ingest([c for c in claimed if c is not None])

    # -- steps ----------------------------------------------------------------------------------

    def _ready_files(self, final: bool) -> list[Path]:
        now = time.time()
        settle = self.settle_s
        ready: list[Path] = []
        current: dict[str, _Seen] = {}
        for entry in sorted(os.scandir(self.folder), key=lambda e: e.name):
            if (
                entry.name.startswith(".")
                or entry.name in SKIP_DIRS
                or not entry.is_file(follow_symlinks=False)
            ):
                continue
            st = entry.stat(follow_symlinks=False)
            seen = _Seen(st.st_size, st.st_mtime)
            current[entry.name] = seen
            stable = self._seen.get(entry.name) == seen or final
            if stable and now - st.st_mtime >= settle:
                ready.append(Path(entry.path))
        self._seen = current
        return ready

    def _claim(self, path: Path) -> Path | None:
        """The file moved into ``.processing`` under a unique name, or None if it is gone or refused.

        Only a plain file with no other name is taken, as it is once claimed (the scan saw it, but the
        name may have been swapped since): a symbolic or hard link names a file outside the hot folder,
        which whoever can write to the share should not be able to have archived (another patient's
        scan, anything the service can read). It goes to ``failed/`` with the reason instead.
        """
        claim = self.processing / f"{uuid.uuid4().hex[:12]}-{path.name}"
        try:
            os.rename(path, claim)  # atomic: the scanner's name disappears exactly once
        except FileNotFoundError:
            return None
        with self.sessions() as s:
            s.add(HotFolderEntry(folder=str(self.folder), claim_name=claim.name, state="claimed"))
            s.commit()
        return None if self._refused(claim) else claim

    def _refused(self, claim: Path) -> bool:
        """Whether a claimed file is a link or special file, filed under ``failed/`` if so."""
        st = os.lstat(claim)
        refusal = (
            "not a plain file (a link or a special file)"
            if not stat.S_ISREG(st.st_mode)
            else "the file has other links (another name elsewhere)"
            if st.st_nlink > 1
            else None
        )
        if refusal is None:
            return False
        log.warning("hot folder refused a claimed file: %s", refusal)
        self._finish(claim, FILE_FAILED, "not_a_plain_file", refusal)
        return True

    def _ingest(self, claims: list[Path]) -> str | None:
        """One batch of claimed files; each is filed under done/ or failed/ once processed."""
        if not claims:
            return None
        summary = self.intake.ingest(claims, source="hotfolder", station=self.station)
        for f in summary.files:
            claim = Path(f.path)
            self._set_entry(claim, batch_id=summary.batch_id, file_id=f.file_id)
            if f.status == "refused":
                self._finish(claim, FILE_FAILED, f.reason_code, f.reason)
        self._file_away(summary.batch_id)
        return summary.batch_id

    def _file_away(self, batch_id: str) -> None:
        """Move every finished file of the batch out of ``.processing``."""
        with self.sessions() as s:
            entries = s.scalars(
                select(HotFolderEntry).where(
                    HotFolderEntry.batch_id == batch_id, HotFolderEntry.state == "claimed"
                )
            ).all()
            for e in entries:
                f = s.get(BatchFile, e.file_id) if e.file_id else None
                if f is not None and f.status in FILE_DONE_STATES:
                    self._finish(self.processing / e.claim_name, f.status, f.reason_code, f.reason)

    def _recover(self) -> None:
        """Finish files a previous run claimed but did not file away."""
        orphans: list[Path] = []
        batches: set[str] = set()
        for claim in sorted(self.processing.iterdir()):
            with self.sessions() as s:
                entry = s.scalars(
                    select(HotFolderEntry).where(
                        HotFolderEntry.folder == str(self.folder), HotFolderEntry.claim_name == claim.name
                    )
                ).first()
                row = s.scalars(
                    select(BatchFile)
                    .where(BatchFile.source_path == str(claim))
                    .order_by(BatchFile.created_at.desc())
                ).first()
                if entry is None:
                    s.add(HotFolderEntry(folder=str(self.folder), claim_name=claim.name, state="claimed"))
                    s.commit()
                if row is None:
                    orphans.append(claim)  # claimed, never staged: take it now (if a plain file)
                    continue
                if entry is not None and entry.file_id is None:
                    entry.batch_id, entry.file_id = row.batch_id, row.id
                    s.commit()
                batches.add(row.batch_id)
        for batch_id in sorted(batches):
            log.info("hot folder resuming batch=%s", batch_id)
            self.intake.resume([batch_id])
            self._file_away(batch_id)
        orphans = [claim for claim in orphans if not self._refused(claim)]
        if orphans:
            self._ingest(orphans)

    # -- helpers --------------------------------------------------------------------------------

    def _set_entry(self, claim: Path, batch_id: str | None = None, file_id: str | None = None) -> None:
        with self.sessions() as s:
            e = s.scalars(
                select(HotFolderEntry).where(
                    HotFolderEntry.folder == str(self.folder), HotFolderEntry.claim_name == claim.name
                )
            ).one()
            if batch_id:
                e.batch_id = batch_id
            if file_id:
                e.file_id = file_id
            s.commit()

    def _finish(self, claim: Path, status: str, code: str | None, reason: str | None) -> None:
        bad = status in (FILE_QUARANTINED, FILE_FAILED)
        original = claim.name.split("-", 1)[1] if "-" in claim.name else claim.name
        target = _free_name((self.failed if bad else self.done) / original)
        if os.path.lexists(claim):  # a refused link is moved, never followed
            os.replace(claim, target)
        if bad:
            target.with_name(target.name + ".reason.txt").write_text(
                f"status: {status}\ncode: {code}\nreason: {reason}\n", encoding="utf-8"
            )
        with self.sessions() as s:
            e = s.scalars(
                select(HotFolderEntry).where(
                    HotFolderEntry.folder == str(self.folder), HotFolderEntry.claim_name == claim.name
                )
            ).first()
            if e is not None:
                e.state = "failed" if bad else "done"
                s.commit()


def _free_name(path: Path) -> Path:
    """``path``, or ``name-2.ext``, ``name-3.ext``... if taken: never overwrite a filed scan."""
    if not path.exists():
        return path
    n = 2
    while True:
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        if not candidate.exists():
            return candidate
        n += 1
