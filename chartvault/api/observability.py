"""What the API measures of itself: request latency per route template, an access log of ids, /metrics.

The middleware labels a request by its route *template* (``/patients/{mrn}/timeline``), never its
path, so no MRN or id reaches a metric or a log line, and the number of series stays bounded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chartvault.services import Services
from chartvault.services.operations import PAGE_STATES, OperationsService
from chartvault.telemetry import metrics

access_log = logging.getLogger("chartvault.api.access")

UNMATCHED = "<unmatched>"  # requests no route took (404s of made-up paths): one series, not one per path


class RequestMetrics:
    """ASGI middleware: the latency histogram and one access-log line per request (route templates)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            status = 500  # answered (and counted) by the app's error handler
            raise
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            seconds = time.perf_counter() - started
            metrics.HTTP_SECONDS.labels(scope["method"], route, str(status)).observe(seconds)
            access_log.info(
                "request method=%s route=%s status=%d ms=%.1f", scope["method"], route, status, seconds * 1000
            )


class CatalogCollector(Collector):
    """The catalog's gauges, gathered when Prometheus scrapes (cached a few seconds by the service)."""

    def __init__(self, operations: OperationsService) -> None:
        self.operations = operations

    def collect(self) -> Iterator[Metric]:
        g = self.operations.gauges()
        pages = GaugeMetricFamily(
            "chartvault_pages",
            "Pages not done yet, per state (received, ocr, classified, archived, failed).",
            labels=["state"],
        )
        for state in PAGE_STATES:
            pages.add_metric([state], g.pages_by_state.get(state, 0))
        yield pages
        yield GaugeMetricFamily(
            "chartvault_index_queue_depth", "Documents waiting for the index writer.", value=g.index_queue
        )
        yield GaugeMetricFamily(
            "chartvault_unfinished_batches",
            "Batches still receiving or processing.",
            value=g.unfinished_batches,
        )
        yield GaugeMetricFamily(
            "chartvault_oldest_unfinished_batch_age_seconds",
            "Age of the oldest batch still receiving or processing (0 when none is).",
            value=g.oldest_unfinished_batch_age_s or 0.0,
        )
        if g.newest_checkpoint_age_s is not None:
            yield GaugeMetricFamily(
                "chartvault_audit_checkpoint_age_seconds",
                "Age of the newest audit checkpoint in the object store (absent until the first one).",
                value=g.newest_checkpoint_age_s,
            )
        if g.newest_backup_age_s is not None:
            yield GaugeMetricFamily(
                "chartvault_backup_age_seconds",
                "Age of the newest complete backup (chartvault backup create; absent until the first one).",
                value=g.newest_backup_age_s,
            )


_registry_lock = threading.Lock()


def registry_of(app: FastAPI) -> CollectorRegistry:
    """The app's registry: the process's instruments, its process stats and its catalog's gauges."""
    with _registry_lock:
        registry: CollectorRegistry | None = getattr(app.state, "metrics_registry", None)
        if registry is None:
            services: Services = app.state.services
            registry = CollectorRegistry()
            for instrument in metrics.INSTRUMENTS:
                registry.register(instrument)
            registry.register(ProcessCollector(registry=None))
            registry.register(CatalogCollector(services.operations))
            app.state.metrics_registry = registry
        return registry


def exposition(app: FastAPI) -> bytes:
    """Every metric in the Prometheus text format."""
    return generate_latest(registry_of(app))


def install(app: FastAPI) -> None:
    app.add_middleware(RequestMetrics)
