"""Object store on a local folder: content-addressed, write-once, verified on read.

Layout: ``<root>/sha256/ab/cd/<sha256>``. An object is written to a ``.tmp-*``
file next to its final place, hashed while copied, fsynced, checked against the
caller's sha256 and only then renamed into place, so a crash can leave a stray
temp file (see ``sweep_temp``) but never a partial object under its final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from chartvault.archive.objectstore import (
    IntegrityError,
    ObjectNotFoundError,
    ObjectRef,
    ObjectStoreError,
    verified_stream,
)

TEMP_PREFIX = ".tmp-"
_PREFIX = "sha256"
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

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    # -- paths -------------------------------------------------------------------------------

    def _path_for_key(self, key: str) -> Path:
        """The file of a key; refuses anything but a well-formed content key (no traversal)."""
        m = _KEY_RE.fullmatch(key) if isinstance(key, str) else None
        if m is None or m.group(3)[:2] != m.group(1) or m.group(3)[2:4] != m.group(2):
            raise ObjectStoreError("malformed object key")
        return self.root / _PREFIX / m.group(1) / m.group(2) / m.group(3)

    def _path_for_ref(self, ref: ObjectRef) -> Path:
        path = self._path_for_key(ref.key)
        if path.name != ref.sha256:
            raise ObjectStoreError(f"object key {ref.key} does not match the ref's sha256")
        return path

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

    def put_file(self, path: str, sha256: str, content_type: str) -> ObjectRef:
        """Store the file at ``path`` under its sha256, verifying the bytes actually written.

        Idempotent: when the object is already there with the same size it is not
        rewritten. An object of the wrong size (e.g. truncated) is replaced.
        ``content_type`` is not kept: the catalog records it.
        """
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
            os.chmod(tmp, 0o444)  # read-only before it gets its final name
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

    # -- housekeeping ------------------------------------------------------------------------

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
