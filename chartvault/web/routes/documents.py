"""Staff pages: the document viewer and its page images, the original, timelines, similar."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import Query
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse

from chartvault.classify.types import DOC_TYPES
from chartvault.services.documents import Original
from chartvault.web.context import Page
from chartvault.web.forms import PageNo
from chartvault.web.routes.search import carried_words
from chartvault.web.routing import page_router

router = page_router()

IMAGE_WIDTHS = (600, 900, 1200, 1600)  # offered in srcset: the browser takes what the layout needs


@router.get("/ui/documents/{doc_id}")
def document_page(
    doc_id: str,
    page: Page,
    s: str | None = None,
    page_no: Annotated[int | None, Query(alias="page", ge=1, le=100_000)] = None,
    pos: Annotated[int | None, Query(ge=1, le=100_000)] = None,
) -> Response:
    """The viewer: the page image with the query's words boxed, the text beside it, page navigation.

    The search it was opened from arrives sealed (``s``), as the search page's."""
    services = page.services
    q = carried_words(page, s)
    document = services.documents.get(doc_id)
    view = services.pages.view(doc_id, page_no, q, pos)
    shown = view.pages
    index = shown.index(view.page_no) if view.page_no in shown else 0
    return page.render(
        "document.html",
        doc=document,
        view=view,
        q=q or "",
        index=index,
        previous=shown[index - 1] if index > 0 else None,
        next_page=shown[index + 1] if index + 1 < len(shown) else None,
        widths=IMAGE_WIDTHS,
        query_suffix=("&" + urlencode({"s": s})) if q and s else "",
    )


@router.post("/ui/documents/{doc_id}/find")
def find_in_document(doc_id: str, page: Page) -> Response:
    """The viewer's "find in this document": the words sealed as a search, then the viewer (a 303)."""
    q = page.field("q")
    target = f"/ui/documents/{quote(doc_id, safe='')}"
    if not q:
        return RedirectResponse(target, status_code=303)
    sealed = page.services.links.seal("search", {"q": q})
    return RedirectResponse(target + "?" + urlencode({"s": sealed}), status_code=303)


@router.get("/ui/documents/{doc_id}/pages/{page_no}/image")
def page_image(
    doc_id: str, page_no: PageNo, page: Page, w: Annotated[int, Query(ge=100, le=6000)] = 900
) -> Response:
    """The page rendered at the width asked for (cached on disk; every fetch audited as a read)."""
    image = page.services.pages.image(doc_id, page_no, w)
    return FileResponse(image.path, media_type="image/jpeg", headers={"ETag": image.etag})


@router.get("/ui/documents/{doc_id}/original")
def original(doc_id: str, page: Page) -> Response:
    """The original file, streamed and checked against its sha256 (audited as a download)."""
    return _download(page, doc_id, page.services.documents.original(doc_id))


@router.get("/ui/documents/{doc_id}/rendition")
def rendition(doc_id: str, page: Page) -> Response:
    """The searchable PDF rendition, streamed and checked against its sha256 (audited as a download)."""
    return _download(page, doc_id, page.services.documents.rendition(doc_id))


def _download(page: Page, doc_id: str, found: Original) -> Response:
    return StreamingResponse(
        page.services.documents.stream(doc_id, found),
        media_type=found.mime,
        headers={
            "Content-Length": str(found.size),
            "Content-Disposition": f'attachment; filename="{found.filename}"',
            "X-Content-SHA256": found.ref.sha256,
        },
    )


@router.get("/ui/documents/{doc_id}/similar")
def similar_page(doc_id: str, page: Page) -> Response:
    similar = page.services.search.similar(doc_id, 20)
    return page.render("similar.html", similar=similar, doc_id=doc_id)


@router.get("/ui/patients/{ref}")
def timeline_page(ref: str, page: Page) -> Response:
    """A patient's documents by date of service, grouped by encounter; pick some to release. ``ref``
    is a sealed patient reference (``services.links``), never the MRN."""
    timeline = page.services.search.timeline(page.services.links.mrn_of(ref))
    return page.render("timeline.html", timeline=timeline, ref=ref, doc_types=DOC_TYPES)
