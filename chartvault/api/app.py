"""The FastAPI application: routes over ``chartvault.service.Vault``.

Errors are JSON ``{"error": {"code": ..., "message": ...}}`` with the right
status; messages carry ids, never names or page text.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from chartvault import __version__
from chartvault.api.auth import authorize, refusal_before_route
from chartvault.api.releases import router as releases_router
from chartvault.api.uploads import UploadError, receive_upload
from chartvault.classify.types import DOC_TYPES
from chartvault.config import Settings
from chartvault.ingest.manifest import ManifestError, parse_manifest
from chartvault.ingest.runner import BackgroundRunner
from chartvault.search.types import IndexUnavailable, SearchQuery
from chartvault.service import InvalidInput, NotFound, Vault

log = logging.getLogger("chartvault.api")

Limit = Annotated[int, Query(ge=1, le=500, description="Page size.")]
Offset = Annotated[int, Query(ge=0, description="Items to skip.")]


_HTTP_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}


class TokenBody(BaseModel):
    role: Literal["scanner", "staff", "him_admin", "vendor", "admin"]
    name: str = Field(min_length=1, max_length=128)
    vendor: str | None = Field(None, max_length=128, description="The organisation of a vendor token.")
    days: int = Field(90, ge=1, le=3650, description="Days until the token expires.")


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def create_app(settings: Settings | None = None, start_background: bool = True) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        vault = Vault(settings, actor="api:anonymous")  # named callers arrive with API tokens
        runner = BackgroundRunner(vault)
        app.state.vault, app.state.runner = vault, runner
        if start_background:
            runner.start()
        try:
            yield
        finally:
            runner.stop()
            vault.close()

    app = FastAPI(
        title="ChartVault",
        version=__version__,
        description="Scanned medical records: batches in, searchable archived documents out.",
        lifespan=lifespan,
        dependencies=[Depends(authorize)],  # every route: token + role from chartvault/api/auth.py POLICY
    )
    app.include_router(releases_router)  # release of information (issue 6)

    @app.exception_handler(InvalidInput)
    async def invalid_input(_: Request, exc: InvalidInput) -> JSONResponse:
        return _error(422, "invalid_request", str(exc))

    @app.exception_handler(NotFound)
    async def not_found(_: Request, exc: NotFound) -> JSONResponse:
        return _error(404, "not_found", str(exc))

    @app.exception_handler(UploadError)
    async def upload_error(_: Request, exc: UploadError) -> JSONResponse:
        return _error(exc.status, "bad_upload", str(exc))

    @app.exception_handler(ManifestError)
    async def manifest_error(_: Request, exc: ManifestError) -> JSONResponse:
        return _error(422, "bad_manifest", str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        if (refusal := await refusal_before_route(request)) is not None:
            return await http_error(request, refusal)
        parts = [f"{'.'.join(str(x) for x in e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in exc.errors()]
        return _error(422, "invalid_request", "; ".join(parts))

    @app.exception_handler(IndexUnavailable)
    async def index_unavailable(_: Request, exc: IndexUnavailable) -> JSONResponse:
        # No usable index yet (first build, or a corrupt one being rebuilt): try again shortly.
        response = _error(503, "index_rebuilding", str(exc))
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and (refusal := await refusal_before_route(request)) is not None:
            exc = refusal
        response = _error(exc.status_code, _HTTP_CODES.get(exc.status_code, "http_error"), str(exc.detail))
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value  # e.g. WWW-Authenticate on 401
        return response

    def vault_of(request: Request) -> Vault:
        return request.app.state.vault

    @app.post("/tokens", status_code=201, tags=["access"], summary="Create an API token (shown once)")
    def create_token(request: Request, body: TokenBody) -> dict[str, Any]:
        from chartvault.archive.tokens import TokenError

        try:
            return vault_of(request).create_token(body.role, body.name, body.vendor, body.days)
        except TokenError as exc:
            raise InvalidInput(str(exc)) from None

    @app.get("/tokens", tags=["access"], summary="Every token (never the secrets)")
    def list_tokens(request: Request) -> dict[str, Any]:
        return {"tokens": vault_of(request).tokens()}

    @app.delete("/tokens/{token_id}", tags=["access"], summary="Revoke a token at once")
    def revoke_token(request: Request, token_id: str) -> dict[str, Any]:
        from chartvault.archive.tokens import TokenError

        try:
            return vault_of(request).revoke_token(token_id)
        except TokenError as exc:
            raise NotFound(str(exc)) from None

    @app.get(
        "/audit/verify", tags=["access"], summary="Check the audit log's MAC chain against its checkpoints"
    )
    def audit_verify(request: Request) -> dict[str, Any]:
        return vault_of(request).verify_audit()

    @app.get("/health", tags=["service"])
    def health(request: Request) -> dict[str, Any]:
        vault = vault_of(request)
        return {"status": "ok", "version": __version__, "index_queue": vault.indexer.pending()}

    @app.post(
        "/batches",
        status_code=202,
        tags=["batches"],
        summary="Upload a batch of scanned files (multipart/form-data, streamed to disk)",
        openapi_extra={
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
        },
    )
    async def post_batch(request: Request) -> JSONResponse:
        vault = vault_of(request)
        upload = await receive_upload(
            request.headers.get("content-type", ""),
            request.stream(),
            settings.data_dir / "staging" / ".incoming",
            settings.max_file_bytes,
            settings.max_upload_files,
        )
        try:
            if not upload.files:
                raise UploadError(422, "no files in the request (send them as form field 'files')")
            manifest = parse_manifest(upload.fields["manifest"]) if upload.fields.get("manifest") else None
        except (UploadError, ManifestError):
            upload.discard()
            raise
        batch_id = vault.new_batch(
            "api", upload.fields.get("station"), upload.fields.get("operator"), manifest
        )
        for name, staged in upload.files:
            vault.add_staged(batch_id, staged, name, manifest)
        vault.close_intake(batch_id, manifest)
        request.app.state.runner.submit(batch_id)
        report = vault.batch_report(batch_id)
        log.info("batch received batch=%s files=%d", batch_id, len(upload.files))
        return JSONResponse(
            {
                "batch_id": batch_id,
                "status": report["status"],
                "status_url": f"/batches/{batch_id}",
                "files": [
                    {
                        "file_id": f["id"],
                        "name": f["name"],
                        "status": f["status"],
                        "reason_code": f["reason_code"],
                        "reason": f["reason"],
                    }
                    for f in report["files"]
                ],
            },
            status_code=202,
        )

    @app.get("/batches", tags=["batches"])
    def list_batches(request: Request, limit: Limit = 50, offset: Offset = 0) -> dict[str, Any]:
        items = vault_of(request).list_batches(limit, offset)
        return {"limit": limit, "offset": offset, "items": items}

    @app.get("/batches/{batch_id}", tags=["batches"])
    def get_batch(request: Request, batch_id: str) -> dict[str, Any]:
        return vault_of(request).batch_report(batch_id)

    @app.get("/documents/{doc_id}", tags=["documents"])
    def get_document(request: Request, doc_id: str) -> dict[str, Any]:
        return vault_of(request).document(doc_id, with_text=False)

    @app.get("/documents/{doc_id}/original", tags=["documents"], response_class=StreamingResponse)
    def get_original(request: Request, doc_id: str) -> StreamingResponse:
        vault = vault_of(request)
        original = vault.original(doc_id)
        return StreamingResponse(
            vault.stream_original(doc_id, original),
            media_type=original.mime,
            headers={
                "Content-Length": str(original.size),
                "Content-Disposition": f'attachment; filename="{original.filename}"',
                "X-Content-SHA256": original.ref.sha256,
                "Cache-Control": "no-store",
            },
        )

    @app.get("/documents/{doc_id}/pages/{page_no}/text", tags=["documents"])
    def get_page_text(request: Request, doc_id: str, page_no: int) -> dict[str, Any]:
        return vault_of(request).page_text(doc_id, page_no)

    @app.get("/search", tags=["search"])
    def search(
        request: Request,
        q: Annotated[str | None, Query(description='Words, "phrases", AND/OR/NOT, prefix*.')] = None,
        mrn: str | None = None,
        doc_type: Annotated[str | None, Query(alias="type")] = None,
        date_from: Annotated[date | None, Query(alias="from")] = None,
        date_to: Annotated[date | None, Query(alias="to")] = None,
        batch: str | None = None,
        name: Annotated[str | None, Query(description="Every word in the patient name.")] = None,
        icd: Annotated[str | None, Query(description="ICD-10 code (E11.9) or category (E11*).")] = None,
        encounter: str | None = None,
        sort: Annotated[Literal["relevance", "date_desc", "date_asc"], Query()] = "relevance",
        limit: Limit = 20,
        offset: Offset = 0,
    ) -> Any:
        if not (q or mrn or doc_type or date_from or date_to or batch or name or icd or encounter):
            return _error(
                422, "invalid_request", "give q or at least one filter (mrn, type, from, to, batch)"
            )
        query = SearchQuery(
            text=q,
            mrn=mrn,
            doc_type=doc_type,
            date_from=date_from,
            date_to=date_to,
            batch_id=batch,
            name=name,
            icd=icd,
            encounter=encounter,
            sort=sort,
            limit=limit,
            offset=offset,
        )
        return vault_of(request).search(query)

    @app.get("/patients/{mrn}/timeline", tags=["search"])
    def patient_timeline(request: Request, mrn: str) -> dict[str, Any]:
        """Every document of the patient, oldest date of service first, grouped by encounter."""
        return vault_of(request).timeline(mrn)

    @app.get("/documents/{doc_id}/similar", tags=["search"])
    def similar_documents(
        request: Request, doc_id: str, limit: Annotated[int, Query(ge=1, le=100)] = 10
    ) -> dict[str, Any]:
        """Documents whose content resembles this one's ("more like this")."""
        return vault_of(request).more_like_this(doc_id, limit)

    @app.get("/review", tags=["review"], summary="Documents waiting for a person, with reasons (ids only)")
    def review_queue(request: Request, limit: Limit = 50, offset: Offset = 0) -> dict[str, Any]:
        return vault_of(request).review_queue(limit, offset)

    @app.post("/documents/{doc_id}/classification", tags=["review"], summary="Set a document's type")
    def correct_classification(request: Request, doc_id: str, body: ClassificationBody) -> dict[str, Any]:
        return vault_of(request).correct_classification(doc_id, body.doc_type)

    @app.post(
        "/documents/{doc_id}/review/resolve",
        tags=["review"],
        summary="Confirm whose document this is (e.g. after a possible misfile); optionally fix the MRN",
    )
    def resolve_review(request: Request, doc_id: str, body: ResolveBody | None = None) -> dict[str, Any]:
        return vault_of(request).resolve_review(doc_id, mrn=body.mrn if body else None)

    return app


class ClassificationBody(BaseModel):
    """A staff correction of a document's type."""

    doc_type: Literal[DOC_TYPES] = Field(description="One of the document types.")  # type: ignore[valid-type]


class ResolveBody(BaseModel):
    """Resolution of a document's review; ``mrn`` replaces the document's MRN when given."""

    mrn: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9\-]+$")
