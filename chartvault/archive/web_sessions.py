"""Web sessions in the catalog: opened at sign-in, ended by sign-out, idleness, age or a disabled user.

The browser holds a random secret (256 bits); the catalog holds its sha256, so a copy of the catalog
opens no session. Rows are kept when a session ends: who was signed in, when and why it ended.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from chartvault.archive.models import User, WebSession

SIGNED_OUT, IDLE, EXPIRED, DISABLED = "signed_out", "idle", "expired", "disabled"
# last_seen_at is written at most this often: a page with twenty images is not twenty writes.
TOUCH_EVERY = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class OpenSession:
    """A live session and the user behind it."""

    id: str
    user_id: str
    username: str
    display_name: str
    role: str
    vendor: str | None
    csrf_token: str
    last_seen_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class EndedSession:
    """A session found but no longer valid (the caller audits why)."""

    id: str
    user_id: str
    reason: str


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def open_session(s: Session, user_id: str, max_age: timedelta) -> tuple[WebSession, str]:
    """A new session row and the secret for the cookie (never stored). The caller commits."""
    secret = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    row = WebSession(
        secret_hash=_hash(secret),
        user_id=user_id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
        expires_at=now + max_age,
    )
    s.add(row)
    s.flush()
    return row, secret


def resolve_session(
    s: Session, secret: str, idle: timedelta, now: datetime | None = None
) -> OpenSession | EndedSession | None:
    """The live session this secret opens; an ``EndedSession`` if it just ran out; None if unknown.

    A session ends when idle longer than ``idle``, past its absolute expiry, or when its user is
    disabled; the row is ended here, once, so the caller can audit it once.
    """
    now = now or datetime.now(UTC)
    found = s.execute(
        select(WebSession, User)
        .join(User, User.id == WebSession.user_id)
        .where(WebSession.secret_hash == _hash(secret), WebSession.ended_at.is_(None))
    ).first()
    if found is None:
        return None
    row, user = found
    reason = (
        DISABLED
        if user.disabled_at is not None
        else EXPIRED
        if now >= row.expires_at
        else IDLE
        if now - row.last_seen_at > idle
        else None
    )
    if reason is not None:
        row.ended_at, row.end_reason = now, reason
        return EndedSession(row.id, row.user_id, reason)
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
    return OpenSession(
        id=row.id,
        user_id=user.id,
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        vendor=user.vendor,
        csrf_token=row.csrf_token,
        last_seen_at=row.last_seen_at,
        expires_at=row.expires_at,
    )


def end_session(s: Session, secret: str, reason: str = SIGNED_OUT) -> str | None:
    """End the session this secret opens; its id, or None when there was none live."""
    row = s.scalars(
        select(WebSession).where(WebSession.secret_hash == _hash(secret), WebSession.ended_at.is_(None))
    ).first()
    if row is None:
        return None
    row.ended_at, row.end_reason = datetime.now(UTC), reason
    return row.id


def end_user_sessions(s: Session, user_id: str, reason: str) -> int:
    """End every live session of a user (disabled, password reset); how many were live."""
    result = s.execute(
        update(WebSession)
        .where(WebSession.user_id == user_id, WebSession.ended_at.is_(None))
        .values(ended_at=datetime.now(UTC), end_reason=reason)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
