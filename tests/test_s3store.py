"""S3ObjectStore against a real S3 server with Object Lock (SeaweedFS or the configured one)."""

from __future__ import annotations

import hashlib
import io
import os
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from minio import Minio
from s3fixtures import *  # noqa: F403 - s3_settings, s3_store, s3_client

from chartvault.archive.objectstore import IntegrityError, ObjectRef, ObjectStoreError
from chartvault.archive.s3store import ObjectNotFoundError, S3ObjectStore, validate_tags
from chartvault.archive.stores import open_object_store
from chartvault.config import Settings


def _file(tmp_path: Path, data: bytes, name: str = "doc.pdf") -> tuple[str, str]:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path), hashlib.sha256(data).hexdigest()


def _soon(seconds: float = 3600) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def _versions(client: Minio, bucket: str, key: str) -> list[str]:
    return [
        o.version_id
        for o in client.list_objects(bucket, prefix=key, include_version=True)
        if o.object_name == key and not o.is_delete_marker
    ]


# -- round trip and integrity ------------------------------------------------------------------


def test_round_trip_exact_bytes_with_version(s3_store: S3ObjectStore, tmp_path: Path) -> None:
    data = os.urandom(70_000)
    path, sha = _file(tmp_path, data)
    ref = s3_store.put_file(path, sha, "application/pdf", retain_until=_soon())
    assert ref.key == f"sha256/{sha[:2]}/{sha[2:4]}/{sha}"
    assert ref.size == len(data) and ref.version_id
    assert b"".join(s3_store.open(ref)) == data
    buf = io.BytesIO()
    s3_store.read_into(ref, buf)
    assert buf.getvalue() == data
    assert s3_store.exists(ref)
    assert not s3_store.exists(ObjectRef(ref.key, sha, ref.size + 1, ref.version_id))
    st = s3_store.client.stat_object(s3_store.bucket, ref.key, version_id=ref.version_id)
    assert st.metadata["x-amz-meta-sha256"] == sha
    assert st.content_type == "application/pdf"


def test_default_retention_from_settings(s3_store: S3ObjectStore, tmp_path: Path) -> None:
    path, sha = _file(tmp_path, b"default retention")
    ref = s3_store.put_file(path, sha, "text/plain")
    mode, until = s3_store.retention(ref)
    assert mode == "GOVERNANCE"
    expected = datetime.now(UTC) + timedelta(days=3650)
    assert until is not None and abs((until - expected).total_seconds()) < 120


def test_sha_mismatch_refused_and_nothing_written(s3_store: S3ObjectStore, tmp_path: Path) -> None:
    path, _ = _file(tmp_path, b"the real bytes")
    wrong = hashlib.sha256(b"other bytes").hexdigest()
    with pytest.raises(IntegrityError, match="mismatch"):
        s3_store.put_file(path, wrong, "text/plain", retain_until=_soon())
    assert _versions(s3_store.client, s3_store.bucket, f"sha256/{wrong[:2]}/{wrong[2:4]}/{wrong}") == []
    with pytest.raises(ObjectStoreError, match="64 lowercase hex"):
        s3_store.put_file(path, "nothex", "text/plain")


def test_put_is_idempotent(s3_store: S3ObjectStore, tmp_path: Path) -> None:
    path, sha = _file(tmp_path, b"same content twice")
    first = s3_store.put_file(path, sha, "text/plain", retain_until=_soon())
    second = s3_store.put_file(path, sha, "text/plain", retain_until=_soon(7200))
    assert second == first
    assert _versions(s3_store.client, s3_store.bucket, first.key) == [first.version_id]
    # the later retain-until of the second put was applied to the one version
    _, until = s3_store.retention(first)
    assert until is not None and until > _soon(7000)


def test_big_file_streams_multipart(s3_store: S3ObjectStore, tmp_path: Path) -> None:
    data = os.urandom(20 * 1024 * 1024 + 123)
    path, sha = _file(tmp_path, data, "big.tif")
    ref = s3_store.put_file(path, sha, "image/tiff", retain_until=_soon())
    st = s3_store.client.stat_object(s3_store.bucket, ref.key, version_id=ref.version_id)
    assert st.size == len(data)
    assert st.etag.endswith("-2")  # 16 MiB parts: multipart, so the ETag is no content hash
    digest = hashlib.sha256()
    sizes = []
    for chunk in s3_store.open(ref, chunk_size=1 << 20):
        digest.update(chunk)
        sizes.append(len(chunk))
    assert digest.hexdigest() == sha and max(sizes) <= 1 << 20


def test_multipart_sha_mismatch_aborted(s3_store: S3ObjectStore, tmp_path: Path) -> None:
    data = os.urandom(17 * 1024 * 1024)  # two parts: the mismatch shows only at the last read
    path, _ = _file(tmp_path, data, "big.tif")
    wrong = hashlib.sha256(b"not this file").hexdigest()
    with pytest.raises(IntegrityError, match="mismatch"):
        s3_store.put_file(path, wrong, "image/tiff", retain_until=_soon())
    key = f"sha256/{wrong[:2]}/{wrong[2:4]}/{wrong}"
    assert _versions(s3_store.client, s3_store.bucket, key) == []  # aborted, not a locked version


def test_tampering_detected_and_reads_pin_version(s3_store: S3ObjectStore, tmp_path: Path) -> None:
    data = b"original scanned page"
    path, sha = _file(tmp_path, data)
    ref = s3_store.put_file(path, sha, "text/plain", retain_until=_soon())
    evil = b"tampered scanned page"
    s3_store.client.put_object(s3_store.bucket, ref.key, io.BytesIO(evil), len(evil))
    assert len(_versions(s3_store.client, s3_store.bucket, ref.key)) == 2
    assert b"".join(s3_store.open(ref)) == data  # the ref's version, not the latest
    # an unpinned ref reads the latest version and fails its sha check
    with pytest.raises(IntegrityError, match="corrupt"):
        b"".join(s3_store.open(ObjectRef(ref.key, sha, len(data), None)))
    # a ref whose sha256 does not match the bytes of its version
    bad = ObjectRef(ref.key, sha, len(data) + 1, ref.version_id)
    with pytest.raises(IntegrityError):
        b"".join(s3_store.open(bad))
    # and the store's own put no longer treats the latest (tampered) version as the content
    again = s3_store.put_file(path, sha, "text/plain", retain_until=_soon())
    assert again.version_id not in (ref.version_id, None)


def test_wrong_sha_ref_rejected(s3_store: S3ObjectStore, tmp_path: Path) -> None:
    path, sha = _file(tmp_path, b"content a")
    ref = s3_store.put_file(path, sha, "text/plain", retain_until=_soon())
    other = hashlib.sha256(b"content b").hexdigest()
    with pytest.raises(ObjectStoreError, match="does not match"):
        s3_store.open(ObjectRef(ref.key, other, ref.size, ref.version_id))


def test_missing_version_not_found(s3_store: S3ObjectStore, tmp_path: Path) -> None:
    sha = hashlib.sha256(b"never stored").hexdigest()
    ref = ObjectRef(f"sha256/{sha[:2]}/{sha[2:4]}/{sha}", sha, 12, None)
    with pytest.raises(ObjectNotFoundError):
        s3_store.open(ref)
    assert not s3_store.exists(ref)


# -- locks ---------------------------------------------------------------------------------------


def test_governance_delete_needs_bypass(s3_store: S3ObjectStore, tmp_path: Path) -> None:
    path, sha = _file(tmp_path, b"governance locked")
    ref = s3_store.put_file(path, sha, "text/plain", retain_until=_soon())
    with pytest.raises(ObjectStoreError, match=r"refused by the store.*GOVERNANCE.*bypass not requested"):
        s3_store.delete_version(ref)
    assert s3_store.exists(ref)
    s3_store.delete_version(ref, bypass_governance=True)
    assert not s3_store.exists(ref)


def test_delete_needs_a_version(s3_store: S3ObjectStore, tmp_path: Path) -> None:
    path, sha = _file(tmp_path, b"no version")
    ref = s3_store.put_file(path, sha, "text/plain", retain_until=_soon())
    with pytest.raises(ObjectStoreError, match="version_id"):
        s3_store.delete_version(ObjectRef(ref.key, sha, ref.size, None))


@pytest.mark.slow
def test_compliance_delete_refused_even_with_bypass(s3_settings: Settings, tmp_path: Path) -> None:
    store = S3ObjectStore.from_settings(
        s3_settings, bucket=f"cv-test-c{os.urandom(6).hex()}", lock_mode="COMPLIANCE"
    )
    path, sha = _file(tmp_path, b"compliance locked")
    ref = store.put_file(path, sha, "text/plain", retain_until=_soon(2))
    assert store.retention(ref)[0] == "COMPLIANCE"
    with pytest.raises(ObjectStoreError, match="COMPLIANCE retention"):
        store.delete_version(ref, bypass_governance=True)
    assert store.exists(ref)
    time.sleep(max(0.0, (store.retention(ref)[1] - datetime.now(UTC)).total_seconds()) + 1.0)
    store.delete_version(ref)  # the lock lapsed as dated
    assert not store.exists(ref)


def test_legal_hold_blocks_delete_even_with_bypass(s3_store: S3ObjectStore, tmp_path: Path) -> None:
    path, sha = _file(tmp_path, b"on legal hold")
    ref = s3_store.put_file(path, sha, "text/plain", retain_until=_soon())
    assert s3_store.legal_hold(ref) is False
    s3_store.set_legal_hold(ref, True)
    assert s3_store.legal_hold(ref) is True
    with pytest.raises(ObjectStoreError, match="legal hold is on"):
        s3_store.delete_version(ref, bypass_governance=True)
    s3_store.set_legal_hold(ref, False)
    assert s3_store.legal_hold(ref) is False
    s3_store.delete_version(ref, bypass_governance=True)
    assert not s3_store.exists(ref)


def test_extend_retention_never_shortens(s3_store: S3ObjectStore, tmp_path: Path) -> None:
    path, sha = _file(tmp_path, b"extend me")
    start = _soon(3600).replace(microsecond=0)
    ref = s3_store.put_file(path, sha, "text/plain", retain_until=start)
    mode, until = s3_store.retention(ref)
    assert mode == "GOVERNANCE" and until == start
    later = start + timedelta(days=30)
    assert s3_store.extend_retention(ref, later) == ("GOVERNANCE", later)
    assert s3_store.retention(ref) == ("GOVERNANCE", later)
    # an earlier date is a no-op, not an error and not a shortening
    assert s3_store.extend_retention(ref, start) == ("GOVERNANCE", later)
    assert s3_store.retention(ref) == ("GOVERNANCE", later)
    with pytest.raises(ValueError, match="timezone-aware"):
        s3_store.extend_retention(ref, datetime(2100, 1, 1))


def test_past_retain_until_refused(s3_store: S3ObjectStore, tmp_path: Path) -> None:
    path, sha = _file(tmp_path, b"past")
    with pytest.raises(ValueError, match="future"):
        s3_store.put_file(path, sha, "text/plain", retain_until=datetime.now(UTC) - timedelta(days=1))


# -- tags ----------------------------------------------------------------------------------------


def test_tags_stored_and_limited(s3_store: S3ObjectStore, tmp_path: Path) -> None:
    path, sha = _file(tmp_path, b"tagged")
    tags = {f"k{i}": f"v{i}" for i in range(10)}
    ref = s3_store.put_file(path, sha, "text/plain", retain_until=_soon(), tags=tags)
    got = s3_store.client.get_object_tags(s3_store.bucket, ref.key, version_id=ref.version_id)
    assert dict(got or {}) == tags
    path2, sha2 = _file(tmp_path, b"too many tags", "b.txt")
    with pytest.raises(ValueError, match="at most 10"):
        s3_store.put_file(path2, sha2, "text/plain", tags={f"k{i}": "v" for i in range(11)})
    assert _versions(s3_store.client, s3_store.bucket, f"sha256/{sha2[:2]}/{sha2[2:4]}/{sha2}") == []


def test_validate_tags_limits() -> None:
    assert validate_tags(None) is None
    with pytest.raises(ValueError, match="1 to 128"):
        validate_tags({"k" * 129: "v"})
    with pytest.raises(ValueError, match="256"):
        validate_tags({"k": "v" * 257})
    with pytest.raises(ValueError, match="only letters"):
        validate_tags({"k": "a&b"})

    class Dup(dict):
        def items(self):  # a mapping that repeats a key, as a raw query string could
            return [("a", "1"), ("a", "2")]

        def __len__(self) -> int:
            return 2

    with pytest.raises(ValueError, match="duplicate"):
        validate_tags(Dup())


# -- presign -------------------------------------------------------------------------------------


def test_presigned_get_exact_bytes_and_capped(s3_store: S3ObjectStore, tmp_path: Path) -> None:
    data = os.urandom(5000)
    path, sha = _file(tmp_path, data)
    ref = s3_store.put_file(path, sha, "application/pdf", retain_until=_soon())
    evil = b"newer version"
    s3_store.client.put_object(s3_store.bucket, ref.key, io.BytesIO(evil), len(evil))
    url = s3_store.presigned_get(ref, timedelta(minutes=15), filename="chart 12.pdf")
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.read() == data  # pinned to the ref's version
        assert 'filename="chart 12.pdf"' in resp.headers["Content-Disposition"]
    with pytest.raises(ValueError, match="between"):
        s3_store.presigned_get(ref, timedelta(minutes=15, seconds=1))
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(url.replace("X-Amz-Signature=", "X-Amz-Signature=0"), timeout=10)
    assert exc.value.code in (400, 403)


# -- bucket and factory --------------------------------------------------------------------------


def test_bucket_without_object_lock_refused(s3_settings: Settings, tmp_path: Path) -> None:
    store = S3ObjectStore.from_settings(s3_settings, bucket=f"cv-test-n{os.urandom(6).hex()}")
    store.client.make_bucket(store.bucket, location=store.region)
    with pytest.raises(ObjectStoreError, match="no Object Lock"):
        store.ensure_bucket()
    path, sha = _file(tmp_path, b"x")
    with pytest.raises(ObjectStoreError, match="no Object Lock"):
        store.put_file(path, sha, "text/plain")


def test_factory_returns_s3_store(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, object_store="s3", s3_endpoint="https://s3.example:9000", _env_file=None
    )
    store = open_object_store(settings)  # no network until first use
    assert isinstance(store, S3ObjectStore)
    assert store.bucket == "chartvault-archive" and store.lock_mode == "GOVERNANCE"
    with pytest.raises(ObjectStoreError, match="CHARTVAULT_S3_ENDPOINT"):
        open_object_store(Settings(object_store="s3", s3_endpoint=None, _env_file=None))


def test_verifying_reader_fails_last_read() -> None:
    from chartvault.archive.s3store import _VerifyingReader

    data = b"abcdef"
    sha = hashlib.sha256(data).hexdigest()
    ok = _VerifyingReader(io.BytesIO(data), sha, 6, "k")
    assert ok.read(4) + ok.read(10) == data
    grown = _VerifyingReader(io.BytesIO(data + b"g"), sha, 6, "k")
    grown.read(3)
    with pytest.raises(IntegrityError, match="grew"):
        grown.read(3)
    wrong = _VerifyingReader(io.BytesIO(b"abcdeX"), sha, 6, "k")
    with pytest.raises(IntegrityError, match="mismatch"):
        wrong.read(6)
