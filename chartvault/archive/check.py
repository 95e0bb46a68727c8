"""Consistency of the archive: every catalog object present with its sha256 (fixity), nothing
orphaned in the store, no archived document with neither a patient nor a pending review. The index
side is the indexer's reconcile; ``chartvault check`` joins them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session, sessionmaker

from chartvault.archive.lifecycle import INACTIVE
from chartvault.archive.models import (
    PAGE_ARCHIVED,
    PAGE_INDEXED,
    REVIEW_PENDING,
    Disposition,
    Document,
    ReleaseAuthorization,
    ReleaseRequest,
)
from chartvault.archive.objectstore import IntegrityError, ObjectNotFoundError, ObjectRef, ObjectStore

log = logging.getLogger(__name__)

__all__ = ["LIVE_ARCHIVED", "StoreReport", "check_store", "outside_review", "unlinked_outside_review"]

LIVE_ARCHIVED = (PAGE_ARCHIVED, PAGE_INDEXED)  # documents whose original is stored and not disposed


def outside_review() -> ColumnElement[bool]:
    """A live archived document with neither a patient nor a pending review: a lost chart.

    ``reports.quality``'s unlinked causes ``no_mrn`` and ``mrn_not_confirmed`` count the same documents.
    """
    return (
        Document.patient_id.is_(None)
        & Document.status.in_(LIVE_ARCHIVED)
        & (Document.review_status.is_(None) | (Document.review_status != REVIEW_PENDING))
    )


def unlinked_outside_review(s: Session) -> int:
    """How many lost charts the catalog holds (``chartvault check`` wants 0)."""
    return int(s.scalar(select(func.count()).select_from(Document).where(outside_review())) or 0)


@dataclass
class StoreReport:
    objects_checked: int = 0
    objects_total: int = 0  # the objects the catalog names (what a stopped check had still to read)
    bytes_checked: int = 0
    missing: list[str] = field(default_factory=list)  # catalog row ids whose object is gone
    corrupt: list[str] = field(default_factory=list)  # catalog row ids whose bytes fail sha256
    orphans: list[str] = field(default_factory=list)  # store keys no catalog row names
    stopped: bool = False  # asked to stop: the objects after ``objects_checked`` and the orphans unread

    @property
    def consistent(self) -> bool:
        return not (self.missing or self.corrupt or self.orphans)

    def as_dict(self) -> dict[str, Any]:
        return {
            "consistent": self.consistent,
            "objects_checked": self.objects_checked,
            "objects_total": self.objects_total,
            "bytes_checked": self.bytes_checked,
            "missing": sorted(self.missing),
            "corrupt": sorted(self.corrupt),
            "orphans": sorted(self.orphans),
        }


# Rows that name an archived object besides documents: (label, key, sha256, size, version columns).
_OTHER_OBJECTS = (
    ("certificate", Disposition, "certificate"),
    ("release_package", ReleaseRequest, "package"),
    ("authorization", ReleaseAuthorization, "image"),
)


def catalog_refs(s: Session) -> Iterator[tuple[str, ObjectRef]]:
    """(owner id, ref) for every object the catalog says exists."""
    docs = s.execute(
        select(
            Document.id, Document.object_key, Document.sha256, Document.size, Document.object_version
        ).where(Document.object_key.is_not(None), Document.status.not_in(INACTIVE))
    )
    for doc_id, key, sha, size, version in docs:
        yield f"document:{doc_id}", ObjectRef(key or "", sha, size, version)  # key: not null (the WHERE)
    renditions = s.execute(
        select(
            Document.id,
            Document.rendition_key,
            Document.rendition_sha256,
            Document.rendition_size,
            Document.rendition_version,
        ).where(Document.rendition_key.is_not(None), Document.status.not_in(INACTIVE))
    )
    for doc_id, r_key, r_sha, r_size, r_version in renditions:
        yield f"rendition:{doc_id}", ObjectRef(r_key or "", r_sha or "", r_size or 0, r_version)
    for label, model, prefix in _OTHER_OBJECTS:
        cols = [getattr(model, f"{prefix}_{c}") for c in ("key", "sha256", "size", "version")]
        for row_id, key, sha, size, version in s.execute(select(model.id, *cols).where(cols[0].is_not(None))):
            yield f"{label}:{row_id}", ObjectRef(key, sha, size or 0, version)


def check_store(
    sessions: sessionmaker[Session],
    store: ObjectStore,
    fixity: bool = True,
    progress: Callable[[StoreReport], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> StoreReport:
    """Read back every catalog object (sha256 verified) and look for store objects nobody names.

    Orphans are reported, never deleted here: they are usually locked, and an orphan
    can be a write whose catalog commit a crash cut off (re-running its batch relinks it).
    ``progress`` is given the report after each object; ``stop`` is asked before each, and when it says
    so the check ends there (``stopped``: the rest, orphans included, is not looked at).
    """
    report = StoreReport()
    named: set[tuple[str, str | None]] = set()
    with sessions() as s:
        refs = list(catalog_refs(s))
    report.objects_total = len(refs)
    for owner, ref in refs:
        if stop is not None and stop():
            report.stopped = True
            return report
        named.add((ref.key, ref.version_id))
        _check_object(store, owner, ref, fixity, report)
        if progress is not None:
            progress(report)
    for ref in store.iter_refs():
        if (ref.key, ref.version_id) not in named:
            report.orphans.append(f"{ref.key}@{ref.version_id}" if ref.version_id else ref.key)
    if not report.consistent:
        log.warning(
            "store check: missing=%d corrupt=%d orphans=%d",
            len(report.missing),
            len(report.corrupt),
            len(report.orphans),
        )
    return report


def _check_object(store: ObjectStore, owner: str, ref: ObjectRef, fixity: bool, report: StoreReport) -> None:
    """One catalog object: present (and with ``fixity`` its bytes matching its sha256), else reported."""
    report.objects_checked += 1
    try:
        if fixity:
            for chunk in store.open(ref):
                report.bytes_checked += len(chunk)
        elif not store.exists(ref):
            raise ObjectNotFoundError(ref.key)
    except ObjectNotFoundError:
        report.missing.append(owner)
    except IntegrityError:
        report.corrupt.append(owner)
