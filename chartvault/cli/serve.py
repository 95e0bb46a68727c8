"""Running ChartVault: the HTTP API (``serve``) and OCR workers of a multi-machine deployment (``worker``)."""

import os
from typing import Annotated

import typer


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default CHARTVAULT_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default CHARTVAULT_PORT).")] = None,
) -> None:
    """Run the HTTP API (OpenAPI at /docs) and the web pages (at /)."""
    import uvicorn

    from chartvault.api.app import create_app
    from chartvault.api.server import json_errors_protocol
    from chartvault.config import Settings

    settings = Settings()
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        log_level="info",
        access_log=False,  # it would log paths, and a path can hold an MRN: the API logs route templates
        log_config=None,  # keep the logging the command set up (text, or JSON lines)
        http=json_errors_protocol(),  # malformed HTTP answered as JSON too
    )


def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Pages at once (worker processes); default one per core.")
    ] = None,
    pool: Annotated[str, typer.Option(help="prefork (default) or solo (one page at a time, no child).")] = (
        "prefork"
    ),
    name: Annotated[
        str | None, typer.Option(help="Celery node name, unique per machine (default chartvault-<pid>@host).")
    ] = None,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> None:
    """Take sniff/OCR tasks from the Redis queue until stopped (needs the shared data dir mounted).

    The same as ``celery -A chartvault.ingest.distributed worker -Q <queue> --concurrency N`` with
    ``OMP_THREAD_LIMIT=1``: tesseract's own threads only fight the other worker processes for cores.
    """
    os.environ["OMP_THREAD_LIMIT"] = "1"  # before celery forks its children
    from chartvault.config import get_settings
    from chartvault.ingest.distributed import app as celery_app

    settings = get_settings()
    argv = [
        "worker",
        "-Q",
        settings.celery_queue,
        "--concurrency",
        str(concurrency or settings.worker_count),
        "--pool",
        pool,
        "--hostname",
        name or f"chartvault-{os.getpid()}@%h",
        "--loglevel",
        loglevel,
        "--without-gossip",  # peers need not chat: the broker is the only coordination
        "--without-mingle",
    ]
    celery_app.worker_main(argv)


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(worker)
