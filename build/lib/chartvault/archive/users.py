"""Named users: created by an admin, signing in with a password kept only as an argon2 hash.

A user is who separation of duties compares and who the audit log names behind a token or a web
session. Messages name usernames and ids, never passwords.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from chartvault.archive.models import ROLES, User
from chartvault.errors import Conflict, InvalidInput, NotFound

MIN_PASSWORD = 12  # NIST SP 800-63B: at least 8; a records system asks for more
_USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,63}")
_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# Verified against when a username is unknown, so a wrong name costs what a wrong password costs.
_DUMMY_HASH = _hasher.hash("not a password of anyone: equal time for unknown users")


def create_user(
    s: Session,
    *,
    username: str,
    display_name: str,
    role: str,
    created_by: str,
    password: str | None = None,
    vendor: str | None = None,
) -> User:
    """A new user (the caller commits). Vendors belong to exactly one organisation."""
    username = username.strip().lower()
    if not _USERNAME.fullmatch(username):
        raise InvalidInput(
            "username: 2-64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit"
        )
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
    if (role == "vendor") != bool(vendor and vendor.strip()):
        raise InvalidInput("a vendor user needs its organisation (vendor), and only a vendor user has one")
    if not display_name.strip():
        raise InvalidInput("a user needs a display name")
    if s.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"username {username} is taken")
    user = User(
        username=username,
        display_name=display_name.strip(),
        role=role,
        vendor=vendor.strip() if vendor else None,
        created_by=created_by,
    )
    if password is not None:
        set_password(user, password)
    s.add(user)
    s.flush()
    return user


def set_password(user: User, password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"a password needs at least {MIN_PASSWORD} characters")
    user.password_hash = _hasher.hash(password)
    user.password_changed_at = datetime.now(UTC)


def authenticate(s: Session, username: str, password: str) -> User | None:
    """The enabled user with this username and password, else None (no reason is given away)."""
    user = s.scalars(select(User).where(User.username == username.strip().lower())).first()
    stored = user.password_hash if user is not None and user.disabled_at is None else None
    try:
        _hasher.verify(stored or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if stored is None or user is None:
        return None
    if _hasher.check_needs_rehash(stored):
        user.password_hash = _hasher.hash(password)
    return user


def find_user(s: Session, username: str) -> User:
    user = s.scalars(select(User).where(User.username == username.strip().lower())).first()
    if user is None:
        raise NotFound(f"no such user: {username}")
    return user


def list_users(s: Session) -> list[User]:
    return list(s.scalars(select(User).order_by(User.username)))
