"""The object store interface: where originals (and later derivatives) are kept.

Objects are immutable and content-addressed by sha256. A backend returns an
``ObjectRef`` naming exactly what it stored (key and, on S3, the version id) and
the catalog keeps that ref; reads name the ref and verify the sha256.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol


class ObjectStoreError(Exception):
    """The store could not do what was asked (message carries ids only, never content)."""


class IntegrityError(ObjectStoreError):
    """Stored bytes do not match their recorded sha256."""


@dataclass(frozen=True, slots=True)
class ObjectRef:
    key: str
    sha256: str
    size: int
    version_id: str | None = None


class ObjectStore(Protocol):
    def put_file(self, path: str, sha256: str, content_type: str) -> ObjectRef:
        """Store the file at ``path`` whose sha256 the caller computed.

        Idempotent: storing the same content twice returns a ref to the one copy.
        The sha256 is checked against the bytes actually written.
        """

    def open(self, ref: ObjectRef, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Stream the object's bytes; raises IntegrityError at the end if they do not hash to ref.sha256."""

    def exists(self, ref: ObjectRef) -> bool: ...

    def read_into(self, ref: ObjectRef, fp: BinaryIO) -> None:
        """Copy the whole object into ``fp``, verifying its sha256."""
