"""The single index writer: it consumes the catalog's index queue and owns the index's life cycle.

whoosh (and tantivy) allow one writer per index; peers that open their own writers meet lock errors
or, worse, corrupt the index. So indexing goes through a queue in the catalog, and exactly one
process at a time — the one that holds ``writer.lock`` — drains it. Everyone else only reads.

The catalog is the system of record and the index a rebuildable cache of it. The writer sees the
catalog only through ``IndexSource`` (implemented over the catalog by the services), so this package
knows nothing of the database:

* every queued id is re-read from the catalog, and indexed only if the catalog shows it (archived or
  indexed, not disposed), else removed: a queue entry means "look at this document again";
* at first use the writer checks the index (``lifecycle.inspect``): missing, corrupt, of an older
  schema, or *stale* (the catalog has indexed documents the index lacks) means a rebuild into a new
  generation, streamed from the catalog in chunks (bounded memory), recorded after every chunk
  (resumable after a crash), while searches keep answering from the old generation; the new one
  is then published with one atomic rename (``IndexLocation.publish``);
* ``reconcile`` compares catalog and index by id and fingerprint and repairs through the queue.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from chartvault.errors import Conflict
from chartvault.search.common import fingerprint
from chartvault.search.lifecycle import (
    CORRUPT,
    MISSING,
    OK,
    BuildState,
    IndexLocation,
    inspect,
    open_at,
    schema_version_of,
)
from chartvault.search.types import IndexDocument, IndexUnavailable, SearchBackend

log = logging.getLogger("chartvault.indexer")

REBUILD_CHUNK = 500  # documents read from the catalog and committed to the new generation at a time
# Documents indexed this long before a rebuild started are caught up at its end too (clock slack).
CATCH_UP_SLACK = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class QueuedTask:
    task_id: int
    document_id: str


class IndexSource(Protocol):
    """The catalog as the index writer sees it: which documents may be shown, and the queue.

    "Shown" means archived or indexed and not disposed: the only documents an index may hold.
    """

    def queue_length(self) -> int:
        """Queued tasks (shown by /health)."""

    def queued_ids(self) -> set[str]:
        """Document ids with a queued task."""

    def enqueue(self, upserts: Sequence[str] = (), deletes: Sequence[str] = ()) -> None:
        """Ask the writer to look at these documents again (committed at once)."""

    def next_tasks(self, limit: int) -> list[QueuedTask]:
        """The oldest queued tasks."""

    def shown_documents(self, ids: Sequence[str]) -> list[IndexDocument]:
        """Those of ``ids`` the catalog shows, as the index sees them (missing ids are left out)."""

    def settle(self, task_ids: Sequence[int], indexed: Sequence[str], removed: Sequence[str]) -> None:
        """After an index commit: mark ``indexed`` as indexed (if still shown), note that ``removed``
        are out of the index, and delete the tasks; one transaction."""

    def awaiting_removal(self) -> frozenset[str]:
        """Documents the catalog no longer shows that are still in the index."""

    def any_indexed(self) -> bool:
        """Whether the catalog has any shown document marked indexed."""

    def shown_after(self, last_id: str, limit: int) -> list[IndexDocument]:
        """Shown documents with ids above ``last_id``, in id order."""

    def shown_ids_after(self, last_id: str, limit: int, only_indexed: bool = False) -> list[str]:
        """Ids of shown documents above ``last_id``, in id order."""

    def changed_since(self, since: datetime) -> list[str]:
        """Ids of shown documents indexed at or after ``since``."""


class WriterLock:
    """An exclusive, non-blocking advisory lock on a file; released when the process dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock if free (True), or say another process has it (False); never waits."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


@dataclass(slots=True)
class ReconcileReport:
    """Catalog against index, by id and fingerprint. ``pending``: already queued, not a fault."""

    catalog: int = 0
    index: int = 0
    missing: list[str] = field(default_factory=list)  # shown by the catalog, absent from the index
    extra: list[str] = field(default_factory=list)  # in the index, not shown by the catalog
    stale: list[str] = field(default_factory=list)  # indexed from an older version of the document
    pending: int = 0
    index_state: str = OK
    repaired: bool = False

    @property
    def consistent(self) -> bool:
        return self.index_state == OK and not (self.missing or self.extra or self.stale)


class Indexer:
    """Owns the index of one engine under ``root``: the reader searches use, the queue, rebuilds."""

    def __init__(
        self,
        source: IndexSource,
        kind: str,
        root: Path,
        lock: WriterLock,
        chunk: int = REBUILD_CHUNK,
    ) -> None:
        self.source = source
        self.kind = kind
        self.location = IndexLocation(root, kind)
        self.lock = lock
        self.chunk = chunk
        self._mutex = threading.RLock()  # every index write of this process, and generation swaps
        self._reader_lock = threading.Lock()
        self._reader: SearchBackend | None = None
        self._reader_stamp: tuple[str | None, tuple[int, int] | None] | None = None
        self._retired: list[SearchBackend] = []  # swapped out; closed at close() (searches may be mid-way)
        self._building: SearchBackend | None = None  # the generation a rebuild in this process writes
        self._rebuild_thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._checked = False
        self._hidden: set[str] = set()  # in the index but not shown by the catalog (until removed)

    # -- reading ---------------------------------------------------------------------------------

    def reader(self) -> SearchBackend:
        """The current generation for searching; picks up a swap made by this or another process.

        Raises ``IndexUnavailable`` when there is no usable index (the writer process then starts the
        rebuild, and the old generation, if any, keeps answering meanwhile).
        """
        stamp = (self.location.current_name(), self.location.pointer_stamp())
        with self._reader_lock:
            if self._reader is not None and stamp == self._reader_stamp:
                return self._reader
        backend = self._open_current()
        if backend is None and self.lock.acquire():
            self.ensure_ready(background=True)
            stamp = (self.location.current_name(), self.location.pointer_stamp())
            backend = self._open_current()
        if backend is None:
            raise IndexUnavailable()
        with self._reader_lock:
            if self._reader is not None:
                self._retired.append(self._reader)
            self._reader, self._reader_stamp = backend, stamp
            return backend

    def _open_current(self) -> SearchBackend | None:
        path = self.location.current()
        if path is None:
            return None
        try:
            return open_at(self.kind, path, create=False)
        except Exception:  # damaged files: treated as no index (ensure_ready rebuilds it)
            log.warning("search index generation could not be opened kind=%s", self.kind)
            return None

    def hidden(self) -> frozenset[str]:
        """Ids the index holds but the catalog does not show, as far as this process has seen."""
        return frozenset(self._hidden)

    def unshown_in_index(self) -> frozenset[str]:
        """Ids the catalog no longer shows but that were indexed and not yet removed (e.g. disposed a
        moment ago): searches exclude them so that totals and facets never count them."""
        return self.source.awaiting_removal()

    def hide(self, doc_ids: Sequence[str]) -> None:
        """Searches found these in the index though the catalog does not show them: exclude them
        from now on and queue them for another look (the writer removes them)."""
        new = set(doc_ids) - self._hidden
        if not new:
            return
        self._hidden |= new
        self.source.enqueue(deletes=sorted(new))
        log.info("index holds documents the catalog does not show count=%d", len(new))

    # -- the queue -------------------------------------------------------------------------------

    def pending(self) -> int:
        """Queued index tasks (shown by /health)."""
        return self.source.queue_length()

    def run_once(self, limit: int = 200) -> int:
        """Apply up to ``limit`` queued tasks in one commit per index; returns how many were done.

        Each queued id is looked up in the catalog now: shown documents are (re)indexed, others
        removed, whatever the task said, so an old task can never resurrect a disposed document.
        The index commits before the queue rows are deleted, so a crash between the two only
        repeats an idempotent upsert.
        """
        if not self.lock.acquire():
            return 0
        with self._mutex:
            targets = self._write_targets()
            if not targets:
                return 0
            tasks = self.source.next_tasks(limit)
            if not tasks:
                return 0
            ids = sorted({t.document_id for t in tasks})
            prepared = self.source.shown_documents(ids)
            gone = sorted(set(ids) - {d.doc_id for d in prepared})
            for backend in targets:
                if prepared:
                    backend.index(prepared)
                if gone:
                    backend.delete(gone)
            # The index committed first: a crash before this only repeats an idempotent upsert.
            self.source.settle([t.task_id for t in tasks], [d.doc_id for d in prepared], gone)
            self._hidden -= set(gone)
            log.info("indexed documents=%d removed=%d", len(prepared), len(gone))
            return len(tasks)

    def _write_targets(self) -> list[SearchBackend]:
        """Caller holds ``_mutex``: the current generation, plus the one being rebuilt (so that it
        misses nothing archived meanwhile)."""
        targets: list[SearchBackend] = []
        with contextlib.suppress(IndexUnavailable):
            targets.append(self.reader())
        if self._building is not None:
            targets.append(self._building)
        return targets

    def drain(self) -> int:
        """Apply every queued task; at the first call in the writer process, check the index first."""
        if not self.lock.acquire():
            return 0
        if not self._checked:
            self.ensure_ready(background=True)
        total = 0
        while n := self.run_once():
            total += n
        return total

    # -- health and rebuilds ---------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The index's state for /health and ``index-check``: ids and counts only."""
        build = self.location.read_build()
        state = inspect(self.kind, self.location.current())
        return {
            "backend": self.kind,
            "state": state.state,
            "schema_version": state.schema_version,
            "expected_schema_version": schema_version_of(self.kind),
            "documents": state.doc_count,
            "rebuilding": self.rebuilding() or build is not None,
        }

    def rebuilding(self) -> bool:
        """Whether this process is rebuilding the index now."""
        return self._rebuild_thread is not None and self._rebuild_thread.is_alive()

    def ensure_ready(self, background: bool = True) -> str:
        """Writer only: inspect the index and rebuild it if missing, corrupt, outdated or stale.

        Returns the state found. An index that is missing or corrupt while the catalog has no
        indexed document is simply created empty (the queue fills it); otherwise a rebuild starts,
        in a background thread when ``background`` (searches meanwhile answer from the old
        generation, or raise ``IndexUnavailable`` when there is none).
        """
        if not self.lock.acquire():
            return "not_writer"
        with self._mutex:
            self._checked = True
            if self.rebuilding():
                return "rebuilding"
            build = self.location.read_build()
            if build is not None and build.schema_version != schema_version_of(self.kind):
                self.location.abandon_build()
                build = None
            state = inspect(self.kind, self.location.current())
            reason = state.state
            if build is not None:
                reason = "resume"
            elif state.state == OK:
                if not self._stale():
                    return OK
                reason = "stale"
            elif state.state in (MISSING, CORRUPT) and not self._indexed_in_catalog():
                generation = self.location.new_generation()
                open_at(self.kind, generation).close()
                self.location.publish(generation)
                self.location.prune()
                log.info("search index created kind=%s (was %s)", self.kind, state.state)
                return state.state
            log.warning("search index needs a rebuild kind=%s reason=%s", self.kind, reason)
        if background:
            self._stop.clear()
            self._rebuild_thread = threading.Thread(
                target=self._rebuild_quietly, name="cv-reindex", daemon=True
            )
            self._rebuild_thread.start()
        else:
            self.rebuild()
        return reason

    def _rebuild_quietly(self) -> None:
        try:
            self.rebuild()
        except Exception:  # resumable: the next writer start continues where this stopped
            log.exception("index rebuild failed; it resumes at the next start")

    def _indexed_in_catalog(self) -> bool:
        return self.source.any_indexed()

    def _stale(self) -> bool:
        """Whether the catalog has indexed (and shown) documents the index lacks (e.g. a restored copy)."""
        try:
            in_index = self.reader().doc_ids()
        except IndexUnavailable:
            return True
        for ids in self._id_chunks(only_indexed=True):
            if any(doc_id not in in_index for doc_id in ids):
                return True
        return False

    def rebuild(self, fresh: bool = False, max_chunks: int | None = None) -> int:
        """Rebuild the whole index from the catalog into a new generation, then swap it in.

        Bounded memory (``chunk`` documents at a time); resumable (progress is recorded after each
        committed chunk, and a later call continues unless ``fresh``); searches keep answering from
        the current generation until the atomic swap. Returns the documents in the new generation,
        or 0 when it stopped early (``close()``, or after ``max_chunks`` chunks: a bounded slice of
        work, e.g. in a maintenance window); the next call resumes.
        """
        if not self.lock.acquire():
            raise Conflict("another ChartVault process owns the index writer; stop it or reindex there")
        with self._mutex:
            build = self.location.read_build()
            if fresh or (build is not None and build.schema_version != schema_version_of(self.kind)):
                self.location.abandon_build()
                build = None
            if build is None:
                generation = self.location.new_generation()
                build = BuildState(
                    generation.name, schema_version_of(self.kind), datetime.now(UTC).isoformat()
                )
                open_at(self.kind, generation).close()
                self.location.write_build(build)
            else:
                log.info("resuming index rebuild after id position kind=%s", self.kind)
            self._building = open_at(self.kind, self.location.base / build.generation, create=False)
        try:
            return self._fill(build, max_chunks)
        finally:
            with self._mutex:
                if self._building is not None:
                    self._building.close()
                    self._building = None

    def _fill(self, build: BuildState, max_chunks: int | None) -> int:
        building = self._building
        assert building is not None
        chunks = 0
        while not self._stop.is_set() and (max_chunks is None or chunks < max_chunks):
            chunks += 1
            with self._mutex:  # serialised with run_once: no stale overwrite
                docs = self.source.shown_after(build.last_id, self.chunk)
                if not docs:
                    break
                building.index(docs, merge=False)
                build.last_id = docs[-1].doc_id
                self.location.write_build(build)
        else:
            log.info("index rebuild paused; it resumes at the next start kind=%s", self.kind)
            return 0
        with self._mutex:
            self._catch_up(building, datetime.fromisoformat(build.started_at) - CATCH_UP_SLACK)
            building.optimize()
            count = building.doc_count()
            self.location.publish(self.location.base / build.generation)
            with self._reader_lock:
                if self._reader is not None:
                    self._retired.append(self._reader)
                self._reader, self._reader_stamp = None, None
            self.location.prune()
        log.info("index rebuilt and swapped in kind=%s documents=%d", self.kind, count)
        return count

    def _catch_up(self, building: SearchBackend, since: datetime) -> None:
        """Caller holds ``_mutex``. What changed while the rebuild ran, or while it was paused.

        Documents indexed since it started are indexed again; ids it holds that the catalog no
        longer shows are removed; shown ids it lacks are added.
        """
        changed = self.source.changed_since(since)
        in_build = building.doc_ids()
        shown: set[str] = set()
        for ids in self._id_chunks():
            shown.update(ids)
        add = sorted(set(changed) | (shown - in_build))
        for start in range(0, len(add), self.chunk):
            building.index(self.source.shown_documents(add[start : start + self.chunk]), merge=False)
        extra = sorted(in_build - shown)
        if extra:
            building.delete(extra)

    def _id_chunks(self, only_indexed: bool = False) -> Iterator[list[str]]:
        """Ids of shown documents in id order, ``10 * chunk`` at a time (bounded memory)."""
        last = ""
        while ids := self.source.shown_ids_after(last, self.chunk * 10, only_indexed):
            last = ids[-1]
            yield ids

    # -- reconciliation --------------------------------------------------------------------------

    def reconcile(self, repair: bool = False) -> ReconcileReport:
        """Compare catalog and index by id and fingerprint; with ``repair``, queue the fixes.

        Repairs go through the queue (upserts for missing and stale documents, removals for extra
        ones), so they work whether this process or a running server owns the writer; when this
        process owns it, the queue is drained at once and the report is taken again.
        """
        report = self._compare()
        if repair and not report.consistent:
            if report.index_state not in (OK,) and self.lock.acquire():
                self.ensure_ready(background=False)
            todo = sorted({*report.missing, *report.stale, *report.extra} - self.source.queued_ids())
            extra = set(report.extra)
            self.source.enqueue(
                upserts=[i for i in todo if i not in extra], deletes=[i for i in todo if i in extra]
            )
            if self.lock.acquire():
                self.drain()
                report = self._compare()
            report.repaired = True
        return report

    def _compare(self) -> ReconcileReport:
        report = ReconcileReport()
        state = inspect(self.kind, self.location.current())
        report.index_state = state.state
        try:
            indexed = self.reader().fingerprints() if state.usable else {}
        except IndexUnavailable:
            indexed = {}
        queued = self.source.queued_ids()
        report.index = len(indexed)
        seen: set[str] = set()
        last = ""
        while docs := self.source.shown_after(last, self.chunk):
            last = docs[-1].doc_id
            for d in docs:
                seen.add(d.doc_id)
                have = indexed.get(d.doc_id)
                if have is not None and have == fingerprint(d):
                    continue
                if d.doc_id in queued:
                    report.pending += 1
                elif have is None:
                    report.missing.append(d.doc_id)
                else:
                    report.stale.append(d.doc_id)
        report.catalog = len(seen)
        for doc_id in indexed.keys() - seen:
            if doc_id in queued:
                report.pending += 1
            else:
                report.extra.append(doc_id)
        return report

    # -- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop a rebuild after its current chunk (it resumes next time) and close every handle."""
        self._stop.set()
        if self._rebuild_thread is not None:
            self._rebuild_thread.join(timeout=60)
        with self._reader_lock:
            backends = [*self._retired, *([self._reader] if self._reader else [])]
            self._reader, self._retired = None, []
        for backend in backends:
            backend.close()
