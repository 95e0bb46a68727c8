"""What a PDF reader would run or open, found in a PDF and taken out of a copy of it.

A PDF that comes in (a scanner's, an outside sender's) can carry JavaScript on opening the document or a
page, links that run JavaScript, launch a program or post to another site, form actions and attached
files. The original is kept byte for byte (it is the record); what ChartVault hands to people to open, the
searchable PDF staff download and the release package a vendor sends, is an inert copy. Pages keep their
content, text and marks (highlights, notes); links keep only jumps inside the document.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Annotations that carry or play something rather than mark the page.
ACTIVE_ANNOTATIONS = frozenset({"/FileAttachment", "/Screen", "/Movie", "/Sound", "/RichMedia", "/3D"})
_DOCUMENT_KEYS = ("/OpenAction", "/AA", "/AcroForm")
_NAME_TREES = ("/JavaScript", "/EmbeddedFiles")


def active_content(path: Path) -> list[str]:
    """What in the PDF at ``path`` would run or open (PDF names, e.g. ``/OpenAction``); [] for none."""
    import pikepdf

    with pikepdf.open(path) as doc:
        return sorted(set(_findings(doc)))


def remove_active_content(path: Path) -> None:
    """Rewrite the PDF at ``path`` without anything ``active_content`` finds."""
    import pikepdf

    with pikepdf.open(path, allow_overwriting_input=True) as doc:
        for key in _DOCUMENT_KEYS:
            if key in doc.Root:
                del doc.Root[key]
        names = doc.Root.get("/Names")
        if isinstance(names, pikepdf.Dictionary):
            for key in _NAME_TREES:
                if key in names:
                    del names[key]
        for page in doc.pages:
            _inert_page(page.obj)
        doc.remove_unreferenced_resources()
        doc.save(path)


def _findings(doc: Any) -> Iterator[str]:
    import pikepdf

    yield from (key for key in _DOCUMENT_KEYS if key in doc.Root)
    names = doc.Root.get("/Names")
    if isinstance(names, pikepdf.Dictionary):
        yield from (key for key in _NAME_TREES if key in names)
    for page in doc.pages:
        if "/AA" in page.obj:
            yield "/AA"
        for annot in _annotations(page.obj):
            if annot.get("/Subtype") in ACTIVE_ANNOTATIONS:
                yield str(annot.get("/Subtype"))
            elif "/AA" in annot:
                yield "/AA"
            elif _runs(annot.get("/A")):
                yield str(annot["/A"].get("/S"))


def _inert_page(page: Any) -> None:
    import pikepdf

    if "/AA" in page:
        del page["/AA"]
    if not isinstance(page.get("/Annots"), pikepdf.Array):
        return
    kept = pikepdf.Array()
    for annot in _annotations(page):
        if annot.get("/Subtype") in ACTIVE_ANNOTATIONS:
            continue
        if "/AA" in annot:
            del annot["/AA"]
        if _runs(annot.get("/A")):
            del annot["/A"]
        kept.append(annot)
    page["/Annots"] = kept


def _annotations(page: Any) -> Iterator[Any]:
    import pikepdf

    annots = page.get("/Annots")
    if isinstance(annots, pikepdf.Array):
        yield from (a for a in annots if isinstance(a, pikepdf.Dictionary))


def _runs(action: Any) -> bool:
    """An action other than a jump inside the document."""
    import pikepdf

    return isinstance(action, pikepdf.Dictionary) and action.get("/S") != pikepdf.Name.GoTo
