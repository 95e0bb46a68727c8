"""Background work of a long-running process (the API server): batches and the index writer.

One thread processes batches in arrival order (the worker pool parallelises their pages), and at start,
after the batches a restart left unfinished, builds the renditions still missing (a crash after archive, a
failed build, documents archived before renditions existed); another
drains the index queue every ``index_commit_interval_s`` while this process owns the index writer,
and keeps trying to become the owner while another process (a CLI ingest, say) holds it; a third
deletes quarantined files past ``quarantine_retention_days`` every ``housekeeping_interval_s``. Before any of
that, jobs (``services.jobs``) a dead process left queued or running are marked failed, and jobs that ended
more than ``job_retention_days`` ago are removed.
"""

from __future__ import annotations

import logging
import queue
import threading

from chartvault.services.root import Services

log = logging.getLogger("chartvault.background")

# A job on the batch queue that is not a batch: build every missing rendition (in the batch thread, so it
# never races this process's own rendition stage).
RENDITION_SWEEP = "renditions:missing"


class BackgroundWork:
    def __init__(self, services: Services) -> None:
        self.services = services
        self._batches: queue.Queue[str | None] = queue.Queue()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._batch_loop, name="cv-batches", daemon=True),
            threading.Thread(target=self._index_loop, name="cv-indexer", daemon=True),
            threading.Thread(target=self._housekeeping_loop, name="cv-housekeeping", daemon=True),
        ]
        self._queued: set[str] = set()
        self._lock = threading.Lock()

    def start(self, resume: bool = True) -> None:
        # Jobs a dead process left queued or running (a retraining, an import, a full check) can never end:
        # they are marked failed before this process starts its own.
        self.services.jobs.recover()
        self._prune_jobs()
        # Load (or, on a new machine, train) the classifier now rather than inside the first batch.
        threading.Thread(target=self.services.parts.classifier.current, name="cv-model", daemon=True).start()
        for t in self._threads:
            t.start()
        if resume:
            self.services.intake.resume(schedule=self.submit)
            self.submit(RENDITION_SWEEP)

    def _prune_jobs(self) -> None:
        """Jobs that ended more than ``job_retention_days`` ago leave the catalog (never an active one)."""
        days = self.services.settings.job_retention_days
        if not days:
            return
        try:
            self.services.jobs.prune(days)
        except Exception:  # the server still starts; the next start (or `chartvault jobs prune`) tries again
            log.exception("pruning old jobs failed")

    def submit(self, batch_id: str) -> None:
        """Process this batch after those already waiting (a batch queued twice runs once)."""
        with self._lock:
            if batch_id in self._queued:
                return
            self._queued.add(batch_id)
        self._batches.put(batch_id)

    def idle(self) -> bool:
        with self._lock:
            return not self._queued

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._batches.put(None)
        for t in self._threads:
            if t.is_alive():
                t.join(timeout)

    def _batch_loop(self) -> None:
        while not self._stop.is_set():
            batch_id = self._batches.get()
            if batch_id is None:
                return
            try:
                if batch_id == RENDITION_SWEEP:
                    self.services.intake.build_renditions()
                else:
                    self.services.intake.process(batch_id)
            except Exception:  # keep serving; the batch stays resumable in the catalog
                log.exception("background job failed job=%s", batch_id)
            finally:
                with self._lock:
                    self._queued.discard(batch_id)

    def _index_loop(self) -> None:
        interval = self.services.settings.index_commit_interval_s
        while not self._stop.wait(interval):
            try:
                self.services.intake.index_now()
            except Exception:
                log.exception("indexing failed; will retry")

    def _housekeeping_loop(self) -> None:
        """Delete quarantined files past their retention (audited), now and every interval."""
        interval = self.services.settings.housekeeping_interval_s
        while True:
            try:
                self.services.intake.purge_quarantine()
            except Exception:
                log.exception("quarantine purge failed; will retry")
            if self._stop.wait(interval):
                return
