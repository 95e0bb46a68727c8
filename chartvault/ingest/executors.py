"""Where worker stages run: a local process pool, or Celery workers (``distributed``).

The pipeline hands an executor ``StageTask`` objects and gets Futures of their outcomes; it never
knows which executor it drives, and an executor never asks which task it was given: it runs
``task.run`` (locally) or sends ``task.name`` with ``task.to_json()`` (remotely).
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Protocol, TypeVar

from chartvault.config import Settings
from chartvault.ingest.tasks import StageTask, init_worker_process
from chartvault.telemetry import metrics

log = logging.getLogger("chartvault.executors")

OutcomeT = TypeVar("OutcomeT")


class Executor(Protocol):
    def start(self) -> None:
        """Have the workers ready now rather than at the first task (no-op where they run elsewhere)."""
        ...

    def submit(self, task: StageTask[OutcomeT]) -> Future[OutcomeT]:
        """Run the task somewhere; its outcome (errors included, as values) arrives in the Future."""
        ...

    def close(self) -> None:
        """Stop taking tasks; pending Futures fail rather than wait forever."""
        ...


def open_executor(settings: Settings) -> Executor:
    """The executor ``settings.executor`` names (Celery is imported only when chosen)."""
    if settings.executor == "celery":
        from chartvault.ingest.distributed import CeleryExecutor

        return CeleryExecutor(settings)
    return LocalExecutor(settings.data_dir, settings.worker_count, settings.max_pixels)


def _run(task: StageTask[Any], data_dir: Path) -> Any:
    return task.run(data_dir)


class LocalExecutor:
    """A pool of worker processes, one per core, started on first use.

    A worker killed by a task (a crashing decoder) breaks the whole pool: the pool is then rebuilt
    and every task that was in it runs once more; a task that breaks the pool twice gets its
    ``crashed()`` outcome, so one poison page fails alone.
    """

    def __init__(self, data_dir: Path, workers: int, max_pixels: int) -> None:
        self.data_dir = data_dir
        self.workers = workers
        self.max_pixels = max_pixels
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False

    def _current_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise RuntimeError("executor is closed")
            if self._pool is None:
                # forkserver: the API server has threads, and forking a threaded process is unsafe.
                self._pool = ProcessPoolExecutor(
                    max_workers=self.workers,
                    mp_context=multiprocessing.get_context("forkserver"),
                    initializer=init_worker_process,
                    initargs=(self.max_pixels,),
                )
            return self._pool

    def _replace_broken(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:
                log.warning("a worker process died; restarting the pool")
                broken.shutdown(wait=False, cancel_futures=True)
                self._pool = None

    def start(self) -> None:
        """Start every worker process now (a pool otherwise starts them at its first tasks)."""
        pool = self._current_pool()
        for _ in range(self.workers):
            pool.submit(init_worker_process, self.max_pixels).result()

    def worker_pids(self) -> list[int]:
        """The live worker processes (for CPU accounting by benchmarks)."""
        pool = self._pool
        return [p.pid for p in (pool._processes or {}).values() if p.pid] if pool is not None else []

    def submit(self, task: StageTask[OutcomeT]) -> Future[OutcomeT]:
        outcome: Future[OutcomeT] = metrics.in_flight(Future())
        self._start(task, outcome, attempt=1)
        return outcome

    def _start(self, task: StageTask[OutcomeT], outcome: Future[OutcomeT], attempt: int) -> None:
        try:
            pool = self._current_pool()
            inner = pool.submit(_run, task, self.data_dir)
        except Exception as exc:  # closed, or broken between the check and the submit
            outcome.set_exception(exc)
            return
        inner.add_done_callback(lambda f: self._settle(task, outcome, attempt, pool, f))

    def _settle(
        self,
        task: StageTask[OutcomeT],
        outcome: Future[OutcomeT],
        attempt: int,
        pool: ProcessPoolExecutor,
        done: Future[Any],
    ) -> None:
        if done.cancelled():
            outcome.cancel()
            return
        exc = done.exception()
        if isinstance(exc, BrokenProcessPool) and not self._closed:
            self._replace_broken(pool)
            if attempt == 1:
                self._start(task, outcome, attempt=2)
            else:
                outcome.set_result(task.crashed())
        elif exc is not None:
            outcome.set_exception(exc)
        else:
            outcome.set_result(done.result())

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
