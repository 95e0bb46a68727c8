"""Pipeline stages as Celery tasks over Redis: OCR on as many machines as there are scanners to keep up with.

The embedded default stays the local process pool (``executor="local"``). With ``executor="celery"`` the
composition root hands the Pipeline a :class:`CeleryExecutor` instead: the same ``Executor`` interface
(``submit(task) -> Future``), so the Pipeline does not know which one it drives, and the SAME stage tasks
(``chartvault.ingest.tasks``) run in both.
Catalog writes stay in the driver process (the API or CLI that owns the batch); workers only read the staged
file and return the outcome as JSON.

Deployment contract:

* The data dir (``CHARTVAULT_DATA_DIR``) must be shared storage (NFS, CephFS, ...) mounted on the driver and
  every worker: tasks carry the staged file's path *relative* to it, so the mount point may differ per
  machine, but the bytes must be the same.
* Start workers with ``chartvault worker`` (or ``celery -A chartvault.ingest.distributed worker -Q
  chartvault``, with ``OMP_THREAD_LIMIT=1``) and the same ``CHARTVAULT_CELERY_*`` settings as the driver.
* Delivery is at least once: tasks are acknowledged late, so the page of a worker that dies (SIGKILL, a lost
  machine) is redelivered after ``celery_visibility_timeout_s`` and done again elsewhere. The driver applies a
  page outcome only while the page is still ``received``, so a page done twice is applied once and its
  document archived once. A worker *child* that crashes (a decoder bug) is retried once, then the page fails,
  as with the local pool.
* The result backend briefly holds page text (PHI): Redis belongs on a private network, with AUTH/TLS
  (``rediss://``); results are deleted as soon as the driver reads them and expire anyway.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from celery import Celery, signals
from celery.exceptions import TimeoutError as CeleryTimeout
from celery.exceptions import WorkerLostError
from celery.result import AsyncResult
from celery.states import SUCCESS

from chartvault.config import Settings, get_settings
from chartvault.ingest.tasks import TASKS, StageTask, init_worker_process
from chartvault.telemetry import metrics

log = logging.getLogger("chartvault.distributed")

OutcomeT = TypeVar("OutcomeT")


def unacked_mutex_expire(visibility_timeout_s: float) -> int:
    """Seconds the lock of a sweep for abandoned pages outlives a worker killed while holding it."""
    return int(max(5.0, min(60.0, visibility_timeout_s / 2)))


def make_app(settings: Settings) -> Celery:
    """A Celery app configured from ChartVault settings (the driver's and the workers' are built alike).

    Acks late + reject on worker lost + prefetch 1: a worker holds one page at a time and a page is only
    removed from the queue once done, so a lost worker loses no page.
    """
    app = Celery("chartvault", set_as_current=False)
    transport: dict[str, Any] = {
        "visibility_timeout": settings.celery_visibility_timeout_s,
        # Look for abandoned pages often (one ZRANGE), so recovery takes about the visibility timeout.
        "unacked_restore_interval": max(1, min(10, int(settings.celery_visibility_timeout_s // 10))),
        "unacked_restore_throttle": 1,
        # A worker SIGKILLed during that sweep leaves its lock behind, and no worker sweeps until the lock
        # expires: kombu's 300 s would add five minutes to a lost page's recovery (seen in
        # tests/test_celery.py: 308 s instead of 20). A sweep takes milliseconds; the lock lasts a fraction of
        # the visibility timeout the lost page waits anyway.
        "unacked_mutex_expire": unacked_mutex_expire(settings.celery_visibility_timeout_s),
    }
    result_transport: dict[str, Any] = {}
    if settings.celery_key_prefix:
        transport["global_keyprefix"] = settings.celery_key_prefix
        result_transport["global_keyprefix"] = settings.celery_key_prefix
    app.conf.update(
        broker_url=settings.celery_broker_url,
        result_backend=settings.celery_result_backend,
        broker_transport_options=transport,
        result_backend_transport_options=result_transport,
        broker_connection_retry_on_startup=True,
        task_default_queue=settings.celery_queue,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        result_expires=settings.celery_result_expires_s,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # A crashing child (poison page) is retried once, then reported as failed: never redelivered forever.
        task_retry_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_send_sent_event=False,
        worker_send_task_events=False,
    )
    return app


# -- worker side -------------------------------------------------------------------------------------------

_worker_settings = get_settings()
app = make_app(_worker_settings)


class StagedFileMissing(RuntimeError):
    """The worker cannot see the staged file: the data dir is not the shared one (a deployment error).

    Raised rather than returned as an outcome, so the file is not quarantined as unreadable; the batch stops
    and resumes once the worker's storage is fixed.
    """


class _WithheldResult(logging.Filter):
    """Celery logs a task's return value on success; ours is page text (PHI). Ids and timings only."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, dict) and "return_value" in record.args:
            record.args = {**record.args, "return_value": "(withheld)"}
        return True


@signals.worker_init.connect  # the main process too, for --pool solo (children inherit it)
@signals.worker_process_init.connect
def _init_worker_process(**_: Any) -> None:
    """The same per-process set-up as the local pool, and no page text in the worker's log."""
    init_worker_process(_worker_settings.max_pixels)
    logging.getLogger("celery.app.trace").addFilter(_WithheldResult())


def _register(task_type: type[StageTask[Any]]) -> None:
    @app.task(name=task_type.name, max_retries=1)
    def remote(args: dict[str, Any]) -> dict[str, Any]:
        task = task_type.from_json(args)  # type: ignore[attr-defined]
        if not (_worker_settings.data_dir / task.path).exists():
            raise StagedFileMissing(f"staged file not visible on this worker: {task.path}")
        return task.run(_worker_settings.data_dir).to_json()  # type: ignore[no-any-return]


for _task_type in TASKS.values():
    _register(_task_type)


# -- driver side -------------------------------------------------------------------------------------------


class RemoteTaskFailed(RuntimeError):
    """A stage task raised on its worker (not a page error, which comes back as a value)."""


class CeleryExecutor:
    """The pipeline's ``Executor`` over Celery: ``submit`` sends a task, a poller thread completes Futures.

    One thread collects every pending result per tick (the result backend's ``get_many``: one MGET on
    Redis) instead of a thread blocked per task, so a batch of thousands of pages costs one connection and
    one thread. Results are deleted as soon as they are read (they hold page text).
    """

    def __init__(self, settings: Settings, poll_interval_s: float = 0.2) -> None:
        self._app = make_app(settings)
        self._queue = settings.celery_queue
        self._poll = poll_interval_s
        self._pending: dict[str, tuple[Future[Any], StageTask[Any]]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="chartvault-celery-results", daemon=True)
        self._thread.start()

    def start(self) -> None:
        """Workers are started on their own machines (``chartvault worker``)."""

    def submit(self, task: StageTask[OutcomeT]) -> Future[OutcomeT]:
        if self._closed:
            raise RuntimeError("executor is closed")
        future: Future[OutcomeT] = Future()
        # Only the id is kept: the poller reads the result key, nobody waits on the AsyncResult.
        task_id = self._app.send_task(task.name, args=[task.to_json()], queue=self._queue).id
        metrics.in_flight(future)  # sent: in flight until its result arrives or the executor closes
        with self._lock:
            self._pending[task_id] = (future, task)
        self._wake.set()
        return future

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self._poll)
            self._wake.clear()
            with self._lock:
                ids = list(self._pending)
            if not ids:
                continue
            try:
                self._collect(ids)
            except Exception as exc:  # Redis restarting: keep the futures, try again next tick
                log.warning("celery result poll failed (%s); retrying", type(exc).__name__)
                self._wake.wait(1.0)

    def _collect(self, ids: list[str]) -> None:
        ready: list[tuple[str, dict[str, Any]]] = []
        try:
            for task_id, meta in self._app.backend.get_many(ids, timeout=self._poll, interval=self._poll):
                ready.append((task_id, meta))
        except CeleryTimeout:
            pass  # the rest are still running
        for task_id, meta in ready:
            with self._lock:
                entry = self._pending.pop(task_id, None)
            if entry is not None:
                self._complete(task_id, *entry, meta)
            AsyncResult(task_id, app=self._app).forget()  # page text out of Redis

    def _complete(
        self, task_id: str, future: Future[Any], task: StageTask[Any], meta: dict[str, Any]
    ) -> None:
        if future.cancelled():
            return
        try:
            if meta["status"] == SUCCESS:
                future.set_result(task.decode(meta["result"]))
            elif isinstance(meta.get("result"), WorkerLostError):
                log.warning("celery task lost its worker twice task=%s", task_id)
                future.set_result(task.crashed())
            else:
                exc = meta.get("result")
                kind = type(exc).__name__ if isinstance(exc, BaseException) else str(meta["status"])
                future.set_exception(RemoteTaskFailed(f"task {task_id} failed on its worker: {kind}"))
        except Exception as exc:  # a malformed result must not kill the poller
            if not future.done():
                future.set_exception(RemoteTaskFailed(f"task {task_id}: {type(exc).__name__}"))

    def close(self) -> None:
        """Stop polling. Tasks already sent still run on the workers; their results expire unread.

        Futures still pending fail with ``BrokenProcessPool``, like a dead local pool, so nothing waits
        forever on a closed executor.
        """
        self._closed = True
        self._wake.set()
        with self._lock:
            pending, self._pending = self._pending, {}
        for future, _task in pending.values():
            if not future.done():
                future.set_exception(BrokenProcessPool("celery executor closed"))
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._app.close()  # the broker connection pool
