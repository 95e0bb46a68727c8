"""Reading archived documents: metadata, page text and the original, each read audited."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import StreamingResponse

from chartvault.api.deps import ServicesDep
from chartvault.api.errors import error_responses
from chartvault.schemas.documents import DocumentView, PageText
from chartvault.services import Services
from chartvault.services.documents import Original

router = APIRouter(tags=["documents"])

# Far above any file ChartVault accepts (CHARTVAULT_MAX_PAGES), far below what a database integer holds.
MAX_PAGE_NO = 100_000
_BINARY = {"schema": {"type": "string", "format": "binary"}}


@router.get("/documents/{doc_id}", summary="A document's metadata", responses=error_responses(404))
def get_document(doc_id: str, services: ServicesDep) -> DocumentView:
    return services.documents.get(doc_id, with_text=False)


@router.get(
    "/documents/{doc_id}/original",
    response_class=StreamingResponse,
    summary="The original file, streamed and checked against its sha256",
    responses={
        200: {
            "description": "The original bytes",
            "content": {m: _BINARY for m in ("application/pdf", "image/tiff", "image/png", "image/jpeg")},
        },
        **error_responses(404),
    },
)
def get_original(doc_id: str, services: ServicesDep) -> StreamingResponse:
    return _download(services, doc_id, services.documents.original(doc_id))


def _download(services: Services, doc_id: str, found: Original) -> StreamingResponse:
    """The bytes streamed as they are verified (the download audited before the first)."""
    return StreamingResponse(
        services.documents.stream(doc_id, found),
        media_type=found.mime,
        headers={
            "Content-Length": str(found.size),
            "Content-Disposition": f'attachment; filename="{found.filename}"',
            "X-Content-SHA256": found.ref.sha256,
            "Cache-Control": "no-store",
        },
    )


@router.get(
    "/documents/{doc_id}/rendition",
    response_class=StreamingResponse,
    summary="The searchable PDF rendition (page images with their OCR text), checked against its sha256",
    responses={
        200: {"description": "The rendition's bytes", "content": {"application/pdf": _BINARY}},
        **error_responses(404),
    },
)
def get_rendition(doc_id: str, services: ServicesDep) -> StreamingResponse:
    """A born-digital PDF is its own rendition; 404 while a scanned document's is not built yet."""
    return _download(services, doc_id, services.documents.rendition(doc_id))


@router.get(
    "/documents/{doc_id}/pages/{page_no}/text",
    summary="One page's text and confidence",
    responses=error_responses(404, 422),
)
def get_page_text(
    doc_id: str, page_no: Annotated[int, Path(ge=1, le=MAX_PAGE_NO)], services: ServicesDep
) -> PageText:
    return services.documents.page_text(doc_id, page_no)
