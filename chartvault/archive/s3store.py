"""Object store on S3 with Object Lock (WORM), through the minio SDK.

Layout: ``sha256/ab/cd/<sha256>`` in one bucket created with Object Lock, so
versioning is on and every write is a new, lockable *version*. A ref names the
exact version written; reads pin that version, so a later write under the same
key (or a delete marker) never changes what a ref returns, and the sha256 is
checked at the end of every read.

Object Lock protects versions, not keys: a DELETE without a version id only adds
a delete marker, and tags stay mutable on locked versions. The catalog and audit
log stay the source of truth; the lock is the floor ("never earlier than").

Transport: use TLS. Over plain HTTP minio-py sends no ``Content-MD5`` (only
``x-amz-content-sha256``), and AWS S3 then refuses every upload carrying
object-lock headers (``MissingUploadObjectWithObjectLockHeaders``); SeaweedFS and
MinIO accept it, so "works on MinIO over HTTP" proves nothing for AWS. Over HTTPS
minio-py sends Content-MD5 and every server accepts the upload.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, BinaryIO, Literal
from urllib.parse import quote, urlsplit

import urllib3
from minio import Minio
from minio.commonconfig import COMPLIANCE, GOVERNANCE, Tags
from minio.deleteobjects import DeleteObject
from minio.error import MinioException, S3Error
from minio.retention import Retention

from chartvault.archive.localstore import key_for
from chartvault.archive.objectstore import (
    NAMED_MAX_BYTES,
    IntegrityError,
    ListedObject,
    ObjectExistsError,
    ObjectNotFoundError,
    ObjectRef,
    ObjectStoreError,
    RetentionLockedError,
    check_named_key,
    check_named_prefix,
    is_named_key,
    verified_stream,
)

if TYPE_CHECKING:
    from chartvault.config import Settings

__all__ = ["MAX_PRESIGN", "LockMode", "ObjectNotFoundError", "S3ObjectStore", "validate_tags"]

LockMode = Literal["GOVERNANCE", "COMPLIANCE"]

MAX_PRESIGN = timedelta(minutes=15)
"""Longest presigned URL we hand out: it is a bearer token that cannot be revoked early."""

PART_SIZE = 16 * 1024 * 1024
"""Multipart part size; memory use is about (parallel uploads + 1) parts."""

_PARALLEL_UPLOADS = 2
_SHA_META = "sha256"  # user metadata key (x-amz-meta-sha256)
_NOT_FOUND = frozenset({"NoSuchKey", "NoSuchVersion", "NoSuchObject", "ResourceNotFound", "MethodNotAllowed"})
_EMPTY_SHA = hashlib.sha256(b"").hexdigest()

# S3 object tags: at most 10, key 1-128 and value 0-256 Unicode characters from this set.
_MAX_TAGS = 10
_TAG_CHARS = re.compile(r"[\w\s+\-=.:/@]*")


def validate_tags(tags: Mapping[str, str] | None) -> Tags | None:
    """Object tags checked against S3's limits, which some servers (SeaweedFS) do not enforce."""
    if not tags:
        return None
    if len(tags) > _MAX_TAGS:
        raise ValueError(f"at most {_MAX_TAGS} object tags are allowed, got {len(tags)}")
    seen: set[str] = set()
    out = Tags.new_object_tags()
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError("tag keys and values must be strings")
        if not 1 <= len(key) <= 128:
            raise ValueError("a tag key must be 1 to 128 characters")
        if len(value) > 256:
            raise ValueError("a tag value must be at most 256 characters")
        if not _TAG_CHARS.fullmatch(key) or not _TAG_CHARS.fullmatch(value):
            raise ValueError("tags may hold only letters, digits, spaces and + - = . _ : / @")
        if key in seen:  # a Mapping cannot repeat a key, but a custom one might; S3 would refuse
            raise ValueError(f"duplicate tag key {key!r}")
        seen.add(key)
        out[key] = value
    return out


def _utc(when: datetime, what: str) -> datetime:
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise ValueError(f"{what} must be a timezone-aware datetime")
    return when.astimezone(UTC)


class _VerifyingReader:
    """Reads a file for upload, hashing it, and fails the *last read* if the bytes are wrong.

    Failing inside read() (not after put_object returns) matters: a single-part PUT
    has not been sent yet and a multipart upload is aborted by the SDK, so a
    mismatching file never becomes a (possibly locked, undeletable) version.
    """

    def __init__(self, fp: BinaryIO, sha256: str, size: int, key: str) -> None:
        self._fp = fp
        self._sha = sha256
        self._size = size
        self._key = key
        self._digest = hashlib.sha256()
        self._read = 0

    def read(self, n: int = -1) -> bytes:
        remaining = self._size - self._read
        if n is None or n < 0 or n > remaining:
            n = remaining
        data = self._fp.read(n) if n else b""
        self._digest.update(data)
        self._read += len(data)
        if self._read == self._size and (data or n == 0):
            self._check()
        return data

    def _check(self) -> None:
        if self._fp.read(1):
            raise IntegrityError(f"file for {self._key} grew while it was being stored")
        actual = self._digest.hexdigest()
        if actual != self._sha:
            raise IntegrityError(f"sha256 mismatch on put: expected {self._sha}, got {actual}")


class S3ObjectStore:
    """An ``ObjectStore`` in an Object-Lock S3 bucket (MinIO, SeaweedFS, AWS) via minio-py.

    Every version written gets an object-lock retention (mode from settings,
    retain-until given or now + the default), the sha256 in user metadata and
    optional object tags. Deleting or shortening is the server's call: this class
    only surfaces its refusals as ``ObjectStoreError``.
    """

    def __init__(
        self,
        endpoint: str,
        access_key: str | None,
        secret_key: str | None,
        *,
        bucket: str = "chartvault-archive",
        secure: bool = True,
        region: str | None = "us-east-1",
        cert_check: bool = True,
        lock_mode: LockMode = "GOVERNANCE",
        default_retention_days: int = 3650,
        part_size: int = PART_SIZE,
        client: Minio | None = None,
    ) -> None:
        if lock_mode not in (GOVERNANCE, COMPLIANCE):
            raise ValueError("lock_mode must be GOVERNANCE or COMPLIANCE")
        if default_retention_days <= 0:
            raise ValueError("default_retention_days must be positive")
        if part_size < 5 * 1024 * 1024:
            raise ValueError("part_size must be at least 5 MiB (S3 minimum)")
        parts = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
        if parts.scheme:
            secure = parts.scheme == "https"
        host = parts.netloc
        if not host or parts.path not in ("", "/"):
            raise ValueError("s3 endpoint must be host[:port] or http(s)://host[:port]")
        self.bucket = bucket
        self.region = region
        self.lock_mode: LockMode = lock_mode
        self.default_retention = timedelta(days=default_retention_days)
        self.part_size = part_size
        # region= makes presigning offline and skips the per-bucket GetBucketLocation round trip.
        self.client = client or Minio(
            host,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            cert_check=cert_check,
        )
        self._bucket_ready = False

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> S3ObjectStore:
        """The store configured by ``CHARTVAULT_S3_*`` (keyword overrides win, e.g. ``bucket=``)."""
        if not settings.s3_endpoint:
            raise ObjectStoreError("object_store='s3' needs CHARTVAULT_S3_ENDPOINT")
        params: dict[str, object] = {
            "endpoint": settings.s3_endpoint,
            "access_key": settings.s3_access_key,
            "secret_key": (
                settings.s3_secret_key.get_secret_value() if settings.s3_secret_key is not None else None
            ),
            "bucket": settings.s3_bucket,
            "secure": settings.s3_secure,
            "region": settings.s3_region,
            "cert_check": settings.s3_cert_check,
            "lock_mode": settings.s3_lock_mode,
            "default_retention_days": settings.s3_default_retention_days,
        }
        params.update(overrides)
        return cls(**params)  # type: ignore[arg-type]

    # -- helpers -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self, what: str, ref: ObjectRef | None = None) -> Iterator[None]:
        """Translate SDK/transport errors into ObjectStoreError (ids only, never content)."""
        try:
            yield
        except ObjectStoreError:
            raise
        except S3Error as exc:
            if ref is not None and exc.code in _NOT_FOUND:
                raise ObjectNotFoundError(f"object not found: {ref.key} version {ref.version_id}") from None
            raise ObjectStoreError(
                f"{what} failed on bucket {self.bucket}: {exc.code}: {exc.message}"
            ) from exc
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise ObjectStoreError(f"{what} failed on bucket {self.bucket}: {type(exc).__name__}") from exc

    @staticmethod
    def _check_ref(ref: ObjectRef) -> str:
        if is_named_key(ref.key):
            return ref.key
        key = key_for(ref.sha256)
        if ref.key != key:
            raise ObjectStoreError(f"object key {ref.key} does not match the ref's sha256")
        return key

    @staticmethod
    def _need_version(ref: ObjectRef, what: str) -> str:
        # Without a version id S3 acts on "the latest version", or adds a delete marker:
        # never what a lock/hold/delete on a catalog ref means.
        if not ref.version_id:
            raise ObjectStoreError(f"{what} needs a ref with a version_id ({ref.key})")
        return ref.version_id

    # -- bucket ------------------------------------------------------------------------------

    def ensure_bucket(self) -> None:
        """Create the bucket with Object Lock if missing; refuse one without lock or versioning.

        Community MinIO can enable Object Lock only at bucket creation, so a bucket
        made without it can never become WORM and must not be used.
        """
        with self._errors("ensure_bucket"):
            if not self.client.bucket_exists(self.bucket):
                try:
                    self.client.make_bucket(self.bucket, location=self.region, object_lock=True)
                except S3Error as exc:
                    if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise
            try:
                self.client.get_object_lock_config(self.bucket)
            except S3Error as exc:
                raise ObjectStoreError(
                    f"bucket {self.bucket} has no Object Lock ({exc.code}); archive buckets must be "
                    "created with object lock enabled - use a new bucket"
                ) from None
            status = self.client.get_bucket_versioning(self.bucket).status
            if status != "Enabled":
                raise ObjectStoreError(f"bucket {self.bucket} versioning is {status!r}, not 'Enabled'")
        self._bucket_ready = True

    # -- ObjectStore -------------------------------------------------------------------------

    def ping(self) -> None:
        """HEAD the bucket (a readiness probe: no object is read, nothing is created)."""
        with self._errors("ping"):
            found = self.client.bucket_exists(self.bucket)
        if not found:
            raise ObjectStoreError(f"bucket {self.bucket} does not exist")

    def put_file(
        self,
        path: str,
        sha256: str,
        content_type: str,
        *,
        retain_until: datetime | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ObjectRef:
        """Store the file at ``path`` as a locked version, verifying its sha256 while uploading.

        Idempotent: when the key's latest version already carries this sha256 (user
        metadata) and size, its ref is returned and nothing is written, except that
        a later ``retain_until`` extends that version's retention. Two concurrent
        first writers may both write; both versions hold the same bytes.
        Files over ``part_size`` go multipart; memory stays bounded by a few parts.
        """
        key = key_for(sha256)
        until = _utc(retain_until, "retain_until") if retain_until is not None else None
        if until is None:
            until = datetime.now(UTC) + self.default_retention
        if until <= datetime.now(UTC):
            raise ValueError("retain_until must be in the future")
        object_tags = validate_tags(tags)
        if not self._bucket_ready:
            self.ensure_bucket()

        existing = self._existing(key, sha256, os.stat(path).st_size)
        if existing is not None:
            if retain_until is not None:
                self.extend_retention(existing, until)
            return existing

        with open(path, "rb") as fp:
            size = os.fstat(fp.fileno()).st_size
            if size == 0 and sha256 != _EMPTY_SHA:
                raise IntegrityError(f"sha256 mismatch on put: expected {sha256}, got {_EMPTY_SHA}")
            reader = _VerifyingReader(fp, sha256, size, key)
            with self._errors("put_file"):
                result = self.client.put_object(
                    self.bucket,
                    key,
                    reader,  # type: ignore[arg-type]
                    size,
                    content_type=content_type or "application/octet-stream",
                    metadata={_SHA_META: sha256},
                    part_size=self.part_size,
                    num_parallel_uploads=_PARALLEL_UPLOADS,
                    tags=object_tags,
                    retention=Retention(self.lock_mode, until),
                )
        if not result.version_id:
            raise ObjectStoreError(f"bucket {self.bucket} returned no version id for {key}: not versioned")
        return ObjectRef(key=key, sha256=sha256, size=size, version_id=result.version_id)

    def _existing(self, key: str, sha256: str, size: int) -> ObjectRef | None:
        """The ref of the key's latest version when its metadata says it holds this content.

        Only metadata and size are compared (no download); every read verifies the bytes.
        """
        try:
            with self._errors("stat"):
                st = self.client.stat_object(self.bucket, key)
        except ObjectStoreError as exc:
            if isinstance(exc.__cause__, S3Error) and exc.__cause__.code in _NOT_FOUND:
                return None  # never written, or the latest version is a delete marker
            raise
        meta = {str(k).lower(): v for k, v in (st.metadata or {}).items()}
        if meta.get(f"x-amz-meta-{_SHA_META}") != sha256 or not st.version_id or st.size != size:
            return None
        return ObjectRef(key=key, sha256=sha256, size=size, version_id=st.version_id)

    def open(self, ref: ObjectRef, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Stream exactly the ref's version; IntegrityError at the end if it does not hash to ref.sha256.

        A missing object or version raises ObjectNotFoundError at once. A ref with
        no version_id reads the latest version (still sha-checked).
        """
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        key = self._check_ref(ref)
        with self._errors("open", ref):
            response = self.client.get_object(self.bucket, key, version_id=ref.version_id)
        return self._stream(response, ref, chunk_size)

    @staticmethod
    def _stream(response: urllib3.BaseHTTPResponse, ref: ObjectRef, chunk_size: int) -> Iterator[bytes]:
        try:
            yield from verified_stream(
                response.stream(chunk_size), ref, f"{ref.key} version {ref.version_id}"
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ObjectStoreError(f"reading {ref.key} failed: {type(exc).__name__}") from exc
        finally:
            response.close()
            response.release_conn()

    def exists(self, ref: ObjectRef) -> bool:
        """True when the ref's version is present with the ref's size (contents are checked on read)."""
        key = self._check_ref(ref)
        try:
            with self._errors("exists", ref):
                st = self.client.stat_object(self.bucket, key, version_id=ref.version_id)
        except ObjectNotFoundError:
            return False
        return st.size == ref.size

    def read_into(self, ref: ObjectRef, fp: BinaryIO) -> None:
        """Copy the whole version into ``fp``; on IntegrityError what was written must be discarded."""
        for chunk in self.open(ref):
            fp.write(chunk)

    # -- locks -------------------------------------------------------------------------------

    def retention(self, ref: ObjectRef) -> tuple[str | None, datetime | None]:
        """The version's (lock mode, retain-until in UTC), or (None, None) when it has none."""
        key = self._check_ref(ref)
        version = self._need_version(ref, "retention")
        with self._errors("get retention", ref):
            current = self.client.get_object_retention(self.bucket, key, version_id=version)
        if current is None or not current.mode:
            return None, None
        return current.mode, current.retain_until_date.astimezone(UTC)

    def extend_retention(self, ref: ObjectRef, until: datetime) -> tuple[str, datetime]:
        """Make the version's retain-until at least ``until``; never shortens, keeps the mode.

        Returns the (mode, retain-until) in force afterwards. HIM rules run from the
        most recent encounter, so retention only ever grows; extending needs no bypass.
        """
        until = _utc(until, "until")
        key = self._check_ref(ref)
        version = self._need_version(ref, "extend_retention")
        mode, current = self.retention(ref)
        if current is not None and current >= until:
            return mode or self.lock_mode, current
        new_mode = mode or self.lock_mode
        with self._errors("extend retention", ref):
            self.client.set_object_retention(self.bucket, key, Retention(new_mode, until), version_id=version)
        return new_mode, until

    def set_legal_hold(self, ref: ObjectRef, on: bool) -> None:
        """Place or lift an S3 legal hold on the version (the catalog records who and why)."""
        key = self._check_ref(ref)
        version = self._need_version(ref, "set_legal_hold")
        with self._errors("set legal hold", ref):
            if on:
                self.client.enable_object_legal_hold(self.bucket, key, version_id=version)
            else:
                self.client.disable_object_legal_hold(self.bucket, key, version_id=version)

    def legal_hold(self, ref: ObjectRef) -> bool:
        """Whether the version is under an S3 legal hold."""
        key = self._check_ref(ref)
        version = self._need_version(ref, "legal_hold")
        with self._errors("get legal hold", ref):
            try:
                return self.client.is_object_legal_hold_enabled(self.bucket, key, version_id=version)
            except S3Error as exc:
                # minio-py maps only NoSuchObjectLockConfiguration to False; SeaweedFS answers
                # a version that never had a hold with NoSuchObjectLegalHold.
                if exc.code == "NoSuchObjectLegalHold":
                    return False
                raise

    def delete_version(self, ref: ObjectRef, bypass_governance: bool = False) -> None:
        """Permanently delete exactly the ref's version, if the server allows it.

        The server refuses while a legal hold is on, while COMPLIANCE retention runs
        (bypass or not), and while GOVERNANCE retention runs unless
        ``bypass_governance`` is set and the credentials hold
        s3:BypassGovernanceRetention. A refusal is raised as ObjectStoreError. Callers
        must audit-log every bypass. (minio-py's remove_object has no bypass flag,
        so this uses the multi-object delete, whose errors arrive as items.)
        """
        key = self._check_ref(ref)
        version = self._need_version(ref, "delete_version")
        with self._errors("delete version", ref):
            errors = list(
                self.client.remove_objects(
                    self.bucket,
                    [DeleteObject(key, version_id=version)],
                    bypass_governance_mode=bypass_governance,
                )
            )
        if errors:
            err = errors[0]
            raise RetentionLockedError(
                f"delete of {key} version {version} refused by the store ({err.code}): "
                f"{self._lock_state(ref, bypass_governance)}"
            )

    def tags(self, ref: ObjectRef) -> dict[str, str]:
        """The version's object tags (labels for operators; the catalog is the truth)."""
        key = self._check_ref(ref)
        version = self._need_version(ref, "tags")
        with self._errors("get tags", ref):
            found = self.client.get_object_tags(self.bucket, key, version_id=version)
        return dict(found or {})

    def versions(self, ref: ObjectRef) -> list[ObjectRef]:
        """Every version of the ref's key, delete markers included, newest first.

        Disposition deletes all of them: a content-addressed key can hold several
        versions (two first writers, a re-upload after a delete marker).
        """
        key = self._check_ref(ref)
        with self._errors("list versions", ref):
            found = [
                o
                for o in self.client.list_objects(self.bucket, prefix=key, include_version=True)
                if o.object_name == key and o.version_id
            ]
        return [
            ObjectRef(key=key, sha256=ref.sha256, size=o.size or 0, version_id=o.version_id) for o in found
        ]

    def iter_refs(self) -> Iterator[ObjectRef]:
        """Every object version in the bucket under the content prefix (delete markers left out)."""
        with self._errors("list objects"):
            for o in self.client.list_objects(
                self.bucket, prefix="sha256/", recursive=True, include_version=True
            ):
                name = o.object_name or ""
                if o.is_delete_marker or not o.version_id:
                    continue
                yield ObjectRef(
                    key=name, sha256=name.rsplit("/", 1)[-1], size=o.size or 0, version_id=o.version_id
                )

    # -- named objects -----------------------------------------------------------------------

    def put_named(self, key: str, data: bytes, content_type: str, *, retain_until: datetime) -> ObjectRef:
        """Write ``data`` under ``key`` as a new locked version, unless the key already has one.

        The existence check and the write are two requests (minio-py sends no If-None-Match),
        so two racing writers may both write; either way every version written stays locked.
        """
        check_named_key(key)
        if len(data) > NAMED_MAX_BYTES:
            raise ValueError(f"a named object holds at most {NAMED_MAX_BYTES} bytes")
        until = _utc(retain_until, "retain_until")
        if until <= datetime.now(UTC):
            raise ValueError("retain_until must be in the future")
        if not self._bucket_ready:
            self.ensure_bucket()
        if self._key_has_versions(key):
            raise ObjectExistsError(f"named object {key} already exists; it is never replaced")
        sha256 = hashlib.sha256(data).hexdigest()
        with self._errors("put_named"):
            result = self.client.put_object(
                self.bucket,
                key,
                io.BytesIO(data),
                len(data),
                content_type=content_type or "application/octet-stream",
                metadata={_SHA_META: sha256},
                retention=Retention(self.lock_mode, until),
            )
        if not result.version_id:
            raise ObjectStoreError(f"bucket {self.bucket} returned no version id for {key}: not versioned")
        return ObjectRef(key=key, sha256=sha256, size=len(data), version_id=result.version_id)

    def _key_has_versions(self, key: str) -> bool:
        """Whether any version or delete marker was ever stored under exactly ``key``."""
        with self._errors("list versions"):
            listing = self.client.list_objects(self.bucket, prefix=key, include_version=True)
            return any(o.object_name == key for o in listing)

    def list_prefix(self, prefix: str) -> Iterator[ListedObject]:
        """Every version (delete markers left out) of every key under ``prefix``, in key order.

        Versions are listed, not just the latest, so a delete marker or a later version
        written around ChartVault hides nothing.
        """
        check_named_prefix(prefix)
        if not self._bucket_ready:
            self.ensure_bucket()
        with self._errors("list objects"):
            for o in self.client.list_objects(
                self.bucket, prefix=prefix, recursive=True, include_version=True
            ):
                if o.is_delete_marker or not o.object_name or not is_named_key(o.object_name):
                    continue
                yield ListedObject(o.object_name, o.size or 0, o.version_id, o.last_modified)

    def read_named(self, key: str, version_id: str | None = None) -> bytes:
        """The whole object (that version, else the latest); refused when over NAMED_MAX_BYTES."""
        ref = ObjectRef(key=check_named_key(key), sha256="", size=0, version_id=version_id)
        with self._errors("read_named", ref):
            response = self.client.get_object(self.bucket, key, version_id=version_id)
            try:
                data = response.read(NAMED_MAX_BYTES + 1)
            finally:
                response.close()
                response.release_conn()
        if len(data) > NAMED_MAX_BYTES:
            raise ObjectStoreError(f"named object {key} is over {NAMED_MAX_BYTES} bytes")
        return data

    def _lock_state(self, ref: ObjectRef, bypass: bool) -> str:
        """Why a delete was probably refused, for the error message (best effort)."""
        try:
            if self.legal_hold(ref):
                return "legal hold is on"
            mode, until = self.retention(ref)
        except ObjectStoreError:
            return "lock state unknown"
        if until is not None and until > datetime.now(UTC):
            extra = "" if mode == COMPLIANCE or bypass else ", bypass not requested"
            return f"{mode} retention until {until.isoformat()}{extra}"
        return "no active lock found (permissions?)"

    # -- release -----------------------------------------------------------------------------

    def presigned_get(
        self, ref: ObjectRef, expires: timedelta = MAX_PRESIGN, filename: str | None = None
    ) -> str:
        """A short-lived GET URL for exactly the ref's version, as an attachment named ``filename``.

        The URL is a bearer token until it expires (revocable only by rotating the
        key), so it is capped at 15 minutes and should be minted at fetch time by an
        authenticated API that writes the disclosure record. It embeds the endpoint
        host this store was built with.
        """
        if not isinstance(expires, timedelta):
            raise TypeError("expires must be a timedelta")
        if not timedelta(seconds=1) <= expires <= MAX_PRESIGN:
            raise ValueError(f"expires must be between 1 second and {MAX_PRESIGN}")
        key = self._check_ref(ref)
        version = self._need_version(ref, "presigned_get")
        headers: dict[str, str | list[str] | tuple[str]] = {}
        if filename:
            fallback = re.sub(r"[^A-Za-z0-9._ -]", "_", filename)[:200] or "download"
            headers["response-content-disposition"] = (
                f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
            )
        with self._errors("presign", ref):
            return self.client.presigned_get_object(
                self.bucket, key, expires=expires, response_headers=headers or None, version_id=version
            )
