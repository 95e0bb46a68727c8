"""Scanning stations upload batches; operators and staff follow every file and page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from chartvault.api.deps import ServicesDep
from chartvault.api.errors import error_responses
from chartvault.api.uploads import BAD_UPLOAD, receive_upload
from chartvault.errors import ChartVaultError, InvalidInput
from chartvault.ingest.manifest import parse_manifest
from chartvault.ingest.staging import upload_limits
from chartvault.schemas.batches import AcceptedFile, BatchAccepted, BatchList, BatchReport
from chartvault.services.intake import Incoming

router = APIRouter(tags=["batches"])

Limit = Annotated[int, Query(ge=1, le=500, description="Page size.")]
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="Items to skip.")]

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "station": {"type": "string"},
                        "operator": {"type": "string"},
                        "manifest": {"type": "string", "description": "Batch manifest as JSON."},
                    },
                }
            }
        },
    }
}


@router.post(
    "/batches",
    status_code=202,
    summary="Upload a batch of scanned files (multipart/form-data, streamed to disk)",
    openapi_extra=_UPLOAD_BODY,
    responses=error_responses(400, 413, 415, 422),
)
async def post_batch(request: Request, services: ServicesDep) -> BatchAccepted:
    """Every file is staged (written and fsynced) before the answer; processing goes on in the background."""
    intake = services.intake
    upload = await receive_upload(
        request.headers.get("content-type", ""),
        request.stream(),
        intake.stager,
        upload_limits(services.settings),
    )
    try:
        if not upload.files:
            raise InvalidInput("no files in the request (send them as form field 'files')", code=BAD_UPLOAD)
        raw_manifest = upload.fields.get("manifest")
        manifest = parse_manifest(raw_manifest, services.settings.mrn_pattern) if raw_manifest else None
        received = await run_in_threadpool(
            intake.receive,
            [Incoming(name, staged=staged) for name, staged in upload.files],
            source="api",
            station=upload.fields.get("station"),
            operator=upload.fields.get("operator"),
            manifest=manifest,
        )
    except ChartVaultError:
        upload.discard()
        raise
    request.app.state.background.submit(received.batch_id)
    report = await run_in_threadpool(intake.batch, received.batch_id)
    return BatchAccepted(
        batch_id=report.id,
        status=report.status,
        status_url=f"/batches/{report.id}",
        files=[
            AcceptedFile(
                file_id=f.id, name=f.name, status=f.status, reason_code=f.reason_code, reason=f.reason
            )
            for f in report.files
        ],
    )


@router.get(
    "/batches",
    summary="Batches, newest first (a scanner sees those they uploaded)",
    responses=error_responses(422),
)
def list_batches(services: ServicesDep, limit: Limit = 50, offset: Offset = 0) -> BatchList:
    return services.intake.batches(limit, offset)


@router.get(
    "/batches/{batch_id}",
    summary="Every file and page of a batch: states, refusals with reasons, review flags",
    responses=error_responses(404),
)
def get_batch(batch_id: str, services: ServicesDep) -> BatchReport:
    return services.intake.batch(batch_id)
