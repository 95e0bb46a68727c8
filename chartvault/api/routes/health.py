"""Liveness, readiness and metrics: what load balancers, orchestrators and Prometheus ask."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from chartvault import __version__
from chartvault.api import observability
from chartvault.api.deps import ServicesDep
from chartvault.api.errors import error_responses
from chartvault.schemas.common import Health, to_jsonable
from chartvault.schemas.operations import Readiness

router = APIRouter(tags=["service"])


@router.get("/health", summary="The service is up; how many documents wait for the index writer")
async def health(services: ServicesDep) -> Health:
    queued = await run_in_threadpool(services.parts.indexer.pending)
    return Health(status="ok", version=__version__, index_queue=queued)


@router.get(
    "/health/ready",
    response_model=Readiness,
    summary="Ready to serve: the catalog, the object store, the index (and the broker with Celery) answer",
    responses={503: {"model": Readiness, "description": "Some part did not answer; `checks` say which"}},
)
def ready(services: ServicesDep) -> Readiness | JSONResponse:
    readiness = services.operations.readiness()
    if readiness.ready:
        return readiness
    return JSONResponse(to_jsonable(readiness), status_code=503, headers={"Cache-Control": "no-store"})


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics (admins, or the scrape token CHARTVAULT_METRICS_TOKEN)",
    responses={
        200: {"description": "The Prometheus text format", "content": {CONTENT_TYPE_LATEST: {}}},
        **error_responses(),
    },
)
def prometheus_metrics(request: Request) -> Response:
    return Response(observability.exposition(request.app), media_type=CONTENT_TYPE_LATEST)
