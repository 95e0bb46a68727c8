"""Operations: is every part ready, and what the catalog says about the work in hand (for /metrics).

Readiness asks each part one cheap question, all at once and each within ``READY_TIMEOUT_S``, so a
load balancer's probe is answered in seconds even when a part hangs. The catalog's gauges are a
few aggregate queries over small, indexed sets (unfinished pages and batches, the index queue),
cached for ``GAUGES_TTL_S`` so a scrape every few seconds costs the catalog almost nothing; the
newest audit checkpoint is found by listing the store, cached longer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from chartvault.archive import audit_checkpoints
from chartvault.archive.models import (
    BATCH_PROCESSING,
    BATCH_RECEIVING,
    PAGE_ARCHIVED,
    PAGE_CLASSIFIED,
    PAGE_FAILED,
    PAGE_OCR,
    PAGE_RECEIVED,
    AuditEvent,
    Batch,
    IndexTask,
    Page,
)
from chartvault.archive.objectstore import ObjectStore
from chartvault.config import Settings
from chartvault.schemas.operations import Part, PartCheck, Readiness
from chartvault.search.indexer import Indexer

READY_TIMEOUT_S = 3.0
GAUGES_TTL_S = 5.0
CHECKPOINT_TTL_S = 60.0
# Pages not done yet, by state (a done page is "indexed"; counting those would read every page).
PAGE_STATES = (PAGE_RECEIVED, PAGE_OCR, PAGE_CLASSIFIED, PAGE_ARCHIVED, PAGE_FAILED)
OPEN_BATCH_STATES = (BATCH_RECEIVING, BATCH_PROCESSING)


@dataclass(frozen=True, slots=True)
class CatalogGauges:
    """The catalog at one moment: pages not done per state, the index queue, unfinished batches."""

    pages_by_state: dict[str, int]
    index_queue: int
    unfinished_batches: int
    oldest_unfinished_batch_age_s: float | None
    newest_checkpoint_age_s: float | None
    newest_backup_age_s: float | None  # the newest complete backup (``backup.create`` ok); None: none yet


class OperationsService:
    """Shared by every request of a process (it caches), so the composition root keeps one per ``Parts``."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        store: Callable[[], ObjectStore],
        indexer: Callable[[], Indexer],
        clock: Callable[[], float] = time.monotonic,
        gauges_ttl_s: float = GAUGES_TTL_S,
    ) -> None:
        self.settings = settings
        self.gauges_ttl_s = gauges_ttl_s
        self.sessions = sessions
        self.store = store
        self.indexer = indexer
        self._clock = clock
        self._lock = threading.Lock()
        self._gauges: tuple[float, CatalogGauges] | None = None
        self._checkpoint: tuple[float, datetime | None] | None = None
        self._probes = ThreadPoolExecutor(max_workers=4, thread_name_prefix="cv-ready")

    # -- readiness -----------------------------------------------------------------------------------

    def readiness(self) -> Readiness:
        """Ask every part at once; any part that fails or does not answer in time makes it unavailable."""
        probes: dict[Part, Callable[[], None]] = {
            "catalog": self._catalog_answers,
            "object_store": lambda: self.store().ping(),
            "index": self._index_answers,
        }
        if self.settings.executor == "celery":
            probes["broker"] = self._broker_answers
        started = {part: (self._clock(), self._probes.submit(probe)) for part, probe in probes.items()}
        checks = [self._outcome(part, t0, future) for part, (t0, future) in started.items()]
        ready = all(c.ok for c in checks)
        return Readiness(status="ready" if ready else "unavailable", checks=checks)

    def _outcome(self, part: Part, started: float, future: Future[None]) -> PartCheck:
        remaining = max(0.0, READY_TIMEOUT_S - (self._clock() - started))
        error: str | None = None
        try:
            future.result(timeout=remaining)
        except FutureTimeout:
            error = "timeout"
        except Exception as exc:  # a probe's failure is the answer, not an error of the probe
            error = type(exc).__name__
        seconds = round(min(self._clock() - started, READY_TIMEOUT_S), 4)
        return PartCheck(part=part, ok=error is None, seconds=seconds, error=error)

    def _catalog_answers(self) -> None:
        with self.sessions() as s:
            s.execute(text("SELECT 1"))

    def _index_answers(self) -> None:
        self.indexer().reader()  # IndexUnavailable while there is no usable generation

    def _broker_answers(self) -> None:
        import redis

        client = redis.Redis.from_url(
            self.settings.celery_broker_url,
            socket_connect_timeout=READY_TIMEOUT_S,
            socket_timeout=READY_TIMEOUT_S,
        )
        try:
            client.ping()
        finally:
            client.close()

    def close(self) -> None:
        self._probes.shutdown(wait=False, cancel_futures=True)

    # -- gauges --------------------------------------------------------------------------------------

    def gauges(self) -> CatalogGauges:
        """The catalog's gauges, at most ``gauges_ttl_s`` old."""
        now = self._clock()
        with self._lock:
            if self._gauges is not None and now - self._gauges[0] < self.gauges_ttl_s:
                return self._gauges[1]
        gauges = self._measure()
        with self._lock:
            self._gauges = (now, gauges)
        return gauges

    def _measure(self) -> CatalogGauges:
        moment = datetime.now(UTC)
        with self.sessions() as s:
            pages = {
                state: count
                for state, count in s.execute(
                    select(Page.status, func.count())
                    .where(Page.status.in_(PAGE_STATES))
                    .group_by(Page.status)
                )
            }
            queue = s.scalar(select(func.count()).select_from(IndexTask)) or 0
            open_batches, oldest = s.execute(
                select(func.count(), func.min(Batch.created_at)).where(Batch.status.in_(OPEN_BATCH_STATES))
            ).one()
            backed_up = s.scalar(  # by the action's index: a handful of rows however long the log
                select(func.max(AuditEvent.at)).where(
                    AuditEvent.action == "backup.create", AuditEvent.outcome == "ok"
                )
            )
        checkpoint = self._newest_checkpoint()
        return CatalogGauges(
            pages_by_state={state: int(pages.get(state, 0)) for state in PAGE_STATES},
            index_queue=int(queue),
            unfinished_batches=int(open_batches),
            oldest_unfinished_batch_age_s=_age(moment, oldest),
            newest_checkpoint_age_s=_age(moment, checkpoint),
            newest_backup_age_s=_age(moment, _utc(backed_up)),
        )

    def _newest_checkpoint(self) -> datetime | None:
        """When the newest audit checkpoint in the store was written (None: none, or the store failed)."""
        now = self._clock()
        with self._lock:
            if self._checkpoint is not None and now - self._checkpoint[0] < CHECKPOINT_TTL_S:
                return self._checkpoint[1]
        try:
            found = audit_checkpoints.list_checkpoints(self.store())
            newest = max((cp.at for cp in found), default=None)
        except Exception:  # the store is down: readiness says so; the gauge is left out meanwhile
            return None
        with self._lock:
            self._checkpoint = (now, newest)
        return newest


def _utc(at: datetime | None) -> datetime | None:
    """A catalog time in UTC (SQLite gives it back without its zone)."""
    return at if at is None or at.tzinfo is not None else at.replace(tzinfo=UTC)


def _age(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else max(0.0, (now - then).total_seconds())
