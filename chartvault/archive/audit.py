"""The audit log: who read or did what, to which ids, with what outcome - and proof it was not rewritten.

Entries carry ids and codes only, never names or page text. Each entry is sealed by an
HMAC-SHA256 over its position, its content and the previous entry's MAC, under a key kept
outside the catalog (``audit_keys``), so someone who can write the catalog but does not
hold the key cannot edit, insert or remove an entry and recompute the chain. Deleting the
newest entries leaves a shorter chain that still verifies; checkpoints (the entry count and
head MAC as locked objects in the object store, ``audit_checkpoints``) close that, up to
the last checkpoint.

Entries written before the MAC chain existed keep their plain SHA-256 seal and no key id
("legacy"); they are verified as before, and the first keyed entry's MAC covers the last
legacy hash, so recomputing the legacy part breaks the keyed chain after it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from chartvault.archive import audit_checkpoints as checkpoints
from chartvault.archive.audit_checkpoints import Checkpoint, CheckpointError
from chartvault.archive.audit_keys import KeyRing
from chartvault.archive.db import transaction
from chartvault.archive.models import AuditEvent
from chartvault.archive.objectstore import ObjectExistsError, ObjectStore, ObjectStoreError

log = logging.getLogger("chartvault.audit")

GENESIS = "0" * 64
ENTRY_FORMAT = "chartvault-audit/1"
_PG_APPEND_LOCK = 7261531  # serialises appends across processes so the chain never forks

# Problem codes of a VerifyReport.
ALTERED = "altered"
LINK_BROKEN = "link_broken"
MISSING = "missing"
OUT_OF_ORDER = "out_of_order"
UNKEYED = "unkeyed"
UNKNOWN_KEY = "unknown_key"
CHECKPOINT_MISMATCH = "checkpoint_mismatch"
TRUNCATED = "truncated"
CHECKPOINT_INVALID = "checkpoint_invalid"


def legacy_digest(prev: str, event: AuditEvent) -> str:
    """The plain SHA-256 seal of entries written before the MAC chain (kept to verify them)."""
    body = json.dumps(
        [
            prev,
            event.at.isoformat(),
            event.actor,
            event.action,
            event.target_type,
            event.target_id,
            event.outcome,
            event.detail,
        ],
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(body.encode()).hexdigest()


def entry_mac(key: bytes, event: AuditEvent) -> str:
    """The entry's HMAC-SHA256: position, link, content and key id, so none can change unseen."""
    body = json.dumps(
        [
            ENTRY_FORMAT,
            event.seq,
            event.prev_hash,
            event.at.astimezone(UTC).isoformat(),
            event.actor,
            event.action,
            event.target_type,
            event.target_id,
            event.outcome,
            event.detail,
            event.key_id,
        ],
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def _as_stored(detail: dict[str, Any] | None) -> dict[str, Any] | None:
    """``detail`` as it will read back from the catalog's JSON column, so the MAC covers exactly that."""
    return None if detail is None else json.loads(json.dumps(detail, default=str))


@dataclass(frozen=True, slots=True)
class Problem:
    """The first place the log does not hold: a position in the chain (1-based) and the row found there."""

    code: str
    message: str
    position: int | None
    entry_id: int | None


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of walking the whole chain and comparing it with every checkpoint."""

    ok: bool
    entries: int
    legacy_entries: int
    head_mac: str
    keys_used: tuple[str, ...]
    checkpoints: int
    newest_checkpoint: Checkpoint | None
    problem: Problem | None

    @property
    def since_checkpoint(self) -> int | None:
        """Entries newer than the newest checkpoint: the ones whose deletion would go unnoticed."""
        if self.newest_checkpoint is None:
            return None
        return max(0, self.entries - self.newest_checkpoint.entries)

    def as_dict(self) -> dict[str, Any]:
        p = self.problem
        return {
            "ok": self.ok,
            "entries": self.entries,
            "legacy_entries": self.legacy_entries,
            "last_hash": self.head_mac,
            "keys_used": list(self.keys_used),
            "checkpoints": self.checkpoints,
            "newest_checkpoint": self.newest_checkpoint.as_dict() if self.newest_checkpoint else None,
            "since_checkpoint": self.since_checkpoint,
            "problem": p.code if p else None,
            "message": p.message if p else None,
            "first_bad_position": p.position if p else None,
            "first_bad_id": p.entry_id if p else None,
        }


class _ChainWalk:
    """One pass over the entries in position order; ``step`` returns the first problem it meets."""

    def __init__(self, key_ring: KeyRing, anchors: dict[int, set[str]], legacy_limit: int | None) -> None:
        self._ring = key_ring
        self._keys: dict[str, bytes | None] = {}
        self._anchors = anchors
        self._legacy_limit = legacy_limit
        self.position = 0
        self.prev = GENESIS
        self.legacy = 0
        self.keys_used: set[str] = set()
        self._last_anchor = 0
        self._id_after_anchor: int | None = None

    def step(self, e: AuditEvent) -> Problem | None:
        expected = self.position + 1
        if e.seq != expected:
            return self._out_of_place(e, expected)
        if e.prev_hash != self.prev:
            return Problem(
                LINK_BROKEN,
                f"entry {e.id} at position {expected} does not link to the entry before it: that one "
                "was deleted, inserted or rewritten",
                expected,
                e.id,
            )
        problem = self._check_seal(e, expected)
        if problem is not None:
            return problem
        if expected == self._last_anchor + 1:
            self._id_after_anchor = e.id
        claimed = self._anchors.get(expected)
        if claimed:
            if claimed != {e.hash}:
                first = self._last_anchor + 1
                return Problem(
                    CHECKPOINT_MISMATCH,
                    f"a checkpoint records a different entry at position {expected}: entries from "
                    f"position {first} to {expected} were deleted or replaced",
                    first,
                    self._id_after_anchor,
                )
            self._last_anchor = expected
        self.position, self.prev = expected, e.hash or ""
        return None

    def finish(self) -> Problem | None:
        """After the last entry: a checkpoint naming more entries than exist means the newest were deleted."""
        claimed = max(self._anchors, default=0)
        if claimed > self.position:
            return Problem(
                TRUNCATED,
                f"the log ends at position {self.position} but a checkpoint records {claimed} entries: "
                f"entries from position {self.position + 1} to {claimed} were deleted",
                self.position + 1,
                None,
            )
        return None

    def _out_of_place(self, e: AuditEvent, expected: int) -> Problem:
        if e.seq is not None and e.seq > expected:
            return Problem(
                MISSING,
                f"position {expected} is missing (entry {e.id} follows at position {e.seq}): "
                "an entry was deleted",
                expected,
                e.id,
            )
        return Problem(
            OUT_OF_ORDER, f"entry {e.id} claims position {e.seq}, already taken or invalid", expected, e.id
        )

    def _check_seal(self, e: AuditEvent, position: int) -> Problem | None:
        if e.key_id is None:
            return self._check_legacy(e, position)
        key = self._key(e.key_id)
        if key is None:
            return Problem(
                UNKNOWN_KEY,
                f"entry {e.id} at position {position} is sealed with key {e.key_id}, which the key ring "
                "does not hold (restore it to the key file or CHARTVAULT_AUDIT_RETIRED_KEYS)",
                position,
                e.id,
            )
        if not hmac.compare_digest(e.hash or "", entry_mac(key, e)):
            return Problem(
                ALTERED,
                f"entry {e.id} at position {position} was altered: its MAC does not verify",
                position,
                e.id,
            )
        self.keys_used.add(e.key_id)
        return None

    def _check_legacy(self, e: AuditEvent, position: int) -> Problem | None:
        limit = self._legacy_limit
        if self.keys_used or (limit is not None and position > limit):
            return Problem(
                UNKEYED,
                f"entry {e.id} at position {position} has no MAC where the log is keyed: it was "
                "rewritten without the key",
                position,
                e.id,
            )
        if e.hash != legacy_digest(self.prev, e):
            return Problem(
                ALTERED,
                f"legacy entry {e.id} at position {position} was altered: it no longer matches its hash",
                position,
                e.id,
            )
        self.legacy += 1
        return None

    def _key(self, key_id: str) -> bytes | None:
        if key_id not in self._keys:
            self._keys[key_id] = self._ring.get(key_id)
        return self._keys[key_id]


class AuditLog:
    """Appends sealed entries, writes checkpoints to the store and verifies the whole log.

    One per process (the services hold it). Checkpoints are written when an append finds the
    interval elapsed, by a timer while the process idles with unprotected entries, and at
    ``close``; a checkpoint is only written when this process appended since its last one.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        key_ring: KeyRing,
        store: ObjectStore,
        checkpoint_interval_s: float = 300.0,
        checkpoint_retention_days: int = 2190,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock`` measures the checkpoint interval (monotonic seconds; replaceable in tests)."""
        self.sessions = sessions
        self.key_ring = key_ring
        self.store = store
        self.checkpoint_interval_s = checkpoint_interval_s
        self.checkpoint_retention = timedelta(days=checkpoint_retention_days)
        self._clock = clock
        self._state_lock = threading.Lock()
        self._checkpoint_lock = threading.Lock()
        self._appended = 0  # highest position this process appended
        self._checkpointed = 0  # entries in this process's newest checkpoint
        self._last_attempt = self._clock()
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None

    # -- appending ----------------------------------------------------------------------------

    def record(
        self,
        actor: str,
        action: str,
        target_type: str | None = None,
        target_id: str | None = None,
        outcome: str = "ok",
        detail: dict[str, Any] | None = None,
    ) -> str:
        """Append one entry in its own short transaction, serialised so the chain never forks.

        Returns the entry's MAC, which a certificate of destruction quotes. Writes a checkpoint
        afterwards when the interval has elapsed since the last one.
        """
        key_id, key = self.key_ring.current()
        with transaction(self.sessions, immediate=True) as s:
            if s.get_bind().dialect.name == "postgresql":
                s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_APPEND_LOCK})
            head = s.execute(
                select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
            ).first()
            event = AuditEvent(
                seq=head.seq + 1 if head else 1,
                at=datetime.now(UTC),
                actor=actor,
                action=action,
                target_type=target_type,
                target_id=target_id,
                outcome=outcome,
                detail=_as_stored(detail),
                prev_hash=head.hash if head else GENESIS,
                key_id=key_id,
            )
            event.hash = entry_mac(key, event)
            s.add(event)
        with self._state_lock:
            self._appended = max(self._appended, event.seq)
        self._start_timer()
        self._checkpoint_if_due()
        return event.hash

    def pseudonym(self, value: str) -> str:
        """A keyed hash of an identifier that has no catalog row to point at (e.g. an unknown MRN).

        Audit rows hold ids, never MRNs; for an MRN with no patient row this stands in. Made with
        the current audit key (domain-separated from the chain's MACs) and naming that key, so whoever
        holds the key ring can recompute it for an MRN under investigation, and nobody else can.
        """
        key_id, key = self.key_ring.current()
        digest = hmac.new(key, b"chartvault identifier pseudonym v1\x00" + value.encode(), "sha256")
        return f"hmac:{key_id}:{digest.hexdigest()[:24]}"

    # -- checkpoints --------------------------------------------------------------------------

    def checkpoint(self) -> Checkpoint:
        """Write the chain's current length and head MAC to the store now, locked; returns it."""
        with self._checkpoint_lock:
            with self.sessions() as s:
                head = s.execute(
                    select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
                ).first()
                legacy = s.scalar(
                    select(func.count()).select_from(AuditEvent).where(AuditEvent.key_id.is_(None))
                )
            key_id, key = self.key_ring.current()
            at = datetime.now(UTC)
            entries, head_mac = (head.seq, head.hash) if head else (0, GENESIS)
            cp = Checkpoint(entries, head_mac, key_id, at, int(legacy or 0))
            cp = replace(cp, object_key=checkpoints.object_key(entries, head_mac, key_id, at))
            try:
                ref = self.store.put_named(
                    cp.object_key,
                    checkpoints.encode(cp, key),
                    "application/json",
                    retain_until=at + self.checkpoint_retention,
                )
                cp = replace(cp, version_id=ref.version_id)
            except ObjectExistsError:
                pass  # the same checkpoint, written by another process in the same microsecond
            with self._state_lock:
                self._checkpointed = max(self._checkpointed, entries)
                self._last_attempt = self._clock()
            log.info("audit checkpoint written: %d entries (%s)", entries, cp.object_key)
            return cp

    def _checkpoint_if_due(self) -> None:
        """Checkpoint when this process appended since its last one and the interval has passed.

        A failure is logged, not raised: the entry is already committed, and the next
        append or timer tick tries again.
        """
        with self._state_lock:
            now = self._clock()
            due = (
                self._appended > self._checkpointed and now - self._last_attempt >= self.checkpoint_interval_s
            )
            if due:
                self._last_attempt = now
        if not due:
            return
        try:
            self.checkpoint()
        except Exception as exc:  # a store or catalog outage must not fail the caller
            log.warning(
                "audit checkpoint failed (%s); retrying in %.0f s",
                type(exc).__name__,
                self.checkpoint_interval_s,
            )

    @property
    def _tick(self) -> float:
        return max(0.05, min(self.checkpoint_interval_s / 4, 60.0))

    def _start_timer(self) -> None:
        with self._state_lock:
            if self._timer is not None or self._stop.is_set():
                return
            self._timer = threading.Thread(target=self._run_timer, name="audit-checkpoints", daemon=True)
        self._timer.start()

    def _run_timer(self) -> None:
        while not self._stop.wait(self._tick):
            self._checkpoint_if_due()

    def close(self) -> None:
        """Stop the timer and checkpoint what this process appended since its last checkpoint."""
        self._stop.set()
        if self._timer is not None:
            self._timer.join(timeout=30)
        with self._state_lock:
            pending = self._appended > self._checkpointed
        if pending:
            try:
                self.checkpoint()
            except Exception as exc:  # shutting down: report, never mask the exit
                log.error(
                    "final audit checkpoint failed (%s): newest entries are unprotected", type(exc).__name__
                )

    # -- key rotation -------------------------------------------------------------------------

    def rotate_key(self) -> tuple[str, str]:
        """Make a new key current (old keys stay to verify old entries); returns (old id, new id)."""
        old_id, _ = self.key_ring.current()
        return old_id, self.key_ring.rotate()

    # -- verification -------------------------------------------------------------------------

    def verify(self) -> VerifyReport:
        """Walk every entry in position order and compare the chain with every checkpoint.

        Names the first bad position for: an edited entry (its MAC, or its legacy hash, no
        longer verifies, whatever was recomputed without the key), a deleted or inserted
        entry (a gap or a broken link), the newest entries deleted (the chain is shorter than
        a checkpoint, or ends differently at a checkpoint's position) and a checkpoint
        whose body does not verify.
        """
        found = checkpoints.list_checkpoints(self.store)
        newest, checkpoint_problem = self._newest_checkpoint(found)
        anchors: dict[int, set[str]] = {}
        for cp in found:
            if cp.entries > 0:
                anchors.setdefault(cp.entries, set()).add(cp.head_mac)
        walk = _ChainWalk(self.key_ring, anchors, newest.legacy_entries if newest else None)
        with self.sessions() as s:
            total = s.scalar(select(func.count()).select_from(AuditEvent)) or 0
            rows = (
                select(AuditEvent).order_by(AuditEvent.seq, AuditEvent.id).execution_options(yield_per=1000)
            )
            problem = _walk(walk, s.scalars(rows))
        problem = problem or checkpoint_problem
        return VerifyReport(
            ok=problem is None,
            entries=int(total),
            legacy_entries=walk.legacy,
            head_mac=walk.prev,
            keys_used=tuple(sorted(walk.keys_used)),
            checkpoints=len(found),
            newest_checkpoint=newest,
            problem=problem,
        )

    def _newest_checkpoint(self, found: list[Checkpoint]) -> tuple[Checkpoint | None, Problem | None]:
        """The newest checkpoint's verified body (any version of its key that verifies), or why not."""
        if not found:
            return None, None
        newest_key = found[-1].object_key
        versions = [cp for cp in found if cp.object_key == newest_key]
        reason = ""
        for named in versions:
            try:
                return checkpoints.read(self.store, named, self.key_ring.get(named.key_id)), None
            except (CheckpointError, ObjectStoreError) as exc:
                reason = str(exc)
        return found[-1], Problem(
            CHECKPOINT_INVALID, f"the newest checkpoint does not verify: {reason}", None, None
        )


def _walk(walk: _ChainWalk, events: Iterable[AuditEvent]) -> Problem | None:
    for event in events:
        problem = walk.step(event)
        if problem is not None:
            return problem
    return walk.finish()


# -- reading entries back -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EntryFilter:
    """Which entries to read: each given field must match exactly; ``since`` inclusive, ``until`` not."""

    actor: str | None = None
    action: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def clauses(self) -> list[Any]:
        found: list[Any] = []
        if self.actor:
            found.append(AuditEvent.actor == self.actor)
        if self.action:
            found.append(AuditEvent.action == self.action)
        if self.target_id:
            found.append(AuditEvent.target_id == self.target_id)
        if self.since is not None:
            found.append(AuditEvent.at >= self.since)
        if self.until is not None:
            found.append(AuditEvent.at < self.until)
        return found


@dataclass(frozen=True, slots=True)
class EntryPage:
    """One page of entries, newest first, and whether the chain holds more of them on either side."""

    entries: list[AuditEvent]
    newer: bool
    older: bool


def read_entries(
    s: Session,
    where: EntryFilter,
    *,
    before: int | None = None,
    after: int | None = None,
    limit: int = 50,
) -> EntryPage:
    """Up to ``limit`` matching entries, newest first: the newest of all, those just older than
    position ``before``, or those just newer than position ``after``.

    Pages are cut by chain position (``seq``), not by offset, so the entries a reader appends while
    paging (reading the log is itself audited) never shift a page under them.
    """
    clauses = where.clauses()
    q = select(AuditEvent).where(*clauses)
    if after is not None:
        rows = list(s.scalars(q.where(AuditEvent.seq > after).order_by(AuditEvent.seq).limit(limit)))
        rows.reverse()
    else:
        if before is not None:
            q = q.where(AuditEvent.seq < before)
        rows = list(s.scalars(q.order_by(AuditEvent.seq.desc()).limit(limit)))
    if not rows:
        return EntryPage([], newer=False, older=False)

    def beyond(edge: Any) -> bool:
        return s.scalar(select(AuditEvent.seq).where(*clauses, edge).limit(1)) is not None

    return EntryPage(
        rows, newer=beyond(AuditEvent.seq > rows[0].seq), older=beyond(AuditEvent.seq < rows[-1].seq)
    )


def actions(s: Session) -> list[str]:
    """Every action the log holds (to choose from), in name order."""
    return list(s.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action)))
