"""API tokens and the audit log's own report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenView:
    """A token as listed: never its secret."""

    id: str
    name: str
    role: str
    vendor: str | None
    created_by: str | None
    created_at: str | None
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None
    user_id: str | None = None  # whose token it is (None: made before tokens belonged to users)


@dataclass(frozen=True, slots=True, kw_only=True)
class NewToken(TokenView):
    """A token just made: ``token`` is its secret, shown this once and stored nowhere."""

    token: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UserView:
    """A named user (never the password or its hash)."""

    id: str
    username: str
    display_name: str
    role: str
    vendor: str | None
    has_password: bool
    created_at: str | None
    disabled_at: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class UserList:
    users: list[UserView]


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenList:
    tokens: list[TokenView]


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditCheckpoint:
    """The audit log's entry count and head MAC, written as a locked object outside the catalog."""

    entries: int
    head_mac: str
    key_id: str
    at: str
    legacy_entries: int
    object_key: str
    version_id: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditKeyRotation:
    from_key: str
    to_key: str
    checkpoint: AuditCheckpoint


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkKeyRotation:
    """A new page-link key made current; with ``revoked``, the keys dropped (their links no longer open)."""

    from_key: str
    to_key: str
    revoked: list[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditReport:
    """The audit chain walked end to end against every checkpoint: where it first breaks, if it does."""

    ok: bool
    entries: int
    legacy_entries: int
    last_hash: str | None
    keys_used: list[str]
    checkpoints: int
    newest_checkpoint: AuditCheckpoint | None
    since_checkpoint: int | None
    problem: str | None  # a code: altered, missing, truncated, checkpoint_mismatch, ...
    message: str | None
    first_bad_position: int | None
    first_bad_id: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    """One audit entry as an administrator reads it: ids and codes only, as the log holds them."""

    seq: int  # the position in the chain
    at: str | None
    actor: str
    action: str
    target_type: str | None
    target_id: str | None
    outcome: str
    detail: dict[str, Any] | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntries:
    """A page of entries, newest first. ``newer``/``older`` are the positions to page from (None: no
    more that way); ``actions`` every action the log holds, to filter by."""

    entries: list[AuditEntry]
    newer: int | None
    older: int | None
    actions: list[str]
