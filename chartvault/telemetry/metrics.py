"""The process's own measurements, as Prometheus instruments (prometheus-client).

They are created unregistered (``registry=None``) and gathered by the API's ``/metrics`` into a
registry of its own next to the catalog-derived gauges, so several apps in one process (the
tests) never register a name twice. Values are per process: the process that drives a batch
(the API server, or a CLI ``ingest``) records its pages; Prometheus adds up the replicas it scrapes.

Labels are codes, route templates and kinds only: never an id, a path with an MRN in it, or text.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from typing import TypeVar

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.registry import Collector

T = TypeVar("T")

# Seconds per page: text layers take milliseconds, a clean 300-dpi scan ~1-3 s on one core, a bad
# fax up to the OCR time limit (180 s by default).
OCR_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0, 60.0, 180.0)
# Seconds per HTTP request or search: milliseconds for reads, seconds for big uploads.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# pages/s is the pages read in this last stretch of time, divided by it.
RATE_WINDOW_S = 60.0

OCR_SECONDS = Histogram(
    "chartvault_ocr_page_seconds",
    "Seconds the worker took to read one page (OCR, or a PDF text layer), per page read.",
    buckets=OCR_BUCKETS,
    registry=None,
)
PAGES_READ = Counter(
    "chartvault_pages_read",
    "Pages whose OCR outcome this process applied to the catalog, by outcome (ok or failed).",
    ["outcome"],
    registry=None,
)
WORKER_TASKS_IN_FLIGHT = Gauge(
    "chartvault_worker_tasks_in_flight",
    "Sniff and OCR tasks this process handed to its executor (local pool or Celery) and awaits.",
    registry=None,
)
HTTP_SECONDS = Histogram(
    "chartvault_http_request_seconds",
    "Seconds to answer an HTTP request, by method, route template and status code.",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
    registry=None,
)
SEARCH_SECONDS = Histogram(
    "chartvault_search_seconds",
    "Seconds a search answered in (kind: search, timeline, similar), hits checked against the catalog.",
    ["kind"],
    buckets=LATENCY_BUCKETS,
    registry=None,
)
API_ERRORS = Counter(
    "chartvault_api_errors",
    "Requests the API refused or failed, by error code and HTTP status.",
    ["code", "status"],
    registry=None,
)


class EventRate:
    """Events per second over the last ``window_s`` seconds (a pages/s a person can read off a gauge)."""

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def tick(self) -> None:
        now = time.monotonic()
        with self._lock:
            self._times.append(now)
            self._forget_before(now - self.window_s)

    def per_second(self) -> float:
        now = time.monotonic()
        with self._lock:
            self._forget_before(now - self.window_s)
            return len(self._times) / self.window_s

    def _forget_before(self, cutoff: float) -> None:
        while self._times and self._times[0] < cutoff:
            self._times.popleft()


PAGE_RATE = EventRate()
PAGES_PER_SECOND = Gauge(
    "chartvault_pages_per_second",
    f"Pages this process read per second over the last {RATE_WINDOW_S:.0f} s.",
    registry=None,
)
PAGES_PER_SECOND.set_function(PAGE_RATE.per_second)

INSTRUMENTS: tuple[Collector, ...] = (
    OCR_SECONDS,
    PAGES_READ,
    PAGES_PER_SECOND,
    WORKER_TASKS_IN_FLIGHT,
    HTTP_SECONDS,
    SEARCH_SECONDS,
    API_ERRORS,
)


def page_read(ocr_ms: int | None, ok: bool) -> None:
    """Record one page whose OCR outcome was applied: its outcome, its time, the rate."""
    PAGES_READ.labels("ok" if ok else "failed").inc()
    if ok and ocr_ms is not None:
        OCR_SECONDS.observe(ocr_ms / 1000.0)
    PAGE_RATE.tick()


def in_flight(outcome: Future[T]) -> Future[T]:
    """Count a task handed to an executor as in flight until its outcome settles, whatever settles it."""
    WORKER_TASKS_IN_FLIGHT.inc()
    outcome.add_done_callback(lambda _: WORKER_TASKS_IN_FLIGHT.dec())
    return outcome


def api_error(code: str, status: int) -> None:
    API_ERRORS.labels(code, str(status)).inc()
