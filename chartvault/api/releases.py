"""Release-of-information routes (issue 6): requests, authorizations, decisions, packages, accounting.

Roles are in ``chartvault.api.auth.POLICY``; vendor scoping (own, fetchable
releases only, anything else 404) is enforced by the core. The package's
disclosure is recorded and committed before the first byte (or the presigned
URL) leaves.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from chartvault.api.uploads import UploadError, receive_upload
from chartvault.archive.models import RELEASE_STATES, REQUESTER_TYPES
from chartvault.ingest.sniff import detect_kind
from chartvault.release.requests import ReleaseError
from chartvault.service import InvalidInput, Vault

router = APIRouter(tags=["releases"])
T = TypeVar("T")


class CriteriaBody(BaseModel):
    """Documents chosen at approval: this patient's live documents matching every given field."""

    model_config = {"populate_by_name": True}
    date_from: str | None = Field(None, alias="from", description="Date of service from (YYYY-MM-DD).")
    date_to: str | None = Field(None, alias="to", description="Date of service to (YYYY-MM-DD).")
    types: list[str] | None = None


class ReleaseBody(BaseModel):
    mrn: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9\-]+$")
    requester_type: Literal[REQUESTER_TYPES]  # type: ignore[valid-type]
    recipient: str = Field(min_length=1, max_length=256, description="The final recipient.")
    recipient_address: str | None = Field(None, max_length=2000)
    purpose: str = Field(min_length=1, max_length=512)
    document_ids: list[str] | None = Field(None, max_length=1000)
    criteria: CriteriaBody | None = None
    vendor: str | None = Field(None, max_length=128, description="The vendor organisation that fulfils it.")
    received_at: datetime | None = Field(None, description="When the request was received (default now).")


class ReasonBody(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


class ApproveBody(BaseModel):
    access_days: int = Field(30, ge=1, le=90, description="Days the vendor may fetch the package.")


class DenyBody(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


class RevokeBody(BaseModel):
    reason: str = Field("", max_length=2000)
    authorization_revoked: bool = Field(False, description="The individual revoked the authorization.")


def _vault(request: Request) -> Vault:
    return request.app.state.vault


def _refusal(exc: ReleaseError) -> JSONResponse:
    body: dict[str, Any] = {"code": exc.code, "message": str(exc)}
    problems = getattr(exc, "problems", None)
    if problems is not None:
        body["problems"] = problems
    return JSONResponse({"error": body}, status_code=exc.status)


def _run(fn: Callable[[], T]) -> T | JSONResponse:
    """Call the core; a refused release action becomes the app's JSON error with its status."""
    try:
        return fn()
    except ReleaseError as exc:
        return _refusal(exc)


@router.post("/releases", status_code=201, summary="Log a request for release of information")
def create_release(request: Request, body: ReleaseBody) -> Any:
    criteria = body.criteria.model_dump(by_alias=True, exclude_none=True) if body.criteria else None
    return _run(
        lambda: _vault(request).create_release(
            mrn=body.mrn,
            requester_type=body.requester_type,
            recipient=body.recipient,
            recipient_address=body.recipient_address,
            purpose=body.purpose,
            document_ids=body.document_ids,
            criteria=criteria,
            vendor=body.vendor,
            received_at=body.received_at,
        )
    )


@router.get("/releases", summary="Releases (a vendor sees only its own approved ones)")
def list_releases(
    request: Request,
    status: Annotated[Literal[RELEASE_STATES] | None, Query()] = None,  # type: ignore[valid-type]
    overdue: bool = False,
) -> dict[str, Any]:
    return {"items": _vault(request).releases(status=status, overdue=overdue)}


@router.get("/releases/{release_id}", summary="One release")
def get_release(request: Request, release_id: str) -> dict[str, Any]:
    return _vault(request).release(release_id)


@router.post(
    "/releases/{release_id}/authorization",
    status_code=201,
    summary="Attach the signed authorization: scanned image + its 164.508(c) elements (multipart)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["elements"],
                        "properties": {
                            "image": {"type": "string", "format": "binary"},
                            "elements": {"type": "string", "description": "The elements as JSON."},
                        },
                    }
                }
            },
        }
    },
)
async def attach_authorization(request: Request, release_id: str) -> Any:
    vault = _vault(request)
    settings = vault.settings
    upload = await receive_upload(
        request.headers.get("content-type", ""),
        request.stream(),
        settings.data_dir / "staging" / ".incoming",
        settings.max_file_bytes,
        2,
    )
    try:
        if len(upload.files) > 1:
            raise UploadError(422, "send one authorization image (form field 'image')")
        try:
            elements = json.loads(upload.fields.get("elements") or "")
        except ValueError:
            raise InvalidInput("elements must be JSON (form field 'elements')") from None
        if not isinstance(elements, dict):
            raise InvalidInput("elements must be a JSON object")
        staged = upload.files[0][1] if upload.files else None
        if staged is not None and (staged.path is None or staged.over_limit):
            raise UploadError(413, "the authorization image is too large")
        mime = None
        if staged is not None and staged.path is not None:
            with staged.path.open("rb") as fp:
                kind = detect_kind(fp.read(64))
            if kind is None:
                raise UploadError(415, "the authorization image must be a PDF, TIFF, PNG or JPEG")
            mime = kind.mime

        def attach() -> Any:
            return _run(
                lambda: vault.attach_authorization(
                    release_id,
                    staged.path if staged is not None else None,
                    elements,
                    sha256=staged.sha256 if staged is not None else None,
                    mime=mime,
                )
            )

        return await run_in_threadpool(attach)
    finally:
        upload.discard()


@router.post("/releases/{release_id}/review", summary="Take a request into HIM review")
def review_release(request: Request, release_id: str) -> Any:
    return _run(lambda: _vault(request).review_release(release_id))


@router.post("/releases/{release_id}/approve", summary="Approve (not by its requester); builds the package")
def approve_release(request: Request, release_id: str, body: ApproveBody | None = None) -> Any:
    days = body.access_days if body else 30
    return _run(lambda: _vault(request).approve_release(release_id, access_days=days))


@router.post("/releases/{release_id}/deny", summary="Deny (not by its requester), with a reason")
def deny_release(request: Request, release_id: str, body: DenyBody) -> Any:
    return _run(lambda: _vault(request).deny_release(release_id, body.reason))


@router.post("/releases/{release_id}/extend", summary="The one 30-day extension, with its reason")
def extend_release(request: Request, release_id: str, body: ReasonBody) -> Any:
    return _run(lambda: _vault(request).extend_release(release_id, body.reason))


@router.post("/releases/{release_id}/revoke", summary="Stop vendor access at once")
def revoke_release(request: Request, release_id: str, body: RevokeBody | None = None) -> Any:
    vault = _vault(request)
    if body is not None and body.authorization_revoked:
        return _run(lambda: vault.revoke_authorization(release_id))
    return _run(lambda: vault.revoke_release(release_id, body.reason if body else ""))


@router.post("/releases/{release_id}/close", summary="Close a fulfilled release")
def close_release(request: Request, release_id: str) -> Any:
    return _run(lambda: _vault(request).close_release(release_id))


@router.get(
    "/releases/{release_id}/package",
    response_class=StreamingResponse,
    summary="The stamped package PDF (the disclosure is recorded first)",
)
def get_package(
    request: Request,
    release_id: str,
    redirect: Annotated[Literal["presigned"] | None, Query(description="S3 store: 307 to a URL")] = None,
) -> Any:
    vault = _vault(request)
    method = "presigned_url" if redirect == "presigned" else "stream"
    fetch = _run(lambda: vault.fetch_package(release_id, method))
    if isinstance(fetch, JSONResponse):
        return fetch
    if method == "presigned_url":
        return RedirectResponse(vault.presigned_package_url(fetch), status_code=307)
    return StreamingResponse(
        vault.store.open(fetch.ref),
        media_type="application/pdf",
        headers={
            "Content-Length": str(fetch.ref.size),
            "Content-Disposition": f'attachment; filename="{fetch.filename}"',
            "X-Content-SHA256": fetch.ref.sha256,
            "X-Disclosure-Id": fetch.disclosure_id,
            "Cache-Control": "no-store",
        },
    )


@router.get("/patients/{mrn}/disclosures", summary="Accounting of disclosures (164.528), six years back")
def patient_disclosures(request: Request, mrn: str, accountable_only: bool = False) -> dict[str, Any]:
    return _vault(request).disclosures(mrn, accountable_only=accountable_only)
