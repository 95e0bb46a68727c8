"""Streaming multipart/form-data: each file part goes straight to a staged file while hashed.

Starlette's form parser would spool whole parts before we see them; here a
part's bytes are written (and hashed) as they arrive, so an upload of any size
uses a few chunks of memory, and the byte limit is enforced per file on the fly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool

from chartvault.errors import ChartVaultError, InvalidInput, MalformedRequest, TooLarge, UnsupportedMedia
from chartvault.ingest.staging import StagedFile, Stager, UploadLimits

MAX_FIELD_BYTES = 1 << 20  # one form field (station, operator, manifest)
MAX_FILENAME_CHARS = 1024  # as the catalog keeps it; longer names are refused, not cut
# One part's header line; room for the longest accepted file name, percent-encoded.
MAX_PART_HEADER_BYTES = 16 * 1024
BAD_UPLOAD = "bad_upload"


@dataclass(slots=True)
class ReceivedUpload:
    fields: dict[str, str] = field(default_factory=dict)
    files: list[tuple[str, StagedFile]] = field(default_factory=list)  # (client file name, staged)

    def discard(self) -> None:
        for _, staged in self.files:
            if staged.path is not None:
                staged.path.unlink(missing_ok=True)


def _disposition(value: bytes) -> tuple[str | None, str | None]:
    _, params = parse_options_header(value)
    name = params.get(b"name")
    filename = params.get(b"filename")
    return (
        name.decode("utf-8", "replace") if name is not None else None,
        filename.decode("utf-8", "replace") if filename is not None else None,
    )


class _Receiver:
    def __init__(self, stager: Callable[[], Stager], limits: UploadLimits) -> None:
        self.stager, self.limits = stager, limits
        self.result = ReceivedUpload()
        self._parts = 0
        self._form_bytes = 0
        self._headers: dict[bytes, bytes] = {}
        self._hname = b""
        self._hvalue = b""
        self._stager: Stager | None = None
        self._field: tuple[str, bytearray] | None = None
        self._filename: str | None = None

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._parts += 1
        if self._parts > self.limits.max_parts:
            raise TooLarge(
                f"too many parts in one request; the limit is {self.limits.max_parts}", code="too_many_parts"
            )
        self._headers, self._hname, self._hvalue = {}, b"", b""

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._hname += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._hvalue += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._hname.lower()] = self._hvalue
        self._hname, self._hvalue = b"", b""

    def _headers_finished(self) -> None:
        name, filename = _disposition(self._headers.get(b"content-disposition", b""))
        if filename is not None:
            if len(filename) > MAX_FILENAME_CHARS:
                raise InvalidInput(
                    f"the file name is too long (at most {MAX_FILENAME_CHARS:,} characters)",
                    code="file_name_too_long",
                )
            if len(self.result.files) >= self.limits.max_files:
                raise TooLarge(
                    f"too many files in one request; the limit is {self.limits.max_files}", code=BAD_UPLOAD
                )
            self._stager = self.stager()
            self._filename = filename
        else:
            self._field = (name or "", bytearray())

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._stager is not None:
            self._stager.write(data[start:end])
        elif self._field is not None:
            self._field[1].extend(data[start:end])
            self._form_bytes += end - start
            if len(self._field[1]) > MAX_FIELD_BYTES:
                raise TooLarge(f"form field '{self._field[0][:64]}' is too large", code=BAD_UPLOAD)
            if self._form_bytes > self.limits.max_form_bytes:
                raise TooLarge(
                    f"the form fields together are over {self.limits.max_form_bytes:,} bytes",
                    code="form_too_large",
                )

    def _part_end(self) -> None:
        if self._stager is not None:
            self.result.files.append((self._filename or "", self._stager.finish()))
            self._stager = None
        elif self._field is not None:
            self.result.fields[self._field[0]] = self._field[1].decode("utf-8", "replace")
            self._field = None

    def abort(self) -> None:
        if self._stager is not None:
            self._stager.abort()
        self.result.discard()


async def receive_upload(
    content_type: str, body: AsyncIterator[bytes], stager: Callable[[], Stager], limits: UploadLimits
) -> ReceivedUpload:
    """Parse a multipart body from ``body``, staging each file part through a new ``stager()``."""
    ctype, params = parse_options_header(content_type or "")
    if ctype != b"multipart/form-data" or b"boundary" not in params:
        raise UnsupportedMedia("send the files as multipart/form-data", code=BAD_UPLOAD)
    receiver = _Receiver(stager, limits)
    parser = MultipartParser(
        params[b"boundary"],
        receiver.callbacks(),  # type: ignore[arg-type]
        max_header_size=MAX_PART_HEADER_BYTES,
    )
    try:
        async for chunk in body:
            # Disk writes happen in callbacks: keep them off the event loop.
            await run_in_threadpool(parser.write, chunk)
        parser.finalize()
    except ChartVaultError:
        receiver.abort()
        raise
    except MultipartParseError as exc:
        receiver.abort()
        if "header size" in str(exc):
            raise InvalidInput(
                f"a part header is too long (a file name may have at most {MAX_FILENAME_CHARS:,} characters)",
                code="file_name_too_long",
            ) from None
        raise MalformedRequest(f"malformed multipart body ({type(exc).__name__})", code=BAD_UPLOAD) from None
    except Exception as exc:  # malformed multipart
        receiver.abort()
        raise MalformedRequest(f"malformed multipart body ({type(exc).__name__})", code=BAD_UPLOAD) from None
    if receiver._stager is not None or receiver._field is not None:
        receiver.abort()
        raise MalformedRequest("the multipart body ended in the middle of a part", code=BAD_UPLOAD)
    return receiver.result
