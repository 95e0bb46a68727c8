"""Intake: files into batches, batches through the pipeline. The one flow every way in uses.

``receive`` takes a batch's files (staging each, recognising duplicates, refusing what is over the
limits) and closes its intake; ``process`` runs it through the pipeline; ``ingest`` does both and
indexes (the CLI and the hot folder); ``resume`` finishes whatever a crash or restart left
(the CLI, the server at start, ``check --repair``). The API receives and leaves processing to the
server's background work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from chartvault.archive.db import transaction
from chartvault.archive.models import (
    BATCH_COMPLETE,
    BATCH_COMPLETE_WITH_ERRORS,
    BATCH_RECEIVING,
    FILE_DONE_STATES,
    FILE_QUARANTINED,
    ApiToken,
    Batch,
    BatchFile,
)
from chartvault.config import Settings
from chartvault.errors import NotFound
from chartvault.ingest.batches import (
    add_file,
    close_intake,
    create_batch,
    expired_quarantine,
    purge_quarantined,
)
from chartvault.ingest.manifest import Manifest, check_label
from chartvault.ingest.pipeline import Pipeline, Progress
from chartvault.ingest.private import TempLeftover, remove_leftovers, temp_leftovers
from chartvault.ingest.renditions import build_missing
from chartvault.ingest.staging import StagedFile, Stager, read_chunks, stage_chunks
from chartvault.schemas.batches import (
    BatchList,
    BatchReport,
    BatchSummary,
    FileReport,
    IngestedFile,
    IngestSummary,
    PageState,
    QuarantinedFile,
    QuarantineList,
    QuarantinePurge,
)
from chartvault.schemas.common import iso
from chartvault.search.indexer import Indexer
from chartvault.services.caller import AuditTrail, Caller

log = logging.getLogger("chartvault.intake")


@dataclass(frozen=True, slots=True)
class Incoming:
    """One file offered to a batch: bytes already staged (an upload) or a path to stage."""

    name: str  # for people to read; never used as a path
    staged: StagedFile | None = None
    path: Path | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """A file that could not even be staged (unreadable path): it is not part of the batch."""

    name: str
    path: str
    reason: str


@dataclass(slots=True)
class Received:
    batch_id: str
    file_ids: dict[str, str] = field(default_factory=dict)  # file id -> the path or name it came as
    refused: list[Refusal] = field(default_factory=list)


class IntakeService:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        pipeline: Callable[[], Pipeline],
        indexer: Callable[[], Indexer],
        audit: AuditTrail,
        caller: Caller,
        settle_unlinked: Callable[[], object] = lambda: None,
    ) -> None:
        self.settings = settings
        self._settle_unlinked = settle_unlinked  # documents archived with no patient and no review
        self.sessions = sessions
        self._pipeline = pipeline  # opened on first processing (store, worker pool)
        self._indexer = indexer
        self.audit = audit
        self.caller = caller

    # -- the flow ---------------------------------------------------------------------------------

    def stager(self, max_bytes: int | None = None) -> Stager:
        """A file's bytes, pushed piece by piece (a streaming upload), staged while hashed; kept up to
        ``max_bytes`` (a scanned file's limit unless said: the registration list has its own)."""
        return Stager(self._incoming, self.settings.max_file_bytes if max_bytes is None else max_bytes)

    @property
    def _incoming(self) -> Path:
        return self.settings.data_dir / "staging" / ".incoming"

    def receive(
        self,
        files: Iterable[Incoming],
        *,
        source: str,
        station: str | None = None,
        operator: str | None = None,
        manifest: Manifest | None = None,
    ) -> Received:
        """A new batch holding these files, staged and recorded, its intake closed.

        Station and operator names are checked first (no control or direction-override characters):
        a refused batch leaves nothing in the catalog.
        """
        station, operator = check_label("station", station), check_label("operator", operator)
        with self.sessions() as s:
            batch = create_batch(s, source, station, operator, manifest)
            batch.created_by = self.caller.actor
            s.commit()
            received = Received(batch.id)
        for item in files:
            self._take(received, item, manifest)
        with self.sessions() as s:
            opened = s.get(Batch, received.batch_id)
            assert opened is not None
            close_intake(s, opened, manifest)
            s.commit()
        log.info("batch received batch=%s files=%d", received.batch_id, len(received.file_ids))
        return received

    def _take(self, received: Received, item: Incoming, manifest: Manifest | None) -> None:
        staged = item.staged
        if staged is None and item.path is not None:
            try:
                staged = stage_chunks(read_chunks(item.path), self._incoming, self.settings.max_file_bytes)
            except OSError as exc:
                why = f"Could not read the file ({exc.strerror or type(exc).__name__})."
                received.refused.append(Refusal(item.name, str(item.path), why))
                return
        assert staged is not None, "an incoming file has bytes or a path"
        source_path = str(item.path) if item.path is not None else None
        with self.sessions() as s:
            batch = s.get(Batch, received.batch_id)
            assert batch is not None
            row = add_file(
                s,
                self.settings.data_dir,
                batch,
                staged,
                item.name,
                manifest,
                source_path=source_path,
                max_bytes=self.settings.max_file_bytes,
            )
            s.commit()
            received.file_ids[row.id] = source_path or item.name

    def process(self, batch_id: str, progress: Progress | None = None) -> bool:
        """Run the batch through the pipeline (False when another driver holds it)."""
        return self._pipeline().process_batch(batch_id, progress)

    def index_now(self) -> bool:
        """Index what is queued if this process owns the index writer (else the owner will)."""
        indexer = self._indexer()
        if not indexer.lock.acquire():
            return False
        indexer.drain()
        return True

    def ingest(
        self,
        paths: Sequence[Path],
        *,
        source: str,
        station: str | None = None,
        operator: str | None = None,
        manifest: Manifest | None = None,
        progress: Progress | None = None,
    ) -> IngestSummary:
        """Receive, process and index a batch of files; what happened to each one."""
        received = self.receive(
            [Incoming(p.name, path=p) for p in paths],
            source=source,
            station=station,
            operator=operator,
            manifest=manifest,
        )
        self.process(received.batch_id, progress)
        return self.summary(received, indexed=self.index_now())

    def resume(
        self, batch_ids: Sequence[str] | None = None, *, schedule: Callable[[str], None] | None = None
    ) -> list[str]:
        """Finish unfinished batches (or these): an intake left open by a dead uploader is closed with
        what was staged, then each batch is processed now, or handed to ``schedule``. OCR scratch files
        of a killed process are removed first. A general resume (no ``batch_ids``) also links or holds
        every document left with neither a patient nor a review (archived by code older than the
        patient index); the pipeline settles the documents of the batches it finishes itself."""
        self.clean_temp()
        ids = list(batch_ids) if batch_ids is not None else self.unfinished()
        for batch_id in ids:
            self._close_if_open(batch_id)
            if schedule is not None:
                schedule(batch_id)
            else:
                self.process(batch_id)
        if batch_ids is None:  # a general resume (not one hot-folder batch): older code's lost charts too
            self._settle_unlinked()
        if ids and schedule is None:
            self.index_now()
        if schedule is None:
            self.build_renditions()
        return ids

    def build_renditions(self) -> tuple[int, int]:
        """Build every missing rendition (a crash after archive, a failed build, older documents);
        (built, failed). Failures stay missing, for the next run and ``chartvault check``."""
        pipeline = self._pipeline()
        built, failed = build_missing(self.sessions, pipeline.store, self.settings.data_dir)
        if built or failed:
            log.info("renditions built=%d failed=%d", built, failed)
        return built, failed

    @property
    def temp_root(self) -> Path:
        return self.settings.data_dir / "tmp"

    @property
    def temp_stale_after_s(self) -> float:
        """Past this, nothing in ``tmp`` is still in use: no page takes longer than its OCR time limit."""
        return max(3600.0, 2.0 * self.settings.ocr_timeout_s)

    def temp_leftovers(self) -> list[TempLeftover]:
        """Scratch files no live process owns (page images of a killed ingest, say)."""
        return temp_leftovers(self.temp_root, self.temp_stale_after_s)

    def clean_temp(self) -> list[TempLeftover]:
        """Remove ``temp_leftovers`` (audited when there were any; names and sizes only)."""
        removed = remove_leftovers(self.temp_root, self.temp_stale_after_s)
        if removed:
            detail = {"entries": [x.name for x in removed][:500], "bytes": sum(x.bytes for x in removed)}
            self.audit("tmp.cleanup", detail=detail)
            log.info("removed %d leftover temp entries", len(removed))
        return removed

    def purge_quarantine(self, older_than_days: int | None = None, dry_run: bool = False) -> QuarantinePurge:
        """Delete quarantined files (bytes and reason file) refused more than ``older_than_days`` ago
        (default ``quarantine_retention_days``); the catalog keeps each file's reason. Audited."""
        days = older_than_days or self.settings.quarantine_retention_days
        return self._purge(lambda s: expired_quarantine(s, days), days, dry_run)

    def purge_quarantined_file(self, file_id: str, dry_run: bool = False) -> QuarantinePurge:
        """Delete one quarantined file's bytes and reason file now, whatever its age; audited as the
        purge by age is. NotFound unless a quarantined file of that id still has its bytes kept."""

        def the_file(s: Session) -> list[BatchFile]:
            row = s.get(BatchFile, file_id)
            if row is None or row.status != FILE_QUARANTINED or row.staged_path is None:
                raise NotFound(f"no quarantined file {file_id} with its bytes kept")
            return [row]

        return self._purge(the_file, None, dry_run)

    def _purge(
        self, rows_of: Callable[[Session], list[BatchFile]], days: int | None, dry_run: bool
    ) -> QuarantinePurge:
        purged, size = [], 0
        with transaction(self.sessions) as s:
            for row in rows_of(s):
                size += purge_quarantined(self.settings.data_dir, row, dry_run)
                purged.append(row.id)
        if purged and not dry_run:
            for i in range(0, len(purged), 500):
                detail = {"files": purged[i : i + 500], "older_than_days": days, "bytes": size}
                self.audit("quarantine.purge", detail=detail)
        return QuarantinePurge(older_than_days=days, dry_run=dry_run, files=purged, bytes=size)

    def quarantine(self, limit: int = 100, offset: int = 0) -> QuarantineList:
        """Quarantined files, newest first: ids, hash, size and reason, never the name they came with."""
        quarantined = BatchFile.status == FILE_QUARANTINED
        with self.sessions() as s:
            total = s.scalar(select(func.count()).select_from(BatchFile).where(quarantined)) or 0
            kept = s.scalar(
                select(func.count())
                .select_from(BatchFile)
                .where(quarantined, BatchFile.staged_path.is_not(None))
            )
            rows = s.scalars(
                select(BatchFile)
                .where(quarantined)
                .order_by(BatchFile.created_at.desc(), BatchFile.id)
                .limit(limit)
                .offset(offset)
            )
            files = [
                QuarantinedFile(
                    file_id=f.id,
                    batch_id=f.batch_id,
                    sha256=f.sha256,
                    size=f.size,
                    reason_code=f.reason_code,
                    reason=f.reason,
                    received_at=iso(f.created_at),
                    kept=f.staged_path is not None,
                )
                for f in rows
            ]
        return QuarantineList(total=total, kept=kept or 0, limit=limit, offset=offset, files=files)

    def unfinished(self) -> list[str]:
        """Batches not yet complete, oldest first."""
        with self.sessions() as s:
            q = (
                select(Batch.id)
                .where(Batch.status.not_in((BATCH_COMPLETE, BATCH_COMPLETE_WITH_ERRORS)))
                .order_by(Batch.created_at)
            )
            return list(s.scalars(q))

    def _close_if_open(self, batch_id: str) -> None:
        with self.sessions() as s:
            batch = s.get(Batch, batch_id)
            if batch is not None and batch.status == BATCH_RECEIVING:
                close_intake(s, batch, None)
                s.commit()

    # -- what people see of batches ---------------------------------------------------------------

    def summary(self, received: Received, indexed: bool) -> IngestSummary:
        report = self._report(received.batch_id)  # the files just given, as given: not a read of the archive
        files = [
            IngestedFile(
                path=received.file_ids.get(f.id, f.name),
                file_id=f.id,
                status=f.status,
                reason_code=f.reason_code,
                reason=f.reason if f.status in ("quarantined", "failed") else None,
                pages=f.page_count,
                documents=f.documents,
            )
            for f in report.files
        ]
        files += [
            IngestedFile(
                path=r.path,
                file_id=None,
                status="refused",
                reason_code="unreadable",
                reason=r.reason,
                pages=None,
                documents=[],
            )
            for r in received.refused
        ]
        return IngestSummary(
            batch_id=report.id,
            status=report.status,
            needs_review=report.needs_review,
            flags=report.flags,
            pages=report.pages,
            indexed=indexed,
            files=files,
        )

    def batch(self, batch_id: str) -> BatchReport:
        """Every file and page of a batch (a scanner sees only the batches they uploaded). Audited as a read
        (``batch.read``) with the ids of the documents shown: a batch lists the names its files came with,
        which may name a patient. The audit entry names none of them (the files are the batch's). A page
        polling the same view is audited once a window (``AuditTrail.seen_once``)."""
        report = self._report(batch_id)
        shown = [doc for f in report.files for doc in f.documents]
        view = (tuple(f.id for f in report.files), tuple(shown))  # the same again (a live page): once
        self.audit.seen_once("batch.read", "batch", batch_id, shown, view, files=len(report.files))
        return report

    def _report(self, batch_id: str) -> BatchReport:
        with self.sessions() as s:
            batch = s.get(
                Batch,
                batch_id,
                options=[
                    selectinload(Batch.files).selectinload(BatchFile.pages),
                    selectinload(Batch.files).selectinload(BatchFile.documents),
                ],
            )
            if batch is None or not self._may_see(s, batch):
                raise NotFound(f"batch {batch_id} not found")
            return _batch_report(batch)

    def batches(self, limit: int, offset: int) -> BatchList:
        with self.sessions() as s:
            q = select(Batch).order_by(Batch.created_at.desc())
            if (uploaders := self._uploaders(s)) is not None:
                q = q.where(Batch.created_by.in_(uploaders))  # a scanner sees their own batches
            rows = s.scalars(q.limit(limit).offset(offset)).all()
            items = [
                BatchSummary(
                    id=b.id,
                    status=b.status,
                    source=b.source,
                    station=b.station,
                    created_at=iso(b.created_at),
                    needs_review=bool(b.flags),
                )
                for b in rows
            ]
        self.audit("batch.list", detail={"results": len(items), "batches": [b.id for b in items]})
        return BatchList(limit=limit, offset=offset, items=items)

    def _may_see(self, s: Session, batch: Batch) -> bool:
        """Scanners see only the batches they uploaded (404 otherwise: no existence leak)."""
        uploaders = self._uploaders(s)
        return uploaders is None or batch.created_by in uploaders

    def _uploaders(self, s: Session) -> list[str] | None:
        """The actors whose batches the caller sees: None, every one's (all but scanners). A scanner is a
        person: their web sessions (``user:<id>``) and every token of theirs, revoked and expired ones too
        (what they sent then is still theirs). A token of no user (from before users) is only itself."""
        if not self.caller.is_scanner:
            return None
        actors = {self.caller.actor}
        if (user_id := self.caller.user_id) is not None:
            actors.add(f"user:{user_id}")
            actors.update(
                f"token:{t}" for t in s.scalars(select(ApiToken.id).where(ApiToken.user_id == user_id))
            )
        return sorted(actors)


def _batch_report(batch: Batch) -> BatchReport:
    counts: dict[str, int] = {}
    for f in batch.files:
        counts[f.status] = counts.get(f.status, 0) + 1
    return BatchReport(
        id=batch.id,
        status=batch.status,
        source=batch.source,
        station=batch.station,
        operator=batch.operator,
        created_at=iso(batch.created_at),
        completed_at=iso(batch.completed_at),
        needs_review=bool(batch.flags),
        flags=list(batch.flags or []),
        file_counts=counts,
        pages=sum(f.page_count or 0 for f in batch.files),
        done=all(f.status in FILE_DONE_STATES for f in batch.files),
        files=[_file_report(f) for f in batch.files],
    )


def _file_report(f: BatchFile) -> FileReport:
    docs = [d.id for d in f.documents] or ([f.duplicate_of] if f.duplicate_of else [])
    return FileReport(
        id=f.id,
        seq=f.seq,
        name=f.original_name,
        status=f.status,
        reason_code=f.reason_code,
        reason=f.reason,
        kind=f.kind,
        size=f.size,
        sha256=f.sha256,
        page_count=f.page_count,
        expected_pages=f.expected_pages,
        duplicate_of=f.duplicate_of,
        documents=docs,
        pages=[
            PageState(
                page_no=p.page_no,
                status=p.status,
                confidence=p.confidence,
                source=p.source,
                error=p.error,
                blank=bool(p.blank),
                flags=list(p.flags or []),
            )
            for p in f.pages
        ],
    )
