"""Choosing the object store from the settings."""

from __future__ import annotations

from chartvault.archive.localstore import LocalObjectStore
from chartvault.archive.objectstore import ObjectStore
from chartvault.config import Settings


def open_object_store(settings: Settings) -> ObjectStore:
    """The object store named by ``settings.object_store``, so callers never pick a backend themselves."""
    if settings.object_store == "local":
        return LocalObjectStore(settings.data_dir / "objects", lock_mode=settings.s3_lock_mode)
    if settings.object_store == "s3":
        from chartvault.archive.s3store import S3ObjectStore  # minio only loaded when used

        return S3ObjectStore.from_settings(settings)
    raise ValueError(f"unknown object_store {settings.object_store!r}")
