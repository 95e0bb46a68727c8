"""Pipeline stages as Celery tasks over Redis: OCR on as many machines as there are scanners to keep up with.

The embedded default stays the local process pool (``executor="local"``). With ``executor="celery"`` the
Vault hands the Pipeline a :class:`CeleryExecutor` instead: it looks like the part of a
``ProcessPoolExecutor`` the Pipeline uses (``submit(fn, *args) -> Future``, ``shutdown``), so the Pipeline
does not know which one it drives, and the SAME ``sniff_task`` / ``ocr_task`` functions run in both.
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
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict
from pathlib import Path
from typing import Any

from celery import Celery, signals
from celery.app import trace as _trace
from celery.backends.base import BaseKeyValueStoreBackend
from celery.exceptions import WorkerLostError
from celery.states import READY_STATES, SUCCESS

from chartvault.config import Settings, get_settings
from chartvault.filetypes import FileKind
from chartvault.ingest.sniff import Limits, Sniffed
from chartvault.ingest.workers import PageOutcome, SniffOutcome, ocr_task, sniff_task
from chartvault.ocr.types import OcrOptions, PageText, Word

log = logging.getLogger("chartvault.distributed")

SNIFF = "chartvault.sniff"
OCR = "chartvault.ocr"

# Celery logs a task's return value on success; ours is page text (PHI). Ids and timings only.
_trace.LOG_SUCCESS = "Task %(name)s[%(id)s] succeeded in %(runtime)ss"


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


def _staged(rel: str) -> Path:
    """The worker's path of a file given relative to the data dir; never outside it."""
    root = _worker_settings.data_dir.resolve()
    path = (root / rel).resolve()
    if not path.is_relative_to(root):
        raise ValueError("task path outside the data dir")
    return path


@signals.worker_init.connect  # the main process too, for --pool solo (children inherit it)
@signals.worker_process_init.connect
def _init_worker_process(**_: Any) -> None:
    """The same per-process set-up as the local pool: one tesseract thread, Pillow's bomb guard."""
    from chartvault.ingest.workers import _init_worker

    _init_worker(_worker_settings.max_pixels)


@app.task(name=SNIFF, max_retries=1)
def sniff_remote(rel_path: str, limits: dict[str, Any]) -> dict[str, Any]:
    """``sniff_task`` on a worker; the outcome as JSON."""
    path = _staged(rel_path)
    if not path.exists():
        raise StagedFileMissing(f"staged file not visible on this worker: {rel_path}")
    return _sniff_to_json(sniff_task(str(path), Limits(**limits)))


@app.task(name=OCR, max_retries=1)
def ocr_remote(
    rel_path: str, kind: str, page_no: int, options: dict[str, Any], rel_tmp: str
) -> dict[str, Any]:
    """``ocr_task`` on a worker; the outcome as JSON."""
    path = _staged(rel_path)
    if not path.exists():
        raise StagedFileMissing(f"staged file not visible on this worker: {rel_path}")
    tmp = _staged(rel_tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    return _page_to_json(ocr_task(str(path), kind, page_no, OcrOptions(**options), str(tmp)))


# -- outcomes as JSON --------------------------------------------------------------------------------------


def _sniff_to_json(out: SniffOutcome) -> dict[str, Any]:
    sniffed = None
    if out.sniffed is not None:
        sniffed = {"kind": out.sniffed.kind.value, "page_count": out.sniffed.page_count}
    return {"sniffed": sniffed, "code": out.code, "reason": out.reason}


def _sniff_from_json(d: dict[str, Any]) -> SniffOutcome:
    s = d.get("sniffed")
    sniffed = Sniffed(FileKind(s["kind"]), int(s["page_count"])) if s else None
    return SniffOutcome(sniffed=sniffed, code=d.get("code"), reason=d.get("reason"))


def _page_to_json(out: PageOutcome) -> dict[str, Any]:
    page = None
    if out.page is not None:
        page = asdict(out.page)
        page["words"] = [[w.text, w.conf, w.left, w.top, w.width, w.height] for w in out.page.words]
    return {
        "page": page,
        "identifiers": out.identifiers,
        "error": out.error,
        "barcodes": out.barcodes,
        "barcode_ms": out.barcode_ms,
    }


def _page_from_json(d: dict[str, Any]) -> PageOutcome:
    page = None
    if (p := d.get("page")) is not None:
        page = PageText(**{**p, "words": [Word(*w) for w in p.get("words") or []]})
    return PageOutcome(
        page=page,
        identifiers=d.get("identifiers"),
        error=d.get("error"),
        barcodes=d.get("barcodes"),
        barcode_ms=int(d.get("barcode_ms") or 0),
    )


# -- driver side -------------------------------------------------------------------------------------------


class RemoteTaskFailed(RuntimeError):
    """A stage task raised on its worker (not a page error, which comes back as a value)."""


class _Call:
    """One sent task: its future, how to read its result and what to return if its worker kept crashing."""

    __slots__ = ("crashed", "decode", "future")

    def __init__(self, future: Future, decode: Callable[[dict[str, Any]], Any], crashed: Any) -> None:
        self.future, self.decode, self.crashed = future, decode, crashed


class CeleryExecutor:
    """The Pipeline's pool, backed by Celery: ``submit`` sends a task, a poller thread completes the Future.

    One thread polls the result backend for every pending task with one MGET per tick, instead of a thread
    blocked per task: a batch of thousands of pages costs one connection and one thread.
    """

    def __init__(self, settings: Settings, poll_interval_s: float = 0.2) -> None:
        self._app = make_app(settings)
        backend = self._app.backend
        if not isinstance(backend, BaseKeyValueStoreBackend):
            raise ValueError("executor=celery needs a key-value result backend (redis://)")
        self._backend: BaseKeyValueStoreBackend = backend
        self._data_dir = settings.data_dir.resolve()
        self._queue = settings.celery_queue
        self._poll = poll_interval_s
        self._pending: dict[str, _Call] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="chartvault-celery-results", daemon=True)
        self._thread.start()

    def _rel(self, path: str) -> str:
        p = Path(path).resolve()
        if not p.is_relative_to(self._data_dir):
            raise ValueError("only files under the data dir can be sent to workers")
        return str(p.relative_to(self._data_dir))

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future:
        """Send ``fn(*args)`` (``sniff_task`` or ``ocr_task``) to the workers; a Future of its outcome."""
        if self._closed:
            raise RuntimeError("executor is shut down")
        if fn is sniff_task:
            path, limits = args
            name, task_args = SNIFF, [self._rel(path), asdict(limits)]
            decode: Callable[[dict[str, Any]], Any] = _sniff_from_json
            crashed: Any = SniffOutcome(code="unreadable", reason="Decoding the file crashed a worker.")
        elif fn is ocr_task:
            path, kind, page_no, options, tmp_root = args
            name, task_args = OCR, [self._rel(path), kind, page_no, asdict(options), self._rel(tmp_root)]
            decode = _page_from_json
            crashed = PageOutcome(error=f"page {page_no}: decoding crashed a worker")
        else:
            raise TypeError(f"not a pipeline stage function: {getattr(fn, '__name__', fn)!r}")
        fut: Future = Future()
        # The AsyncResult is dropped at once (only its id is kept): that also ends the pub/sub subscription
        # send_task opens for it, which nobody would read; the poller reads the result key instead.
        task_id = self._app.send_task(name, args=task_args, queue=self._queue).id
        with self._lock:
            self._pending[task_id] = _Call(fut, decode, crashed)
        self._wake.set()
        return fut

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
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            raws = self._backend.mget([self._backend.get_key_for_task(t) for t in chunk])
            for task_id, raw in zip(chunk, raws, strict=True):
                if raw is None:
                    continue
                meta = self._backend.decode_result(raw)
                if meta.get("status") not in READY_STATES:
                    continue
                with self._lock:
                    call = self._pending.pop(task_id, None)
                if call is None:
                    continue
                self._complete(task_id, call, meta)
                self._backend.delete(self._backend.get_key_for_task(task_id))  # page text out of Redis

    def _complete(self, task_id: str, call: _Call, meta: dict[str, Any]) -> None:
        if call.future.cancelled():
            return
        try:
            if meta["status"] == SUCCESS:
                call.future.set_result(call.decode(meta["result"]))
            elif isinstance(meta.get("result"), WorkerLostError):
                log.warning("celery task lost its worker twice task=%s", task_id)
                call.future.set_result(call.crashed)
            else:
                exc = meta.get("result")
                kind = type(exc).__name__ if isinstance(exc, BaseException) else str(meta["status"])
                call.future.set_exception(RemoteTaskFailed(f"task {task_id} failed on its worker: {kind}"))
        except Exception as exc:  # a malformed result must not kill the poller
            if not call.future.done():
                call.future.set_exception(RemoteTaskFailed(f"task {task_id}: {type(exc).__name__}"))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop polling. Tasks already sent still run on the workers; their results expire unread.

        Futures still pending fail with ``BrokenProcessPool`` (or are cancelled), like a dead local pool, so
        nothing waits forever on a closed executor.
        """
        self._closed = True
        self._wake.set()
        with self._lock:
            pending, self._pending = self._pending, {}
        for call in pending.values():
            if cancel_futures:
                call.future.cancel()
            if not call.future.done():
                call.future.set_exception(BrokenProcessPool("celery executor shut down"))
        if wait and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._app.close()  # the broker connection pool
