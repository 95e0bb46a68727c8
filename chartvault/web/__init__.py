"""The web pages: server-rendered HTML over the same services and policy table as the API.

``install`` adds the page routers and the static files to the app. The app hands in what belongs to
the API layer and pages must share rather than copy: the streaming upload parser and the one mapping
from refusals to HTTP statuses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from chartvault.errors import ChartVaultError
from chartvault.ingest.staging import StagedFile, Stager, UploadLimits
from chartvault.web.templating import STATIC_DIR


class ReceivedUpload(Protocol):
    """What the upload parser gives back: form fields and staged files (client name, staged)."""

    fields: dict[str, str]
    files: list[tuple[str, StagedFile]]

    def discard(self) -> None: ...


class UploadReceiver(Protocol):
    async def __call__(
        self,
        content_type: str,
        body: AsyncIterator[bytes],
        stager: Callable[[], Stager],
        limits: UploadLimits,
    ) -> ReceivedUpload: ...


@dataclass(frozen=True, slots=True)
class WebParts:
    """What the API layer lends the pages (kept on ``app.state.web``)."""

    receive_upload: UploadReceiver
    status_of: Callable[[ChartVaultError], int]


def install(app: FastAPI, parts: WebParts) -> None:
    """Mount the pages at ``/`` and ``/ui/...`` and their static files at ``/ui/static``."""
    from chartvault.web.routes import ROUTERS

    app.state.web = parts
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="static")
