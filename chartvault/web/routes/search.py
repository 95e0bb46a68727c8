"""The search page: the query language, filters and facets, snippets with their page numbers.

No term, MRN or name of a search is ever in a page address (browser history, a proxy's access log and a
log aggregator keep whole URLs): the form is a POST, answered by a 303 to the results under the search
sealed for the person who made it (``chartvault.services.links``), ``/ui/search?s=...``; paging, facets
and the viewer's carried search use sealed searches too.
"""

from __future__ import annotations

from datetime import date
from urllib.parse import urlencode

from fastapi.responses import RedirectResponse, Response

from chartvault.classify.types import DOC_TYPES
from chartvault.errors import InvalidInput
from chartvault.search.types import SearchQuery
from chartvault.web.context import Page
from chartvault.web.routing import page_router

router = page_router()

PAGE_SIZE = 20
MAX_OFFSET = 10_000  # as the API: deeper pages cost the engine memory without bound
SEARCH_FIELDS = ("q", "mrn", "name", "type", "from", "to", "encounter", "icd", "sort")
SORTS = {"relevance": "Best match", "date_desc": "Newest first", "date_asc": "Oldest first"}
# A search in the address, as the form sent it before searches were sealed: refused, never run or echoed.
LEGACY_FIELDS = frozenset(SEARCH_FIELDS)
ADDRESS_REFUSED = (
    "Search terms are not taken from the page address (browser history and proxy logs keep it). "
    "Use the form below."
)


@router.get("/ui/search")
def search_page(page: Page, s: str = "") -> Response:
    """Search with the query language, filters and facets; snippets with their page numbers.

    The search arrives sealed (``s``, made by the form's POST for this person, ``services.links``), so
    no term, MRN or name is in the address, where history and proxy logs would keep it. A search in the
    address the old way is refused, its values never echoed."""
    if LEGACY_FIELDS & set(page.request.query_params):
        return _search_results(page, {}, status=400, problems=[ADDRESS_REFUSED])
    params = _search_fields(page.services.links.open("search", s)) if s else {}
    offset = _int(page.request.query_params.get("offset"), 0, 0, MAX_OFFSET)
    return _search_results(page, params, token=s, offset=offset)


@router.post("/ui/search")
def search_form(page: Page) -> Response:
    """The search form sent: answered by a 303 to its results under a sealed search (a refresh, the
    back button, paging and a bookmark, until the link expires, all work without a term in the URL)."""
    params = {name: page.field(name) for name in SEARCH_FIELDS}
    problems = _search_problems(params)
    kept = {k: v for k, v in params.items() if v and (k != "sort" or v != "relevance")}
    if not problems and any(v for k, v in kept.items() if k != "sort"):
        try:
            return _see_results(page, kept)
        except InvalidInput as exc:
            problems.append(f"{exc}.")
    if problems:
        return _search_results(page, params, status=422, problems=problems)
    return RedirectResponse("/ui/search", status_code=303)


def _see_results(page: Page, kept: dict[str, str]) -> Response:
    return RedirectResponse("/ui/search?" + urlencode({"s": page.services.links.seal("search", kept)}), 303)


def _search_fields(sealed: dict[str, object]) -> dict[str, str]:
    """The fields of a sealed search (strings only; anything else sealed there is ignored)."""
    return {name: str(value) for name, value in sealed.items() if name in SEARCH_FIELDS and value}


def _search_problems(params: dict[str, str]) -> list[str]:
    problems: list[str] = []
    _date(params.get("from", ""), "From", problems)
    _date(params.get("to", ""), "To", problems)
    return problems


def _search_results(
    page: Page,
    given: dict[str, str],
    *,
    token: str = "",
    offset: int = 0,
    status: int = 200,
    problems: list[str] | None = None,
) -> Response:
    """The search page: the form with ``given`` in it and, for a sealed search, its results."""
    params = {name: given.get(name, "").strip() for name in SEARCH_FIELDS}
    problems = problems if problems is not None else _search_problems(params)
    answer = None
    if token and not problems and any(params[name] for name in SEARCH_FIELDS if name != "sort"):
        answer = page.services.search.search(_query(params, offset))
    kept = {k: v for k, v in params.items() if v}
    links = page.services.links

    def link(**changes: str | int | None) -> str:
        """The results narrowed by a facet: the search with ``changes``, sealed anew, first page."""
        merged = {**kept, **{k: str(v) for k, v in changes.items() if v not in (None, "")}}
        for k, v in changes.items():
            if v in (None, ""):
                merged.pop(k, None)
        return "/ui/search?" + urlencode({"s": links.seal("search", merged)})

    def page_at(at: int) -> str:
        """Another page of the same results: the same sealed search, another offset."""
        return "/ui/search?" + urlencode({"s": token, **({"offset": at} if at else {})})

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
        page_at=page_at,
        viewer_query=urlencode({"s": token}) if params["q"] and token else "",
        status=status,
    )


def _query(params: dict[str, str], offset: int) -> SearchQuery:
    return SearchQuery(
        text=params["q"] or None,
        mrn=params["mrn"] or None,
        doc_type=params["type"] or None,
        date_from=_date(params["from"], "From", []),
        date_to=_date(params["to"], "To", []),
        name=params["name"] or None,
        icd=params["icd"] or None,
        encounter=params["encounter"] or None,
        sort=params["sort"] if params["sort"] in SORTS else "relevance",
        limit=PAGE_SIZE,
        offset=offset,
    )


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


def carried_words(page: Page, sealed: str | None) -> str | None:
    """The words of the sealed search a viewer link carries (None: no search, or one without words)."""
    if not sealed:
        return None
    return _search_fields(page.services.links.open("search", sealed)).get("q") or None
