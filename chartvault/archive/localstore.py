"""Object store on a local folder: content-addressed, write-once, verified on read.

Layout: ``<root>/sha256/ab/cd/<sha256>``. An object is written to a ``.tmp-*``
file next to its final place, hashed while copied, fsynced, checked against the
caller's sha256 and only then renamed into place, so a crash can leave a stray
temp file (see ``sweep_temp``) but never a partial object under its final name.

Retention and legal holds follow S3 Object Lock semantics (GOVERNANCE or
COMPLIANCE, retain-until only ever extended, a hold blocks every delete) and are
kept in ``<root>/locks/ab/cd/<sha256>.json``. This store enforces them on every
call through it; it cannot stop root with ``rm`` - that needs WORM storage (S3).
A local object has one version, so refs carry no version id.

Named objects (small write-once records found by prefix, such as audit checkpoints)
live in ``<root>/named/<key>``, read-only, with their locks in ``<root>/locks/named/``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from chartvault.archive.objectstore import (
    LOCK_COMPLIANCE,
    LOCK_GOVERNANCE,
    NAMED_MAX_BYTES,
    IntegrityError,
    ListedObject,
    ObjectExistsError,
    ObjectNotFoundError,
    ObjectRef,
    ObjectStoreError,
    RetentionLockedError,
    check_named_key,
    check_named_prefix,
    is_named_key,
    verified_stream,
)

TEMP_PREFIX = ".tmp-"
_PREFIX = "sha256"
_NAMED = "named"
_SHA_RE = re.compile(r"[0-9a-f]{64}")
_KEY_RE = re.compile(r"sha256/([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{64})")
_COPY_CHUNK = 1 << 20


def _check_sha(sha256: str) -> str:
    if not isinstance(sha256, str) or not _SHA_RE.fullmatch(sha256):
        raise ObjectStoreError("sha256 must be 64 lowercase hex characters")
    return sha256


def key_for(sha256: str) -> str:
    """The object key of some content; the only keys this store accepts."""
    sha = _check_sha(sha256)
    return f"{_PREFIX}/{sha[:2]}/{sha[2:4]}/{sha}"


def _fsync_dir(path: Path) -> None:
    # Makes a rename or a new directory entry durable, not just the file's bytes.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalObjectStore:
    """An ``ObjectStore`` in a folder on local disk (the single-machine default)."""

    def __init__(self, root: Path | str, lock_mode: str = LOCK_GOVERNANCE) -> None:
        if lock_mode not in (LOCK_GOVERNANCE, LOCK_COMPLIANCE):
            raise ValueError("lock_mode must be GOVERNANCE or COMPLIANCE")
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock_mode = lock_mode

    # -- paths -------------------------------------------------------------------------------

    def _path_for_key(self, key: str) -> Path:
        """The file of a key; refuses anything but a well-formed content or named key (no traversal)."""
        if is_named_key(key):
            return self.root / _NAMED / key
        m = _KEY_RE.fullmatch(key) if isinstance(key, str) else None
        if m is None or m.group(3)[:2] != m.group(1) or m.group(3)[2:4] != m.group(2):
            raise ObjectStoreError("malformed object key")
        return self.root / _PREFIX / m.group(1) / m.group(2) / m.group(3)

    def _path_for_ref(self, ref: ObjectRef) -> Path:
        path = self._path_for_key(ref.key)
        if not is_named_key(ref.key) and path.name != ref.sha256:
            raise ObjectStoreError(f"object key {ref.key} does not match the ref's sha256")
        return path

    def path_of(self, ref: ObjectRef) -> Path:
        """The file holding an object, for a copy that checks it on the way (``put_file`` hashes what it
        copies): one read instead of a verified read into a scratch file and a second read from it."""
        return self._path_for_ref(ref)

    def _make_dirs(self, directory: Path) -> None:
        """Create the fan-out folders, fsyncing each parent whose entries changed."""
        missing: list[Path] = []
        d = directory
        while not d.exists():
            missing.append(d)
            d = d.parent
        for d in reversed(missing):
            with contextlib.suppress(FileExistsError):  # another writer made it first
                d.mkdir()
            _fsync_dir(d.parent)

    # -- ObjectStore -------------------------------------------------------------------------

    def put_file(
        self,
        path: str,
        sha256: str,
        content_type: str,
        *,
        retain_until: datetime | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ObjectRef:
        """Store the file at ``path`` under its sha256, locked until ``retain_until``.

        Idempotent: when the object is already there with the same size it is not
        rewritten (its retention is extended, never shortened). An object of the
        wrong size (e.g. truncated) is replaced. ``content_type`` is not kept: the
        catalog records it. Without ``retain_until`` the object has no lock.
        """
        if retain_until is not None and _utc(retain_until) <= datetime.now(UTC):
            raise ValueError("retain_until must be in the future")
        checked_tags = _check_tags(tags)
        ref = self._put(path, sha256)
        if retain_until is not None:
            self.extend_retention(ref, retain_until)
        if checked_tags is not None:
            self._update_lock(ref, tags=checked_tags)
        return ref

    def _put(self, path: str, sha256: str) -> ObjectRef:
        key = key_for(sha256)
        final = self._path_for_key(key)
        src_size = os.stat(path).st_size
        with contextlib.suppress(FileNotFoundError):
            if final.stat().st_size == src_size:
                return ObjectRef(key=key, sha256=sha256, size=src_size)

        self._make_dirs(final.parent)
        tmp = final.parent / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
        try:
            digest = hashlib.sha256()
            size = 0
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with open(fd, "wb", closefd=True) as out, open(path, "rb") as src:
                while chunk := src.read(_COPY_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            actual = digest.hexdigest()
            if actual != sha256:
                raise IntegrityError(f"sha256 mismatch on put: expected {sha256}, got {actual}")
            os.chmod(tmp, 0o400)  # read-only (and owner-only) before it gets its final name
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        _fsync_dir(final.parent)
        return ObjectRef(key=key, sha256=sha256, size=size)

    def open(self, ref: ObjectRef, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Stream the object's bytes; IntegrityError at the end if they do not hash to ref.sha256.

        A missing object raises ObjectNotFoundError at once (not on first iteration).
        The caller must treat everything streamed as suspect until iteration ends cleanly.
        """
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        path = self._path_for_ref(ref)
        try:
            fp = open(path, "rb")  # noqa: SIM115 - closed by the generator
        except FileNotFoundError:
            raise ObjectNotFoundError(f"object not found: {ref.key}") from None
        return self._stream(fp, ref, chunk_size)

    @staticmethod
    def _stream(fp: BinaryIO, ref: ObjectRef, chunk_size: int) -> Iterator[bytes]:
        with fp:
            yield from verified_stream(iter(lambda: fp.read(chunk_size), b""), ref)

    def ping(self) -> None:
        """The folder is there and this process may write to it (a readiness probe)."""
        if not self.root.is_dir() or not os.access(self.root, os.W_OK | os.X_OK):
            raise ObjectStoreError(f"object folder {self.root} is missing or not writable")

    def exists(self, ref: ObjectRef) -> bool:
        """True when the object is present with the ref's size (contents are checked on read)."""
        try:
            return self._path_for_ref(ref).stat().st_size == ref.size
        except FileNotFoundError:
            return False

    def read_into(self, ref: ObjectRef, fp: BinaryIO) -> None:
        """Copy the whole object into ``fp``; on IntegrityError what was written must be discarded."""
        for chunk in self.open(ref):
            fp.write(chunk)

    # -- locks (S3 Object Lock semantics) ------------------------------------------------------

    def _lock_path(self, ref: ObjectRef) -> Path:
        obj = self._path_for_ref(ref)
        if is_named_key(ref.key):
            return self.root / "locks" / _NAMED / f"{ref.key}.json"
        return self.root / "locks" / obj.parent.parent.name / obj.parent.name / f"{obj.name}.json"

    def _lock(self, ref: ObjectRef) -> dict[str, object]:
        try:
            lock: dict[str, object] = json.loads(self._lock_path(ref).read_text())
            return lock
        except FileNotFoundError:
            if not self.exists(ref):
                raise ObjectNotFoundError(f"object not found: {ref.key}") from None
            return {}

    def _update_lock(self, ref: ObjectRef, **changes: object) -> None:
        self._write_lock(self._lock_path(ref), {**self._lock(ref), **changes})

    def _write_lock(self, path: Path, state: dict[str, object]) -> None:
        self._make_dirs(path.parent)
        tmp = path.parent / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
        with open(tmp, "w") as out:
            json.dump(state, out, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)

    def retention(self, ref: ObjectRef) -> tuple[str | None, datetime | None]:
        """The object's (lock mode, retain-until in UTC), or (None, None) when it has none."""
        state = self._lock(ref)
        until = state.get("retain_until")
        if not isinstance(until, str):
            return None, None
        return str(state.get("mode") or self.lock_mode), datetime.fromisoformat(until)

    def extend_retention(self, ref: ObjectRef, until: datetime) -> tuple[str, datetime]:
        """Make retain-until at least ``until``; never shortens, keeps the mode it was locked with."""
        until = _utc(until)
        mode, current = self.retention(ref)
        if current is not None and current >= until:
            return mode or self.lock_mode, current
        new_mode = mode or self.lock_mode
        self._update_lock(ref, mode=new_mode, retain_until=until.isoformat())
        return new_mode, until

    def set_legal_hold(self, ref: ObjectRef, on: bool) -> None:
        """Place or lift the hold flag (the catalog records who and why)."""
        self._update_lock(ref, legal_hold=bool(on))

    def legal_hold(self, ref: ObjectRef) -> bool:
        return bool(self._lock(ref).get("legal_hold"))

    def tags(self, ref: ObjectRef) -> dict[str, str]:
        found = self._lock(ref).get("tags")
        return dict(found) if isinstance(found, dict) else {}

    def versions(self, ref: ObjectRef) -> list[ObjectRef]:
        """The one version a local object has, or none once deleted."""
        return [ObjectRef(key=ref.key, sha256=ref.sha256, size=ref.size)] if self.exists(ref) else []

    def delete_version(self, ref: ObjectRef, bypass_governance: bool = False) -> None:
        """Delete the object unless a hold or an unexpired lock protects it (as S3 would refuse).

        GOVERNANCE gives way to ``bypass_governance``; COMPLIANCE and holds never do.
        """
        path = self._path_for_ref(ref)
        if not path.exists():
            raise ObjectNotFoundError(f"object not found: {ref.key}")
        if self.legal_hold(ref):
            raise RetentionLockedError(f"delete of {ref.key} refused by the store: legal hold is on")
        mode, until = self.retention(ref)
        locked = until is not None and until > datetime.now(UTC)
        if locked and (mode == LOCK_COMPLIANCE or not bypass_governance):
            extra = "" if mode == LOCK_COMPLIANCE else ", bypass not requested"
            raise RetentionLockedError(
                f"delete of {ref.key} refused by the store: {mode} retention until {until}{extra}"
            )
        path.unlink()
        _fsync_dir(path.parent)
        with contextlib.suppress(FileNotFoundError):
            self._lock_path(ref).unlink()

    # -- named objects -----------------------------------------------------------------------

    def put_named(self, key: str, data: bytes, content_type: str, *, retain_until: datetime) -> ObjectRef:
        """Write ``data`` once under ``key``, read-only and locked until ``retain_until``.

        The lock is written before the object appears and the object appears by a hard link
        (which fails if the name exists), so no reader ever sees it unlocked and two writers
        of one key cannot both succeed. ``content_type`` is not kept.
        """
        check_named_key(key)
        if len(data) > NAMED_MAX_BYTES:
            raise ValueError(f"a named object holds at most {NAMED_MAX_BYTES} bytes")
        until = _utc(retain_until)
        if until <= datetime.now(UTC):
            raise ValueError("retain_until must be in the future")
        ref = ObjectRef(key=key, sha256=hashlib.sha256(data).hexdigest(), size=len(data))
        final = self._path_for_key(key)
        if final.exists():
            raise ObjectExistsError(f"named object {key} already exists; it is never replaced")
        self._lock_before_write(ref, until)
        self._make_dirs(final.parent)
        tmp = final.parent / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with open(fd, "wb", closefd=True) as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o400)
            os.link(tmp, final)
        except FileExistsError:
            raise ObjectExistsError(f"named object {key} already exists; it is never replaced") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        _fsync_dir(final.parent)
        return ref

    def _lock_before_write(self, ref: ObjectRef, until: datetime) -> None:
        """Lock a named object about to be written; a lock left by an earlier writer only grows."""
        path = self._lock_path(ref)
        try:
            state: dict[str, object] = json.loads(path.read_text())
        except FileNotFoundError:
            state = {"mode": self.lock_mode}
        earlier = state.get("retain_until")
        if not isinstance(earlier, str) or datetime.fromisoformat(earlier) < until:
            state["retain_until"] = until.isoformat()
        self._write_lock(path, state)

    def list_prefix(self, prefix: str) -> Iterator[ListedObject]:
        """Every named object whose key starts with ``prefix``, in key order (one version each)."""
        check_named_prefix(prefix)
        base = self.root / _NAMED
        start = base / prefix.rsplit("/", 1)[0]
        found: list[ListedObject] = []
        for dirpath, _dirs, files in os.walk(start):
            for name in files:
                path = Path(dirpath, name)
                key = path.relative_to(base).as_posix()
                if key.startswith(prefix) and is_named_key(key):
                    st = path.stat()
                    found.append(
                        ListedObject(key, st.st_size, None, datetime.fromtimestamp(st.st_mtime, UTC))
                    )
        yield from sorted(found, key=lambda o: o.key)

    def read_named(self, key: str, version_id: str | None = None) -> bytes:
        """The object's bytes (a local object has one version: a version id finds nothing)."""
        path = self._path_for_key(check_named_key(key))
        if version_id is not None:
            raise ObjectNotFoundError(f"object not found: {key} version {version_id}")
        try:
            with open(path, "rb") as fp:
                data = fp.read(NAMED_MAX_BYTES + 1)
        except FileNotFoundError:
            raise ObjectNotFoundError(f"object not found: {key}") from None
        if len(data) > NAMED_MAX_BYTES:
            raise ObjectStoreError(f"named object {key} is over {NAMED_MAX_BYTES} bytes")
        return data

    # -- housekeeping ------------------------------------------------------------------------

    def iter_refs(self) -> Iterator[ObjectRef]:
        """Every object in the folder (temp files and lock sidecars are not objects)."""
        for dirpath, _dirs, files in os.walk(self.root / _PREFIX):
            for name in files:
                if _SHA_RE.fullmatch(name):
                    path = Path(dirpath, name)
                    yield ObjectRef(key=key_for(name), sha256=name, size=path.stat().st_size)

    def sweep_temp(self, older_than_s: float = 3600.0) -> int:
        """Remove temp files left by crashed writers; returns how many were removed.

        Only temps older than ``older_than_s`` are touched, so a write in progress in
        another process is left alone.
        """
        cutoff = time.time() - older_than_s
        removed = 0
        base = self.root / _PREFIX
        for dirpath, _dirnames, filenames in os.walk(base):
            for name in filenames:
                if not name.startswith(TEMP_PREFIX):
                    continue
                p = Path(dirpath, name)
                try:
                    if p.stat().st_mtime < cutoff:
                        p.unlink()
                        removed += 1
                except FileNotFoundError:
                    continue
        return removed


def _utc(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError("retention dates must be timezone-aware")
    return when.astimezone(UTC)


def _check_tags(tags: Mapping[str, str] | None) -> dict[str, str] | None:
    """The same limits S3 puts on object tags, so both stores accept the same labels."""
    if tags is None:
        return None
    if len(tags) > 10:
        raise ValueError("at most 10 object tags")
    out: dict[str, str] = {}
    for k, v in tags.items():
        if not isinstance(k, str) or not isinstance(v, str) or not 0 < len(k) <= 128 or len(v) > 256:
            raise ValueError("tag keys must be 1-128 characters and values at most 256")
        out[k] = v
    return out
