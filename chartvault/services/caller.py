"""Who is acting: the name the audit log records and the role and organisation that scope answers."""

from __future__ import annotations

import getpass
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from chartvault.archive.audit import AuditLog
from chartvault.archive.models import Patient
from chartvault.archive.tokens import Principal

AUDIT_IDS_PER_ENTRY = 500  # document ids in one audit entry of a read (a longer list takes several)


@dataclass(frozen=True, slots=True)
class Caller:
    """The actor of a request or command.

    ``role`` None is the machine's operator (the CLI, the server's own background work): the API's
    roles are enforced at its door, and a person at the console already holds the data folder.
    """

    actor: str  # token:<id> | user:<id> | cli:<user> | system
    role: str | None = None
    vendor: str | None = None  # the organisation of a vendor token
    user_id: str | None = None  # the named user behind a token (None: a token from before users)
    token_made_by: str | None = None  # the actor that created the caller's token
    token_made_by_user: str | None = None  # the user behind that actor, when known

    @classmethod
    def of_token(cls, principal: Principal) -> Caller:
        return cls(
            principal.actor,
            principal.role,
            principal.vendor,
            principal.user_id,
            principal.made_by,
            principal.made_by_user,
        )

    @classmethod
    def of_user(cls, user_id: str, role: str, vendor: str | None = None) -> Caller:
        """A signed-in person (a web session): the audit log names the user, not the session."""
        return cls(f"user:{user_id}", role, vendor, user_id)

    @classmethod
    def operator(cls) -> Caller:
        """Whoever runs the command on this machine."""
        return cls(f"cli:{getpass.getuser()}")

    @property
    def is_vendor(self) -> bool:
        return self.role == "vendor"

    @property
    def is_scanner(self) -> bool:
        return self.role == "scanner"


SYSTEM = Caller("system")
REPEAT_READ_WINDOW_S = 600.0  # the same view of the same thing, read again by the same caller: audited once


class _RecentReads:
    """The last audited view of each (actor, action, target) in this process, bounded (oldest dropped)."""

    def __init__(self, size: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._views: OrderedDict[Hashable, tuple[Hashable, float]] = OrderedDict()
        self._size = size
        self._clock = clock
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._views.clear()

    def is_repeat(self, key: Hashable, view: Hashable) -> bool:
        """True when ``key`` was audited showing ``view`` within the window; else it is recorded as now."""
        now = self._clock()
        with self._lock:
            last = self._views.get(key)
            if last is not None and last[0] == view and now - last[1] < REPEAT_READ_WINDOW_S:
                return True
            self._views[key] = (view, now)
            self._views.move_to_end(key)
            while len(self._views) > self._size:
                self._views.popitem(last=False)
            return False


_RECENT_READS = _RecentReads()


@dataclass(frozen=True, slots=True)
class AuditTrail:
    """The audit log, writing as one caller: every service records what it did through this."""

    log: AuditLog
    actor: str

    def __call__(
        self,
        action: str,
        target_type: str | None = None,
        target_id: str | None = None,
        outcome: str = "ok",
        detail: dict[str, Any] | None = None,
        actor: str | None = None,
    ) -> str:
        """Record one entry (ids and codes only) as this caller (or ``actor``); returns its MAC."""
        return self.log.record(actor or self.actor, action, target_type, target_id, outcome, detail)

    def seen(
        self, action: str, target_type: str, target_id: str | None, shown: list[str], **detail: Any
    ) -> None:
        """A read that showed these documents: one entry per ``AUDIT_IDS_PER_ENTRY`` ids (a long timeline
        takes several), each with the count, its part of the ids and ``detail``."""
        chunks = [shown[i : i + AUDIT_IDS_PER_ENTRY] for i in range(0, len(shown), AUDIT_IDS_PER_ENTRY)]
        for part, ids in enumerate(chunks or [[]], start=1):
            counts = {"results": len(shown), "documents": ids, "part": part, "parts": max(1, len(chunks))}
            self(action, target_type, target_id, detail={**counts, **detail})

    def seen_once(
        self, action: str, target_type: str, target_id: str, shown: list[str], view: Hashable, **detail: Any
    ) -> None:
        """``seen``, unless this caller was audited reading the same ``view`` of the same target (what the
        read showed: its files and documents, say) less than ``REPEAT_READ_WINDOW_S`` ago in this process.
        For pages that poll: a batch's live part reads the batch every 2 s, and an operator following a
        batch for twenty minutes wrote 600 identical entries. Anything new shown is audited at once; the
        same view again, once a window. Several server processes may each record it: more, never fewer."""
        if not _RECENT_READS.is_repeat((self.actor, action, target_type, target_id), view):
            self.seen(action, target_type, target_id, shown, **detail)

    def refused_once(self, action: str, outcome: str, source: Hashable) -> None:
        """A refusal anyone can repeat without limit (a throttled sign-in), audited once per ``source``
        (a client address: kept for the comparison, never written) a ``REPEAT_READ_WINDOW_S`` in this
        process: one entry each would let a stranger write the log as fast as the server answers."""
        if not _RECENT_READS.is_repeat((self.actor, action, outcome, source), None):
            self(action, outcome=outcome)

    def patient_ref(self, mrn: str | None) -> str | None:
        """What an audit row says instead of an MRN: the patient's internal id, else a keyed hash.

        An MRN is an identifier (PHI); a patient id means nothing outside the catalog. An MRN with no
        patient row (a search for an unknown number) gets ``AuditLog.pseudonym``: recomputable by a
        key holder investigating that MRN, meaningless to anyone reading the catalog.
        """
        if mrn is None or not mrn.strip():
            return None
        with self.log.sessions() as s:
            patient_id = s.scalar(select(Patient.id).where(Patient.mrn == mrn.strip()))
        return f"patient:{patient_id}" if patient_id else self.log.pseudonym(mrn.strip())
