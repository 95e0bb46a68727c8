"""The object store interface: where originals (and later derivatives) are kept.

Objects are immutable and content-addressed by sha256. A backend returns an
``ObjectRef`` naming exactly what it stored (key and, on S3, the version id) and
the catalog keeps that ref; reads name the ref and verify the sha256.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Protocol


class ObjectStoreError(Exception):
    """The store could not do what was asked (message carries ids only, never content)."""


class IntegrityError(ObjectStoreError):
    """Stored bytes do not match their recorded sha256."""


class ObjectNotFoundError(ObjectStoreError):
    """No object (or no such version) is stored under the ref's key."""


@dataclass(frozen=True, slots=True)
class ObjectRef:
    key: str
    sha256: str
    size: int
    version_id: str | None = None


class RetentionLockedError(ObjectStoreError):
    """The store refused to delete (or shorten) because a retention lock or legal hold is in force."""


class ObjectExistsError(ObjectStoreError):
    """A write-once named object already exists under that key (it is never replaced)."""


@dataclass(frozen=True, slots=True)
class ListedObject:
    """One stored version found by listing a prefix (listing gives no sha256; reads check their own)."""

    key: str
    size: int
    version_id: str | None = None
    last_modified: datetime | None = None


NAMED_MAX_BYTES = 1 << 20
"""Largest named object: they are small records (checkpoints), read whole into memory."""

# Named keys live outside the content namespace ("sha256/..."): lowercase first segment, then
# segments that start with a letter or digit, so ".", "..", temp files and absolute paths never match.
_NAMED_KEY_RE = re.compile(r"(?!sha256/)[a-z0-9][a-z0-9-]{0,62}(/[A-Za-z0-9][A-Za-z0-9._-]{0,254}){1,8}")
_NAMED_PREFIX_RE = re.compile(r"(?!sha256/)[a-z0-9][a-z0-9-]{0,62}/([A-Za-z0-9][A-Za-z0-9._-]{0,254}/?)*")


def check_named_key(key: str) -> str:
    """``key`` if it is a well-formed named key (never a content key, never a path escape)."""
    if not isinstance(key, str) or len(key) > 1000 or not _NAMED_KEY_RE.fullmatch(key):
        raise ObjectStoreError("malformed named object key")
    return key


def check_named_prefix(prefix: str) -> str:
    """``prefix`` if it can only match named keys (a first segment and its slash, at least)."""
    if not isinstance(prefix, str) or len(prefix) > 1000 or not _NAMED_PREFIX_RE.fullmatch(prefix):
        raise ObjectStoreError("malformed named object prefix")
    return prefix


def is_named_key(key: str) -> bool:
    return isinstance(key, str) and len(key) <= 1000 and _NAMED_KEY_RE.fullmatch(key) is not None


LOCK_GOVERNANCE = "GOVERNANCE"
LOCK_COMPLIANCE = "COMPLIANCE"


class ObjectStore(Protocol):
    """Where originals live. Every backend enforces retention and legal holds itself,
    so a delete that goes around the catalog is still refused by the store."""

    @property
    def lock_mode(self) -> str:
        """GOVERNANCE or COMPLIANCE: the mode of versions written from now on."""

    def ping(self) -> None:
        """One cheap round trip: ObjectStoreError unless the store answers and holds the archive."""

    def put_file(
        self,
        path: str,
        sha256: str,
        content_type: str,
        *,
        retain_until: datetime | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ObjectRef:
        """Store the file at ``path`` whose sha256 the caller computed, locked until ``retain_until``.

        Idempotent: storing the same content twice returns a ref to the one copy
        (whose retention is extended, never shortened). The sha256 is checked
        against the bytes actually written. ``tags`` are operator labels (at most 10).
        """

    def open(self, ref: ObjectRef, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Stream the object's bytes; raises IntegrityError at the end if they do not hash to ref.sha256."""

    def exists(self, ref: ObjectRef) -> bool: ...

    def read_into(self, ref: ObjectRef, fp: BinaryIO) -> None:
        """Copy the whole object into ``fp``, verifying its sha256."""

    def retention(self, ref: ObjectRef) -> tuple[str | None, datetime | None]:
        """(lock mode, retain-until in UTC) of the ref's version, or (None, None)."""

    def extend_retention(self, ref: ObjectRef, until: datetime) -> tuple[str, datetime]:
        """Make the version's retain-until at least ``until`` (never shortens)."""

    def set_legal_hold(self, ref: ObjectRef, on: bool) -> None: ...

    def legal_hold(self, ref: ObjectRef) -> bool: ...

    def tags(self, ref: ObjectRef) -> dict[str, str]: ...

    def versions(self, ref: ObjectRef) -> list[ObjectRef]:
        """Every stored version of the ref's key (the ref's own included while it exists)."""

    def delete_version(self, ref: ObjectRef, bypass_governance: bool = False) -> None:
        """Permanently delete exactly this version; RetentionLockedError while a lock or hold holds it."""

    def iter_refs(self) -> Iterator[ObjectRef]:
        """Every stored object version (for fixity and orphan checks); sizes as stored."""

    # Named objects: small write-once records a reader must find without the catalog (audit
    # checkpoints). Their refs work with every call above (retention, holds, delete_version, open).

    def put_named(self, key: str, data: bytes, content_type: str, *, retain_until: datetime) -> ObjectRef:
        """Store ``data`` (at most ``NAMED_MAX_BYTES``) under ``key``, locked until ``retain_until``.

        Write-once: ObjectExistsError when the key already holds an object. (On S3 this is
        checked before the write; a writer going around ChartVault can still add a version,
        but never change or remove the locked one.)
        """

    def list_prefix(self, prefix: str) -> Iterator[ListedObject]:
        """Every stored version of every named key starting with ``prefix``, in key order."""

    def read_named(self, key: str, version_id: str | None = None) -> bytes:
        """The whole named object (the given version, else the latest); refused over NAMED_MAX_BYTES."""


def verified_stream(chunks: Iterable[bytes], ref: ObjectRef, what: str | None = None) -> Iterator[bytes]:
    """Pass ``chunks`` through, hashing them; IntegrityError at the end unless they are exactly ``ref``.

    Every backend's ``open`` ends here, so bit rot or tampering is caught the same way
    everywhere. The caller must treat what it streamed as suspect until iteration ends cleanly.
    """
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
        yield chunk
    actual = digest.hexdigest()
    if actual != ref.sha256 or size != ref.size:
        raise IntegrityError(
            f"object {what or ref.key} is corrupt: sha256 {actual}, {size} bytes; "
            f"expected {ref.sha256}, {ref.size} bytes"
        )
