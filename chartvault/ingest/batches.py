"""Taking files into a batch: stage them durably, hash them, recognise duplicates.

A file is staged (written, fsynced and renamed under the data folder) before
its catalog row is committed, so the catalog never names bytes that are not on
disk. An HTTP client is answered only after every file of its request is staged.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from chartvault.archive.models import (
    BATCH_PROCESSING,
    FILE_DUPLICATE,
    FILE_QUARANTINED,
    PAGE_ARCHIVED,
    PAGE_INDEXED,
    REVIEW_PENDING,
    Batch,
    BatchFile,
    Document,
    new_id,
)
from chartvault.ingest.manifest import Manifest
from chartvault.ingest.staging import StagedFile, safe_name


def create_batch(
    session: Session,
    source: str,
    station: str | None = None,
    operator: str | None = None,
    manifest: Manifest | None = None,
) -> Batch:
    batch = Batch(
        id=new_id(),
        source=source,
        station=station,
        operator=operator,
        manifest=manifest.raw if manifest else None,
        flags=[],
    )
    session.add(batch)
    session.flush()
    return batch


def archived_document_for(session: Session, sha256: str) -> Document | None:
    """An archived document whose original has exactly these bytes."""
    return session.scalars(
        select(Document)
        .where(Document.sha256 == sha256, Document.status.in_((PAGE_ARCHIVED, PAGE_INDEXED)))
        .order_by(Document.created_at)
        .limit(1)
    ).first()


def add_file(
    session: Session,
    data_dir: Path,
    batch: Batch,
    staged: StagedFile,
    original_name: str | None,
    manifest: Manifest | None = None,
    source_path: str | None = None,
    max_bytes: int | None = None,
) -> BatchFile:
    """Record a staged file in the batch; refuse it if over the limit, link it if a duplicate."""
    seq = (session.scalar(select(func.max(BatchFile.seq)).where(BatchFile.batch_id == batch.id)) or 0) + 1
    name = safe_name(original_name)
    row = BatchFile(
        id=new_id(),
        batch_id=batch.id,
        seq=seq,
        original_name=name,
        source_path=source_path,
        size=staged.size,
        sha256=staged.sha256,
    )
    _apply_expectation(row, manifest, name)
    if staged.over_limit:
        row.status = FILE_QUARANTINED
        row.reason_code = "too_large"
        row.reason = f"The file is {staged.size:,} bytes; the limit is {max_bytes or 0:,} bytes."
        quarantine_staged(data_dir, row)  # the reason is kept; the bytes past the limit never were
    elif (dup := archived_document_for(session, staged.sha256)) is not None:
        _flag_duplicate_of_another_patient(batch, row, dup)
        row.status = FILE_DUPLICATE
        row.duplicate_of = dup.id
        row.page_count = dup.page_count
        row.kind = dup.mime.split("/")[-1]
        row.reason_code = "duplicate"
        row.reason = "An identical file (same sha256) is already archived; linked to it, not stored twice."
        assert staged.path is not None
        staged.path.unlink(missing_ok=True)
    else:
        assert staged.path is not None
        rel = Path("staging") / batch.id / row.id
        final = data_dir / rel
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged.path, final)
        _fsync_dir(final.parent)
        row.staged_path = str(rel)
    session.add(row)
    session.flush()
    return row


def _flag_duplicate_of_another_patient(batch: Batch, row: BatchFile, dup: Document) -> None:
    """The manifest says these bytes are another patient's than the archived copy: a person must look.

    Linking silently would leave one of the two patients' records wrong without anyone knowing. The
    batch is flagged and the archived document goes to the review queue (held from release until
    resolved); ids only.
    """
    if row.mrn_hint is None or row.mrn_hint == dup.mrn:
        return
    flag_batch(
        batch,
        {
            "code": "duplicate_mrn_mismatch",
            "file_id": row.id,
            "document_id": dup.id,
            "message": f"File #{row.seq} is identical to archived document {dup.id}, "
            "which is filed under another MRN than the manifest names.",
        },
    )
    reason = {"code": "duplicate_mrn_mismatch", "batch_id": batch.id, "file_id": row.id}
    reasons = list(dup.review_reasons or [])
    if reason not in reasons:
        dup.review_reasons = [*reasons, reason]
    dup.review_status = REVIEW_PENDING


def _apply_expectation(row: BatchFile, manifest: Manifest | None, name: str) -> None:
    if manifest is None:
        return
    exp = manifest.expectation_for(name)
    row.expected_pages = exp.pages if exp else None
    row.mrn_hint = (exp.mrn if exp else None) or manifest.mrn
    row.doc_type_hint = (exp.doc_type if exp else None) or manifest.doc_type


def close_intake(session: Session, batch: Batch, manifest: Manifest | None) -> None:
    """Every file is in: flag what the manifest expected but did not arrive, and start processing."""
    if manifest is not None:
        flags = list(batch.flags or [])
        names = {f.original_name for f in batch.files}
        for exp in manifest.files:
            if safe_name(exp.name) not in names:
                flags.append(
                    {
                        "code": "missing_file",
                        "manifest_index": exp.index,
                        "message": f"Manifest file #{exp.index + 1} was not received.",
                    }
                )
        if manifest.expected_files is not None and manifest.expected_files != len(batch.files):
            flags.append(
                {
                    "code": "file_count_mismatch",
                    "expected": manifest.expected_files,
                    "received": len(batch.files),
                    "message": f"The manifest expected {manifest.expected_files} files; "
                    f"{len(batch.files)} were received.",
                }
            )
        batch.flags = flags
    batch.status = BATCH_PROCESSING


def quarantine_staged(data_dir: Path, row: BatchFile) -> None:
    """Move a refused file's bytes aside, with a reason file beside them: never silently dropped."""
    rel = Path("quarantine") / row.batch_id / row.id
    dst = data_dir / rel
    dst.parent.mkdir(parents=True, exist_ok=True)
    src = data_dir / row.staged_path if row.staged_path else None
    if src is not None and src.exists():
        shutil.move(src, dst)
    kept = "kept beside this file" if dst.exists() else "not kept (refused while being received)"
    (dst.parent / f"{row.id}.reason.txt").write_text(
        f"batch: {row.batch_id}\nfile: {row.id}\nsha256: {row.sha256}\n"
        f"code: {row.reason_code}\nreason: {row.reason}\nbytes: {kept}\n",
        encoding="utf-8",
    )
    row.staged_path = str(rel) if dst.exists() else None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def flag_batch(batch: Batch, flag: dict[str, object]) -> None:
    """Record something on the batch for a person to look at (ids and counts, never names)."""
    flags = list(batch.flags or [])
    if flag not in flags:
        flags.append(flag)
    batch.flags = flags  # reassign: JSON columns do not track in-place changes


def expired_quarantine(session: Session, older_than_days: int) -> list[BatchFile]:
    """Quarantined files refused more than ``older_than_days`` ago whose bytes are still kept (a file
    refused while being received never had its bytes kept: only its reason file, which holds ids)."""
    cutoff = datetime.now(UTC) - timedelta(days=older_than_days)
    q = select(BatchFile).where(
        BatchFile.status == FILE_QUARANTINED,
        BatchFile.updated_at < cutoff,
        BatchFile.staged_path.is_not(None),
    )
    return list(session.scalars(q))


def purge_quarantined(data_dir: Path, row: BatchFile, dry_run: bool = False) -> int:
    """Delete a quarantined file's bytes and reason file (the catalog row keeps code and reason);
    the bytes freed."""
    folder = data_dir / "quarantine" / row.batch_id
    paths = [data_dir / row.staged_path] if row.staged_path else []
    paths.append(folder / f"{row.id}.reason.txt")
    size = sum(p.stat().st_size for p in paths if p.is_file())
    if dry_run:
        return size
    for path in paths:
        path.unlink(missing_ok=True)
    row.staged_path = None
    with contextlib.suppress(OSError):
        folder.rmdir()  # only when it has emptied
    return size
