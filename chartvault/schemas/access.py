"""API tokens and the audit log's own report."""

from __future__ import annotations

from dataclasses import dataclass


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


@dataclass(frozen=True, slots=True, kw_only=True)
class NewToken(TokenView):
    """A token just made: ``token`` is its secret, shown this once and stored nowhere."""

    token: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenList:
    tokens: list[TokenView]


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditReport:
    """The audit chain walked end to end: where it first breaks, if it does."""

    ok: bool
    entries: int
    first_bad_id: int | None
    problem: str | None
    last_hash: str | None = None
