"""The local object store: content addressing, write-once files, verified reads."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import time
import tracemalloc
from pathlib import Path

import pytest

from chartvault.archive.localstore import TEMP_PREFIX, LocalObjectStore, ObjectNotFoundError, key_for
from chartvault.archive.objectstore import IntegrityError, ObjectRef, ObjectStore, ObjectStoreError
from chartvault.archive.stores import open_object_store
from chartvault.config import Settings


def _write(path: Path, data: bytes) -> tuple[str, str]:
    path.write_bytes(data)
    return str(path), hashlib.sha256(data).hexdigest()


def _all_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "objects")


def test_put_open_round_trip(store: LocalObjectStore, tmp_path: Path) -> None:
    data = os.urandom(300_000) + b"\x00\xff" * 10
    src, sha = _write(tmp_path / "in.pdf", data)
    ref = store.put_file(src, sha, "application/pdf")
    assert ref == ObjectRef(key=f"sha256/{sha[:2]}/{sha[2:4]}/{sha}", sha256=sha, size=len(data))
    assert (store.root / ref.key).is_file()
    assert b"".join(store.open(ref, chunk_size=4096)) == data
    out = io.BytesIO()
    store.read_into(ref, out)
    assert out.getvalue() == data
    assert store.exists(ref)


def test_empty_file(store: LocalObjectStore, tmp_path: Path) -> None:
    src, sha = _write(tmp_path / "empty", b"")
    ref = store.put_file(src, sha, "application/octet-stream")
    assert ref.size == 0 and b"".join(store.open(ref)) == b""


def test_put_is_idempotent(store: LocalObjectStore, tmp_path: Path) -> None:
    src, sha = _write(tmp_path / "a.pdf", b"same content")
    ref1 = store.put_file(src, sha, "application/pdf")
    path = store.root / ref1.key
    before = path.stat()
    src2, _ = _write(tmp_path / "copy.pdf", b"same content")
    ref2 = store.put_file(src2, sha, "application/pdf")
    assert ref2 == ref1
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not rewritten
    assert len(_all_files(store.root)) == 1


def test_truncated_object_is_replaced(store: LocalObjectStore, tmp_path: Path) -> None:
    src, sha = _write(tmp_path / "a.pdf", b"0123456789")
    ref = store.put_file(src, sha, "application/pdf")
    path = store.root / ref.key
    path.chmod(0o644)
    path.write_bytes(b"01234")
    assert not store.exists(ref)
    assert store.put_file(src, sha, "application/pdf") == ref
    assert b"".join(store.open(ref)) == b"0123456789"


def test_sha_mismatch_on_put_leaves_nothing(store: LocalObjectStore, tmp_path: Path) -> None:
    src, _ = _write(tmp_path / "a.pdf", b"actual bytes")
    claimed = hashlib.sha256(b"other bytes").hexdigest()
    with pytest.raises(IntegrityError):
        store.put_file(src, claimed, "application/pdf")
    assert _all_files(store.root) == []
    assert not store.exists(ObjectRef(key=key_for(claimed), sha256=claimed, size=12))


def test_tampered_object_detected_on_read(store: LocalObjectStore, tmp_path: Path) -> None:
    data = b"A" * 10_000
    src, sha = _write(tmp_path / "a.pdf", data)
    ref = store.put_file(src, sha, "application/pdf")
    path = store.root / ref.key
    path.chmod(0o644)
    raw = bytearray(path.read_bytes())
    raw[5000] ^= 0x01
    path.write_bytes(bytes(raw))
    assert store.exists(ref)  # same size: only reading finds out
    with pytest.raises(IntegrityError):
        b"".join(store.open(ref))
    with pytest.raises(IntegrityError):
        store.read_into(ref, io.BytesIO())


def test_object_is_read_only_after_write(store: LocalObjectStore, tmp_path: Path) -> None:
    src, sha = _write(tmp_path / "a.pdf", b"x" * 100)
    ref = store.put_file(src, sha, "application/pdf")
    mode = stat.S_IMODE((store.root / ref.key).stat().st_mode)
    assert mode & 0o222 == 0
    assert mode == 0o400  # and owner-only: objects hold PHI


def test_no_temp_files_left(store: LocalObjectStore, tmp_path: Path) -> None:
    for i in range(5):
        src, sha = _write(tmp_path / f"f{i}", f"content {i}".encode())
        store.put_file(src, sha, "text/plain")
    names = [p.name for p in _all_files(store.root)]
    assert len(names) == 5
    assert not [n for n in names if n.startswith(TEMP_PREFIX)]


def test_sweep_temp_removes_only_old_temps(store: LocalObjectStore, tmp_path: Path) -> None:
    src, sha = _write(tmp_path / "a", b"keep me")
    ref = store.put_file(src, sha, "text/plain")
    folder = (store.root / ref.key).parent
    old = folder / f"{TEMP_PREFIX}old"
    new = folder / f"{TEMP_PREFIX}new"
    old.write_bytes(b"partial")
    new.write_bytes(b"in progress")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    assert store.sweep_temp(older_than_s=600) == 1
    assert not old.exists() and new.exists()
    assert (store.root / ref.key).exists()
    assert store.sweep_temp(older_than_s=0) == 1
    assert [p.name for p in _all_files(store.root)] == [sha]


@pytest.mark.parametrize(
    "key",
    [
        "../../etc/passwd",
        "sha256/ab/cd/../../../../etc/passwd",
        "/etc/passwd",
        "sha256/00/00/" + "ab" * 32,  # prefix folders do not match the hash
        "sha256/ab/ab/" + "AB" * 32,  # upper case
        "sha256/ab/ab/" + "ab" * 31,  # too short
        "sha256/ab/ab/" + "ab" * 32 + "/x",
        "sha256\\ab\\ab\\" + "ab" * 32,
    ],
)
def test_malformed_keys_are_refused(store: LocalObjectStore, key: str) -> None:
    ref = ObjectRef(key=key, sha256="ab" * 32, size=1)
    with pytest.raises(ObjectStoreError):
        store.open(ref)
    with pytest.raises(ObjectStoreError):
        store.exists(ref)


def test_bad_sha_on_put_is_refused(store: LocalObjectStore, tmp_path: Path) -> None:
    src, sha = _write(tmp_path / "a", b"data")
    for bad in ("../" + sha[3:], sha.upper(), sha[:-1], ""):
        with pytest.raises(ObjectStoreError):
            store.put_file(src, bad, "text/plain")
    assert _all_files(store.root) == []


def test_key_must_match_ref_sha(store: LocalObjectStore, tmp_path: Path) -> None:
    src, sha = _write(tmp_path / "a", b"data")
    ref = store.put_file(src, sha, "text/plain")
    with pytest.raises(ObjectStoreError):
        store.open(ObjectRef(key=ref.key, sha256="0" * 64, size=ref.size))


def test_missing_object(store: LocalObjectStore) -> None:
    sha = "cd" * 32
    ref = ObjectRef(key=key_for(sha), sha256=sha, size=1)
    assert not store.exists(ref)
    with pytest.raises(ObjectNotFoundError):
        store.open(ref)


def test_large_file_streams_in_bounded_memory(store: LocalObjectStore, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    digest = hashlib.sha256()
    block = os.urandom(1 << 20)
    with src.open("wb") as f:
        for i in range(20):
            chunk = bytes([i]) + block[1:]
            digest.update(chunk)
            f.write(chunk)
    sha = digest.hexdigest()
    size = 20 << 20
    del block

    tracemalloc.start()
    try:
        ref = store.put_file(str(src), sha, "application/octet-stream")
        chunk_size = 256 * 1024
        n = 0
        check = hashlib.sha256()
        for chunk in store.open(ref, chunk_size=chunk_size):
            assert len(chunk) <= chunk_size
            check.update(chunk)
            n += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ref.size == size
    assert n == size // chunk_size
    assert check.hexdigest() == sha
    assert peak < 8 << 20, f"peak {peak} bytes: the object was not streamed"


def test_open_object_store_factory(tmp_path: Path) -> None:
    s: ObjectStore = open_object_store(Settings(data_dir=tmp_path, object_store="local"))
    assert isinstance(s, LocalObjectStore)
    assert s.root == (tmp_path / "objects").resolve()
    with pytest.raises(ObjectStoreError, match="CHARTVAULT_S3_ENDPOINT"):
        open_object_store(Settings(data_dir=tmp_path, object_store="s3", _env_file=None))
