"""Backups of the embedded archive (SQLite catalog + object store) and their restore.

A backup folder holds snapshots that share one content-addressed object folder::

    <dest>/objects/                     a LocalObjectStore: each object once, whatever the snapshots
    <dest>/snapshots/<stamp>/catalog.sqlite3     the catalog as one consistent moment (SQLite's backup API)
    <dest>/snapshots/<stamp>/manifest.json       what the snapshot needs: objects, locks, holds, hashes
    <dest>/snapshots/<stamp>/keys/, staging/, quarantine/

Why this shape. The catalog is copied first, while the server may be writing (SQLite's online backup
copies one consistent state); the objects copied are exactly those that snapshot names, each hashed as it
is copied and checked against its sha256 (a corrupt object is reported, never kept). Objects never
change, so a second backup to the same folder copies only what is new. Audit checkpoints are taken only
up to the snapshot's last entry: a later one would make the restored log look truncated. Retention and
legal holds are the store's, not the catalog's, so the manifest carries them and a restore puts them
back. ``prune`` keeps the newest snapshots and deletes the objects no kept snapshot names, so a document
destroyed under the retention schedule leaves the backups when its last snapshot ages out. The search
index is not backed up: a restore rebuilds it from the catalog.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from chartvault.archive import audit_checkpoints
from chartvault.archive.check import catalog_refs
from chartvault.archive.db import current_revision, make_engine, session_factory
from chartvault.archive.localstore import LocalObjectStore
from chartvault.archive.models import AuditEvent
from chartvault.archive.objectstore import IntegrityError, ObjectNotFoundError, ObjectRef, ObjectStore

FORMAT = 1
CATALOG = "catalog.sqlite3"
MANIFEST = "manifest.json"
COPIED_TREES = ("staging", "quarantine")  # in-flight originals and refused files: never silently dropped
COPY_THREADS = 4  # objects copied at once: a copy waits on the disk (fsync) far more than on the CPU
NAMED_MIN_LOCK = timedelta(days=1)  # a restored checkpoint whose lock ran out is locked this long again


class BackupError(Exception):
    """A backup or restore that cannot be made as asked (the message names ids and paths, never PHI)."""


@dataclass(slots=True)
class SavedObject:
    """One object a snapshot needs, with the lock the live store held on it."""

    key: str
    sha256: str
    size: int
    retain_until: str | None = None
    lock_mode: str | None = None
    legal_hold: bool = False


@dataclass(slots=True)
class Snapshot:
    """What ``backup`` made: the manifest of ``<dest>/snapshots/<stamp>``."""

    stamp: str
    schema: str | None
    catalog_sha256: str
    audit_entries: int
    objects: list[SavedObject] = field(default_factory=list)
    named: list[SavedObject] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    copied_objects: int = 0  # of ``objects`` (the few bytes of new checkpoints are not counted)
    copied_bytes: int = 0
    missing: list[str] = field(default_factory=list)  # owners ("document:<id>") whose object is gone
    corrupt: list[str] = field(default_factory=list)  # owners whose bytes no longer match their sha256

    @property
    def complete(self) -> bool:
        return not (self.missing or self.corrupt)

    def as_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "complete": self.complete, **asdict(self)}


def backup(data_dir: Path, store: LocalObjectStore, key_files: list[Path], dest: Path) -> Snapshot:
    """A new snapshot of the archive in ``data_dir`` (its SQLite catalog, ``store``'s objects) in
    ``dest``; objects already in ``dest`` are not copied again. Incomplete when an object the catalog
    names is missing or corrupt in the live store (listed by owner id; the snapshot is still written,
    so everything else is saved)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    folder = dest / "snapshots" / stamp
    folder.mkdir(mode=0o700, parents=True)
    catalog = folder / CATALOG
    _snapshot_catalog(data_dir / CATALOG, catalog)
    snap = Snapshot(stamp, None, _sha256_of(catalog), 0)
    kept = LocalObjectStore(dest / "objects")
    with _catalog_sessions(catalog) as (schema, sessions):
        snap.schema = schema
        with sessions() as s:
            snap.audit_entries = int(s.scalar(select(func.max(AuditEvent.seq))) or 0)
            refs = list(catalog_refs(s))
    _save_objects(store, kept, refs, snap)
    _save_checkpoints(store, kept, snap)
    snap.keys = _copy_keys(key_files, folder / "keys")
    for tree in COPIED_TREES:
        _copy_tree(data_dir / tree, folder / tree)
    _write_json(folder / MANIFEST, snap.as_dict())
    return snap


def _snapshot_catalog(live: Path, copy: Path) -> None:
    """One consistent state of the live catalog, while other processes may write it."""
    if not live.is_file():
        raise BackupError(f"no SQLite catalog at {live}")
    source = sqlite3.connect(f"file:{live}?mode=ro", uri=True)
    target = sqlite3.connect(copy)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()
    copy.chmod(0o600)


@contextmanager
def _catalog_sessions(catalog: Path) -> Iterator[tuple[str | None, Any]]:
    engine = make_engine(f"sqlite:///{catalog}")
    try:
        yield current_revision(engine), session_factory(engine)
    finally:
        engine.dispose()


def _save_objects(
    store: LocalObjectStore, kept: LocalObjectStore, refs: list[tuple[str, ObjectRef]], snap: Snapshot
) -> None:
    """Every object the snapshot names, ``COPY_THREADS`` at a time (each copy waits mostly on the disk:
    reads, fsyncs), recorded in the catalog's order."""
    with ThreadPoolExecutor(COPY_THREADS, thread_name_prefix="cv-backup") as pool:
        outcomes = pool.map(lambda item: _save_object(store, kept, item[1]), refs)
        for (owner, ref), (outcome, saved) in zip(refs, outcomes, strict=True):
            if saved is None:
                (snap.missing if outcome == "missing" else snap.corrupt).append(owner)
                continue
            snap.objects.append(saved)
            if outcome == "copied":
                snap.copied_objects += 1
                snap.copied_bytes += ref.size


def _save_object(
    store: LocalObjectStore, kept: LocalObjectStore, ref: ObjectRef
) -> tuple[str, SavedObject | None]:
    """("copied" | "kept", the object with its lock), or ("missing" | "corrupt", None)."""
    saved = SavedObject(ref.key, ref.sha256, ref.size)
    try:
        mode, until = store.retention(ref)
        saved.lock_mode, saved.retain_until = mode, until.isoformat() if until else None
        saved.legal_hold = store.legal_hold(ref)
        if kept.exists(ObjectRef(ref.key, ref.sha256, ref.size)):
            return "kept", saved
        _copy_object(store, ref, kept, None)
    except ObjectNotFoundError:
        return "missing", None
    except IntegrityError:
        return "corrupt", None
    return "copied", saved


def _copy_object(
    source: LocalObjectStore, ref: ObjectRef, target: ObjectStore, until: datetime | None
) -> None:
    """One object from ``source`` into ``target``, its bytes checked against its sha256 on the way
    (IntegrityError, ObjectNotFoundError): ``put_file`` hashes the file as it copies it, so each object is
    read once."""
    try:
        target.put_file(str(source.path_of(ref)), ref.sha256, "application/octet-stream", retain_until=until)
    except FileNotFoundError:
        raise ObjectNotFoundError(ref.key) from None


def _save_checkpoints(store: LocalObjectStore, kept: LocalObjectStore, snap: Snapshot) -> None:
    """The audit checkpoints the snapshot's log reaches (a later one would say entries are missing)."""
    for cp in audit_checkpoints.list_checkpoints(store):
        if cp.entries > snap.audit_entries:
            continue
        data = store.read_named(cp.object_key, cp.version_id)
        sha = hashlib.sha256(data).hexdigest()
        ref = ObjectRef(cp.object_key, sha, len(data), cp.version_id)
        mode, until = store.retention(ref)
        if not kept.exists(ObjectRef(cp.object_key, sha, len(data))):
            kept.put_named(cp.object_key, data, "application/json", retain_until=_at_least_a_day(until))
        iso = until.isoformat() if until else None
        snap.named.append(SavedObject(cp.object_key, sha, len(data), iso, mode))


def _at_least_a_day(until: datetime | None) -> datetime:
    floor = datetime.now(UTC) + NAMED_MIN_LOCK
    return until if until is not None and until > floor else floor


def _copy_keys(key_files: list[Path], folder: Path) -> list[str]:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    copied = []
    for path in key_files:
        if path.is_file():
            shutil.copyfile(path, folder / path.name)
            (folder / path.name).chmod(0o600)
            copied.append(path.name)
    return copied


def _copy_tree(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target, ignore=shutil.ignore_patterns(".tmp-*"), dirs_exist_ok=True)


def _write_json(path: Path, body: dict[str, Any]) -> None:
    path.write_text(json.dumps(body, indent=1, sort_keys=True), encoding="utf-8")
    path.chmod(0o600)


def _sha256_of(path: Path) -> str:
    with open(path, "rb") as fp:
        return hashlib.file_digest(fp, "sha256").hexdigest()


# -- listing and pruning ----------------------------------------------------------------------


def snapshots(dest: Path) -> list[str]:
    """The stamps of the snapshots in ``dest`` that have a manifest, oldest first."""
    folder = dest / "snapshots"
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if (p / MANIFEST).is_file())


def read_manifest(dest: Path, stamp: str) -> dict[str, Any]:
    path = dest / "snapshots" / stamp / MANIFEST
    try:
        body: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise BackupError(f"snapshot {stamp}: no readable manifest") from None
    if body.get("format") != FORMAT:
        raise BackupError(f"snapshot {stamp}: unknown manifest format {body.get('format')!r}")
    return body


def prune(dest: Path, keep: int) -> tuple[list[str], int]:
    """Delete all but the newest ``keep`` snapshots and the objects none of those names.
    (the stamps removed, the number of objects removed)."""
    if keep < 1:
        raise BackupError("keep at least one snapshot")
    stamps = snapshots(dest)
    gone, kept_stamps = stamps[:-keep], stamps[-keep:]
    needed = {
        o["key"] for s in kept_stamps for part in ("objects", "named") for o in read_manifest(dest, s)[part]
    }
    for stamp in gone:
        shutil.rmtree(dest / "snapshots" / stamp)
    return gone, _drop_unneeded(LocalObjectStore(dest / "objects"), needed)


def _drop_unneeded(kept: LocalObjectStore, needed: set[str]) -> int:
    removed = 0
    for ref in list(kept.iter_refs()):
        if ref.key not in needed:
            kept.delete_version(ref)
            removed += 1
    for listed in list(kept.list_prefix(audit_checkpoints.PREFIX)):
        if listed.key not in needed:
            _unlink_named(kept, listed.key)
            removed += 1
    return removed


def _unlink_named(kept: LocalObjectStore, key: str) -> None:
    """A backup's copy of a checkpoint: locked in the backup store for a day at least, so removed by
    its file (the backup folder is the operator's, not the archive's system of record)."""
    for path in (kept.root / "named" / key, kept.root / "locks" / "named" / f"{key}.json"):
        path.unlink(missing_ok=True)


# -- restore ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Restored:
    stamp: str
    objects: int
    bytes: int
    keys: list[str]


def restore(dest: Path, stamp: str, data_dir: Path, key_file: Path, lock_mode: str) -> Restored:
    """Snapshot ``stamp`` of ``dest`` into the empty ``data_dir``: catalog (its sha256 checked against
    the manifest), objects (each checked against its sha256) with their retention and holds, the audit
    checkpoints, keys, staging and quarantine, new objects locked in ``lock_mode`` (the site's). The
    search index is left to be rebuilt."""
    manifest = read_manifest(dest, stamp)
    if data_dir.exists() and any(data_dir.iterdir()):
        raise BackupError(f"{data_dir} is not empty: restore into a new data folder")
    folder = dest / "snapshots" / stamp
    if _sha256_of(folder / CATALOG) != manifest["catalog_sha256"]:
        raise BackupError(f"snapshot {stamp}: the catalog does not match its manifest's sha256")
    try:
        return _restore_into(folder, manifest, data_dir, key_file, lock_mode)
    except BackupError as exc:
        raise BackupError(
            f"{exc}; {data_dir} holds a partial restore: empty it before trying again"
        ) from None


def _restore_into(
    folder: Path, manifest: dict[str, Any], data_dir: Path, key_file: Path, lock_mode: str
) -> Restored:
    """The copying part of ``restore``, the checks on the snapshot as a whole done."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.copyfile(folder / CATALOG, data_dir / CATALOG)
    (data_dir / CATALOG).chmod(0o600)
    kept = LocalObjectStore(folder.parent.parent / "objects")  # <dest>/snapshots/<stamp> -> <dest>/objects
    target = LocalObjectStore(data_dir / "objects", lock_mode=lock_mode)
    done = Restored(folder.name, 0, 0, [])
    objects = [SavedObject(**saved) for saved in manifest["objects"]]
    with ThreadPoolExecutor(COPY_THREADS, thread_name_prefix="cv-restore") as pool:
        list(pool.map(lambda saved: _restore_object(kept, target, saved), objects))
    done.objects, done.bytes = len(objects), sum(saved.size for saved in objects)
    for saved in manifest["named"]:
        _restore_named(kept, target, SavedObject(**saved))
    done.keys = _restore_keys(folder / "keys", manifest["keys"], key_file)
    for tree in COPIED_TREES:
        _copy_tree(folder / tree, data_dir / tree)
    return done


def _restore_object(kept: LocalObjectStore, target: ObjectStore, saved: SavedObject) -> None:
    ref = ObjectRef(saved.key, saved.sha256, saved.size)
    try:
        _copy_object(kept, ref, target, _future(saved.retain_until))
    except ObjectNotFoundError:
        raise BackupError(f"object {saved.key} is missing from the backup") from None
    except IntegrityError:
        raise BackupError(f"object {saved.key} in the backup does not match its sha256") from None
    if saved.legal_hold:
        target.set_legal_hold(ref, True)


def _restore_named(kept: LocalObjectStore, target: ObjectStore, saved: SavedObject) -> None:
    data = kept.read_named(saved.key)
    if hashlib.sha256(data).hexdigest() != saved.sha256:
        raise BackupError(f"checkpoint {saved.key} in the backup does not match its sha256")
    target.put_named(
        saved.key, data, "application/json", retain_until=_at_least_a_day(_future(saved.retain_until))
    )


def _future(iso: str | None) -> datetime | None:
    when = datetime.fromisoformat(iso) if iso else None
    return when if when is not None and when > datetime.now(UTC) else None


def _restore_keys(folder: Path, names: list[str], key_file: Path) -> list[str]:
    restored = []
    for name in names:
        target = key_file if name == key_file.name else key_file.parent / name
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.copyfile(folder / name, target)
        os.chmod(target, 0o600)
        restored.append(name)
    return restored
