"""One contract for every object store: the local folder and a real S3 server (SeaweedFS, or
any MinIO/S3 named by CHARTVAULT_TEST_S3_ENDPOINT).

What the store itself refuses is tested here by calling it directly (and, for S3, with the raw
minio SDK, going around ChartVault entirely); what the catalog refuses is in test_records.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from minio.deleteobjects import DeleteObject
from minio.error import S3Error
from minio.retention import Retention
from s3fixtures import *  # noqa: F403 - s3_settings

from chartvault.archive.localstore import LocalObjectStore
from chartvault.archive.objectstore import (
    IntegrityError,
    ObjectExistsError,
    ObjectRef,
    ObjectStore,
    ObjectStoreError,
    RetentionLockedError,
)
from chartvault.archive.s3store import S3ObjectStore
from chartvault.config import Settings

BIG_MB = 200
RSS_LIMIT_MB = 160  # well under the object's size: it must be streamed, never held whole


def _store(kind: str, mode: str, tmp_path: Path, request: pytest.FixtureRequest) -> ObjectStore:
    if kind == "local":
        return LocalObjectStore(tmp_path / f"objects-{mode}", lock_mode=mode)
    s3: Settings = request.getfixturevalue("s3_settings")
    store = S3ObjectStore.from_settings(s3, bucket=f"cv-contract-{uuid.uuid4().hex[:12]}", lock_mode=mode)
    store.ensure_bucket()
    return store


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    yield _store(request.param, "GOVERNANCE", tmp_path, request)


@pytest.fixture(params=["local", "s3"])
def compliance_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    yield _store(request.param, "COMPLIANCE", tmp_path, request)


def _file(tmp_path: Path, data: bytes, name: str = "page.tif") -> tuple[str, str]:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path), hashlib.sha256(data).hexdigest()


def _in(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def _put(store: ObjectStore, tmp_path: Path, data: bytes, seconds: float = 3600, **kw: object) -> ObjectRef:
    path, sha = _file(tmp_path, data)
    return store.put_file(path, sha, "image/tiff", retain_until=_in(seconds), **kw)  # type: ignore[arg-type]


def _raw_delete(store: ObjectStore, ref: ObjectRef, bypass: bool) -> list:
    assert isinstance(store, S3ObjectStore)
    return list(
        store.client.remove_objects(
            store.bucket, [DeleteObject(ref.key, version_id=ref.version_id)], bypass_governance_mode=bypass
        )
    )


def test_early_delete_refused_by_the_store(store: ObjectStore, tmp_path: Path) -> None:
    ref = _put(store, tmp_path, b"scanned page under retention")
    with pytest.raises(RetentionLockedError, match="GOVERNANCE retention until"):
        store.delete_version(ref)
    if isinstance(store, S3ObjectStore):
        (error,) = _raw_delete(store, ref, bypass=False)  # ChartVault bypassed: the server refuses
        assert error.code == "AccessDenied"
    assert store.exists(ref)
    # GOVERNANCE gives way to an explicit bypass (the break-glass path, always audited by callers).
    store.delete_version(ref, bypass_governance=True)
    assert not store.exists(ref)


@pytest.mark.slow
def test_expired_lock_allows_delete(store: ObjectStore, tmp_path: Path) -> None:
    ref = _put(store, tmp_path, b"short-lived", seconds=1.5)
    import time

    time.sleep(2)
    store.delete_version(ref)
    assert not store.exists(ref) and store.versions(ref) == []


def test_legal_hold_blocks_delete_even_with_bypass(store: ObjectStore, tmp_path: Path) -> None:
    ref = _put(store, tmp_path, b"held page", seconds=1)
    store.set_legal_hold(ref, True)
    assert store.legal_hold(ref) is True
    with pytest.raises(RetentionLockedError, match="legal hold"):
        store.delete_version(ref, bypass_governance=True)
    if isinstance(store, S3ObjectStore):
        assert _raw_delete(store, ref, bypass=True), "the server deleted a held version"
    store.set_legal_hold(ref, False)
    assert store.legal_hold(ref) is False
    store.delete_version(ref, bypass_governance=True)
    assert not store.exists(ref)


def test_retention_extends_never_shortens(store: ObjectStore, tmp_path: Path) -> None:
    ref = _put(store, tmp_path, b"extend me")
    mode, until = store.retention(ref)
    assert mode == "GOVERNANCE" and until is not None
    later = until + timedelta(days=400)
    store.extend_retention(ref, later)
    _, now_until = store.retention(ref)
    assert now_until is not None and abs((now_until - later).total_seconds()) < 1
    store.extend_retention(ref, until)  # asking for less keeps what is in force
    assert store.retention(ref)[1] == now_until
    # Storing the same content again with a later date extends it too (idempotent put).
    again = _put(store, tmp_path, b"extend me", seconds=3 * 365 * 86400)
    assert again.key == ref.key
    _, final = store.retention(again)
    assert final is not None and final > now_until


def test_compliance_cannot_be_shortened_or_bypassed(compliance_store: ObjectStore, tmp_path: Path) -> None:
    store = compliance_store
    ref = _put(store, tmp_path, b"compliance record")
    mode, until = store.retention(ref)
    assert mode == "COMPLIANCE" and until is not None
    with pytest.raises(RetentionLockedError, match="COMPLIANCE retention"):
        store.delete_version(ref, bypass_governance=True)
    if isinstance(store, S3ObjectStore):
        assert _raw_delete(store, ref, bypass=True), "the server deleted a COMPLIANCE version"
        with pytest.raises(S3Error):  # shortening straight through the SDK
            store.client.set_object_retention(
                store.bucket, ref.key, Retention("COMPLIANCE", _in(60)), version_id=ref.version_id
            )
    else:
        store.extend_retention(ref, _in(60))
    assert store.retention(ref)[1] == until
    assert store.exists(ref)


def test_tags_are_stored(store: ObjectStore, tmp_path: Path) -> None:
    tags = {"doc_type": "discharge_summary", "retention_rule": "ahima.adult", "retain_until": "2034-05-06"}
    ref = _put(store, tmp_path, b"tagged page", tags=tags)
    assert store.tags(ref) == tags
    with pytest.raises(ValueError):
        _put(store, tmp_path, b"too many tags", tags={f"k{i}": "v" for i in range(11)})


def test_reads_are_pinned_to_the_version(store: ObjectStore, tmp_path: Path) -> None:
    if isinstance(store, LocalObjectStore):
        pytest.skip("a local object has exactly one immutable version; nothing to pin")
    assert isinstance(store, S3ObjectStore)
    ref = _put(store, tmp_path, b"the original page")
    import io

    other = b"a later write under the same key"
    store.client.put_object(store.bucket, ref.key, io.BytesIO(other), len(other))
    assert b"".join(store.open(ref)) == b"the original page"
    assert len(store.versions(ref)) == 2


def test_sha256_checked_on_write_and_on_read(store: ObjectStore, tmp_path: Path) -> None:
    path, _sha = _file(tmp_path, b"what the scanner sent")
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(IntegrityError, match="mismatch"):
        store.put_file(path, wrong, "image/tiff", retain_until=_in(3600))
    ref = _put(store, tmp_path, b"stored bytes")
    if isinstance(store, LocalObjectStore):
        obj = store.root / ref.key
        obj.chmod(0o644)
        obj.write_bytes(b"STORED BYTES")  # same size, different content
        bad = ref
    else:
        assert isinstance(store, S3ObjectStore)
        import io

        evil = b"STORED BYTES"  # a new version behind ChartVault's back; read as "latest"
        store.client.put_object(store.bucket, ref.key, io.BytesIO(evil), len(evil))
        bad = ObjectRef(ref.key, ref.sha256, ref.size, None)
    with pytest.raises(IntegrityError, match="corrupt"):
        b"".join(store.open(bad))


def _put_named(store: ObjectStore, key: str, data: bytes, seconds: float = 3600) -> ObjectRef:
    return store.put_named(key, data, "application/json", retain_until=_in(seconds))


def test_named_objects_are_listed_by_prefix_in_key_order(store: ObjectStore) -> None:
    later = _put_named(store, "audit-checkpoints/000000000010-b.json", b'{"entries": 10}')
    first = _put_named(store, "audit-checkpoints/000000000002-a.json", b'{"entries": 2}')
    _put_named(store, "audit-other/000000000001.json", b"{}")
    listed = list(store.list_prefix("audit-checkpoints/"))
    assert [o.key for o in listed] == [first.key, later.key]
    assert [o.size for o in listed] == [first.size, later.size]
    assert [o.key for o in store.list_prefix("audit-checkpoints/0000000000")] == [first.key, later.key]
    assert list(store.list_prefix("audit-nothing/")) == []
    assert store.read_named(first.key, listed[0].version_id) == b'{"entries": 2}'
    assert b"".join(store.open(first)) == b'{"entries": 2}'  # a named ref reads (and verifies) like any
    assert first.key not in {r.key for r in store.iter_refs()}  # not content, so never an "orphan"


@pytest.mark.parametrize(
    "key",
    ["sha256/ab/cd/x.json", "../escape.json", "/abs/x.json", "audit/../x.json", "audit/.tmp-x", "x.json"],
)
def test_named_keys_stay_out_of_the_content_namespace_and_the_folder(store: ObjectStore, key: str) -> None:
    with pytest.raises(ObjectStoreError, match="malformed"):
        _put_named(store, key, b"{}")
    with pytest.raises(ObjectStoreError, match="malformed"):
        list(store.list_prefix("sha256/"))


def test_named_object_is_write_once_and_locked(store: ObjectStore) -> None:
    ref = _put_named(store, "audit-checkpoints/000000000007-x.json", b'{"entries": 7}')
    with pytest.raises(ObjectExistsError):
        _put_named(store, ref.key, b'{"entries": 3}')
    assert store.read_named(ref.key) == b'{"entries": 7}'
    mode, until = store.retention(ref)
    assert mode == "GOVERNANCE" and until is not None and until > _in(3000)
    with pytest.raises(RetentionLockedError, match="GOVERNANCE retention until"):
        store.delete_version(ref)
    if isinstance(store, LocalObjectStore):
        path = store.root / "named" / ref.key
        assert path.stat().st_mode & 0o777 == 0o400  # read-only, owner-only
    else:
        assert isinstance(store, S3ObjectStore)
        (error,) = _raw_delete(store, ref, bypass=False)  # around ChartVault: the server refuses
        assert error.code == "AccessDenied"
        import io

        forged = b'{"entries": 3}'  # an overwrite around ChartVault only adds a version
        store.client.put_object(store.bucket, ref.key, io.BytesIO(forged), len(forged))
        store.client.remove_object(store.bucket, ref.key)  # and a delete only adds a marker
        versions = [o for o in store.list_prefix("audit-checkpoints/") if o.key == ref.key]
        assert ref.version_id in {o.version_id for o in versions} and len(versions) == 2
        assert store.read_named(ref.key, ref.version_id) == b'{"entries": 7}'
    assert store.exists(ref)


@pytest.mark.slow
def test_expired_named_object_can_be_deleted(store: ObjectStore) -> None:
    ref = _put_named(store, "audit-checkpoints/000000000001-y.json", b"{}", seconds=1.5)
    import time

    time.sleep(2)
    store.delete_version(ref)
    assert not store.exists(ref)
    assert [o.key for o in store.list_prefix("audit-checkpoints/")] == []


# Peak RSS from VmHWM (per address space, so it starts afresh at exec; ru_maxrss would carry the
# forking pytest process's peak across exec).
_RSS_SCRIPT = r"""
import hashlib, json, sys
from datetime import UTC, datetime, timedelta
params = json.loads(sys.argv[1])
if params["kind"] == "local":
    from chartvault.archive.localstore import LocalObjectStore
    store = LocalObjectStore(params["root"])
else:
    from chartvault.archive.s3store import S3ObjectStore
    store = S3ObjectStore(params["endpoint"], params["access"], params["secret"], bucket=params["bucket"],
                          secure=params["secure"], cert_check=params["cert_check"])
def hwm_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
before = hwm_kb()
ref = store.put_file(params["path"], params["sha"], "application/pdf",
                     retain_until=datetime.now(UTC) + timedelta(hours=1))
digest = hashlib.sha256()
for chunk in store.open(ref):
    digest.update(chunk)
assert digest.hexdigest() == params["sha"]
print(json.dumps({"maxrss_kb": hwm_kb(), "before_kb": before}))
"""


@pytest.mark.slow
def test_200mb_object_streams_in_bounded_memory(
    store: ObjectStore, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    src = tmp_path / "big.pdf"
    digest = hashlib.sha256()
    block = os.urandom(1 << 20)
    with src.open("wb") as f:
        for i in range(BIG_MB):
            chunk = bytes([i % 256]) + block[1:]
            digest.update(chunk)
            f.write(chunk)
    params: dict[str, object] = {"path": str(src), "sha": digest.hexdigest()}
    if isinstance(store, LocalObjectStore):
        params |= {"kind": "local", "root": str(store.root)}
    else:
        assert isinstance(store, S3ObjectStore)
        s3: Settings = request.getfixturevalue("s3_settings")
        params |= {
            "kind": "s3",
            "endpoint": s3.s3_endpoint,
            "access": s3.s3_access_key,
            "secret": s3.s3_secret_key.get_secret_value() if s3.s3_secret_key else None,
            "secure": s3.s3_secure,
            "cert_check": s3.s3_cert_check,
            "bucket": store.bucket,
        }
    proc = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, json.dumps(params)], capture_output=True, text=True, timeout=600
    )
    src.unlink()
    assert proc.returncode == 0, proc.stderr[-2000:]
    rss_mb = json.loads(proc.stdout)["maxrss_kb"] / 1024
    print(f"{params['kind']}: {BIG_MB} MB object put and read back, peak RSS {rss_mb:.0f} MB")
    assert rss_mb < RSS_LIMIT_MB, f"peak RSS {rss_mb:.0f} MB for a {BIG_MB} MB object"
