"""Audit entries: who read or did what, to which ids, with what outcome.

Entries carry ids and codes only, never names or page text. Each entry's hash
covers its content and the previous entry's hash, so an altered, inserted or
deleted entry breaks the chain (verification and role-based actors arrive with
the release-of-information work).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from chartvault.archive.db import transaction
from chartvault.archive.models import AuditEvent

GENESIS = "0" * 64


def _digest(prev: str, event: AuditEvent) -> str:
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


def record(
    sessions: sessionmaker[Session],
    actor: str,
    action: str,
    target_type: str | None = None,
    target_id: str | None = None,
    outcome: str = "ok",
    detail: dict[str, Any] | None = None,
) -> str:
    """Append one entry in its own short transaction, serialised so the chain never forks.

    Returns the entry's hash, which a certificate of destruction quotes.
    """
    with transaction(sessions, immediate=True) as s:
        if s.get_bind().dialect.name == "postgresql":
            s.execute(text("SELECT pg_advisory_xact_lock(7261531)"))
        prev = s.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)) or GENESIS
        event = AuditEvent(
            at=datetime.now(UTC),
            actor=actor,
            action=action,
            target_type=target_type,
            target_id=target_id,
            outcome=outcome,
            detail=detail,
            prev_hash=prev,
        )
        event.hash = _digest(prev, event)
        s.add(event)
    return event.hash


def verify(sessions: sessionmaker[Session]) -> int | None:
    """The id of the first entry whose chain is broken, or None when the log is intact."""
    prev = GENESIS
    with sessions() as s:
        for event in s.scalars(select(AuditEvent).order_by(AuditEvent.id)).yield_per(1000):
            if event.prev_hash != prev or event.hash != _digest(prev, event):
                return event.id
            prev = event.hash or ""
    return None


def verify_report(sessions: sessionmaker[Session]) -> dict[str, Any]:
    """Walk the whole chain; say where it first breaks and how.

    An altered entry no longer hashes to its stored hash; an inserted or deleted
    entry breaks the link (``prev_hash``) of the entry after it. Deleting the
    newest entries leaves a shorter valid chain: compare ``entries`` and ``last_hash``
    with a copy kept elsewhere (e.g. the daily figure in the operator's log).
    """
    prev = GENESIS
    count = 0
    with sessions() as s:
        for event in s.scalars(select(AuditEvent).order_by(AuditEvent.id)).yield_per(1000):
            count += 1
            if event.prev_hash != prev:
                return {
                    "ok": False,
                    "entries": count,
                    "first_bad_id": event.id,
                    "problem": "link broken: an entry before this one was deleted, inserted or altered",
                }
            if event.hash != _digest(prev, event):
                return {
                    "ok": False,
                    "entries": count,
                    "first_bad_id": event.id,
                    "problem": "entry altered: its content no longer matches its hash",
                }
            prev = event.hash or ""
    return {"ok": True, "entries": count, "first_bad_id": None, "problem": None, "last_hash": prev}


class AuditLog:
    """The catalog's append-only audit log: entries are recorded and the chain verified here only."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def record(
        self,
        actor: str,
        action: str,
        target_type: str | None = None,
        target_id: str | None = None,
        outcome: str = "ok",
        detail: dict[str, Any] | None = None,
    ) -> str:
        """Append one entry; returns its chain hash."""
        return record(self.sessions, actor, action, target_type, target_id, outcome, detail)

    def verify(self) -> dict[str, Any]:
        """Walk the whole chain (see ``verify_report``)."""
        return verify_report(self.sessions)
