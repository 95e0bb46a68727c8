"""Staff pages: search, the document viewer and its page images, the original, timelines, similar."""

from __future__ import annotations

from datetime import date
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Query
from fastapi.responses import FileResponse, Response, StreamingResponse

from chartvault.classify.types import DOC_TYPES
from chartvault.search.types import SearchQuery
from chartvault.services.documents import Original
from chartvault.web.context import Page
from chartvault.web.forms import PageNo
from chartvault.web.routing import page_router

router = page_router()

PAGE_SIZE = 20
MAX_OFFSET = 10_000  # as the API: deeper pages cost the engine memory without bound
IMAGE_WIDTHS = (600, 900, 1200, 1600)  # offered in srcset: the browser takes what the layout needs
SEARCH_FIELDS = ("q", "mrn", "name", "type", "from", "to", "encounter", "icd", "sort")
SORTS = {"relevance": "Best match", "date_desc": "Newest first", "date_asc": "Oldest first"}


def _date(value: str, what: str, problems: list[str]) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        problems.append(f"{what} must be a date (YYYY-MM-DD).")
        return None


def _int(value: str | None, default: int, low: int, high: int) -> int:
    try:
        return min(high, max(low, int(value))) if value else default
    except ValueError:
        return default


@router.get("/ui/search")
def search_page(page: Page) -> Response:
    """Search with the query language, filters and facets; snippets with their page numbers."""
    params = {name: page.request.query_params.get(name, "").strip() for name in SEARCH_FIELDS}
    offset = _int(page.request.query_params.get("offset"), 0, 0, MAX_OFFSET)
    problems: list[str] = []
    date_from = _date(params["from"], "From", problems)
    date_to = _date(params["to"], "To", problems)
    sort = params["sort"] if params["sort"] in SORTS else "relevance"
    asked = any(params[name] for name in SEARCH_FIELDS if name != "sort")
    answer = None
    if asked and not problems:
        query = SearchQuery(
            text=params["q"] or None,
            mrn=params["mrn"] or None,
            doc_type=params["type"] or None,
            date_from=date_from,
            date_to=date_to,
            name=params["name"] or None,
            icd=params["icd"] or None,
            encounter=params["encounter"] or None,
            sort=sort,
            limit=PAGE_SIZE,
            offset=offset,
        )
        answer = page.services.search.search(query)
    kept = {k: v for k, v in params.items() if v}

    def link(**changes: str | int | None) -> str:
        merged = {**kept, **{k: v for k, v in changes.items() if v not in (None, "")}}
        for k, v in changes.items():
            if v in (None, ""):
                merged.pop(k, None)
        return "/ui/search?" + urlencode(merged)

    return page.render(
        "search.html",
        params=params,
        sorts=SORTS,
        doc_types=DOC_TYPES,
        problems=problems,
        answer=answer,
        offset=offset,
        page_size=PAGE_SIZE,
        link=link,
        viewer_query=urlencode({"q": params["q"]}) if params["q"] else "",
        status=422 if problems else 200,
    )


@router.get("/ui/documents/{doc_id}")
def document_page(
    doc_id: str,
    page: Page,
    q: str | None = None,
    page_no: Annotated[int | None, Query(alias="page", ge=1, le=100_000)] = None,
    pos: Annotated[int | None, Query(ge=1, le=100_000)] = None,
) -> Response:
    """The viewer: the page image with the query's words boxed, the text beside it, page navigation."""
    services = page.services
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
        query_suffix=("&" + urlencode({"q": q})) if q else "",
    )


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


@router.get("/ui/patients/{mrn}")
def timeline_page(mrn: str, page: Page) -> Response:
    """A patient's documents by date of service, grouped by encounter; pick some to release."""
    timeline = page.services.search.timeline(mrn)
    return page.render("timeline.html", timeline=timeline, doc_types=DOC_TYPES)
