"""Staging: a file's bytes written under the data folder while hashed, fsynced, then renamed.

Every way in (an HTTP upload streamed part by part, a CLI path, a hot-folder file) stages through
``Stager``, so the catalog never names bytes that are not on disk and no file is ever held whole in
memory. File names are never trusted: they are kept for people to read, never used as paths.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath

from chartvault.config import Settings

CHUNK = 1 << 20
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class StagedFile:
    path: Path | None  # None when nothing was kept (over the byte limit)
    sha256: str
    size: int  # bytes received
    over_limit: bool = False


def safe_name(name: str | None) -> str:
    """The base name of an uploaded or scanned file, with path parts and control characters removed.

    File names are never trusted: they are stored for people to read, never used as paths.
    """
    base = PurePath((name or "").replace("\\", "/")).name
    base = _UNSAFE.sub("", base).strip()
    return (base or "unnamed")[:255]


class Stager:
    """Receives one file's bytes piece by piece (push style, for streaming uploads).

    Bytes go to a temp file under ``incoming`` while being hashed, and are
    fsynced on ``finish``. Past ``max_bytes`` the rest is hashed but not kept,
    so an HTTP upload can still be answered, and the file is refused as too large.
    """

    def __init__(self, incoming: Path, max_bytes: int) -> None:
        incoming.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.size = 0
        self._digest = hashlib.sha256()
        self._tmp = incoming / f".part-{uuid.uuid4().hex}"
        self._fp = self._tmp.open("wb")

    def write(self, chunk: bytes) -> None:
        self._digest.update(chunk)
        self.size += len(chunk)
        if self.size <= self.max_bytes:
            self._fp.write(chunk)
        elif not self._fp.closed:
            self._fp.close()
            self._tmp.unlink(missing_ok=True)

    def finish(self) -> StagedFile:
        if self.size > self.max_bytes:
            return StagedFile(None, self._digest.hexdigest(), self.size, over_limit=True)
        self._fp.flush()
        os.fsync(self._fp.fileno())
        self._fp.close()
        return StagedFile(self._tmp, self._digest.hexdigest(), self.size)

    def abort(self) -> None:
        if not self._fp.closed:
            self._fp.close()
        self._tmp.unlink(missing_ok=True)


def stage_chunks(chunks: Iterable[bytes], incoming: Path, max_bytes: int) -> StagedFile:
    """Stage a whole stream (see ``Stager``)."""
    stager = Stager(incoming, max_bytes)
    try:
        for chunk in chunks:
            stager.write(chunk)
        return stager.finish()
    except BaseException:
        stager.abort()
        raise


def read_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fp:
        while chunk := fp.read(CHUNK):
            yield chunk


@dataclass(frozen=True, slots=True)
class UploadLimits:
    """What one multipart request may hold: files, parts in all, bytes of non-file fields in all.

    Each field is held in memory until its part ends, so without a total a request of many
    fields grows the server's memory by their sum.
    """

    max_files: int
    max_parts: int
    max_form_bytes: int


def upload_limits(settings: Settings) -> UploadLimits:
    return UploadLimits(settings.max_upload_files, settings.max_form_parts, settings.max_form_bytes)
