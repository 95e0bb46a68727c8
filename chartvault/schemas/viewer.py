"""What the document viewer shows of one page: its text, where the query's words are, its neighbours."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class HitBox:
    """A matched word on the page image, in percent of the page's width and height (any zoom)."""

    left: float
    top: float
    width: float
    height: float


@dataclass(frozen=True, slots=True, kw_only=True)
class PageView:
    document_id: str
    page_no: int  # the page's number in its file, as the API's page routes use
    pages: list[int]  # every page of the document (blank backs left out), in order
    hit_pages: list[int]  # the pages on which the query matches
    text_html: str  # the page text HTML-escaped, the query's words in <mark>
    blank: bool
    confidence: float | None
    source: str | None  # ocr | text_layer
    boxes: list[HitBox]
