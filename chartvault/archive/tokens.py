"""API tokens: random, shown once, stored as a sha256 of the secret, expiring, revocable.

A token reads ``cv_<id>_<secret>``: the id finds the row (and names the caller in
the audit log), the secret is compared in constant time against its stored hash.
A stolen catalog therefore yields no usable token.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from chartvault.archive.models import ROLES, ApiToken, User, new_id
from chartvault.errors import InvalidInput, NotFound

__all__ = ["ROLES", "Principal", "TokenError", "create_token", "list_tokens", "revoke_token", "verify_token"]

_TOKEN_RE = re.compile(r"cv_([0-9a-f]{32})_([A-Za-z0-9_-]{43})")
MAX_DAYS = 3650


class TokenError(InvalidInput):
    """A token request that cannot be carried out (never echoes a secret)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's id, name, role and (for vendors) organisation, whose token it is
    (``user_id``; None for a token from before users) and who made it (separation of duties)."""

    token_id: str
    name: str
    role: str
    vendor: str | None
    user_id: str | None = None
    made_by: str | None = None  # the actor that created the token
    made_by_user: str | None = None  # the user behind that actor, when known

    @property
    def actor(self) -> str:
        return f"token:{self.token_id}"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(
    s: Session,
    *,
    role: str | None,
    name: str,
    created_by: str,
    vendor: str | None = None,
    days: int = 90,
    user: User | None = None,
    created_by_user: str | None = None,
    not_after: datetime | None = None,
) -> tuple[ApiToken, str]:
    """A new token row and its plaintext (shown once, never stored). The caller commits.

    A token of a ``user`` carries that user's role and organisation (a ``role`` or ``vendor`` given too
    must agree). A token without a user (made by code, e.g. tests) needs both itself. ``not_after``
    caps its expiry (a token made with a token ends no later than it).
    """
    if user is not None:
        if user.disabled_at is not None:
            raise TokenError(f"user {user.username} is disabled")
        if role not in (None, user.role) or (vendor and vendor.strip() != user.vendor):
            raise TokenError(f"a token of user {user.username} has the user's role ({user.role})")
        role, vendor = user.role, user.vendor
    if role not in ROLES:
        raise TokenError(f"role must be one of {', '.join(ROLES)}")
    if role == "vendor" and not (vendor and vendor.strip()):
        raise TokenError("a vendor token needs --vendor (the organisation it belongs to)")
    if role != "vendor" and vendor:
        raise TokenError("only vendor tokens belong to a vendor organisation")
    if not name.strip():
        raise TokenError("a token needs a name")
    if not 1 <= days <= MAX_DAYS:
        raise TokenError(f"expiry must be 1 to {MAX_DAYS} days")
    token_id, secret = new_id(), secrets.token_urlsafe(32)
    row = ApiToken(
        id=token_id,
        name=name.strip(),
        role=role,
        vendor=vendor.strip() if vendor else None,
        secret_hash=_hash(secret),
        created_by=created_by,
        created_by_user=created_by_user,
        created_at=datetime.now(UTC),
        expires_at=min(
            datetime.now(UTC) + timedelta(days=days), not_after or datetime.max.replace(tzinfo=UTC)
        ),
        user_id=user.id if user is not None else None,
    )
    s.add(row)
    return row, f"cv_{token_id}_{secret}"


def verify_token(s: Session, presented: str, now: datetime | None = None) -> Principal | None:
    """The principal of a valid, unexpired, unrevoked token; None otherwise (no reason leaks)."""
    m = _TOKEN_RE.fullmatch(presented or "")
    if m is None:
        return None
    row = s.get(ApiToken, m.group(1))
    now = now or datetime.now(UTC)
    expected = row.secret_hash if row is not None else _hash("no such token")
    ok = hmac.compare_digest(expected, _hash(m.group(2)))  # same work whether or not the id exists
    if row is None or not ok or row.revoked_at is not None or row.expires_at <= now:
        return None
    if row.user_id is not None:
        owner = s.get(User, row.user_id)
        if owner is None or owner.disabled_at is not None:
            return None  # a disabled user's tokens stop working with the user
    if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
        row.last_used_at = now  # throttled: not a write per request
    return Principal(row.id, row.name, row.role, row.vendor, row.user_id, row.created_by, row.created_by_user)


def revoke_token(s: Session, token_id: str, revoked_by: str) -> ApiToken:
    row = s.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"no such token: {token_id}")
    if row.revoked_at is None:
        row.revoked_at, row.revoked_by = datetime.now(UTC), revoked_by
    return row


def list_tokens(s: Session) -> list[ApiToken]:
    return list(s.scalars(select(ApiToken).order_by(ApiToken.created_at)))
