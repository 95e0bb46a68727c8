"""Files sent from a page: streamed to staging by the API's parser, then the form's CSRF token checked."""

from __future__ import annotations

from chartvault.ingest.staging import UploadLimits
from chartvault.web import ReceivedUpload, WebParts
from chartvault.web.context import UPLOADS, PageContext


async def receive_form_upload(
    ctx: PageContext, max_files: int, max_file_bytes: int | None = None
) -> ReceivedUpload:
    """The multipart form of this request: fields, and files staged while hashed (never in memory).

    The CSRF token travels in the form, so it is checked once the body is read; a refused form's
    staged files are removed. A file input left empty (no name, no bytes) is dropped. A file over
    ``max_file_bytes`` (default: the scanned-file limit) is kept as ``over_limit`` with no bytes.
    """
    request = ctx.request
    route = getattr(request.scope.get("route"), "path", None)
    assert (request.method, route) in UPLOADS, f"{route} takes files: list it in web.context.UPLOADS"
    parts: WebParts = request.app.state.web
    services = ctx.services
    limits = UploadLimits(max_files, services.settings.max_form_parts, services.settings.max_form_bytes)
    upload = await parts.receive_upload(
        request.headers.get("content-type", ""),
        request.stream(),
        lambda: services.intake.stager(max_file_bytes),
        limits,
    )
    try:
        ctx.check_csrf(upload.fields.get("csrf"))
    except Exception:
        upload.discard()
        raise
    kept = []
    for name, staged in upload.files:
        if name or staged.size:
            kept.append((name, staged))
        elif staged.path is not None:
            staged.path.unlink(missing_ok=True)
    upload.files[:] = kept
    return upload
