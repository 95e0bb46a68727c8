"""Release of information: requests, authorizations, decisions, packages, the accounting of disclosures.

Roles are in ``chartvault.api.auth.POLICY``; vendor scoping (own, fetchable releases only, anything
else 404) is enforced by the release service. The package's disclosure is recorded and committed
before the first byte (or the presigned URL) leaves.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from chartvault.api.deps import ServicesDep
from chartvault.api.errors import error_responses
from chartvault.api.uploads import BAD_UPLOAD, receive_upload
from chartvault.archive.models import RELEASE_STATES, REQUESTER_TYPES
from chartvault.errors import InvalidInput, TooLarge, UnsupportedMedia
from chartvault.ingest.sniff import detect_kind
from chartvault.ingest.staging import upload_limits
from chartvault.schemas.releases import AuthorizationAttached, DisclosureAccounting, ReleaseList, ReleaseView

router = APIRouter(tags=["releases"])
DECISION_ERRORS = error_responses(403, 404, 409, 422)


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


@router.post(
    "/releases",
    status_code=201,
    summary="Log a request for release of information",
    responses=error_responses(404, 409, 422),
)
def create_release(body: ReleaseBody, services: ServicesDep) -> ReleaseView:
    criteria = body.criteria.model_dump(by_alias=True, exclude_none=True) if body.criteria else None
    return services.releases.create_release(
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


@router.get(
    "/releases", summary="Releases (a vendor sees only its own approved ones)", responses=error_responses(422)
)
def list_releases(
    services: ServicesDep,
    status: Annotated[Literal[RELEASE_STATES] | None, Query()] = None,  # type: ignore[valid-type]
    overdue: bool = False,
) -> ReleaseList:
    return ReleaseList(items=services.releases.releases(status=status, overdue=overdue))


@router.get("/releases/{release_id}", summary="One release", responses=error_responses(404))
def get_release(release_id: str, services: ServicesDep) -> ReleaseView:
    return services.releases.release(release_id)


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
    responses=error_responses(400, 404, 409, 413, 415, 422),
)
async def attach_authorization(
    request: Request, release_id: str, services: ServicesDep
) -> AuthorizationAttached:
    # The same parser and caps as a batch upload; one image and its elements.
    limits = replace(upload_limits(services.settings), max_files=2)
    upload = await receive_upload(
        request.headers.get("content-type", ""), request.stream(), services.intake.stager, limits
    )
    try:
        if len(upload.files) > 1:
            raise InvalidInput("send one authorization image (form field 'image')", code=BAD_UPLOAD)
        try:
            elements = json.loads(upload.fields.get("elements") or "")
        except ValueError:
            raise InvalidInput("elements must be JSON (form field 'elements')") from None
        if not isinstance(elements, dict):
            raise InvalidInput("elements must be a JSON object")
        staged = upload.files[0][1] if upload.files else None
        if staged is not None and (staged.path is None or staged.over_limit):
            raise TooLarge("the authorization image is too large", code=BAD_UPLOAD)
        mime = None
        if staged is not None and staged.path is not None:
            with staged.path.open("rb") as fp:
                kind = detect_kind(fp.read(64))
            if kind is None:
                raise UnsupportedMedia(
                    "the authorization image must be a PDF, TIFF, PNG or JPEG", code=BAD_UPLOAD
                )
            mime = kind.mime

        return await run_in_threadpool(
            services.releases.attach_authorization,
            release_id,
            staged.path if staged is not None else None,
            elements,
            sha256=staged.sha256 if staged is not None else None,
            mime=mime,
        )
    finally:
        upload.discard()


@router.post(
    "/releases/{release_id}/review", summary="Take a request into HIM review", responses=DECISION_ERRORS
)
def review_release(release_id: str, services: ServicesDep) -> ReleaseView:
    return services.releases.review_release(release_id)


@router.post(
    "/releases/{release_id}/approve",
    summary="Approve (not by its requester); builds the package",
    responses=DECISION_ERRORS,
)
def approve_release(release_id: str, services: ServicesDep, body: ApproveBody | None = None) -> ReleaseView:
    days = body.access_days if body else 30
    return services.releases.approve_release(release_id, access_days=days)


@router.post(
    "/releases/{release_id}/deny",
    summary="Deny (not by its requester), with a reason",
    responses=DECISION_ERRORS,
)
def deny_release(release_id: str, body: DenyBody, services: ServicesDep) -> ReleaseView:
    return services.releases.deny_release(release_id, body.reason)


@router.post(
    "/releases/{release_id}/extend",
    summary="The one 30-day extension, with its reason",
    responses=DECISION_ERRORS,
)
def extend_release(release_id: str, body: ReasonBody, services: ServicesDep) -> ReleaseView:
    return services.releases.extend_release(release_id, body.reason)


@router.post("/releases/{release_id}/revoke", summary="Stop vendor access at once", responses=DECISION_ERRORS)
def revoke_release(release_id: str, services: ServicesDep, body: RevokeBody | None = None) -> ReleaseView:
    if body is not None and body.authorization_revoked:
        return services.releases.revoke_authorization(release_id)
    return services.releases.revoke_release(release_id, body.reason if body else "")


@router.post("/releases/{release_id}/close", summary="Close a fulfilled release", responses=DECISION_ERRORS)
def close_release(release_id: str, services: ServicesDep) -> ReleaseView:
    return services.releases.close_release(release_id)


@router.post(
    "/releases/{release_id}/sent",
    summary="Record that the package left to its recipient by other means (the disclosure)",
    responses=DECISION_ERRORS,
)
def mark_sent(release_id: str, services: ServicesDep) -> ReleaseView:
    return services.releases.mark_sent(release_id)


@router.get(
    "/releases/{release_id}/package",
    response_class=StreamingResponse,
    response_model=None,
    summary="The stamped package PDF: a vendor's fetch is the disclosure (recorded first), staff's a preview",
    responses={
        200: {
            "description": "The package",
            "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
        },
        307: {"description": "S3 store: a presigned URL of a few minutes"},
        **error_responses(404, 409, 422),
    },
)
def get_package(
    release_id: str,
    services: ServicesDep,
    redirect: Annotated[Literal["presigned"] | None, Query(description="S3 store: 307 to a URL")] = None,
) -> Response:
    releases = services.releases
    method = "presigned_url" if redirect == "presigned" else "stream"
    fetch = releases.fetch_package(release_id, method)
    if method == "presigned_url":
        return RedirectResponse(releases.presigned_package_url(fetch), status_code=307)
    headers = {
        "Content-Length": str(fetch.ref.size),
        "Content-Disposition": f'attachment; filename="{fetch.filename}"',
        "X-Content-SHA256": fetch.ref.sha256,
        "Cache-Control": "no-store",
    }
    if fetch.disclosure_id is not None:  # a vendor's fetch; a staff preview is no disclosure
        headers["X-Disclosure-Id"] = fetch.disclosure_id
    return StreamingResponse(releases.open_package(fetch), media_type="application/pdf", headers=headers)


@router.get(
    "/patients/{mrn}/disclosures",
    summary="Accounting of disclosures (164.528), six years back",
    description="Deprecated: the MRN is in the URL, which proxies' access logs keep. Use "
    "`POST /patients/disclosures`.",
    deprecated=True,
    responses=error_responses(422),
)
def patient_disclosures(
    mrn: str, services: ServicesDep, accountable_only: bool = False
) -> DisclosureAccounting:
    return services.releases.disclosures(mrn, accountable_only=accountable_only)


class DisclosuresBody(BaseModel):
    """Whose accounting, in the body (where no proxy's access log keeps the MRN)."""

    mrn: str = Field(min_length=1, max_length=64, description="The patient's MRN.")
    accountable_only: bool = Field(False, description="Only the disclosures owed an account of.")


@router.post(
    "/patients/disclosures",
    summary="Accounting of disclosures (164.528), six years back",
    responses=error_responses(422),
)
def patient_disclosures_by_body(body: DisclosuresBody, services: ServicesDep) -> DisclosureAccounting:
    """As ``GET /patients/{mrn}/disclosures``, the MRN in the body (audited the same)."""
    return services.releases.disclosures(body.mrn, accountable_only=body.accountable_only)
