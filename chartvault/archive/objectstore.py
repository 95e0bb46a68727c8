"""The object store interface: where originals (and later derivatives) are kept.

Objects are immutable and content-addressed by sha256. A backend returns an
``ObjectRef`` naming exactly what it stored (key and, on S3, the version id) and
the catalog keeps that ref; reads name the ref and verify the sha256.
"""

from __future__ import annotations

import hashlib
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


LOCK_GOVERNANCE = "GOVERNANCE"
LOCK_COMPLIANCE = "COMPLIANCE"


class ObjectStore(Protocol):
    """Where originals live. Every backend enforces retention and legal holds itself,
    so a delete that goes around the catalog is still refused by the store."""

    lock_mode: str  # GOVERNANCE | COMPLIANCE, for versions written from now on

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
