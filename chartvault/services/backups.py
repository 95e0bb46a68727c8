"""Backups of the embedded defaults (SQLite catalog, local or S3 objects) and their restore.

The file work is ``chartvault.archive.backup``'s; this layer refuses what it cannot back up (a
PostgreSQL catalog has its own tools), audits each backup in the archive's log and each restore in the
restored one, and after a restore rebuilds the search index and checks the whole archive, so the
operator learns at once whether what came back is complete.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from chartvault.archive import backup as files
from chartvault.archive.localstore import LocalObjectStore
from chartvault.archive.models import AuditEvent
from chartvault.archive.objectstore import ObjectStore
from chartvault.config import Settings
from chartvault.errors import Conflict, InvalidInput, NotFound
from chartvault.schemas.operations import BackupRecord
from chartvault.services.caller import AuditTrail

log = logging.getLogger(__name__)


class BackupService:
    """Snapshots of this archive into a backup folder, their pruning, and restores from one."""

    def __init__(
        self,
        settings: Settings,
        store: Callable[[], ObjectStore],
        audit: AuditTrail,
        sessions: sessionmaker[Session],
    ) -> None:
        self.settings, self.store, self.audit = settings, store, audit  # the store opened when needed
        self.sessions = sessions

    def recent(self, limit: int = 5) -> list[BackupRecord]:
        """The newest backups of this archive, newest first, from their ``backup.create`` audit entries
        (the backup folders are the operator's: the archive knows only what it recorded). Not a read of
        patient data, so not audited itself."""
        query = (
            select(AuditEvent.at, AuditEvent.target_id, AuditEvent.outcome, AuditEvent.detail)
            .where(AuditEvent.action == "backup.create")
            .order_by(AuditEvent.seq.desc())
            .limit(limit)
        )
        with self.sessions() as s:
            rows = s.execute(query).all()
        return [_record(at, stamp, outcome, detail or {}) for at, stamp, outcome, detail in rows]

    def create(self, dest: Path, keep: int | None = None) -> dict[str, Any]:
        """A snapshot in ``dest`` (and, with ``keep``, the older ones pruned), audited ``backup.create``
        with its stamp and counts. The answer: the snapshot's summary, the problems by owner id."""
        _embedded(self.settings)
        store = self.store()
        if not isinstance(store, LocalObjectStore):  # _embedded said local: the settings chose this one
            raise InvalidInput("this command backs up the embedded local object store")
        snap = _refused_as(lambda: files.backup(self.settings.data_dir, store, self._key_files(), dest))
        summary = _summary(snap)
        detail = {k: summary[k] for k in ("stamp", "objects", "copied_objects", "complete")}
        self.audit("backup.create", "backup", snap.stamp, "ok" if snap.complete else "incomplete", detail)
        log.info("backup stamp=%s objects=%d copied=%d", snap.stamp, len(snap.objects), snap.copied_objects)
        if keep is not None:  # after the entry: a prune that fails leaves the snapshot made and recorded
            gone, removed = _refused_as(lambda: files.prune(dest, keep))
            summary["pruned_snapshots"], summary["pruned_objects"] = gone, removed
        return summary

    def restored(self, done: files.Restored) -> None:
        """Record, in the restored archive's own log, that it came back from snapshot ``done.stamp``."""
        self.audit("backup.restore", "backup", done.stamp, detail={"objects": done.objects})

    def _key_files(self) -> list[Path]:
        """The audit key ring file (wherever it is set) and every other key file of the data folder."""
        folder = self.settings.data_dir / "keys"
        others = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
        return [self.settings.audit_key_path, *(p for p in others if p != self.settings.audit_key_path)]

    @staticmethod
    def list(dest: Path) -> list[dict[str, Any]]:
        """Every snapshot of ``dest``, oldest first: its stamp, completeness and counts."""
        found = []
        for stamp in files.snapshots(dest):
            m = _refused_as(lambda stamp=stamp: files.read_manifest(dest, stamp))
            found.append(
                {
                    "stamp": stamp,
                    "complete": m["complete"],
                    "objects": len(m["objects"]),
                    "bytes": sum(o["size"] for o in m["objects"]),
                    "schema": m["schema"],
                }
            )
        return found


def restore(settings: Settings, dest: Path, stamp: str | None) -> files.Restored:
    """Snapshot ``stamp`` (the newest when None) of ``dest`` into ``settings.data_dir``, which must be
    empty. The restored archive is then opened as usual: ``BackupService.restored`` audits the restore
    in its own log, and the archive check (``check --repair``) rebuilds its index and says whether it
    is whole."""
    _embedded(settings)
    stamps = files.snapshots(dest)
    if not stamps:
        raise NotFound(f"no snapshot in {dest}")
    chosen = stamp or stamps[-1]
    if chosen not in stamps:
        raise NotFound(f"no snapshot {chosen} in {dest}")
    key_file, mode = settings.audit_key_path, settings.s3_lock_mode
    restored: files.Restored = _refused_as(
        lambda: files.restore(dest, chosen, settings.data_dir, key_file, mode)
    )
    return restored


def _embedded(settings: Settings) -> None:
    """Refused unless the archive is the embedded one: a database server and an S3 bucket have their own
    backups, and a bucket's versions could not come back into a local folder as the catalog names them."""
    if not settings.catalog_url.startswith("sqlite"):
        raise InvalidInput(
            "the catalog is not the embedded SQLite one: back it up with its database's own tools "
            "(PostgreSQL: pg_dump or continuous archiving), objects with the bucket's versioning and "
            "replication"
        )
    if settings.object_store != "local":
        raise InvalidInput(
            "the objects are in an S3 bucket: keep them with the bucket's versioning and replication "
            "(Object Lock holds on the replica); this command backs up the embedded local store"
        )


def _record(at: datetime, stamp: str | None, outcome: str, detail: dict[str, Any]) -> BackupRecord:
    when = at if at.tzinfo is not None else at.replace(tzinfo=UTC)  # SQLite gives it back without its zone
    return BackupRecord(
        at=when.isoformat(),
        stamp=stamp or "",
        complete=outcome == "ok",
        objects=int(detail.get("objects", 0)),
        copied_objects=int(detail.get("copied_objects", 0)),
    )


def _summary(snap: files.Snapshot) -> dict[str, Any]:
    return {
        "stamp": snap.stamp,
        "complete": snap.complete,
        "objects": len(snap.objects),
        "checkpoints": len(snap.named),
        "bytes": sum(o.size for o in snap.objects),
        "copied_objects": snap.copied_objects,
        "copied_bytes": snap.copied_bytes,
        "audit_entries": snap.audit_entries,
        "keys": snap.keys,
        "missing": snap.missing,
        "corrupt": snap.corrupt,
    }


def _refused_as(work: Any) -> Any:
    """A backup folder that cannot serve is a refusal (exit 1 / 409), not a traceback."""
    try:
        return work()
    except files.BackupError as exc:
        raise Conflict(str(exc), code="backup_refused") from None
