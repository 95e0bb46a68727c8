"""Backup and restore speed against copying the same data folder by hand, measured in the same run.

A synthetic archive (random bytes, so nothing compresses or dedupes) of ``--objects`` originals of
``--kb`` KiB each, archived through the real store with retention locks and catalogued as documents, is
backed up by ``chartvault.archive.backup`` and, as the baseline, copied as an operator would without it
(SQLite's backup API for the catalog, ``shutil.copytree`` for the objects: no checking). Then a second
backup with 1 % new objects (the nightly case) and a restore with its checks. Prints seconds, MB/s and
each figure's ratio to both baseline copies (as made, and made durable by a sync).

    python -m bench.backup [--objects 2000] [--kb 256]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from chartvault.archive import backup
from chartvault.archive.localstore import LocalObjectStore
from chartvault.archive.models import Batch, BatchFile, Document
from chartvault.config import Settings
from chartvault.services import Services


def fill(services: Services, count: int, size: int, scratch: Path) -> None:
    """``count`` random originals in the store, each locked for a year and named by a document row."""
    store, until = services.parts.store, datetime.now(UTC) + timedelta(days=365)
    with services.parts.sessions() as s:
        batch = Batch(source="cli")
        s.add(batch)
        s.flush()
        for seq in range(count):
            blob = scratch / "blob"
            blob.write_bytes(os.urandom(size))
            sha = backup._sha256_of(blob)
            ref = store.put_file(str(blob), sha, "application/pdf", retain_until=until)
            bf = BatchFile(batch_id=batch.id, seq=seq, original_name=f"synthetic-{seq}.pdf", sha256=sha)
            s.add(bf)
            s.flush()
            s.add(
                Document(
                    file_id=bf.id, batch_id=batch.id, page_count=1, sha256=sha, size=size,
                    mime="application/pdf", object_key=ref.key, status="indexed",
                )
            )  # fmt: skip
        s.commit()


def by_hand(data_dir: Path, dest: Path) -> None:
    """The baseline: what an operator would copy without the command (nothing read back or checked)."""
    dest.mkdir(parents=True)
    live, copy = sqlite3.connect(data_dir / "catalog.sqlite3"), sqlite3.connect(dest / "catalog.sqlite3")
    live.backup(copy)
    copy.close()
    live.close()
    shutil.copytree(data_dir / "objects", dest / "objects")


def timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--kb", type=int, default=256)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cv-bench-backup-") as tmp:
        root = Path(tmp)
        settings = Settings(data_dir=root / "data", _env_file=None)
        with Services(settings) as services:
            fill(services, args.objects, args.kb * 1024, root)
            store, keys = services.parts.store, [settings.audit_key_path]
            megabytes = args.objects * args.kb / 1024
            base = timed(lambda: by_hand(settings.data_dir, root / "by-hand"))
            durable = timed(lambda: (by_hand(settings.data_dir, root / "by-hand-synced"), os.sync()))
            first = timed(lambda: backup.backup(settings.data_dir, store, keys, root / "backups"))
            fill(services, max(1, args.objects // 100), args.kb * 1024, root)
            nightly = timed(lambda: backup.backup(settings.data_dir, store, keys, root / "backups"))
            stamp = backup.snapshots(root / "backups")[-1]
            restore = timed(
                lambda: backup.restore(
                    root / "backups",
                    stamp,
                    root / "restored",
                    root / "restored" / "keys" / "audit.key",
                    "GOVERNANCE",
                )
            )
        restored = sum(1 for _ in LocalObjectStore(root / "restored" / "objects").iter_refs())
    print(f"archive: {args.objects} objects x {args.kb} KiB = {megabytes:,.0f} MiB (random bytes)")
    print(f"baseline, copied by hand (catalog backup API + copytree, nothing checked): {base:.2f} s")
    print(f"the same copy made durable (then sync, as the backup fsyncs each object): {durable:.2f} s")
    for name, seconds in (
        ("backup, first", first),
        ("backup, nightly (+1 %)", nightly),
        ("restore", restore),
    ):
        print(
            f"{name}: {seconds:.2f} s, {megabytes / seconds:,.0f} MiB/s, "
            f"ratio to the copy {seconds / base:.2f}, to the durable copy {seconds / durable:.2f}"
        )
    print(f"restored objects: {restored}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
